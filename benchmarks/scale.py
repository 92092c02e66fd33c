"""Stages as array jobs on this machine (issue: fleet scale).

    python benchmarks/scale.py [--vehicles 100] [--days 2] [--shards 4] [--tile-m 1000] [--work DIR]

Simulates a fleet on the bundled Helsinki extract, then runs match, observe and locate as
``mapdiff job STAGE --local-array N`` (each shard its own process, with the variables AWS Batch
sets), once with one worker and once with two, and prints per stage the wall time of each, the
speed-up (goal: at least 1.8x with 2 workers on 2 cores) and the peak resident memory of the
largest shard process. The parts are merged and checked against an unsharded run of the same
stage (the law: same rows).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def mapdiff(*args, env=None):
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    res = subprocess.run([sys.executable, "-m", "mapdiff_cli.main", *map(str, args)], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"mapdiff {' '.join(map(str, args))} failed:\n{res.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return time.perf_counter() - t, max(peak, before) / 1024.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=100)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--tile-m", type=float, default=1000.0,
                    help="locate's tiles: the bundled extract is 3 km across, so its default 2 km tiles are too "
                         "few to spread over the shards")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mapdiff-scale"))
    args = ap.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    sim = work / "sim"
    if not (sim / "traces.parquet").exists():
        mapdiff("network", ROOT / "fixtures" / "helsinki.osm.pbf", "-o", work / "roads.gpkg", "-q")
        mapdiff("simulate", "--map", work / "roads.gpkg", "-o", sim, "--vehicles", args.vehicles, "--days", args.days,
                "-q")
    n_fixes = len(pd.read_parquet(sim / "traces.parquet", columns=["trip_id"]))
    print(f"fleet: {args.vehicles} vehicles x {args.days} days, {n_fixes:,} fixes; array of {args.shards} shards; "
          f"{os.cpu_count()} cores\n")
    stages = {
        "match": (["match", sim / "traces.parquet", "--map", sim / "map.gpkg"], "matched.parquet"),
        "observe": (["observe", sim / "detections.parquet", "--matched", work / "matched.parquet", "--camera",
                     sim / "camera.json", "--map", sim / "map.gpkg"], "observations.parquet"),
        "locate": (["locate", work / "observations.parquet", "--tile-m", args.tile_m], "objects.parquet"),
    }
    rows = []
    for stage, (cmd, whole) in stages.items():
        t_whole, _ = mapdiff(*cmd, "-o", work / whole, "-q")  # the unsharded run (and the next stage's input)
        times = {}
        for workers in (1, 2):
            out = work / f"{stage}-w{workers}"
            times[workers], _ = mapdiff("job", stage, *cmd[1:], "-o", out, "-q", "--local-array", args.shards,
                                        "--workers", workers)
        mapdiff("merge", stage, work / f"{stage}-w2", "-o", work / f"{stage}-merged.parquet", "-q")
        pd.testing.assert_frame_equal(pd.read_parquet(work / f"{stage}-merged.parquet"), pd.read_parquet(work / whole))
        rows.append((stage, t_whole, times[1], times[2], times[1] / times[2]))
    print("| stage | unsharded (s) | array, 1 worker (s) | array, 2 workers (s) | speed-up | merged == unsharded |")
    print("|---|---|---|---|---|---|")
    for stage, tw, t1, t2, up in rows:
        print(f"| {stage} | {tw:.1f} | {t1:.1f} | {t2:.1f} | {up:.2f}x | yes |")


if __name__ == "__main__":
    main()
