"""Accuracy of ``observe`` + ``locate`` on simulated fleets, city by city, through the command
lines a user runs: network -> simulate -> match -> observe (--map) -> locate -> evaluate.

Cities: the OSM extracts in ../shared/data/osm (Helsinki, Liechtenstein, Harrisburg), each with
the world's objects placed physically (poles at the kerb of each approach, some overhead, signs
facing their traffic; the map in OSM's convention) and on the OSM node. Default noise, 30
vehicles, 3 days. The table gives recall, precision and median error for the objects seen in
>= 5 trips (within 3 m and same class), as ``mapdiff evaluate`` counts them, the share of pairs
whose true position lies in the 95 % circle of ``sigma_m`` (honest sigmas: 0.95), and the same
with perfect poses (the simulator's true camera positions and headings put into the
observations) to show what the pose costs. Goals (issue 9): recall and precision >= 0.95,
median error <= 1.0 m, coverage 0.90 to 0.97.

    python benchmarks/locate_sim.py [--cities helsinki,liechtenstein,harrisburg] [--placements physical,osm]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from diff_sim import CITIES  # the same extracts


def run(*args):
    subprocess.run([sys.executable, "-m", "mapdiff_cli.main", *map(str, args), "-q"], check=True,
                   stdout=subprocess.DEVNULL)


def perfect_observations(sim, obs_path, target):
    """The observations with the true camera position and heading (bearing = heading + the
    box's angle off the axis, which observe measured the same way)."""
    obs = pd.read_parquet(obs_path)
    truth = pd.read_parquet(sim / "truth" / "detections.parquet")
    det = pd.read_parquet(sim / "detections.parquet")
    cam = json.loads((sim / "camera.json").read_text())
    focal = (cam["width_px"] / 2) / np.tan(np.radians(cam["hfov_deg"] / 2))
    m = obs.merge(truth[["detection_id", "camera_lon", "camera_lat", "camera_heading_deg"]], on="detection_id")
    m = m.merge(det[["detection_id", "x_min", "x_max"]], on="detection_id")
    off = np.degrees(np.arctan2(0.5 * (m["x_min"] + m["x_max"]) - cam["width_px"] / 2, focal))
    m["lon"], m["lat"] = m["camera_lon"], m["camera_lat"]
    m["bearing_deg"] = (m["camera_heading_deg"] + off) % 360.0
    m[obs.columns].to_parquet(target)


def one_city(tmp: Path, city: str, placement: str, vehicles: int, days: int, seed: int) -> list:
    out = tmp / f"{city}-{placement}"
    out.mkdir()
    run("network", CITIES[city][0], "-o", out / "roads.gpkg")
    run("simulate", "--map", out / "roads.gpkg", "-o", out / "sim", "--vehicles", vehicles, "--days", days,
        "--seed", seed, "--placement", placement)
    sim = out / "sim"
    run("match", sim / "traces.parquet", "--map", sim / "map.gpkg", "-o", out / "matched.parquet")
    run("observe", sim / "detections.parquet", "--matched", out / "matched.parquet", "--camera", sim / "camera.json",
        "--map", sim / "map.gpkg", "-o", out / "obs.parquet")
    perfect_observations(sim, out / "obs.parquet", out / "obs_perfect.parquet")
    rows = []
    for kind, obs in (("matched", "obs.parquet"), ("perfect", "obs_perfect.parquet")):
        run("locate", out / obs, "-o", out / f"objects_{kind}.parquet")
        run("evaluate", "--truth", sim, "--objects", out / f"objects_{kind}.parquet", "--json", out / f"score_{kind}.json")
        rows.append((city, placement, kind, json.loads((out / f"score_{kind}.json").read_text())["locate"]))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cities", default="helsinki,liechtenstein,harrisburg")
    ap.add_argument("--placements", default="physical,osm")
    ap.add_argument("--vehicles", type=int, default=30)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for city in args.cities.split(","):
            for placement in args.placements.split(","):
                rows += one_city(Path(tmp), city, placement, args.vehicles, args.days, args.seed)
    print(f"{'city':<14} {'placement':<9} {'poses':<8} {'true obj':>8} {'estimates':>9} {'recall':>7} {'precision':>9} "
          f"{'median m':>9} {'p90 m':>6} {'in 95%':>7}")
    for city, placement, kind, s in rows:
        print(f"{city:<14} {placement:<9} {kind:<8} {s['true_objects']:8,} {s['estimates']:9,} {s['recall']:7.3f} "
              f"{s['precision']:9.3f} {s['median_error_m']:9.2f} {s['p90_error_m']:6.2f} {s['sigma_coverage_95']:7.2f}")


if __name__ == "__main__":
    main()
