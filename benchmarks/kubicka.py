"""Map-matching accuracy on the Kubicka et al. (2015) real tracks, mapdiff against fastmm.

For each track: the network becomes a roads.gpkg and the track a traces.parquet; ``mapdiff
match`` runs through its command line; fastmm runs end to end (UBODT of 1 km built per track)
in a child process. Scores per track: recall and precision by length and Newson & Krumm's route
mismatch fraction (accuracy = 1 - mismatch). Prints a table and a summary.

    python benchmarks/kubicka.py [--tracks DIR] [--limit N] [--no-fastmm] [--fast] [--every 1,5,15,30,60]

``--every`` keeps every k-th fix of each track (the tracks are 1 Hz: a fleet that logs every k
seconds) and prints one summary per k, with the time per fix.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers import run_child, run_command  # noqa: E402

from fixtures.kubicka import read_track, write_roads  # noqa: E402
from mapdiff.evaluate import route_score  # noqa: E402
from mapdiff.io import write_table  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "kubicka2015" / "tracks.tar.xz"


def tracks_dir(arg, tmp):
    if arg:
        return Path(arg)
    with tarfile.open(DATA) as tar:
        tar.extractall(tmp, filter="data")
    return Path(tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", help="folder of unpacked tracks (default: unpack shared/data)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--no-fastmm", action="store_true")
    ap.add_argument("--fast", action="store_true", help="run mapdiff match with its --fast preset")
    ap.add_argument("--every", default="1", help="keep every k-th fix (comma-separated ks: one run each)")
    args = ap.parse_args()
    everys = [int(k) for k in args.every.split(",")]
    mapdiff = str(Path(sys.executable).parent / "mapdiff")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = tracks_dir(args.tracks, tmp)
        names = sorted(p.name for p in root.iterdir() if p.is_dir())
        names = names[: args.limit] if args.limit else names
        # warm the Numba cache once so no track pays compilation
        edges, fixes, _ = read_track(root / names[0])
        warm = Path(tmp) / "warm"
        roads = write_roads(edges, warm / "roads.gpkg")
        write_table(fixes, warm / "traces.parquet")
        subprocess.run([mapdiff, "match", str(warm / "traces.parquet"), "--map", str(roads), "-o",
                        str(warm / "m.parquet"), "-q"], check=True)
        for name in names:
            edges, fixes, route = read_track(root / name)
            roads = write_roads(edges, Path(tmp) / "run" / name / "roads.gpkg")
            length = dict(zip(edges["edge_id"], _lengths(edges)))
            for every in everys:
                work = Path(tmp) / "run" / name / str(every)
                traces = fixes.iloc[::every].reset_index(drop=True)
                write_table(traces, work / "traces.parquet")
                status, wall, rss = run_command([
                    mapdiff, "match", str(work / "traces.parquet"), "--map", str(roads), "-o",
                    str(work / "matched.parquet"), "--paths", str(work / "paths.parquet"), "-q",
                    *(["--fast"] if args.fast else []),
                ])
                s_md = route_score(route, pd.read_parquet(work / "paths.parquet")["edge_id"], length) \
                    if status == 0 else None
                row = {"track": name, "every": every, "fixes": len(traces), "arcs": len(edges),
                       "md_acc": s_md.accuracy if s_md else np.nan, "md_P": s_md.precision if s_md else np.nan,
                       "md_R": s_md.recall if s_md else np.nan, "md_s": wall, "md_MB": rss}
                if not args.no_fastmm:
                    row.update(_fastmm(name, edges, traces, route, length))
                rows.append(row)
                print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                      flush=True)
    df = pd.DataFrame(rows)
    print()
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for every, part in df.groupby("every"):
        print()
        print(f"every {every} s:")
        _summary(part, ["md", "fmm"] if not args.no_fastmm else ["md"])


def _fastmm(name, edges, traces, route, length):
    """fastmm end to end on one track in a child process: its columns of the table."""
    from mapdiff.projection import LocalProjection

    proj = LocalProjection.around(float(traces["lon"].mean()), float(traces["lat"].mean()))
    medges = edges.to_crs(proj.crs)
    x, y = proj.to_metres(traces["lon"], traces["lat"])
    mtr = pd.DataFrame({"trip_id": traces["trip_id"], "t": traces["t"], "x": x, "y": y})
    res, timing, frss = run_child("fastmm", medges[["edge_id", "u", "v", "geometry"]], mtr)
    s_f = route_score(route, res[name], length) if res else None
    return {"fmm_acc": s_f.accuracy if s_f else np.nan, "fmm_P": s_f.precision if s_f else np.nan,
            "fmm_R": s_f.recall if s_f else np.nan, "fmm_s": timing.get("wall_s", np.nan),
            "fmm_build_s": timing.get("build_s", np.nan), "fmm_MB": frss}


def _summary(df, tools):
    for tool in tools:
        label = {"md": "mapdiff", "fmm": "fastmm"}[tool]
        fixes_per_s = df["fixes"].sum() / df[f"{tool}_s"].sum()
        print(
            f"{label:8s} mean accuracy {df[f'{tool}_acc'].mean():.4f}  median {df[f'{tool}_acc'].median():.4f}  "
            f"precision {df[f'{tool}_P'].mean():.4f}  recall {df[f'{tool}_R'].mean():.4f}  "
            f"tracks >= 0.99: {(df[f'{tool}_acc'] >= 0.99).sum()}/{len(df)}  "
            f"end to end {df[f'{tool}_s'].sum():.0f} s ({fixes_per_s:.0f} fixes/s, "
            f"{1000 * df[f'{tool}_s'].sum() / df['fixes'].sum():.2f} ms/fix)  "
            f"peak {df[f'{tool}_MB'].max():.0f} MB"
        )
    if "fmm" in tools:
        print(f"fastmm UBODT build: max {df['fmm_build_s'].max():.1f} s per track")


def _lengths(edges):
    from mapdiff.projection import LocalProjection

    c = edges.geometry.to_crs(4326).union_all().centroid
    return edges.geometry.to_crs(LocalProjection.around(c.x, c.y).crs).length.to_numpy()


if __name__ == "__main__":
    main()
