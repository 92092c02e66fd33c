"""Experiments: a definition (an id, the version of each module, the stages' parameters, the
data groups) from which a run is rebuilt exactly, and the manifest that records what a run was.

An experiment file (TOML)::

    id = "Exp1"
    description = "a tighter GPS sigma"
    [modules]                  # which version (git ref) of each module; all four
    travel = "main"
    video = "main"
    recognition = "main"
    judgment = "main"
    [parameters.match]         # any option of the stage's command, by its name
    gps_sigma_m = 8
    [[data]]                   # data groups: an OSM extract and the fleet simulated on it
    name = "helsinki"
    osm = "fixtures/helsinki.osm.pbf"
    simulate = { vehicles = 6, days = 1, seed = 3 }

:func:`run` runs network, simulate, match, coverage, observe, locate and diff on each data group
into ``runs/{id}/{group}/``, scores the outputs against the simulation's truth, and writes
``runs/{id}/manifest.json``: the definition, the inputs' hashes, the package version, the git
commit, the seeds, each stage's time and peak memory, the scores. A manifest is itself a
definition: running it again gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mapdiff.errors import InputError

MODULES = ("travel", "video", "recognition", "judgment")
#: an experiment's id (the CDK app names its stacks after it: QaExp1TravelStack)
EXPID = re.compile(r"^Exp[1-9][0-9]{0,2}$")
#: the stages a run goes through, by module (video's plan and upload need a task store and are
#: left to the production loop; the run films every pass)
STAGES = {"travel": ("match", "coverage"), "recognition": ("observe", "locate"), "judgment": ("diff",)}
TOP_KEYS = {"id", "description", "modules", "parameters", "data"}
DATA_KEYS = {"name", "osm", "simulate"}


@dataclass(frozen=True)
class Experiment:
    """A checked experiment definition (see the module docstring)."""

    id: str
    modules: dict
    parameters: dict = field(default_factory=dict)
    data: tuple = ()
    description: str = ""

    def as_dict(self) -> dict:
        return {"id": self.id, "description": self.description, "modules": self.modules,
                "parameters": self.parameters, "data": list(self.data)}


def load(path, *, options_of=None) -> Experiment:
    """Read and check an experiment file (TOML) or a run's manifest (JSON). ``options_of``: a
    function of a stage's name giving its command's option names (to check the parameters)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        raw = json.loads(path.read_text())["experiment"] if path.suffix == ".json" else tomllib.loads(path.read_text())
    except (ValueError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not an experiment file ({exc})") from None
    return check(raw, source=str(path), options_of=options_of, base=path.parent)


def check(raw: dict, *, source: str, options_of=None, base: Path = Path(".")) -> Experiment:
    """An :class:`Experiment` from a parsed definition; InputError names the first key, module,
    parameter or data group that is not allowed."""
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise InputError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(TOP_KEYS)}")
    exp_id = raw.get("id")
    if not isinstance(exp_id, str) or not EXPID.match(exp_id):
        raise InputError(f"{source}: id must be Exp followed by 1 to 999 (such as Exp1); found {exp_id!r}")
    modules = raw.get("modules") or {}
    bad = sorted(set(modules) - set(MODULES))
    if bad or set(modules) != set(MODULES):
        raise InputError(f"{source}: [modules] must name a version of each of {list(MODULES)}; "
                         f"found {sorted(modules)}" + (f" (unknown: {bad})" if bad else ""))
    parameters = raw.get("parameters") or {}
    stages = [s for module in STAGES.values() for s in module]
    for stage, values in parameters.items():
        if stage not in stages:
            raise InputError(f"{source}: [parameters.{stage}]: no such stage; allowed: {stages}")
        allowed = options_of(stage) if options_of else None
        for name in values:
            if allowed is not None and name not in allowed:
                raise InputError(f"{source}: [parameters.{stage}] {name}: no such option of mapdiff {stage}; "
                                 f"allowed: {sorted(allowed)}")
    data = raw.get("data") or []
    if not data:
        raise InputError(f"{source}: no [[data]] group; an experiment runs on at least one")
    groups = []
    for group in data:
        extra = sorted(set(group) - DATA_KEYS)
        if extra or "name" not in group or "osm" not in group:
            raise InputError(f"{source}: a [[data]] group needs name and osm (and may have simulate); "
                             f"found {sorted(group)}")
        osm = Path(group["osm"])
        osm = osm if osm.is_absolute() or osm.exists() else base / osm
        if not osm.is_file() or osm.stat().st_size == 0:
            raise InputError(f"{source}: data group {group['name']!r}: no data at {group['osm']}")
        groups.append({**group, "osm": str(osm.resolve())})
    return Experiment(id=exp_id, modules=dict(modules), parameters=dict(parameters), data=tuple(groups),
                      description=str(raw.get("description", "")))


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
                              cwd=Path(__file__).resolve().parent)
    except OSError:
        return None
    return done.stdout.strip() or None


def _options(values: dict) -> list[str]:
    out = []
    for name, value in values.items():
        flag = f"--{name.replace('_', '-')}"
        if value is True:
            out.append(flag)
        elif value is not False:
            out += [flag, str(value)]
    return out


def _stage(args: list[str]) -> dict:
    """Run ``mapdiff ARGS`` as a child; its wall time and peak memory."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "mapdiff_cli.main", *args, "-q"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    err = child.stderr.read()
    child.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise InputError(f"mapdiff {args[0]} failed (exit {code}): {err.strip().splitlines()[-1] if err else ''}")
    return {"seconds": round(time.perf_counter() - start, 2), "peak_mb": round(usage.ru_maxrss / 1024, 1)}


def run(experiment: Experiment, out_dir, *, echo=print) -> dict:
    """Run ``experiment`` into ``out_dir`` (``runs/{id}``) and return its manifest (also written
    there as ``manifest.json``)."""
    from mapdiff import __version__

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    p = experiment.parameters
    groups = {}
    for group in experiment.data:
        d = out_dir / group["name"]
        d.mkdir(exist_ok=True)
        sim = {"vehicles": 6, "days": 1, "seed": 0, **group.get("simulate", {})}
        steps = {
            "network": [group["osm"], "-o", f"{d}/roads.gpkg"],
            "simulate": ["--map", f"{d}/roads.gpkg", "-o", f"{d}/sim", *_options(sim)],
            "match": [f"{d}/sim/traces.parquet", "--map", f"{d}/sim/map.gpkg", "-o", f"{d}/matched.parquet",
                      "--paths", f"{d}/paths.parquet", *_options(p.get("match", {}))],
            "coverage": [f"{d}/paths.parquet", "-o", f"{d}/coverage.parquet",
                         *_options(p.get("coverage", {}))],
            "observe": [f"{d}/sim/detections.parquet", "--matched", f"{d}/matched.parquet", "--camera",
                        f"{d}/sim/camera.json", "--map", f"{d}/sim/map.gpkg", "-o", f"{d}/observations.parquet",
                        *_options(p.get("observe", {}))],
            "locate": [f"{d}/observations.parquet", "-o", f"{d}/objects.parquet",
                       *_options(p.get("locate", {}))],
            "diff": ["--map", f"{d}/sim/map.gpkg", "--objects", f"{d}/objects.parquet", "--coverage",
                     f"{d}/coverage.parquet", "--matched", f"{d}/matched.parquet", "--paths", f"{d}/paths.parquet",
                     "-o", f"{d}/diffs.gpkg", *_options(p.get("diff", {}))],
            "evaluate": ["--truth", f"{d}/sim", "--paths", f"{d}/paths.parquet", "--coverage",
                         f"{d}/coverage.parquet", "--objects", f"{d}/objects.parquet", "--diffs", f"{d}/diffs.gpkg",
                         "--json", f"{d}/scores.json"],
        }
        stages = {}
        for name, args in steps.items():
            echo(f"{experiment.id} {group['name']}: {name}")
            stages[name] = _stage([name, *args])
        groups[group["name"]] = {"osm_sha256": _sha256(group["osm"]), "seed": sim["seed"], "stages": stages,
                                 "scores": json.loads((d / "scores.json").read_text())}
    manifest = {"experiment": experiment.as_dict(), "package_version": __version__, "git_commit": _commit(),
                "groups": groups}
    tmp = out_dir / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / "manifest.json")
    return manifest


def compare(a: dict, b: dict) -> list[dict]:
    """Per data group and stage, the time deltas of run ``b`` against run ``a`` (manifests), and
    per data group the score deltas; rows of (group, stage, metric, a, b, delta)."""
    rows = []
    for group in sorted(set(a["groups"]) & set(b["groups"])):
        ga, gb = a["groups"][group], b["groups"][group]
        for stage in ga["stages"]:
            if stage in gb["stages"]:
                va, vb = ga["stages"][stage]["seconds"], gb["stages"][stage]["seconds"]
                rows.append({"group": group, "stage": stage, "metric": "seconds", "a": va, "b": vb, "delta": vb - va})
        for stage, metrics in ga["scores"].items():
            for metric, va in _flat(metrics).items():
                vb = _flat(gb["scores"].get(stage, {})).get(metric)
                if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
                    rows.append({"group": group, "stage": stage, "metric": metric, "a": va, "b": vb, "delta": vb - va})
    return rows


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
