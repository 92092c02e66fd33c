"""The catalogue of bad input: every stage's every input file given broken in the ways files
break (missing, a folder, empty bytes, not Parquet, a column missing, a column of the wrong
type), and the maps, cameras and options around them. Each must give one line on stderr that
names the file (or option), and exit 1 (2 for a usage error), and write nothing."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fixtures.grid import drive
from mapdiff_cli.main import cli


@pytest.fixture(scope="module")
def good(grid_gpkg, tmp_path_factory):
    """Valid inputs of every kind on the grid map."""
    from mapdiff.camera import Camera

    d = tmp_path_factory.mktemp("good")
    traces = pd.concat([drive([0, 10, 20, 21], noise_m=2, seed=1, trip_id="a"),
                        drive([33, 23, 13], noise_m=2, seed=2, trip_id="b", t0=1000.0)], ignore_index=True)
    traces["t"] = pd.to_datetime(np.round(traces["t"] * 1000).astype(np.int64), unit="ms", utc=True)
    traces.to_parquet(d / "traces.parquet")
    files = {"map": grid_gpkg, "traces": d / "traces.parquet"}
    for name in ("matched", "paths", "coverage"):
        files[name] = d / f"{name}.parquet"
    assert CliRunner().invoke(cli, ["match", str(files["traces"]), "--map", str(grid_gpkg), "-o",
                                    str(files["matched"]), "--paths", str(files["paths"]), "-q"]).exit_code == 0
    assert CliRunner().invoke(cli, ["coverage", str(files["paths"]), "-o", str(files["coverage"]), "-q"]).exit_code == 0
    matched = pd.read_parquet(files["matched"])
    t = matched["t"].iloc[:3].to_numpy()
    lon, lat = matched["lon"].iloc[:3].to_numpy(), matched["lat"].iloc[:3].to_numpy()
    pd.DataFrame({"detection_id": [1, 2, 3], "trip_id": "a", "t": t, "class": "stop", "value": None,
                  "score": 0.9, "x_min": 100.0, "y_min": 100.0, "x_max": 120.0, "y_max": 140.0}
                 ).to_parquet(d / "detections.parquet")
    pd.DataFrame({"trip_id": ["a", "a", "b"], "t": t, "class": "stop", "value": None, "score": 0.9, "lon": lon,
                  "lat": lat, "bearing_deg": [10.0, 20.0, 30.0], "bearing_sigma_deg": 3.0, "range_m": 20.0,
                  "range_sigma_m": 4.0}).to_parquet(d / "observations.parquet")
    pd.DataFrame({"object_id": [1], "class": ["stop"], "value": [None], "lon": lon[:1], "lat": lat[:1],
                  "sigma_m": [1.0], "n_observations": [5], "n_trips": [5]}).to_parquet(d / "objects.parquet")
    (d / "camera.json").write_text(Camera().to_json())
    files.update({name: d / f"{name}.parquet" for name in ("detections", "observations", "objects")})
    files["camera"] = d / "camera.json"
    return files


# stage command lines; {X} is the input under test, {name} a good input, {out} the output folder
COMMANDS = {
    "match traces": ("traces", ["match", "{X}", "--map", "{map}", "-o", "{out}/m.parquet"]),
    "coverage paths": ("paths", ["coverage", "{X}", "-o", "{out}/c.parquet"]),
    "observe detections": ("detections", ["observe", "{X}", "--matched", "{matched}", "--camera", "{camera}",
                                          "-o", "{out}/o.parquet"]),
    "observe matched": ("matched", ["observe", "{detections}", "--matched", "{X}", "--camera", "{camera}",
                                    "-o", "{out}/o.parquet"]),
    "locate observations": ("observations", ["locate", "{X}", "-o", "{out}/l.parquet"]),
    "diff objects": ("objects", ["diff", "--map", "{map}", "--objects", "{X}", "--coverage", "{coverage}",
                                 "-o", "{out}/d.gpkg"]),
    "diff coverage": ("coverage", ["diff", "--map", "{map}", "--objects", "{objects}", "--coverage", "{X}",
                                   "-o", "{out}/d.gpkg"]),
    "diff matched": ("matched", ["diff", "--map", "{map}", "--objects", "{objects}", "--coverage", "{coverage}",
                                 "--matched", "{X}", "-o", "{out}/d.gpkg"]),
    "diff paths": ("paths", ["diff", "--map", "{map}", "--objects", "{objects}", "--coverage", "{coverage}",
                             "--paths", "{X}", "-o", "{out}/d.gpkg"]),
    "plan coverage": ("coverage", ["plan", "{X}", "{paths}", "--map", "{map}", "-o", "{out}/r.parquet",
                                   "--store", "{out}/t.sqlite"]),
    "plan paths": ("paths", ["plan", "{coverage}", "{X}", "--map", "{map}", "-o", "{out}/r.parquet",
                             "--store", "{out}/t.sqlite"]),
}
# per input kind: a column the stages need, and a column whose type they check
COLUMNS = {"traces": ("trip_id", "lon"), "paths": ("edge_id", "edge_id"), "detections": ("class", "x_min"),
           "matched": ("trip_id", "distance_m"), "observations": ("bearing_deg", "bearing_deg"),
           "objects": ("class", "lon"), "coverage": ("passes", "edge_id"),
           # what a stage needs of an input, where it needs less than another stage
           "plan coverage": ("edge_id", "edge_id")}


def _broken(command, kind, how, good, tmp_path):
    """Write input ``kind`` broken ``how``; return its path and a word the error must hold."""
    path = tmp_path / f"bad_{kind}.parquet"
    if how == "missing":
        return path, "not found"
    if how == "folder":
        path.mkdir()
        return path, "found a folder"
    if how == "empty bytes":
        path.write_bytes(b"")
        return path, "cannot read as Parquet"
    if how == "text":
        path.write_text("trip_id,t\na,1\n")
        return path, "cannot read as Parquet"
    frame = pd.read_parquet(good[kind])
    drop, retype = COLUMNS.get(command, COLUMNS[kind])
    if how == "no column":
        frame.drop(columns=drop).to_parquet(path)
        return path, repr(drop)
    frame[retype] = "x"  # text where numbers belong
    frame.to_parquet(path)
    return path, repr(retype)


BREAKS = ["missing", "folder", "empty bytes", "text", "no column", "wrong type"]


@pytest.mark.parametrize("how", BREAKS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_input_broken_every_way(command, how, good, tmp_path):
    kind, template = COMMANDS[command]
    bad, word = _broken(command, kind, how, good, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(X=bad, out=out, **good) for a in template]
    result = CliRunner().invoke(cli, args)
    _one_line(result, 1, bad.name, word)
    assert list(out.iterdir()) in ([], [out / "t.sqlite"])  # (plan's task store opens first)


def _one_line(result, code, *words):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    for word in words:
        assert word in lines[0], result.output


MAP_BREAKS = {
    "missing": (lambda p: None, "not found"),
    "not a GeoPackage": (lambda p: p.write_text("roads"), "not a GeoPackage"),
    "no edges layer": (lambda p: _layers_only(p, "nodes"), "no layer 'edges'"),
}


def _layers_only(path, layer):
    import geopandas as gpd

    from fixtures.grid import grid_edges

    gpd.GeoDataFrame(grid_edges()[["geometry"]]).to_file(path, layer=layer, driver="GPKG")


MAP_COMMANDS = {
    "match": ["match", "{traces}", "--map", "{X}", "-o", "{out}/m.parquet"],
    "simulate": ["simulate", "--map", "{X}", "-o", "{out}/sim", "--vehicles", "1"],
    "observe": ["observe", "{detections}", "--matched", "{matched}", "--camera", "{camera}", "--map", "{X}",
                "-o", "{out}/o.parquet"],
    "diff": ["diff", "--map", "{X}", "--objects", "{objects}", "--coverage", "{coverage}", "-o", "{out}/d.gpkg"],
    "plan": ["plan", "{coverage}", "{paths}", "--map", "{X}", "-o", "{out}/r.parquet", "--store", "{out}/t.sqlite"],
}


@pytest.mark.parametrize("how", sorted(MAP_BREAKS))
@pytest.mark.parametrize("command", sorted(MAP_COMMANDS))
def test_a_broken_map(command, how, good, tmp_path):
    bad = tmp_path / "bad.gpkg"
    make, word = MAP_BREAKS[how]
    make(bad)
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(cli, [a.format(X=bad, out=out, **good) for a in MAP_COMMANDS[command]])
    _one_line(result, 1, "bad.gpkg", word)


@pytest.mark.parametrize("content, word", [
    ("{", "not valid JSON"),
    ('{"width_px": -5}', "width_px"),
    ('{"hfov_deg": 200}', "hfov_deg"),
    ("[1, 2]", "camera"),
    ('{"width_px": "wide"}', "width_px"),
])
def test_a_broken_camera(content, word, good, tmp_path):
    bad = tmp_path / "camera.json"
    bad.write_text(content)
    result = CliRunner().invoke(cli, ["observe", str(good["detections"]), "--matched", str(good["matched"]),
                                      "--camera", str(bad), "-o", str(tmp_path / "o.parquet")])
    _one_line(result, 1, "camera.json", word)
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("args, code, word", [
    (["match", "{traces}", "--map", "{map}", "-o", "{out}/m.parquet", "--search-radius-m", "-1"], 2,
     "--search-radius-m"),
    (["match", "{traces}", "--map", "{map}", "-o", "{out}/m.parquet", "--shard", "3/3"], 2, "--shard"),
    (["locate", "{observations}", "-o", "{out}/l.parquet", "--reach-m", "0"], 2, "--reach-m"),
    (["simulate", "--map", "{map}", "-o", "{out}/sim", "--vehicles", "0"], 2, "--vehicles"),
    (["simulate", "--map", "{map}", "-o", "{out}/sim", "--added-rate", "2"], 2, "--added-rate"),
    (["simulate", "--map", "{map}", "-o", "{out}/sim", "--start-date", "soon"], 2, "--start-date"),
    (["coverage", "{paths}", "-o", "{out}/c.parquet", "--since", "yesterday"], 2, "--since"),
    (["diff", "--map", "{map}", "--coverage", "{coverage}", "-o", "{out}/d.gpkg", "--min-confidence", "2"], 2,
     "--min-confidence"),
    (["plan", "{coverage}", "{paths}", "--map", "{map}", "-o", "{out}/r.parquet", "-k", "0"], 2, "--sightings"),
    (["evaluate", "--truth", "{out}", "--objects", "{objects}"], 1, "truth"),
    (["merge", "match", "{matched}", "-o", "{out}/m.parquet"], 1, "not a shard output"),
    (["network", "{camera}", "-o", "{out}/r.gpkg"], 1, "camera.json"),
])
def test_bad_options_and_odd_inputs(args, code, word, good, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(cli, [a.format(out=out, **good) for a in args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and word in result.output, result.output
    assert list(out.iterdir()) == []

