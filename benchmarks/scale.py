"""Stages as array jobs on this machine (issue: fleet scale).

    python benchmarks/scale.py [--vehicles 100] [--days 2] [--shards 4] [--tile-m 1000] [--work DIR]
                               [--whole-only | --arrays-only] [--stages simulate,match,coverage,observe,locate,diff]
                               [--repeat K]

Runs simulate (of a fleet on the bundled Helsinki extract), match, coverage, observe, locate and diff
as ``mapdiff job STAGE --local-array N`` (each shard its own process, with the variables AWS
Batch sets), once with one worker and once with two, and prints per stage the wall time of an
unsharded run and of each array, the speed-up (goal: at least 1.8x with 2 workers on 2 cores),
and the peak resident memory of the unsharded process and of the largest shard process. The
parts are merged and checked against the unsharded run (the law: same rows). ``--whole-only``:
the unsharded runs only (time and peak memory of each stage over the whole fleet, as it streams
its input in batches of ``$MAPDIFF_BATCH_ROWS`` rows; locate and diff in one piece, as a user runs
them, not over ``--tile-m`` tiles). ``--repeat K``: each array run K times, the
fastest counted (this machine's disk stalls now and then: one run of the same array took 17.4 s
and another 21.7 s). ``--arrays-only``: the pipeline as a Batch deployment runs it, no unsharded
run: each stage an array of ``--shards`` shards over two workers, its parts merged (streaming)
into the next stage's input (the parts are then deleted: a month's take tens of GB); prints per
stage the array's and the merge's wall time and peak.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def mapdiff(*args):
    """Run ``mapdiff ARGS``; (seconds, peak MB: of the process, or of the largest array child
    as the local runner reports it)."""
    t = time.perf_counter()
    res = subprocess.run(["/usr/bin/time", "-f", "PEAK_KB %M", sys.executable, "-m", "mapdiff_cli.main",
                          *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"mapdiff {' '.join(map(str, args))} failed:\n{res.stderr}")
    children = [float(m.replace(",", "")) for m in re.findall(r"peak ([\d,]+) MB", res.stderr)]
    own = float(re.findall(r"PEAK_KB (\d+)", res.stderr)[-1]) / 1024.0
    return time.perf_counter() - t, max(children) if children else own


def _check_merged(stage, merged: Path, whole: Path) -> None:
    """The merged parts are the unsharded run's rows (every table of its output)."""
    if stage == "diff":
        import geopandas as gpd

        for layer in ("diffs", "unverified"):
            pd.testing.assert_frame_equal(gpd.read_file(merged, layer=layer), gpd.read_file(whole, layer=layer))
        return
    tables = ["traces.parquet", "detections.parquet", "truth/objects.parquet"] if stage == "simulate" else [""]
    for t in tables:
        _check_columns(merged / t if t else merged, whole / t if t else whole)


def _check_columns(a: Path, b: Path) -> None:
    """The two Parquet files hold the same rows, compared a column at a time (two 300 x 3
    fleets' observe outputs read whole took 24 GB), to pandas' tolerance as the tests compare."""
    import pyarrow.parquet as pq

    names = pq.read_schema(a).names
    assert names == pq.read_schema(b).names, (a, b)
    for name in names:
        x, y = pq.read_table(a, columns=[name]).column(0), pq.read_table(b, columns=[name]).column(0)
        if not x.equals(y):
            pd.testing.assert_series_equal(x.to_pandas(), y.to_pandas(), check_names=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=100)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--tile-m", type=float, default=1000.0,
                    help="locate's and diff's tiles in the arrays and the unsharded runs they are checked against "
                         "(not with --whole-only: one piece): the bundled extract is 3 km across, so the default "
                         "5 km tiles are too few to spread over the shards")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mapdiff-scale"))
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--whole-only", action="store_true", help="the unsharded runs only, no arrays")
    mode.add_argument("--arrays-only", action="store_true",
                      help="2-worker arrays only, each stage's merged parts the next one's input")
    ap.add_argument("--repeat", type=int, default=1, help="run each array this many times; the fastest counts")
    ap.add_argument("--stages", default="simulate,match,coverage,observe,locate,diff",
                    help="the stages to run, in order (each reads the outputs of the ones before in --work)")
    args = ap.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    sim = work / "sim"
    if not (work / "roads.gpkg").exists():
        mapdiff("network", ROOT / "fixtures" / "helsinki.osm.pbf", "-o", work / "roads.gpkg", "-q")
    # the shards need tiles to spread over; the unsharded runs alone stay one piece, as a user's
    tiles = [] if args.whole_only else ["--tile-m", args.tile_m]
    stages = {
        "simulate": (["simulate", "--map", work / "roads.gpkg", "--vehicles", args.vehicles, "--days", args.days],
                     "sim"),
        "match": (["match", sim / "traces.parquet", "--map", sim / "map.gpkg", "--paths", work / "paths.parquet"],
                  "matched.parquet"),
        "coverage": (["coverage", work / "paths.parquet"], "coverage.parquet"),
        "observe": (["observe", sim / "detections.parquet", "--matched", work / "matched.parquet", "--camera",
                     sim / "camera.json", "--map", sim / "map.gpkg"], "observations.parquet"),
        "locate": (["locate", work / "observations.parquet", *tiles], "objects.parquet"),
        "diff": (["diff", "--map", sim / "map.gpkg", "--objects", work / "objects.parquet", "--coverage",
                  work / "coverage.parquet", "--matched", work / "matched.parquet", "--paths", work / "paths.parquet",
                  *tiles], "diffs.gpkg"),
    }
    rows = []
    chosen = args.stages.split(",")
    unknown = sorted(set(chosen) - set(stages))
    if unknown:
        ap.error(f"--stages: unknown stage(s) {unknown}; choose from {list(stages)}")
    n_fixes = len(pd.read_parquet(sim / "traces.parquet", columns=["trip_id"])) if (sim / "traces.parquet").exists() \
        else 0
    n_det = len(pd.read_parquet(sim / "detections.parquet", columns=["trip_id"])) \
        if (sim / "detections.parquet").exists() else 0
    if args.arrays_only:
        _arrays_only(stages, chosen, args)
        return
    for stage, (cmd, whole) in ((s, stages[s]) for s in chosen):
        # the unsharded run (its output is the next stage's input)
        t_whole, peak_whole = mapdiff(*cmd, "-o", work / whole, "-q")
        if stage == "simulate":
            n_fixes = len(pd.read_parquet(sim / "traces.parquet", columns=["trip_id"]))
            n_det = len(pd.read_parquet(sim / "detections.parquet", columns=["trip_id"]))
        if args.whole_only:
            rows.append((stage, t_whole, peak_whole))
            continue
        times, peak = {}, 0.0
        for workers in (1, 2):
            out = work / f"{stage}-w{workers}"
            job = cmd[1:-2] if stage == "match" else cmd[1:]  # (the unsharded run wrote the paths)
            runs = [mapdiff("job", stage, *job, "-o", out, "--local-array", args.shards, "--workers", workers)
                    for _ in range(args.repeat)]
            times[workers] = min(t for t, _ in runs)
            peak = max(p for _, p in runs)
        merged = work / f"{stage}-merged{Path(whole).suffix}"
        mapdiff("merge", stage, work / f"{stage}-w2", "-o", merged, "-q")
        _check_merged(stage, merged, work / whole)
        rows.append((stage, t_whole, peak_whole, times[1], times[2], times[1] / times[2], peak))
    if args.whole_only:
        print(f"fleet: {args.vehicles} vehicles x {args.days} days: {n_fixes:,} fixes, {n_det:,} detections; "
              f"unsharded; batches of {os.environ.get('MAPDIFF_BATCH_ROWS', 'default')} rows; {os.cpu_count()} cores\n")
        print("| stage | wall (s) | peak (MB) |\n|---|---|---|")
        for stage, tw, pw in rows:
            print(f"| {stage} | {tw:.1f} | {pw:,.0f} |")
        print(f"| total | {sum(r[1] for r in rows):.1f} | {max(r[2] for r in rows):,.0f} |")
        return
    print(f"fleet: {args.vehicles} vehicles x {args.days} days: {n_fixes:,} fixes, {n_det:,} detections; array of "
          f"{args.shards} shards; {os.cpu_count()} cores; arrays: the fastest of {args.repeat} run(s)\n")
    print("| stage | unsharded (s) | its peak (MB) | array, 1 worker (s) | array, 2 workers (s) | speed-up "
          "| largest shard's peak (MB) | merged == unsharded |")
    print("|---|---|---|---|---|---|---|---|")
    for stage, tw, pw, t1, t2, up, pk in rows:
        print(f"| {stage} | {tw:.1f} | {pw:,.0f} | {t1:.1f} | {t2:.1f} | {up:.2f}x | {pk:,.0f} | yes |")


def _arrays_only(stages, chosen, args):
    """Each stage as an array over two workers, its parts merged into the next stage's input."""
    work = args.work
    print(f"arrays of {args.shards} shards over 2 workers; {os.cpu_count()} cores\n")
    print("| stage | array (s) | largest shard's peak (MB) | merge (s) | merge peak (MB) |\n|---|---|---|---|---|")
    total = 0.0
    for stage in chosen:
        cmd, whole = stages[stage]
        outputs = {"-o": work / whole, **({"--paths": work / "paths.parquet"} if stage == "match" else {})}
        job = cmd[1:-2] if stage == "match" else cmd[1:]  # (match's --paths is an output here)
        for flag in outputs:
            job += [flag, work / f"{stage}{flag.strip('-')}-parts"]
        t_array, peak = mapdiff("job", stage, *job, "--local-array", args.shards, "--workers", 2, "-q")
        t_merge, peak_merge = 0.0, 0.0
        for flag, out in outputs.items():
            t, pk = mapdiff("merge", "paths" if flag == "--paths" else stage,
                            work / f"{stage}{flag.strip('-')}-parts", "-o", out, "-q")
            t_merge, peak_merge = t_merge + t, max(peak_merge, pk)
            shutil.rmtree(work / f"{stage}{flag.strip('-')}-parts")
        total += t_array + t_merge
        print(f"| {stage} | {t_array:.1f} | {peak:,.0f} | {t_merge:.1f} | {peak_merge:,.0f} |", flush=True)
    print(f"| total | {total:.1f} | | | |")


if __name__ == "__main__":
    main()
