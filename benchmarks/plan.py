"""How good the plan is, how fast, and what it buys (issue: task creation and video requests).

    python benchmarks/plan.py [--vehicles 300] [--days 30] [--work DIR] [--skip-store] [--skip-e2e]

1. Cost: a simulated month of ``--vehicles`` cars on the bundled Helsinki extract (true routes
   as the paths; simulated in 3-day chunks without a camera), targets = the edges that see a
   mapped feature + every driven edge (never filmed), at k = 1, 3, 5: clip-seconds of filming
   every pass of every target edge, of the plan (default preferences, and seconds only), and
   the best lower bound (the Lagrangian dual; the HiGHS LP relaxation where it is small enough
   to solve, NaN otherwise). Goal: the plan within 1.2x the bound.
2. Speed: 1,000,000 path rows planned, one core (the kernel is serial). Goal: under 10 s.
3. The task store: claims a second with 8 worker processes (claim one, move it on), on a
   throw-away PostgreSQL cluster and on SQLite. Goal: 1,000 a second on PostgreSQL.
4. End to end (one simulated fleet, matched once; then every detection, and only those in the
   plan's clips at several k, and a second round that asks ``more`` sightings of the places of
   the first round's doubtful object diffs): what diff finds (planted changes found) and the
   video seconds each used. Goal: at least 95 % of the finds for at most 5 % of the video seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def month_paths(work: Path, vehicles: int, days: int, osm: Path, chunk_days: int = 3) -> tuple[pd.DataFrame, Path]:
    """True routes of a simulated fleet as paths (trip_id, vehicle_id, edge_id, t_enter, t_exit,
    u, v, key, against), cached in ``work``; and the stale map's path."""
    from mapdiff.io import read_map_layers, write_gpkg
    from mapdiff.osm import build_map
    from mapdiff.simulate import SimConfig, simulate

    out = work / f"paths-{vehicles}x{days}.parquet"
    roads = work / "roads.gpkg"
    if not roads.exists():
        build_map(osm, roads)
    layers = read_map_layers(roads)
    stale = work / "map.gpkg"
    if out.exists() and stale.exists():
        return pd.read_parquet(out), stale
    parts = []
    no_camera = {k: v for k, v in layers.items() if k != "features"}  # routes only: no detections
    for i, start in enumerate(range(0, days, chunk_days)):
        cfg = SimConfig(vehicles=vehicles, days=min(chunk_days, days - start), seed=i,
                        start_date=str((pd.Timestamp("2026-01-05") + pd.Timedelta(days=start)).date()))
        t = time.perf_counter()
        sim = simulate(no_camera, cfg)
        r = sim.routes
        r = r.assign(trip_id=r["trip_id"].astype(str) + f"/{i}")  # chunks reuse trip names: keep them apart
        parts.append(r)
        print(f"  simulated days {start}-{start + cfg.days}: {r['trip_id'].nunique():,} trips, {len(r):,} route rows "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        if i == 0:
            map_layers = {**sim.map_layers, "features": layers["features"]}
            write_gpkg(map_layers, stale)
    routes = pd.concat(parts, ignore_index=True)
    edges = read_map_layers(stale)["edges"]
    known = routes["edge_id"].isin(edges["edge_id"])  # roads the stale map lacks are not driven on it
    routes = routes[known]
    paths = routes[["trip_id", "vehicle_id", "edge_id", "u", "v", "key", "t_enter", "t_exit"]].assign(
        vehicle_id=routes["vehicle_id"].astype(str), against=False)
    paths.to_parquet(out)
    return paths, stale


def cost_table(paths, map_path):
    from mapdiff.coverage import coverage
    from mapdiff.io import read_map_layers
    from mapdiff.network import load_network
    from mapdiff.plan import PlanConfig, plan, targets

    net = load_network(map_path)
    feats = read_map_layers(map_path)["features"]
    cov = coverage(paths)
    print(
        f"\n1. cost ({map_path.parent.name}): {paths['trip_id'].nunique():,} trips, {len(paths):,} path rows, "
        f"{len(cov):,} driven edges"
    )
    print(f"{'k':>2} {'targets':>8} {'unsat':>6} {'all passes s':>13} {'plan s':>10} {'plan/all':>8} {'bound s':>10} "
          f"{'HiGHS LP s':>10} {'plan/bound':>10} {'seconds-only s':>14} {'s-only/bound':>12} {'time s':>7}")
    pure = {"night_weight": 1.0, "half_life_days": 1e9, "repeat_vehicle_weight": 1.0}
    for k in (1, 3, 5):
        cfg = PlanConfig(sightings=k)
        tgt = targets(net, cov, config=cfg, features=feats)
        t = time.perf_counter()
        p = plan(paths, net, tgt, config=cfg)
        dt = time.perf_counter() - t
        q = plan(paths, net, tgt, config=PlanConfig(sightings=k, **pure), bound=False)
        print(f"{k:>2} {p.targets:>8,} {p.unsatisfied:>6,} {p.all_passes_s:>13,.0f} {p.cost_s:>10,.0f} "
              f"{p.cost_s / p.all_passes_s:>8.4f} {p.lower_bound_s:>10,.0f} "
              f"{p.bounds.get('highs_lp', float('nan')):>10,.0f} {p.cost_s / p.lower_bound_s:>10.3f} "
              f"{q.cost_s:>14,.0f} {q.cost_s / p.lower_bound_s:>12.3f} {dt:>7.1f}")
    return net, feats, cov


def speed_table(paths, net, feats, cov, rows=1_000_000):
    from mapdiff.plan import PlanConfig, plan, targets

    # the month again, a month later, until there are ``rows`` rows (whole trips)
    copies = [paths]
    while sum(map(len, copies)) < rows:
        i = len(copies)
        copies.append(paths.assign(trip_id=paths["trip_id"].astype(str) + f"+{i}",
                                   t_enter=paths["t_enter"] + pd.Timedelta(days=31 * i),
                                   t_exit=paths["t_exit"] + pd.Timedelta(days=31 * i)))
    more = pd.concat(copies, ignore_index=True)
    trips = more["trip_id"].drop_duplicates()
    per_trip = more.groupby("trip_id", sort=False).size().reindex(trips)
    keep = trips[np.cumsum(per_trip.to_numpy()) <= rows]
    part = more[more["trip_id"].isin(keep)]
    cfg = PlanConfig(sightings=3)
    tgt = targets(net, cov, config=cfg, features=feats)
    plan(part.head(1000), net, tgt, config=cfg, bound=False)  # compile
    t = time.perf_counter()
    p = plan(part, net, tgt, config=cfg, bound=False)
    dt = time.perf_counter() - t
    t = time.perf_counter()
    plan(part, net, tgt, config=cfg, bound=True)
    db = time.perf_counter() - t - dt
    print(f"\n2. speed: {len(part):,} path rows, k=3, one process: plan {dt:.2f} s (goal < 10 s); "
          f"the lower bounds add {db:.1f} s; {int((p.requests['status'] == 'pending').sum()):,} clips")


def _worker(url, name, counter):
    from mapdiff.errors import TaskError
    from mapdiff.store import open_store

    with open_store(url) as store:
        while True:
            got = store.claim(worker=name, statuses=["pending"], lease_s=60)
            if not got:
                return
            try:
                store.set(got[0]["task_id"], "requested", worker=name)
            except TaskError:
                continue
            with counter.get_lock():
                counter.value += 1


def store_table(n_tasks=20_000, workers=8):
    from fixtures.postgres import Cluster, bin_dir
    from mapdiff.store import open_store

    t0 = pd.Timestamp("2026-01-05", tz="UTC")
    req = pd.DataFrame({"task_id": [f"t{i:06d}" for i in range(n_tasks)], "vehicle_id": "v", "trip_id": "trip",
                        "t_start": t0 + pd.to_timedelta(np.arange(n_tasks), unit="s"),
                        "t_end": t0 + pd.to_timedelta(np.arange(n_tasks) + 1, unit="s"),
                        "edge_ids": [[1]] * n_tasks, "target": "feature"})
    print(f"\n3. task store: {n_tasks:,} tasks claimed and moved on by {workers} worker processes")
    print(f"{'backend':<11} {'claims/s':>9} {'seconds':>8}")
    cluster = Cluster().start() if bin_dir() else None
    import tempfile

    tmp = tempfile.mkdtemp()
    urls = [("sqlite", os.path.join(tmp, "tasks.sqlite"))]
    if cluster:
        urls.insert(0, ("postgresql", cluster.create_database("bench")))
    try:
        for name, url in urls:
            with open_store(url, migrate=True) as store:
                store.add(req)
            ctx = mp.get_context("spawn")
            counter = ctx.Value("l", 0)
            procs = [ctx.Process(target=_worker, args=(url, f"w{i}", counter)) for i in range(workers)]
            t = time.perf_counter()
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            dt = time.perf_counter() - t
            print(f"{name:<11} {counter.value / dt:>9,.0f} {dt:>8.1f}")
    finally:
        if cluster:
            cluster.stop()


def _mapdiff(*args):
    exe = Path(sys.executable).parent / "mapdiff"
    subprocess.run([str(exe), *map(str, args), "-q"], check=True, stdout=subprocess.DEVNULL)


def _finds(out: Path) -> tuple[dict, int, float]:
    """Planted changes found, per kind (evaluate's recall over all planted, times planted); the
    diffs reported and their precision (confidence >= 0.5)."""
    _mapdiff("evaluate", "--truth", out.parent / "sim", "--diffs", out / "diffs.gpkg", "--json", out / "scores.json")
    scores = json.loads((out / "scores.json").read_text())["diff"]
    reported = scores["by_confidence"][">=0.50"]
    return ({k: round((scores[k]["recall_all"] or 0.0) * scores[k]["planted"]) for k in _kinds()},
            reported["diffs"], reported["precision"] or 0.0)


def _recognise_and_judge(run: Path, out: Path, detections: Path, video_coverage: Path | None):
    sim = run / "sim"
    _mapdiff("observe", detections, "--matched", run / "matched.parquet", "--camera", sim / "camera.json",
             "--map", sim / "map.gpkg", "-o", out / "observations.parquet")
    _mapdiff("locate", out / "observations.parquet", "-o", out / "objects.parquet")
    extra = ["--video-coverage", video_coverage] if video_coverage else []
    _mapdiff("diff", "--map", sim / "map.gpkg", "--objects", out / "objects.parquet", "--coverage",
             run / "coverage.parquet", "--matched", run / "matched.parquet", "--paths", run / "paths.parquet",
             *extra, "-o", out / "diffs.gpkg")


def e2e_table(work: Path, vehicles: int, days: int, seed: int, osm: Path, ks=(3, 5, 8)):
    """One simulated fleet, matched once; then every detection, and the plan's clips at each k."""
    run = work / f"e2e-{osm.name.split('.')[0]}-{vehicles}x{days}-s{seed}"
    sim = run / "sim"
    if not (run / "coverage.parquet").exists():
        _mapdiff("network", osm, "-o", run / "roads.gpkg")
        _mapdiff("simulate", "--map", run / "roads.gpkg", "-o", sim, "--vehicles", vehicles, "--days", days,
                 "--seed", seed)
        _mapdiff("match", sim / "traces.parquet", "--map", sim / "map.gpkg", "-o", run / "matched.parquet",
                 "--paths", run / "paths.parquet")
        _mapdiff("coverage", run / "paths.parquet", "-o", run / "coverage.parquet")
    traces = pd.read_parquet(sim / "traces.parquet", columns=["trip_id", "t"])
    span = traces.groupby("trip_id")["t"].agg(["min", "max"])
    video_s = float((span["max"] - span["min"]).dt.total_seconds().sum())
    print(f"\n4. end to end ({osm.name}): {vehicles} vehicles x {days} days (seed {seed}); "
          f"video of every trip: {video_s:,.0f} s")
    print(f"{'':<12} {'video s':>10} {'share':>7} {'found':>6} {'of all':>7} {'diffs':>6} {'precision':>9} " +
          " ".join(f"{k[:14]:>14}" for k in _kinds()), flush=True)
    rows = []
    out = run / "all-video"
    out.mkdir(exist_ok=True)
    if not (out / "diffs.gpkg").exists():
        _recognise_and_judge(run, out, sim / "detections.parquet", None)
    rows.append(("all video", video_s, _finds(out)))
    for k in ks:
        out = run / f"plan-k{k}"
        for stale in out.glob("tasks.sqlite*"):
            stale.unlink()
        _mapdiff("plan", run / "coverage.parquet", run / "paths.parquet", "--map", sim / "map.gpkg", "-k", k,
                 "-o", out / "requests.parquet", "--no-bound")
        _mapdiff("upload", out / "requests.parquet", "--sim", sim, "-o", out / "uploaded")
        _mapdiff("coverage", run / "paths.parquet", "--clips", out / "requests.parquet", "-o",
                 out / "video_coverage.parquet")
        _recognise_and_judge(run, out, out / "uploaded" / "detections.parquet", out / "video_coverage.parquet")
        clip_s = json.loads((out / "uploaded" / "upload.json").read_text())["clip_seconds"]
        rows.append((f"plan k={k}", clip_s, _finds(out)))
    rows.append(_confirmation_round(run, ks[len(ks) // 2], video_s))
    base = sum(rows[0][2][0].values())
    for name, sec, (n, diffs, precision) in rows:
        print(f"{name:<12} {sec:>10,.0f} {sec / video_s:>7.2%} {sum(n.values()):>6} "
              f"{sum(n.values()) / max(base, 1):>7.1%} {diffs:>6} {precision:>9.2f} " +
              " ".join(f"{n[k]:>14}" for k in _kinds()), flush=True)
    print("goal: at least 95 % of what all video finds, for at most 5 % of the video seconds")


def _confirmation_round(run: Path, k: int, video_s: float, more: int = 10):
    """The loop production runs: a plan at ``k``; diff's candidates below confidence 0.5 (object
    kinds) become targets wanting ``more`` sightings; both rounds' clips are uploaded and judged."""
    import geopandas as gpd

    from mapdiff.io import write_gpkg

    sim = run / "sim"
    first = run / f"plan-k{k}"
    out = run / f"plan-k{k}-confirm{more}"
    out.mkdir(exist_ok=True)
    store = first / "tasks.sqlite"  # one store for both rounds, as in production
    _mapdiff("diff", "--map", sim / "map.gpkg", "--objects", first / "objects.parquet", "--coverage",
             run / "coverage.parquet", "--matched", run / "matched.parquet", "--paths", run / "paths.parquet",
             "--video-coverage", first / "video_coverage.parquet", "--min-confidence", 0, "-o", out / "all_diffs.gpkg")
    diffs = gpd.read_file(out / "all_diffs.gpkg", layer="diffs")
    doubt = diffs[diffs["kind"].str.startswith("object_") & (diffs["confidence"] < 0.5)]
    write_gpkg({"diffs": doubt}, out / "candidates.gpkg")
    _mapdiff("plan", run / "coverage.parquet", run / "paths.parquet", "--map", sim / "map.gpkg", "-k", more,
             "--diffs", out / "candidates.gpkg", "--no-features", "--no-stale", "-o", out / "second.parquet",
             "--no-bound", "--store", store)
    both = pd.concat([pd.read_parquet(first / "requests.parquet"), pd.read_parquet(out / "second.parquet")])
    both = both[both["task_id"].notna()].drop_duplicates("task_id")
    both.to_parquet(out / "requests.parquet")
    _mapdiff("upload", out / "requests.parquet", "--sim", sim, "-o", out / "uploaded", "--store", store)
    _mapdiff("coverage", run / "paths.parquet", "--clips", out / "requests.parquet", "-o",
             out / "video_coverage.parquet")
    _recognise_and_judge(run, out, out / "uploaded" / "detections.parquet", out / "video_coverage.parquet")
    clip_s = json.loads((out / "uploaded" / "upload.json").read_text())["clip_seconds"]
    return (f"k={k}+{more} ({len(doubt)})", clip_s, _finds(out))


def _kinds():
    from mapdiff.schema import CHANGE_KINDS

    return CHANGE_KINDS


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vehicles", type=int, default=300)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mapdiff-bench-plan"))
    ap.add_argument("--osm", type=Path, default=ROOT / "fixtures" / "helsinki.osm.pbf",
                    help="The OSM extract of the city.")
    ap.add_argument("--e2e-vehicles", type=int, default=30)
    ap.add_argument("--e2e-days", type=int, default=3)
    ap.add_argument("--e2e-k", default="3,5,8", help="Sightings to plan for, comma-separated.")
    ap.add_argument("--skip-store", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--skip-cost", action="store_true")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.skip_cost:
        paths, map_path = month_paths(args.work, args.vehicles, args.days, args.osm)
        net, feats, cov = cost_table(paths, map_path)
        speed_table(paths, net, feats, cov)
    if not args.skip_store:
        store_table()
    if not args.skip_e2e:
        e2e_table(args.work, args.e2e_vehicles, args.e2e_days, seed=0, osm=args.osm,
                  ks=tuple(int(k) for k in args.e2e_k.split(",")))


if __name__ == "__main__":
    main()
