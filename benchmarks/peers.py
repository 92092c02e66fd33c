"""Peer map matchers behind one small interface, for the benchmarks (not part of mapdiff).

Each peer takes a projected edge table (edge_id, u, v, geometry in metres) and traces in metres
(trip_id, t seconds, x, y) and returns per trip the ordered list of matched edge_ids.
Run a peer in a child process (``python benchmarks/peers.py PEER job.pkl out.pkl``) so its time
and peak memory are its own.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time

import numpy as np
import shapely


def fastmm_match(edges, traces, *, radius_m=50.0, k=8, gps_error_m=10.0, reverse_tolerance_m=20.0,
                 ubodt_bound_m=1000.0):
    """fastmm (FMM): UBODT of ``ubodt_bound_m`` built here, so its cost is in the timing."""
    import fastmm

    net = fastmm.Network()
    coords = shapely.get_coordinates(edges.geometry.values, return_index=True)
    pts, idx = coords
    starts = np.r_[0, np.flatnonzero(np.diff(idx)) + 1, len(idx)]
    for row, (e, u, v) in enumerate(zip(edges["edge_id"], edges["u"], edges["v"])):
        seg = pts[starts[row]:starts[row + 1]]
        net.add_edge(int(e), source=int(u), target=int(v), geom=[tuple(p) for p in seg])
    net.finalize()
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        matcher = fastmm.FastMapMatch(net, fastmm.SHORTEST, max_distance_between_candidates=ubodt_bound_m,
                                      cache_dir=cache)
        build_s = time.perf_counter() - t0
        out = {}
        t0 = time.perf_counter()
        for trip, part in traces.groupby("trip_id", sort=False):
            traj = fastmm.Trajectory.from_xyt_tuples(list(zip(part["x"], part["y"], part["t"])))
            res = matcher.match(traj, max_candidates=k, candidate_search_radius=radius_m, gps_error=gps_error_m,
                                reverse_tolerance=reverse_tolerance_m)
            seq = []
            for sub in res.subtrajectories:
                if sub.error_code != fastmm.SUCCESS:
                    continue
                for segment in sub.segments:
                    for edge in segment.edges:
                        if not seq or seq[-1] != edge.edge_id:
                            seq.append(edge.edge_id)
            out[trip] = seq
        match_s = time.perf_counter() - t0
    return out, {"build_s": build_s, "match_s": match_s}


def leuven_match(edges, traces, *, radius_m=50.0, gps_error_m=10.0):
    """leuvenmapmatching's DistanceMatcher on an in-memory map."""
    from leuvenmapmatching.map.inmem import InMemMap
    from leuvenmapmatching.matcher.distance import DistanceMatcher

    m = InMemMap("bench", use_latlon=False, use_rtree=True, index_edges=True)
    nodes = {}
    lookup = {}
    for e, u, v, geom in zip(edges["edge_id"], edges["u"], edges["v"], edges.geometry.values):
        c = shapely.get_coordinates(geom)
        nodes[u], nodes[v] = tuple(c[0]), tuple(c[-1])
        lookup[(u, v)] = e
    for n, xy in nodes.items():
        m.add_node(int(n), xy)
    for u, v in lookup:
        m.add_edge(int(u), int(v))
    t0 = time.perf_counter()
    out = {}
    for trip, part in traces.groupby("trip_id", sort=False):
        matcher = DistanceMatcher(m, max_dist=radius_m * 4, obs_noise=gps_error_m, obs_noise_ne=gps_error_m * 2,
                                  non_emitting_states=True, max_lattice_width=8)
        matcher.match(list(zip(part["x"], part["y"])))
        seq = []
        for a, b in zip(matcher.path_pred_onlynodes[:-1], matcher.path_pred_onlynodes[1:]):
            if (a, b) in lookup:
                seq.append(lookup[(a, b)])
        out[trip] = seq
    return out, {"build_s": 0.0, "match_s": time.perf_counter() - t0}


def _decode_polyline6(text):
    """Decode a Google polyline with 6 decimals (Valhalla's shape) into (lat, lon) pairs."""
    coords, index, lat, lon = [], 0, 0, 0
    while index < len(text):
        for which in (0, 1):
            shift, result = 0, 0
            while True:
                b = ord(text[index]) - 63
                index += 1
                result |= (b & 0x1F) << shift
                shift += 5
                if b < 0x20:
                    break
            delta = ~(result >> 1) if result & 1 else result >> 1
            if which == 0:
                lat += delta
            else:
                lon += delta
        coords.append((lat / 1e6, lon / 1e6))
    return coords


def _edges_along(path, edges, tree, tol_m=3.0):
    """Our edges driven along a matched path line (metres): points at 25/50/75 % of the edge lie
    within ``tol_m`` of the path, in the path's direction. Ordered by position along the path."""
    hits = []
    for row in tree.query(path.buffer(tol_m), predicate="intersects"):
        geom = edges.geometry.values[row]
        pts = shapely.line_interpolate_point(geom, [0.25, 0.5, 0.75], normalized=True)
        if shapely.distance(pts, path).max() > tol_m:
            continue
        loc = shapely.line_locate_point(path, pts)
        if geom.length > 2 * tol_m and not (loc[0] < loc[1] < loc[2]):
            continue  # the path runs the other way: the edge's twin, not this edge
        hits.append((loc[1], int(edges["edge_id"].values[row])))
    return [e for _, e in sorted(hits)]


def valhalla_match(edges, traces, *, pbf, radius_m=50.0, gps_accuracy_m=5.0, proj_crs=None):
    """Valhalla's Meili via pyvalhalla (tiles built here from ``pbf``, counted as one-off).

    Its path comes back as a shape on Valhalla's own graph; it is mapped onto our edges by
    geometry (see :func:`_edges_along`)."""
    import json
    import shutil

    import valhalla
    from pyproj import Transformer

    tmp = tempfile.mkdtemp()
    try:
        tiles = os.path.join(tmp, "tiles")
        os.makedirs(tiles)
        config = valhalla.get_config(tile_extract="", tile_dir=tiles)
        config["mjolnir"]["tile_extract"] = ""
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(config, f)
        t0 = time.perf_counter()
        binary = os.path.join(os.path.dirname(valhalla.__file__), "bin", "valhalla_build_tiles")
        subprocess.run([binary, "-c", cfg_path, pbf], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        actor = valhalla.Actor(cfg_path)
        build_s = time.perf_counter() - t0
        requests = []
        for trip, part in traces.groupby("trip_id", sort=False):
            shape = [{"lat": la, "lon": lo, "time": float(t)} for lo, la, t in zip(part["lon"], part["lat"], part["t"])]
            requests.append((trip, json.dumps({
                "shape": shape, "costing": "auto", "shape_match": "map_snap",
                "filters": {"attributes": ["shape"], "action": "include"},
                "trace_options": {"search_radius": radius_m, "gps_accuracy": gps_accuracy_m},
            })))
        shapes = {}
        t0 = time.perf_counter()
        for trip, req in requests:
            try:
                shapes[trip] = json.loads(actor.trace_attributes(req))["shape"]
            except RuntimeError:
                shapes[trip] = ""
        match_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    to_m = Transformer.from_crs(4326, proj_crs, always_xy=True)
    tree = shapely.STRtree(edges.geometry.values)
    out = {}
    for trip, text in shapes.items():
        latlon = np.array(_decode_polyline6(text)) if text else np.zeros((0, 2))
        if len(latlon) < 2:
            out[trip] = []
            continue
        x, y = to_m.transform(latlon[:, 1], latlon[:, 0])
        out[trip] = _edges_along(shapely.LineString(np.column_stack([x, y])), edges, tree)
    return out, {"build_s": build_s, "match_s": match_s}


def mapdiff_match(edges, traces, **config):
    """mapdiff through its Python API; ``edges`` and ``traces`` in WGS84 (the traces contract).

    ``build_s`` is the network compile plus the first call (JIT compile or cache load) on one
    trip; ``match_s`` the best of three runs over all traces after that."""
    from mapdiff.matching import MatchConfig, match
    from mapdiff.network import Network

    fast = config.pop("fast", False)
    cfg = MatchConfig.fast(**config) if fast else MatchConfig(**config)
    t0 = time.perf_counter()
    net = Network.from_edges(edges)
    first = traces[traces["trip_id"] == traces["trip_id"].iloc[0]]
    match(first, net, cfg)
    build_s = time.perf_counter() - t0
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        _, paths = match(traces, net, cfg)
        best = min(best, time.perf_counter() - t0)
    out = {trip: part["edge_id"].tolist() for trip, part in paths.groupby("trip_id", sort=False)}
    return out, {"build_s": build_s, "match_s": best}


PEERS = {"mapdiff": mapdiff_match, "fastmm": fastmm_match, "leuvenmapmatching": leuven_match,
         "valhalla": valhalla_match}


def run_child(peer, edges, traces, **kwargs):
    """Run a peer in a child process; return (result, timings, peak RSS in MB).

    ``timings`` has the peer's own ``build_s`` and ``match_s`` and the child's ``wall_s``."""
    with tempfile.TemporaryDirectory() as tmp:
        job, out = os.path.join(tmp, "job.pkl"), os.path.join(tmp, "out.pkl")
        with open(job, "wb") as f:
            pickle.dump((edges, traces, kwargs), f)
        status, wall, rss = run_command([sys.executable, __file__, peer, job, out])
        if status != 0 or not os.path.exists(out):
            return None, {"error": f"exit status {status}", "wall_s": wall}, rss
        with open(out, "rb") as f:
            result, timing = pickle.load(f)
        timing["wall_s"] = wall
        return result, timing, rss


# A forked child's ru_maxrss starts from its parent's size, so children are launched from this
# tiny launcher (a few MB) rather than from the benchmark process (hundreds of MB of imports).
_LAUNCHER = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(p.pid, 0)
open(sys.argv[1], "w").write(f"{status} {usage.ru_maxrss}")
"""


def run_command(cmd):
    """Run a command; return (exit status, wall seconds, peak RSS in MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "rss")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, report, *cmd], check=False)
        wall = time.perf_counter() - t0
        with open(report) as f:
            status, rss_kb = (int(v) for v in f.read().split())
    return status, wall, rss_kb / 1024


if __name__ == "__main__":
    name, job, out = sys.argv[1:4]
    with open(job, "rb") as f:
        edges, traces, kwargs = pickle.load(f)
    result = PEERS[name](edges, traces, **kwargs)
    with open(out, "wb") as f:
        pickle.dump(result, f)
