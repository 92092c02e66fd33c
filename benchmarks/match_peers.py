"""Map-matching speed and accuracy against peers, on one set of synthetic traces, in one run.

200 traces on the Helsinki drive network (``--pbf``: another extract; shortest paths of 1 to
2.5 km between random nodes, one fix a second at 10 m/s, Gaussian noise sigma 5 m; seeded). Each matcher runs in its own
child process (single core: NUMBA_NUM_THREADS=1, OMP_NUM_THREADS=1) so its peak memory is its
own. Points/s is after warm-up; the one-off cost (JIT compile for mapdiff with an empty Numba
cache, the UBODT table for fastmm) is printed on its own line.

    python benchmarks/match_peers.py [--trips 200] [--leuven-trips 20] [--every K]

``--every K`` keeps every k-th fix of each trace (a fleet that logs every k seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers import run_child  # noqa: E402

from fixtures.synthetic import shortest_path_traces  # noqa: E402
from mapdiff.evaluate import match_scores  # noqa: E402

for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trips", type=int, default=200)
    ap.add_argument("--leuven-trips", type=int, default=20, help="leuvenmapmatching is slow: match a subset")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", nargs="*", help="run only these matchers (names as printed)")
    ap.add_argument("--every", type=int, default=1, help="keep every k-th fix of each trace")
    ap.add_argument("--pbf", type=Path, default=ROOT / "fixtures" / "helsinki.osm.pbf",
                    help="the OSM extract the traces drive on (default: the Helsinki fixture)")
    args = ap.parse_args()
    import geopandas as gpd

    from mapdiff.osm import build_map

    with tempfile.TemporaryDirectory() as tmp:
        roads = Path(tmp) / "roads.gpkg"
        build_map(args.pbf, roads)
        edges = gpd.read_file(roads, layer="edges")
        traces, truth, proj = shortest_path_traces(edges, n_trips=args.trips, seed=args.seed, noise_m=5.0)
        traces = traces[traces.groupby("trip_id").cumcount() % args.every == 0].reset_index(drop=True)
        length = dict(zip(edges["edge_id"], edges.geometry.to_crs(proj.crs).length))
        medges = edges.to_crs(proj.crs)[["edge_id", "u", "v", "geometry"]]
        x, y = proj.to_metres(traces["lon"], traces["lat"])
        t_s = (traces["t"] - traces["t"].iloc[0]).dt.total_seconds().to_numpy()
        mtraces = pd.DataFrame({"trip_id": traces["trip_id"], "t": t_s, "x": x, "y": y})
        print(f"{args.pbf.name} drive network: {len(edges):,} directed edges; {len(traces):,} fixes in "
              f"{traces['trip_id'].nunique()} trips (a fix every {args.every} s, 10 m/s, sigma 5 m, seed {args.seed})",
              flush=True)

        os.environ["NUMBA_CACHE_DIR"] = str(Path(tmp) / "numba-cache")  # so compile time is real
        wtraces = pd.DataFrame({"trip_id": traces["trip_id"], "t": t_s, "lon": traces["lon"], "lat": traces["lat"]})
        runs = [("mapdiff", edges, traces, {}, None),
                ("mapdiff --fast", edges, traces, {"fast": True}, None),
                ("fastmm", medges, mtraces, {"radius_m": 50.0, "k": 8, "gps_error_m": 10.0,
                                             "reverse_tolerance_m": 20.0, "ubodt_bound_m": 1000.0}, None)]
        leuven_trips = sorted(traces["trip_id"].unique())[: args.leuven_trips]
        runs.append(("leuvenmapmatching", medges, mtraces[mtraces["trip_id"].isin(leuven_trips)],
                     {"radius_m": 50.0, "gps_error_m": 10.0}, leuven_trips))
        try:
            import valhalla  # noqa: F401

            runs.append(("valhalla", medges, wtraces, {"pbf": str(args.pbf),
                                                      "radius_m": 50.0, "gps_accuracy_m": 5.0,
                                                      "proj_crs": proj.crs}, None))
        except ImportError:
            print("valhalla: pyvalhalla-weekly is not installed here, not measured (pip install pyvalhalla-weekly)")
        rows = []
        runs = [r for r in runs if not args.only or r[0] in args.only]
        for name, e, tr, kw, subset in runs:
            result, timing, rss = run_child(name.split()[0], e, tr, **kw)
            if result is None:
                print(f"{name}: failed ({timing.get('error')})", flush=True)
                continue
            found = pd.DataFrame([(trip, eid) for trip, seq in result.items() for eid in seq],
                                 columns=["trip_id", "edge_id"])
            tt = truth if subset is None else truth[truth["trip_id"].isin(subset)]
            sc = match_scores(found, tt, length)
            rows.append({
                "matcher": name, "fixes": len(tr), "points/s": len(tr) / timing["match_s"],
                "one-off s": timing["build_s"], "precision": sc["precision"].mean(), "recall": sc["recall"].mean(),
                "mismatch": sc["mismatch"].mean(), "peak MB": rss,
            })
            print(f"{name}: done", flush=True)
    df = pd.DataFrame(rows)
    print()
    print(df.to_string(index=False, float_format=lambda v: f"{v:,.4f}" if v < 10 else f"{v:,.0f}"))
    md = df.set_index("matcher")
    if {"mapdiff", "fastmm"} <= set(md.index):
        print(
            f"\nmapdiff / fastmm points per second: {md.loc['mapdiff', 'points/s'] / md.loc['fastmm', 'points/s']:.2f}x"
        )
    if {"mapdiff --fast", "fastmm"} <= set(md.index):
        print(f"mapdiff --fast / fastmm points per second: "
              f"{md.loc['mapdiff --fast', 'points/s'] / md.loc['fastmm', 'points/s']:.2f}x")
    print("one-off s: mapdiff = network compile + JIT compile (empty Numba cache) + first trip; "
          "fastmm = UBODT build (1 km bound); valhalla = tile build; leuvenmapmatching = none")
    print("valhalla's path is mapped onto the map's edges by geometry (benchmarks/peers.py), which can "
          "cost it a little precision at junctions")


if __name__ == "__main__":
    main()
