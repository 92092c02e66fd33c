"""Speed and memory of ``mapdiff.diff`` (the whole judgment of objects against map features)
against geopandas' ``sjoin_nearest`` of the same points, in one run.

A made-up city: a square grid of two-way streets 100 m apart (``--grid`` nodes a side) with
``--features`` map features beside the streets (classes and values drawn from a small
vocabulary, 3 to 8 m off the centre line); the objects are the features seen by the fleet: the
same places with 0.5 m of error, minus 2 % removed, plus 2 % added, 2 % moved 5 to 40 m along
their street and 2 % with another value; every street driven by 20 trips each way. mapdiff runs
``diff`` on these frames (projection, OSM-convention snapping, pairing, visibility, judgment);
the peer runs ``geopandas.sjoin_nearest`` of the objects to the features (projected first, so
both work in metres). Each runs in its own process; the table gives wall time (reading excluded;
mapdiff after a warm-up call that compiles the kernels) and the process's peak memory (VmHWM).

    python benchmarks/diff.py [--features 1000000] [--grid 320]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CRS = "EPSG:32635"
ORIGIN = (300_000.0, 6_600_000.0)
CLASSES = [("traffic_sign", ["FI:231", "FI:311", "FI:511", "FI:332", "FI:417"]), ("crossing", ["uncontrolled"]),
           ("give_way", [None]), ("stop", [None]), ("speed_limit", ["30", "40", "50"])]


def make_scene(n_features: int, grid: int, seed: int = 0) -> dict:
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(seed)
    spacing = 100.0
    ii, jj = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    node = (ii * grid + jj).ravel()
    # streets: east and north from every node, both directions
    a_e = node[(ii < grid - 1).ravel()]
    a_n = node[(jj < grid - 1).ravel()]
    u = np.r_[a_e, a_e + grid, a_n, a_n + 1]
    v = np.r_[a_e + grid, a_e, a_n + 1, a_n]
    xy = np.c_[ORIGIN[0] + (node // grid) * spacing, ORIGIN[1] + (node % grid) * spacing]
    lines = shapely.linestrings(np.stack([xy[u], xy[v]], axis=1))
    edges = gpd.GeoDataFrame({"edge_id": np.arange(len(u), dtype=np.int64), "u": u, "v": v, "key": 0,
                              "highway": "residential"}, geometry=lines, crs=CRS)
    # features beside the first direction of each street
    n_streets = len(u) // 2
    street = rng.integers(0, n_streets, n_features)
    street = np.where(street < len(a_e), street, street + len(a_e))  # east streets, then north ones
    frac = rng.uniform(0.1, 0.9, n_features)
    p0, p1 = xy[u[street]], xy[v[street]]
    along = p0 + frac[:, None] * (p1 - p0)
    normal = (p1 - p0)[:, ::-1] * np.array([1.0, -1.0]) / spacing
    side = rng.choice([-1.0, 1.0], n_features) * rng.uniform(3.0, 8.0, n_features)
    fxy = along + side[:, None] * normal
    cls_idx = rng.integers(0, len(CLASSES), n_features)
    cls = np.array([CLASSES[c][0] for c in cls_idx], dtype=object)
    val = np.array([CLASSES[c][1][rng.integers(len(CLASSES[c][1]))] for c in cls_idx], dtype=object)
    features = gpd.GeoDataFrame({"feature_id": np.arange(n_features, dtype=np.int64), "class": cls, "value": val,
                                 "tags": "{}"}, geometry=shapely.points(fxy), crs=CRS)
    # the fleet's objects: the same places, with the changes
    kind = rng.random(n_features)
    removed = kind < 0.02
    moved = (kind >= 0.02) & (kind < 0.04)
    changed = (kind >= 0.04) & (kind < 0.06)
    oxy = fxy + rng.normal(0, 0.5, fxy.shape)
    shift = rng.uniform(5, 40, moved.sum()) * rng.choice([-1.0, 1.0], moved.sum())
    direction = (p1 - p0)[moved] / spacing
    oxy[moved] += shift[:, None] * direction
    oval = val.copy()
    oval[changed] = np.array(["FI:999"] * changed.sum(), dtype=object)
    keep = ~removed
    n_added = int(0.02 * n_features)
    add_street = rng.integers(0, len(a_e), n_added)
    q0, q1 = xy[u[add_street]], xy[v[add_street]]
    add_xy = q0 + rng.uniform(0.1, 0.9, n_added)[:, None] * (q1 - q0) + np.array([0.0, 5.0])
    oxy = np.r_[oxy[keep], add_xy]
    ocls = np.r_[cls[keep], np.array(["stop"] * n_added, dtype=object)]
    oval = np.r_[oval[keep], np.array([None] * n_added, dtype=object)]
    n_obj = len(oxy)
    objects_pts = gpd.GeoSeries(shapely.points(oxy), crs=CRS).to_crs(4326)
    objects = pd.DataFrame({"object_id": np.arange(n_obj, dtype=np.int64), "class": ocls, "value": oval,
                            "lon": objects_pts.x.to_numpy(), "lat": objects_pts.y.to_numpy(), "sigma_m": 0.5,
                            "n_trips": rng.integers(5, 40, n_obj), "n_observations": 100, "value_share": 1.0})
    coverage = pd.DataFrame({"edge_id": edges["edge_id"].to_numpy(), "u": u, "v": v, "key": 0, "passes": 20,
                             "against": 0, "trips": 20, "trips_against": 0})
    return {"edges": edges.to_crs(4326), "features": features.to_crs(4326), "objects": objects, "coverage": coverage}


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_one(method: str, folder: str) -> dict:
    import geopandas as gpd

    from mapdiff.io import read_gpkg_layer

    edges = read_gpkg_layer(f"{folder}/map.gpkg", "edges")
    features = read_gpkg_layer(f"{folder}/map.gpkg", "features")
    objects = pd.read_parquet(f"{folder}/objects.parquet")
    coverage = pd.read_parquet(f"{folder}/coverage.parquet")
    if method == "mapdiff":
        from mapdiff.diff import diff

        small = {"edges": edges, "features": features.iloc[:2000]}
        diff(small, objects.iloc[:2000], coverage)  # compile the kernels (cached on disk after)
        t = time.perf_counter()
        result = diff({"edges": edges, "features": features}, objects, coverage)
        seconds = time.perf_counter() - t
        counts = result.diffs["kind"].value_counts().to_dict()
        return {"seconds": seconds, "peak_mb": _peak_mb(), "diffs": int(len(result.diffs)), "counts": counts}
    t = time.perf_counter()
    obj = gpd.GeoDataFrame(objects, geometry=gpd.points_from_xy(objects["lon"], objects["lat"]), crs=4326).to_crs(CRS)
    feat = features.to_crs(CRS)
    joined = gpd.sjoin_nearest(obj[["object_id", "geometry"]], feat[["feature_id", "geometry"]], max_distance=50.0,
                               distance_col="distance_m")
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "peak_mb": _peak_mb(), "pairs": int(len(joined))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=int, default=1_000_000)
    ap.add_argument("--grid", type=int, default=320)
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(*args.child)))
        return
    from mapdiff.io import write_gpkg

    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(args.features, args.grid)
        write_gpkg({"edges": scene["edges"], "features": scene["features"]}, f"{tmp}/map.gpkg")
        scene["objects"].to_parquet(f"{tmp}/objects.parquet")
        scene["coverage"].to_parquet(f"{tmp}/coverage.parquet")
        n_obj, n_edges = len(scene["objects"]), len(scene["edges"])
        del scene
        results = {}
        for method in ("mapdiff", "sjoin_nearest"):
            out = subprocess.run([sys.executable, __file__, "--child", method, tmp], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(out.stderr)
            results[method] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{args.features:,} map features, {n_obj:,} objects, {n_edges:,} directed edges\n")
    print("| method | seconds | peak MB | output |")
    print("|---|---|---|---|")
    m, s = results["mapdiff"], results["sjoin_nearest"]
    print(f"| mapdiff diff (the whole object judgment) | {m['seconds']:.2f} | {m['peak_mb']:,.0f} | "
          f"{m['diffs']:,} diffs: {m['counts']} |")
    print(f"| geopandas sjoin_nearest (max 50 m) | {s['seconds']:.2f} | {s['peak_mb']:,.0f} | {s['pairs']:,} pairs |")
    print(f"\nmapdiff / sjoin_nearest time ratio: {m['seconds'] / s['seconds']:.2f}")


if __name__ == "__main__":
    main()
