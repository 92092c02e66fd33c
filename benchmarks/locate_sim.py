"""Accuracy of ``observe`` + ``locate`` on simulated fleets over the Helsinki extract, through
the command lines a user runs: simulate -> match -> observe (--map) -> locate -> evaluate.

Each case is a GPS noise (white sigma and per-trip bias sigma, metres) and a fleet size; the
table gives recall, precision and median error for the objects seen in >= 5 trips (within 3 m
and same class), as ``mapdiff evaluate`` counts them, and the same with perfect poses (the
simulator's true camera positions and headings put into the observations) to show what the
pose costs.

    python benchmarks/locate_sim.py [--cases 5/2/30,2/1/30,5/2/60]
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


def run(*args):
    subprocess.run([sys.executable, "-m", "mapdiff_cli.main", *map(str, args), "-q"], check=True)


def perfect_observations(out, obs_path, target):
    """The observations with the true camera position and heading (bearing = heading + the
    box's angle off the axis, which observe measured the same way)."""
    obs = pd.read_parquet(obs_path)
    truth = pd.read_parquet(out / "truth" / "detections.parquet")
    det = pd.read_parquet(out / "detections.parquet")
    cam = json.loads((out / "camera.json").read_text())
    focal = (cam["width_px"] / 2) / np.tan(np.radians(cam["hfov_deg"] / 2))
    m = obs.merge(truth[["detection_id", "camera_lon", "camera_lat", "camera_heading_deg"]], on="detection_id")
    m = m.merge(det[["detection_id", "x_min", "x_max"]], on="detection_id")
    off = np.degrees(np.arctan2(0.5 * (m["x_min"] + m["x_max"]) - cam["width_px"] / 2, focal))
    m["lon"], m["lat"] = m["camera_lon"], m["camera_lat"]
    m["bearing_deg"] = (m["camera_heading_deg"] + off) % 360.0
    m[obs.columns].to_parquet(target)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="5/2/30,2/1/30,5/2/60",
                    help="comma-separated gps-sigma/bias-sigma/vehicles")
    args = ap.parse_args(argv)
    from mapdiff.osm import build_map

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = tmp / "helsinki.gpkg"
        build_map(ROOT / "fixtures" / "helsinki.osm.pbf", world)
        for case in args.cases.split(","):
            sigma, bias, vehicles = case.split("/")
            out = tmp / case.replace("/", "-")
            run("simulate", "--map", world, "-o", out, "--vehicles", vehicles, "--gps-sigma-m", sigma,
                "--gps-bias-sigma-m", bias, "--seed", 3)
            run("match", out / "traces.parquet", "--map", out / "map.gpkg", "-o", out / "matched.parquet")
            run("observe", out / "detections.parquet", "--matched", out / "matched.parquet", "--camera",
                out / "camera.json", "--map", out / "map.gpkg", "-o", out / "obs.parquet")
            perfect_observations(out, out / "obs.parquet", out / "obs_perfect.parquet")
            for kind, obs in (("matched", "obs.parquet"), ("perfect", "obs_perfect.parquet")):
                run("locate", out / obs, "-o", out / f"objects_{kind}.parquet")
                run("evaluate", "--truth", out / "truth", "--objects", out / f"objects_{kind}.parquet",
                    "--json", out / f"score_{kind}.json")
                s = json.loads((out / f"score_{kind}.json").read_text())["locate"]
                rows.append((sigma, bias, vehicles, kind, s))
    print(f"{'gps m':>6} {'bias m':>6} {'veh':>4} {'poses':>8} {'true obj':>8} {'estimates':>9} {'recall':>7} "
          f"{'precision':>9} {'median m':>9} {'p90 m':>6}")
    for sigma, bias, vehicles, kind, s in rows:
        print(f"{sigma:>6} {bias:>6} {vehicles:>4} {kind:>8} {s['true_objects']:8,} {s['estimates']:9,} "
              f"{s['recall']:7.3f} {s['precision']:9.3f} {s['median_error_m']:9.2f} {s['p90_error_m']:6.2f}")


if __name__ == "__main__":
    main()
