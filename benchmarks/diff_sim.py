"""How good the judgment is on simulated fleets, city by city, through the command lines a
user runs: network -> simulate -> match -> coverage -> observe -> locate -> diff -> evaluate.

Cities: the OSM extracts in ../shared/data/osm (Helsinki, Liechtenstein, Harrisburg), each with
the world's objects placed physically (poles at the kerb, the map in OSM's convention) and on
the OSM node. Default noise, 30 vehicles, 3 days; where a map has few features the object
change rates are raised (``--rich-rate``) so each kind is planted tens of times. For each run:
precision, recall (over the changes the fleet could see in >= 3 trips) and recall_all per kind,
the locate scores the object diffs rest on, and the precision-versus-confidence table.

Each run also scores the diffs made from the simulator's true objects (what locate would give
if it were perfect), to separate the judgment's own errors from locate's.

    python benchmarks/diff_sim.py [--cities helsinki,liechtenstein,harrisburg] [--placements physical,osm]
                                  [--roads-only] [--sample-interval-s S] [--sim-args "..."]

``--sim-args`` passes more of the simulator's settings, for fleets off the defaults, e.g.
``--sim-args "--gps-sigma-m 15 --outlier-rate 0.05 --sample-interval-s 5"`` (noisy GPS) or
``"--miss-rate 0.5 --false-positive-rate 0.02 --confusion-rate 0.1"`` (a poor detector).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "osm"
CITIES = {
    "helsinki": (ROOT / "fixtures" / "helsinki.osm.pbf", 1.0),
    "liechtenstein": (SHARED / "valhalla-liechtenstein.osm.pbf", 5.0),
    "harrisburg": (SHARED / "valhalla-harrisburg.osm.pbf", 5.0),
    # south-eastern Finland, towns and country roads; crossings but no signs (held out: not
    # among the cities the judgment was developed on)
    "se-finland": (SHARED / "pyrosm-test.osm.pbf", 5.0),
    # West Oakland: a North American grid, its signals on the junction nodes (held out too)
    "west-oakland": (SHARED / "West-Oakland.osm.bz2", 5.0),
}
#: the cities the judgment was developed on (the default run)
DEVELOPED = ("helsinki", "liechtenstein", "harrisburg")
KINDS = ("object_added", "object_removed", "object_moved", "value_changed", "road_missing", "oneway_reversed",
         "road_closed")


def run(*args):
    # quiet, and evaluate's own table is not wanted here (its JSON is)
    subprocess.run([sys.executable, "-m", "mapdiff_cli.main", *map(str, args), "-q"], check=True,
                   stdout=subprocess.DEVNULL)


def true_objects(sim: Path, target: Path) -> None:
    """The simulator's true objects in the objects contract, as a perfect locate would give."""
    o = pd.read_parquet(sim / "truth" / "objects.parquet")
    o = o[o["n_trips_seen"] > 0]
    pd.DataFrame({"object_id": o["object_id"], "class": o["class"], "value": o["value"], "lon": o["lon"],
                  "lat": o["lat"], "sigma_m": 0.3, "n_trips": o["n_trips_seen"],
                  "n_observations": o["n_detections"]}).to_parquet(target)


def one_city(tmp: Path, city: str, placement: str, args) -> dict:
    """The pipeline on one city and placement; ``args``: the fleet (vehicles, days, seed,
    sample_interval_s) and roads_only."""
    osm, rich = CITIES[city]
    out = tmp / f"{city}-{placement}"
    out.mkdir()
    run("network", osm, "-o", out / "roads.gpkg")
    rates = ["--added-rate", 0.02 * rich, "--removed-rate", 0.02 * rich, "--moved-rate", 0.02 * rich,
             "--value-changed-rate", min(0.03 * rich, 1.0)]
    run("simulate", "--map", out / "roads.gpkg", "-o", out / "sim", "--vehicles", args.vehicles, "--days",
        args.days, "--seed", args.seed, "--placement", placement, "--sample-interval-s", args.sample_interval_s,
        *rates, *shlex.split(args.sim_args))
    sim = out / "sim"
    run("match", sim / "traces.parquet", "--map", sim / "map.gpkg", "-o", out / "matched.parquet", "--paths",
        out / "paths.parquet")
    run("coverage", out / "paths.parquet", "-o", out / "coverage.parquet")
    road_inputs = ["--coverage", out / "coverage.parquet", "--matched", out / "matched.parquet", "--paths",
                   out / "paths.parquet"]
    if args.roads_only:
        # the road kinds rest on the fixes, paths and coverage only: no camera stages
        run("diff", "--map", sim / "map.gpkg", *road_inputs, "-o", out / "diffs-r.gpkg")
        run("evaluate", "--truth", sim, "--diffs", out / "diffs-r.gpkg", "--json", out / "scores-r.json")
        return {"roads only": json.loads((out / "scores-r.json").read_text())}
    run("observe", sim / "detections.parquet", "--matched", out / "matched.parquet", "--camera", sim / "camera.json",
        "--map", sim / "map.gpkg", "-o", out / "obs.parquet")
    run("locate", out / "obs.parquet", "-o", out / "objects.parquet")
    true_objects(sim, out / "true_objects.parquet")
    scores = {}
    for name, objects in (("located", "objects.parquet"), ("true objects", "true_objects.parquet")):
        run("diff", "--map", sim / "map.gpkg", "--objects", out / objects, *road_inputs, "-o",
            out / f"diffs-{name[0]}.gpkg")
        run("evaluate", "--truth", sim, "--diffs", out / f"diffs-{name[0]}.gpkg", "--objects", out / objects,
            "--json", out / f"scores-{name[0]}.json")
        scores[name] = json.loads((out / f"scores-{name[0]}.json").read_text())
    return scores


def fmt(v):
    return "  n/a" if v is None else f"{v:5.2f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cities", default=",".join(DEVELOPED), help=f"of {', '.join(CITIES)}")
    ap.add_argument("--placements", default="physical,osm")
    ap.add_argument("--vehicles", type=int, default=30)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-interval-s", type=float, default=1.0, help="seconds between the fleet's GPS fixes")
    ap.add_argument("--sim-args", default="", help="more `mapdiff simulate` options, quoted as one argument")
    ap.add_argument("--roads-only", action="store_true",
                    help="score the road kinds only (no observe, locate or object diffs): minutes, not an hour")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="work in DIR (a new folder) and keep every stage's files there, to look into")
    args = ap.parse_args(argv)
    results = []
    if args.keep:
        args.keep.mkdir(parents=True)
    with (contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory()) as tmp:
        for city in args.cities.split(","):
            for placement in args.placements.split(","):
                scores = one_city(Path(tmp), city, placement, args)
                results.append((city, placement, scores))
                print(f"done: {city} {placement}", file=sys.stderr, flush=True)
    print("Per kind: precision / recall (observable) / recall_all (reported / observable / planted)\n")
    kinds = KINDS[4:] if args.roads_only else KINDS
    print("| city | placement | objects | locate rec/prec | " + " | ".join(kinds) + " |")
    print("|" + "---|" * (4 + len(kinds)))
    for city, placement, scores in results:
        for name, s in scores.items():
            loc = s.get("locate", {"recall": None, "precision": None})
            cells = []
            for kind in kinds:
                k = s["diff"].get(kind)
                cells.append("-" if k is None else f"{fmt(k['precision'])} / {fmt(k['recall'])} / "
                             f"{fmt(k['recall_all'])} ({k['reported']}/{k['observable']}/{k['planted']})")
            print(f"| {city} | {placement} | {name} | {fmt(loc['recall'])}/{fmt(loc['precision'])} | "
                  + " | ".join(cells) + " |")
    if args.roads_only:
        return
    print("\nPrecision and share of planted changes found, by confidence (located objects)\n")
    thresholds = list(results[0][2]["located"]["diff"]["by_confidence"]) if results else []
    print("| city | placement | " + " | ".join(thresholds) + " |")
    print("|" + "---|" * (2 + len(thresholds)))
    for city, placement, scores in results:
        table = scores["located"]["diff"]["by_confidence"]
        print(f"| {city} | {placement} | " + " | ".join(
            f"{fmt(table[t]['precision'])} ({table[t]['diffs']}, {fmt(table[t]['found_share'])})" for t in thresholds)
            + " |")


if __name__ == "__main__":
    main()
