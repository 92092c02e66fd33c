"""Speed of ``mapdiff coverage`` against a pandas groupby of the same aggregation.

Made-up paths (10,000,000 rows by default): trips of 5 to 60 edges over 100,000 directed edges,
one vehicle per trip out of 5,000, 3 % of rows against a one-way, written to Parquet in row
groups of 1,000,000. mapdiff streams the file (``coverage_file``: read, accumulate, result); the
peer is pandas in memory on the frame already read: groupby edge and direction for passes,
distinct trips, min t_enter, max t_exit, and distinct vehicles per edge. Single core
(NUMBA_NUM_THREADS=1 is irrelevant: the kernel is serial), first JIT compile excluded.

    python benchmarks/coverage_speed.py [--rows 10000000]

(Not ``benchmarks/coverage.py``: a file of that name beside the other benchmarks shadows the
``coverage`` package that numba imports, and every benchmark in this folder would fail.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_paths(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 61, rows // 30 + 10)
    ends = np.cumsum(lengths)
    lengths = lengths[: np.searchsorted(ends, rows) + 1]
    lengths[-1] -= ends[len(lengths) - 1] - rows
    n_trips = len(lengths)
    trip = np.repeat(np.arange(n_trips), lengths)
    edge = rng.integers(0, 100_000, rows)
    t0 = pd.Timestamp("2026-01-05", tz="UTC").value + np.repeat(rng.integers(0, 30 * 86400, n_trips), lengths) * 10**9
    seq = np.arange(rows) - np.repeat(np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    t_enter = t0 + seq * 20 * 10**9
    vehicle = rng.integers(0, 5000, n_trips)
    return pd.DataFrame({
        "trip_id": pd.Categorical.from_codes(trip, [f"trip{k:07d}" for k in range(n_trips)]),
        "vehicle_id": pd.Categorical.from_codes(vehicle[trip], [f"v{k:05d}" for k in range(5000)]),
        "seq": seq, "chain": 0, "edge_id": edge, "u": edge * 2, "v": edge * 2 + 1, "key": 0,
        "against": rng.random(rows) < 0.03,
        "t_enter": pd.to_datetime(t_enter, utc=True), "t_exit": pd.to_datetime(t_enter + 20 * 10**9, utc=True),
    })


def pandas_coverage(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["edge_id", "against"], observed=True, sort=True)
    per_dir = g.agg(passes=("trip_id", "size"), trips=("trip_id", "nunique"),
                    t_first=("t_enter", "min"), t_last=("t_exit", "max"))
    vehicles = df.groupby("edge_id", observed=True)["vehicle_id"].nunique()
    return per_dir, vehicles


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    args = ap.parse_args(argv)
    from mapdiff.coverage import coverage, coverage_file

    df = make_paths(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "paths.parquet"
        df.to_parquet(path, index=False, row_group_size=1_000_000)
        coverage(df.head(1000))  # JIT compile (cached on disk after the first run)
        t = time.perf_counter()
        cov = coverage_file(path)
        t_mapdiff = time.perf_counter() - t
    t = time.perf_counter()
    per_dir, vehicles = pandas_coverage(df)
    t_pandas = time.perf_counter() - t
    # the two agree
    with_dir = per_dir.xs(False, level="against")["passes"]
    assert int(cov["passes"].sum()) == int(with_dir.sum())
    assert (cov.set_index("edge_id")["vehicles"].astype(int) == vehicles.reindex(cov["edge_id"]).to_numpy()).all()
    print(f"coverage of {args.rows:,} path rows ({df['trip_id'].nunique():,} trips, {len(cov):,} edges)\n")
    print("| method | seconds | rows/s |")
    print("|---|---|---|")
    print(
        f"| mapdiff coverage_file (streaming from Parquet, read included) | {t_mapdiff:.2f} "
        f"| {args.rows / t_mapdiff:,.0f} |"
    )
    print(f"| pandas groupby in memory (read excluded) | {t_pandas:.2f} | {args.rows / t_pandas:,.0f} |")
    print(f"\nmapdiff / pandas time ratio: {t_mapdiff / t_pandas:.2f}")


if __name__ == "__main__":
    main()
