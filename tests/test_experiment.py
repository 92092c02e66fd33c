"""``mapdiff experiment``: a run from a definition, its manifest, a rerun from the manifest to
the same bytes, compare, deploy (the stacks synthesized), and the definitions refused."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mapdiff_cli.main import cli

from .conftest import FIXTURES, ROOT

DEFINITION = """
id = "{id}"
description = "a test"
[modules]
travel = "main"
video = "main"
recognition = "main"
judgment = "v1.2"
{parameters}
[[data]]
name = "helsinki"
osm = "{osm}"
simulate = {{ vehicles = 2, days = 1, seed = 5 }}
"""


def write(tmp_path, exp_id="Exp7", parameters="[parameters.match]\ngps_sigma_m = 8", osm=None, extra=""):
    path = tmp_path / f"{exp_id}.toml"
    path.write_text(extra + DEFINITION.format(id=exp_id, parameters=parameters,
                                              osm=osm or FIXTURES / "helsinki.osm.pbf"))
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def outputs(run_dir: Path) -> dict:
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exp")
    definition = write(tmp)
    result = invoke("experiment", "run", definition, "-o", tmp / "runs" / "Exp7", "-q")
    assert result.exit_code == 0, result.output
    return tmp / "runs" / "Exp7"


def test_a_run_writes_its_outputs_and_a_manifest(first_run):
    manifest = json.loads((first_run / "manifest.json").read_text())
    assert manifest["experiment"]["id"] == "Exp7"
    assert manifest["experiment"]["parameters"] == {"match": {"gps_sigma_m": 8}}
    group = manifest["groups"]["helsinki"]
    import hashlib

    assert group["osm_sha256"] == hashlib.sha256((FIXTURES / "helsinki.osm.pbf").read_bytes()).hexdigest()
    assert group["seed"] == 5
    assert set(group["stages"]) == {"network", "simulate", "match", "coverage", "observe", "locate", "diff",
                                    "evaluate"}
    assert all(s["seconds"] > 0 and s["peak_mb"] > 50 for s in group["stages"].values())
    assert 0 < group["scores"]["locate"]["recall"] <= 1
    assert manifest["package_version"] and "git_commit" in manifest
    assert (first_run / "helsinki" / "diffs.gpkg").is_file()


def test_a_rerun_from_the_manifest_gives_the_same_bytes(first_run, tmp_path):
    again = tmp_path / "again"
    result = invoke("experiment", "run", first_run / "manifest.json", "-o", again, "-q")
    assert result.exit_code == 0, result.output
    want, got = outputs(first_run), outputs(again)
    assert want.keys() == got.keys() and len(want) > 10
    assert [name for name in want if want[name] != got[name]] == []
    a, b = (json.loads((d / "manifest.json").read_text()) for d in (first_run, again))
    assert a["experiment"] == b["experiment"] and a["groups"]["helsinki"]["scores"] == b["groups"]["helsinki"]["scores"]


def test_compare_prints_the_deltas(first_run, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(first_run, runs / "Exp7")
    other = json.loads((first_run / "manifest.json").read_text())
    other["groups"]["helsinki"]["stages"]["match"]["seconds"] += 2.0
    other["groups"]["helsinki"]["scores"]["locate"]["recall"] -= 0.25
    (runs / "Exp8").mkdir()
    (runs / "Exp8" / "manifest.json").write_text(json.dumps(other))
    result = invoke("experiment", "compare", "Exp7", "Exp8", "--runs", runs, "--json")
    assert result.exit_code == 0, result.output
    rows = {(r["stage"], r["metric"]): r["delta"] for r in json.loads(result.output)}
    assert rows[("match", "seconds")] == pytest.approx(2.0)
    assert rows[("locate", "recall")] == pytest.approx(-0.25)
    assert rows[("diff", "seconds")] == 0
    table = invoke("experiment", "compare", "Exp7", "Exp8", "--runs", runs)
    assert "match" in table.output and "+2" in table.output
    missing = invoke("experiment", "compare", "Exp7", "Exp9", "--runs", runs)
    assert missing.exit_code == 1 and "Exp9/manifest.json: no manifest" in missing.output


@pytest.mark.parametrize("kwargs, words", [
    ({"extra": "\ncolour = 'blue'\n"}, "unknown key(s) ['colour']"),
    ({"exp_id": "exp7"}, "id must be Exp followed by 1 to 999"),
    ({"parameters": "[parameters.paint]\nwidth = 3"}, "[parameters.paint]: no such stage"),
    ({"parameters": "[parameters.match]\ngps_sigma = 8"}, "gps_sigma: no such option of mapdiff match"),
    ({"osm": "/nonexistent/city.osm.pbf"}, "data group 'helsinki': no data at /nonexistent/city.osm.pbf"),
])
def test_a_definition_is_checked(tmp_path, kwargs, words):
    result = invoke("experiment", "run", write(tmp_path, **kwargs), "-o", tmp_path / "runs")
    assert result.exit_code == 1 and words in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()


def test_a_definition_names_every_module(tmp_path):
    path = write(tmp_path)
    path.write_text(path.read_text().replace('judgment = "v1.2"', 'photos = "main"'))
    result = invoke("experiment", "run", path)
    assert result.exit_code == 1 and "unknown: ['photos']" in result.output


def test_deploy_prints_the_plan_and_synthesizes_the_experiments_stacks(tmp_path, monkeypatch):
    pytest.importorskip("aws_cdk")
    if shutil.which("node") is None:
        pytest.skip("synthesis needs Node.js")
    monkeypatch.chdir(ROOT)
    out = ROOT / "deployments" / "cdk" / "cdk.out" / "qa-exp7"
    shutil.rmtree(out, ignore_errors=True)
    result = invoke("experiment", "deploy", write(tmp_path), "--env", "qa")
    assert result.exit_code == 0, result.output
    assert "git checkout v1.2 && make deploy PROJ_ENV=qa EXPID=Exp7 MODULES=judgment" in result.output
    assert sorted(p.name for p in out.glob("*.template.json")) == [
        "QaExp7JudgmentStack.template.json", "QaExp7RecognitionStack.template.json",
        "QaExp7TravelStack.template.json", "QaExp7VideoStack.template.json"]
