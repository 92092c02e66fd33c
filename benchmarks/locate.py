"""Speed, memory and accuracy of ``mapdiff.locate`` against scikit-learn DBSCAN, on made-up
observations with a known answer.

Objects stand 3-8 m beside straight streets 100 m apart; trips drive 400 m of one street and
see the objects up to 50 m ahead in a 90 degree view, a frame every 5 m, missing 10 % of
sightings. Each trip has its own pose error (``--pose-sigma-m`` along the street, a third of
it across, and a 0.5 degree heading error); every sighting adds bearing noise (0.3 degrees)
and range noise (10 %). The sigmas given with the observations are honest about all of it.

The baseline is DBSCAN on the naive ray end points (observer + range along the bearing; one
class kept apart from another by a large offset) followed by a per-cluster mean, at a few
``eps`` values. Each method runs in its own process; the table gives the wall time (without
reading the file and, for mapdiff, without the first JIT compile), the process's peak memory
and recall, precision and median error as ``mapdiff evaluate`` counts them (within 3 m and
same class; recall over objects seen in >= 5 trips, precision over estimates with >= 5 trips).

    python benchmarks/locate.py [--observations 1000000] [--objects 50000] [--pose-sigma-m 3]
    python benchmarks/locate.py --sweep 1,2,3,5 --observations 400000 --objects 20000

``--sweep`` prints instead how the median error falls with the trips that saw an object, for
each pose sigma, next to sigma / sqrt(trips) (pairs within 3 sigma and same class).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = np.array(["traffic_sign", "speed_limit", "crossing", "give_way"])
STREET_GAP_M = 100.0
TRIP_M = 400.0
FRAME_M = 5.0
RANGE_M = 50.0


def make_world(n_objects, n_observations, pose_sigma_m, seed=0):
    """Objects (x, y, class) and observations in the DESIGN contract (metres in a local
    projection around Helsinki), with each observation's true object."""
    from mapdiff.projection import LocalProjection

    rng = np.random.default_rng(seed)
    # streets long enough for about one object every 40 m
    n_streets = 100
    length_m = n_objects * 40.0 / n_streets
    street = rng.integers(0, n_streets, n_objects)
    ox = rng.uniform(0, length_m, n_objects)
    oy = street * STREET_GAP_M + rng.choice([-1.0, 1.0], n_objects) * rng.uniform(3.0, 8.0, n_objects)
    cls = rng.integers(0, len(CLASSES), n_objects)
    by_street = [np.flatnonzero(street == s)[np.argsort(ox[street == s])] for s in range(n_streets)]
    cols = {k: [] for k in ("trip", "t", "x", "y", "b", "sb", "r", "sr", "obj")}
    n, trip = 0, 0
    while n < n_observations:
        s = int(rng.integers(0, n_streets))
        sign = rng.choice([-1.0, 1.0])
        x0 = rng.uniform(0, length_m)
        frames = x0 + sign * np.arange(0.0, TRIP_M, FRAME_M)
        # the trip's pose error: along the street, across it, and the heading
        ea, ec, eh = rng.normal(0, pose_sigma_m), rng.normal(0, pose_sigma_m / 3), rng.normal(0, np.radians(0.5))
        ids = by_street[s]
        for k, fx in enumerate(frames):
            fy = s * STREET_GAP_M
            lo, hi = (fx, fx + RANGE_M) if sign > 0 else (fx - RANGE_M, fx)
            seen = ids[np.searchsorted(ox[ids], lo):np.searchsorted(ox[ids], hi)]
            dx, dy = ox[seen] - fx, oy[seen] - fy
            ahead = dx * sign
            ok = (ahead > 2.0) & (np.abs(dy) < ahead) & (rng.random(len(seen)) > 0.1)
            seen, dx, dy = seen[ok], dx[ok], dy[ok]
            if not len(seen):
                continue
            r_true = np.hypot(dx, dy)
            b_true = np.arctan2(dx, dy)
            m = len(seen)
            cols["trip"].append(np.full(m, trip))
            cols["t"].append(np.full(m, k * 0.5))
            cols["x"].append(np.full(m, fx + sign * ea))
            cols["y"].append(np.full(m, fy + sign * ec))
            cols["b"].append(b_true + eh + rng.normal(0, np.radians(0.3), m))
            # the sigmas of the sighting itself; the pose error is the locator's to know
            cols["sb"].append(np.full(m, np.hypot(np.radians(0.3), np.radians(0.5))))
            cols["r"].append(r_true * (1 + rng.normal(0, 0.1, m)))
            cols["sr"].append(0.1 * r_true)
            cols["obj"].append(seen)
            n += m
        trip += 1
    c = {k: np.concatenate(v)[:n_observations] for k, v in cols.items()}
    proj = LocalProjection.around(24.94, 60.17)
    x0, y0 = proj.to_metres(24.94, 60.17)
    lon, lat = proj.to_lonlat(c["x"] + x0, c["y"] + y0)
    obs = pd.DataFrame({
        # categoricals: as a fleet's pipeline would store them, and light to read
        "trip_id": pd.Categorical(pd.Series(c["trip"]).map("trip{}".format)), "t": pd.Timestamp("2026-01-05", tz="UTC")
        + pd.to_timedelta(c["t"], unit="s"), "class": pd.Categorical(CLASSES[cls[c["obj"]]]), "value": None,
        "score": 0.9,
        "lon": lon, "lat": lat, "bearing_deg": np.degrees(c["b"]) % 360.0, "bearing_sigma_deg": np.degrees(c["sb"]),
        "range_m": c["r"], "range_sigma_m": c["sr"]})
    n_trips = pd.DataFrame({"obj": c["obj"], "trip": c["trip"]}).drop_duplicates().groupby("obj").size()
    olon, olat = proj.to_lonlat(ox + x0, oy + y0)
    objects = pd.DataFrame({"class": CLASSES[cls], "lon": olon, "lat": olat,
                            "n_trips_seen": n_trips.reindex(range(n_objects), fill_value=0).to_numpy()})
    return obs, objects


def run_mapdiff(path):
    from mapdiff.locate import locate

    obs = pd.read_parquet(path)
    # compile (or load the cached kernels) before the clock starts: enough rows for every kernel
    # to run (the last reassignment needs 50 tracks of well-seen objects)
    locate(obs.iloc[:50000])
    t0 = time.perf_counter()
    objects, _ = locate(obs)
    return time.perf_counter() - t0, objects


def run_dbscan(path, eps_m):
    from sklearn.cluster import DBSCAN

    from mapdiff.projection import LocalProjection

    obs = pd.read_parquet(path)
    t0 = time.perf_counter()
    proj = LocalProjection.around(24.94, 60.17)
    x, y = proj.to_metres(obs["lon"].to_numpy(), obs["lat"].to_numpy())
    b = np.radians(obs["bearing_deg"].to_numpy())
    ex, ey = x + obs["range_m"].to_numpy() * np.sin(b), y + obs["range_m"].to_numpy() * np.cos(b)
    cls = pd.factorize(obs["class"])[0]
    labels = DBSCAN(eps=eps_m, min_samples=3).fit_predict(np.c_[ex - ex.mean(), ey - ey.mean() + cls * 1e6])
    keep = labels >= 0
    g = pd.DataFrame({"label": labels[keep], "x": ex[keep], "y": ey[keep], "trip": obs["trip_id"].to_numpy()[keep],
                      "class": obs["class"].to_numpy()[keep]}).groupby("label")
    est = pd.DataFrame({"x": g["x"].mean(), "y": g["y"].mean(), "n_trips": g["trip"].nunique(),
                        "class": g["class"].first()})
    wall = time.perf_counter() - t0
    lon, lat = proj.to_lonlat(est["x"].to_numpy(), est["y"].to_numpy())
    return wall, pd.DataFrame({"class": est["class"].to_numpy(), "lon": lon, "lat": lat,
                               "n_trips": est["n_trips"].to_numpy()})


def score(truth_objects, estimates):
    from mapdiff.evaluate import match_points
    from mapdiff.projection import LocalProjection

    proj = LocalProjection.around(24.94, 60.17)
    tx, ty = proj.to_metres(truth_objects["lon"].to_numpy(), truth_objects["lat"].to_numpy())
    ex, ey = proj.to_metres(estimates["lon"].to_numpy(float), estimates["lat"].to_numpy(float))
    it, ie, d = match_points(tx, ty, truth_objects["class"].to_numpy().astype(str), ex, ey,
                             estimates["class"].to_numpy().astype(str), 3.0)
    eligible = truth_objects["n_trips_seen"].to_numpy() >= 5
    strong = estimates["n_trips"].to_numpy() >= 5
    t_hit = np.zeros(len(tx), bool)
    t_hit[it] = True
    e_hit = np.zeros(len(ex), bool)
    e_hit[ie] = True
    return (float(t_hit[eligible].mean()), float(e_hit[strong].mean()) if strong.any() else float("nan"),
            float(np.median(d[eligible[it]])) if len(it) else float("nan"), int(strong.sum()))


def _peak_mb():
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sweep(n_objects, n_observations, sigmas):
    """Median position error of mapdiff's objects by the number of trips that saw them, for
    each pose sigma, next to sigma / sqrt(trips) (what averaging independent passes gives)."""
    from mapdiff.evaluate import match_points
    from mapdiff.locate import locate
    from mapdiff.projection import LocalProjection

    proj = LocalProjection.around(24.94, 60.17)
    buckets = [(2, 4), (5, 9), (10, 19), (20, 39), (40, 10_000)]
    print(f"{'pose sigma m':>12} {'trips':>8} {'objects':>8} {'recall':>7} {'median m':>9} {'sigma/sqrt(n)':>14} "
          f"{'ratio':>6}")
    for sigma in sigmas:
        obs, truth = make_world(n_objects, n_observations, sigma, seed=1)
        est, _ = locate(obs)
        tx, ty = proj.to_metres(truth["lon"].to_numpy(), truth["lat"].to_numpy())
        ex, ey = proj.to_metres(est["lon"].to_numpy(float), est["lat"].to_numpy(float))
        it, _, d = match_points(tx, ty, truth["class"].to_numpy().astype(str), ex, ey,
                                 est["class"].to_numpy().astype(str), 3.0 * max(sigma, 1.0))
        err = np.full(len(truth), np.nan)
        err[it] = d
        n = truth["n_trips_seen"].to_numpy()
        for lo, hi in buckets:
            sel = (n >= lo) & (n <= hi)
            if not sel.any():
                continue
            ref = sigma / np.sqrt(np.median(n[sel]))
            med = float(np.nanmedian(err[sel]))
            print(f"{sigma:12.1f} {f'{lo}-{hi}' if hi < 10_000 else f'{lo}+':>8} {int(sel.sum()):8,} "
                  f"{np.isfinite(err[sel]).mean():7.3f} {med:9.2f} {ref:14.2f} {med / ref:6.2f}")


def child(args):
    """One method in this process: print its wall time and scores as JSON."""
    truth = pd.read_parquet(args.truth)
    if args.method == "mapdiff":
        wall, est = run_mapdiff(args.obs)
    else:
        wall, est = run_dbscan(args.obs, float(args.method.split("=")[1]))
    recall, precision, median, n_est = score(truth, est)
    peak = _peak_mb()
    print(json.dumps({"wall": wall, "peak_mb": peak, "recall": recall, "precision": precision,
                      "median_m": median, "estimates": n_est}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--observations", type=int, default=1_000_000)
    ap.add_argument("--objects", type=int, default=50_000)
    ap.add_argument("--pose-sigma-m", type=float, default=3.0)
    ap.add_argument("--eps", default="2,3,5", help="DBSCAN eps values (metres) to try")
    ap.add_argument("--keep", metavar="PATH", help="also write the observations here")
    ap.add_argument("--sweep", metavar="SIGMAS", help="instead: the error by trips for these pose sigmas (m), "
                                                       "e.g. 1,2,3,5")
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--obs", help=argparse.SUPPRESS)
    ap.add_argument("--truth", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.method:
        return child(args)
    if args.sweep:
        return sweep(args.objects, args.observations, [float(v) for v in args.sweep.split(",")])
    with tempfile.TemporaryDirectory() as tmp:
        obs, objects = make_world(args.objects, args.observations, args.pose_sigma_m)
        obs_path, truth_path = Path(tmp) / "obs.parquet", Path(tmp) / "truth.parquet"
        obs.to_parquet(obs_path)
        objects.to_parquet(truth_path)
        if args.keep:
            obs.to_parquet(args.keep)
        print(f"{len(obs):,} observations of {len(objects):,} objects "
              f"({int((objects['n_trips_seen'] >= 5).sum()):,} seen in >= 5 trips), "
              f"{obs['trip_id'].nunique():,} trips, pose sigma {args.pose_sigma_m} m")
        rows = []
        for method in ["mapdiff"] + [f"dbscan eps={e}" for e in args.eps.split(",")]:
            out = subprocess.run([sys.executable, __file__, "--method", method.replace("dbscan ", ""),
                                  "--obs", str(obs_path), "--truth", str(truth_path)],
                                 check=True, capture_output=True, text=True).stdout
            rows.append((method, json.loads(out.strip().splitlines()[-1])))
    print(f"{'method':<18} {'wall s':>7} {'peak MB':>8} {'estimates':>10} {'recall':>7} {'precision':>9} "
          f"{'median m':>9}")
    for method, r in rows:
        print(f"{method:<18} {r['wall']:7.2f} {r['peak_mb']:8.0f} {r['estimates']:10,} {r['recall']:7.3f} "
              f"{r['precision']:9.3f} {r['median_m']:9.2f}")
    base = min(r["wall"] for m, r in rows if m != "mapdiff")
    print(f"mapdiff is {base / rows[0][1]['wall']:.1f}x faster than the fastest DBSCAN run")


if __name__ == "__main__":
    main()
