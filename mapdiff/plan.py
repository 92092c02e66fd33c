"""Which clips to ask the cars for (the ``plan`` stage).

A fleet cannot upload all its video. The plan names the directed edges that must be seen and
how often (the *targets*), then picks, among the passes the fleet drove (the matched paths),
the few clips that see each target edge from ``sightings`` distinct trips at the least
clip-seconds.

Targets (:func:`targets`), each a directed ``edge_id`` with a ``need`` and the reasons
(``target``: ``feature``, ``diff``, ``stale``, ``user``, joined with ``+``):

- ``feature``: the edges from which a mapped feature is in the camera's view and range (as
  ``diff`` decides whether a feature should have been seen, so that a removal can be judged);
- ``diff``: the edges of a diff awaiting confirmation (its ``edge_ids``, or the edges from
  which its place is in view);
- ``stale``: driven edges (in the coverage) whose latest uploaded clip (the task store) is
  older than ``stale_days`` before the newest pass, or that were never filmed: where a new
  sign can appear unseen;
- ``user``: edge ids from a file.

A pass over an edge serves its target whichever way it drives the edge (a one-way driven
against its direction still films it). Filming a pass costs its time on the edge plus a
lead-in: the clip starts ``lead_m`` before the edge, since the camera sees ahead; passes next to
each other in one trip share one clip and one lead-in. The choice is a greedy set multicover
(``mapdiff._kernels.plan``) that prefers daylight and recent passes and distinct vehicles;
clips longer than ``max_clip_s`` are cut in equal parts. :func:`bounds` gives lower bounds on
any plan's cost: the linear relaxation (HiGHS) of the covering with a linear lower bound of the
same cost, and the Lagrangian dual of its covering rows (a shortest path per trip), so the
plan's distance from optimal is known.

The first and last pass of a trip serve nothing (the car started or stopped somewhere along
them), nor does a pass faster than ``BELIEVABLE_SPEED_FACTOR`` times its road's free-flow speed
(its time is a matcher's guess; such passes look cheapest, so a plan would pick them first).
Targets that fewer than ``need`` distinct trips drove get every trip there is and are listed in
the output as ``status = 'unsatisfied'`` with the reason, without a ``task_id``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mapdiff.errors import InputError, check_fields
from mapdiff.schema import timestamps

REQUEST_COLUMNS = ["task_id", "vehicle_id", "trip_id", "t_start", "t_end", "seconds", "edge_ids", "target",
                   "status", "reason"]
PATH_COLUMNS = ["trip_id", "edge_id", "t_enter", "t_exit"]
#: a pass faster than this many times its road's free-flow speed has a time the GPS did not
#: measure: a matcher's jitter into a side road while the car stands, or an edge interpolated
#: across a gap. Measured on a simulated fleet: 18 % of the passes inside trips were past 1.5x,
#: and a plan free to pick them picked mostly passes the car never drove (they look cheapest)
BELIEVABLE_SPEED_FACTOR = 1.5
#: a lead-in is timed at the trip's own speed, but no slower than a crawl: a car queueing
#: before an edge films the same scene over and over, and a minute of it buys nothing
CRAWL_MPS = 3.0
#: the sun this far below the horizon ends civil twilight: darker than this, a dashcam's
#: frames show lit signals but hardly any sign
DAYLIGHT_ELEVATION_DEG = -6.0


@dataclass(frozen=True)
class PlanConfig:
    """What to film and what a clip costs.

    Attributes
    ----------
    sightings : distinct trips that must film each target edge (k) [5: ``diff`` wants 3 trips
        of an addition (``min_trips``) and of a removal (``min_visible_trips``), and a filmed
        pass is not always a sighting (misses, occlusion, the angle); measured end to end on
        simulated fleets (``benchmarks/plan.py``): with 100 cars k = 5 found more than all
        video did, for 3 % of its seconds; with 30 cars k = 3, 5 and 8 found 85, 74 and 96 %].
    features : make the edges that see a mapped feature targets [True].
    stale_days : make driven edges not filmed for this many days targets; None: none [30].
    lead_m : a clip starts this far before its first edge [30: within 30 m a sign is big in
        the frame, and the camera's range (50 m) is reached by the edge before when it
        matters; the lead costs seconds on every clip].
    max_clip_s : clips longer than this are cut in equal parts [60].
    night_weight : a pass in the dark (sun below civil twilight) is worth this share of one in
        daylight [0.25: a detector finds few signs at night; lit signals it still finds].
    half_life_days : a pass this many days older than the newest is worth half [7].
    repeat_vehicle_weight : a second trip of a vehicle already filming a target is worth this
        share [0.5: the same camera repeats its own calibration error].
    range_m, hfov_deg : what the dashcam sees, for ``feature`` and ``diff`` targets [50, 90].
    """

    sightings: int = 5
    features: bool = True
    stale_days: float | None = 30.0
    lead_m: float = 30.0
    max_clip_s: float = 60.0
    night_weight: float = 0.25
    half_life_days: float = 7.0
    repeat_vehicle_weight: float = 0.5
    range_m: float = 50.0
    hfov_deg: float = 90.0

    def validate(self) -> PlanConfig:
        check_fields(self, ("sightings",), lambda v: float(v) == int(v) and v >= 1, "a whole number >= 1")
        check_fields(self, ("stale_days",), lambda v: v is None or (np.isfinite(v) and v >= 0), ">= 0 days")
        check_fields(self, ("lead_m",), lambda v: np.isfinite(v) and v >= 0, ">= 0 metres")
        check_fields(self, ("max_clip_s", "half_life_days", "range_m"), lambda v: np.isfinite(v) and v > 0, "> 0")
        check_fields(self, ("night_weight", "repeat_vehicle_weight"), lambda v: 0 < v <= 1, "in (0, 1]")
        check_fields(self, ("hfov_deg",), lambda v: 0 < v <= 360, "in (0, 360]")
        return self


@dataclass
class Plan:
    """What :func:`plan` returns. ``requests``: the clips (``status`` pending) and the targets
    left unsatisfied (``status`` unsatisfied, no task id); seconds are clip-seconds."""

    requests: pd.DataFrame
    cost_s: float
    all_passes_s: float  # filming every pass of every target edge
    lower_bound_s: float | None
    bounds: dict  # each bound computed: {"lagrangian": s, "highs_lp": s}
    targets: int
    unsatisfied: int


# ---------------------------------------------------------------------------------------------
# targets


def _add(parts, edge_ids, reason, need):
    ids = np.unique(np.asarray(edge_ids, dtype=np.int64))
    parts.append(pd.DataFrame({"edge_id": ids, "need": np.int64(need), "target": reason}))


def _seen_from(net, x, y, config: PlanConfig) -> np.ndarray:
    from mapdiff.diff import visible_from

    if len(x) == 0:
        return np.zeros(0, np.int64)
    _, ids, _ = visible_from(np.asarray(x, float), np.asarray(y, float), net, range_m=config.range_m,
                             hfov_deg=config.hfov_deg)
    return ids


def diff_edges(diffs: pd.DataFrame, net, config: PlanConfig, *, source: str = "diffs") -> np.ndarray:
    """The edges that confirm the diffs: their own ``edge_ids`` (road diffs), else the edges
    from which their geometry's points are in view."""
    import shapely

    ids = []
    own = diffs["edge_ids"] if "edge_ids" in diffs else pd.Series([None] * len(diffs), index=diffs.index)
    has_own = own.notna() & (own.astype(str).str.strip() != "")
    for text in own[has_own].astype(str):
        try:
            ids.extend(int(float(v)) for v in text.replace("[", "").replace("]", "").split(",") if v.strip())
        except ValueError:
            msg = f"{source}: column 'edge_ids' must list edge ids separated by commas; found {text!r}"
            raise InputError(msg) from None
    rest = diffs[~has_own.to_numpy()]
    if len(rest):
        if not hasattr(rest, "geometry"):
            msg = f"{source}: a diff without 'edge_ids' needs a geometry; found columns {list(diffs.columns)}"
            raise InputError(msg)
        lonlat = shapely.get_coordinates(rest.geometry.to_crs(4326).to_numpy())
        x, y = net.proj.to_metres(lonlat[:, 0], lonlat[:, 1])
        ids.extend(_seen_from(net, x, y, config).tolist())
    return np.asarray(ids, dtype=np.int64)


def targets(net, coverage: pd.DataFrame, *, config: PlanConfig, features=None, diffs=None, user_edges=None,
            seen=None, now=None) -> pd.DataFrame:
    """The target edges: ``edge_id``, ``need`` (distinct trips), ``target`` (the reasons).

    ``features``: the map's feature points (a GeoDataFrame); ``diffs``: diffs awaiting
    confirmation; ``user_edges``: edge ids; ``seen``: per edge the end of its latest uploaded
    clip (``edge_id``, ``t_last``), for staleness at ``now`` (a UTC time; default: the
    coverage's latest ``t_last``, the newest pass)."""
    if now is None and "t_last" in coverage and len(coverage):
        now = pd.to_datetime(coverage["t_last"], utc=True).max()
    parts: list = []
    k = int(config.sightings)
    if config.features and features is not None and len(features):
        pts = features.geometry.to_crs(4326)
        x, y = net.proj.to_metres(pts.x.to_numpy(), pts.y.to_numpy())
        _add(parts, _seen_from(net, x, y, config), "feature", k)
    if diffs is not None and len(diffs):
        _add(parts, diff_edges(diffs, net, config), "diff", k)
    if user_edges is not None and len(user_edges):
        _add(parts, user_edges, "user", k)
    if config.stale_days is not None and len(coverage):
        driven = coverage["edge_id"].to_numpy(np.int64)
        if seen is not None and len(seen) and now is not None:
            last = pd.Series(seen["t_last"].to_numpy(), index=seen["edge_id"].to_numpy(np.int64))
            last = last[~last.index.duplicated()]
            t_last = pd.to_datetime(last.reindex(driven), utc=True)
            fresh = (t_last >= now - pd.Timedelta(days=config.stale_days)).to_numpy()
            driven = driven[~fresh]
        _add(parts, driven, "stale", k)
    if not parts:
        return pd.DataFrame({"edge_id": np.zeros(0, np.int64), "need": np.zeros(0, np.int64), "target": []})
    allt = pd.concat(parts, ignore_index=True)
    unknown = ~allt["edge_id"].isin(net.edges["edge_id"])
    if unknown.any():
        shown = ", ".join(str(v) for v in allt["edge_id"][unknown].unique()[:5])
        msg = f"targets: {int(unknown.sum()):,} edge ids are not in the map (e.g. {shown})"
        raise InputError(msg)
    out = allt.groupby("edge_id").agg(need=("need", "max"), target=("target", lambda r: "+".join(sorted(set(r)))))
    return out.reset_index()


def read_diffs(path, *, below: float | None = None) -> pd.DataFrame:
    """The diffs awaiting confirmation: the ``diffs`` layer of ``path`` (mapdiff diff -o), only
    those below confidence ``below`` when it is given."""
    from mapdiff.io import read_gpkg_layer
    from mapdiff.schema import require

    diffs = read_gpkg_layer(path, "diffs")
    if below is None:
        return diffs
    require(diffs, ["confidence"], path)
    return diffs[diffs["confidence"].to_numpy(float) < below]


def read_coverage(path) -> pd.DataFrame:
    """A coverage file for planning: its ``edge_id`` column must be whole edge ids."""
    from mapdiff.io import read_table
    from mapdiff.schema import numbers, require

    cov = read_table(path)
    require(cov, ["edge_id"], path)
    numbers(cov, "edge_id", path, integer=True)
    return cov


def read_edge_ids(path) -> np.ndarray:
    """The ``edge_id`` column of a table (Parquet, else CSV) of edges a user wants filmed."""
    from mapdiff.io import check_exists, read_table
    from mapdiff.schema import require

    check_exists(path)
    table = read_table(path) if str(path).endswith(".parquet") else pd.read_csv(path)
    require(table, ["edge_id"], path)
    ids = pd.to_numeric(table["edge_id"], errors="coerce")
    bad = (ids.isna() | (ids != np.round(ids))).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        msg = f"{path}: column 'edge_id' must be whole edge ids; found {table['edge_id'].iloc[row]!r} at row {row}"
        raise InputError(msg)
    return ids.to_numpy(np.int64)


def empty_requests() -> pd.DataFrame:
    """A plan with no rows (nothing was driven)."""
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in REQUEST_COLUMNS})


# ---------------------------------------------------------------------------------------------
# passes


def sun_elevation_deg(lon, lat, t_s) -> np.ndarray:
    """The sun's elevation (degrees) at WGS84 points and UTC epoch seconds (NOAA's low-precision
    formulas: within about half a degree, plenty to tell day from night)."""
    lon, lat, t_s = np.broadcast_arrays(np.asarray(lon, float), np.asarray(lat, float), np.asarray(t_s, float))
    day_of_year = pd.DatetimeIndex(pd.to_datetime(t_s.ravel(), unit="s")).day_of_year.to_numpy().reshape(t_s.shape)
    hours = (t_s % 86400.0) / 3600.0
    g = 2.0 * np.pi / 365.0 * (day_of_year - 1.0 + (hours - 12.0) / 24.0)
    eqtime = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g)
                       - 0.040849 * np.sin(2 * g))
    decl = (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))
    solar_min = hours * 60.0 + eqtime + 4.0 * lon
    hour_angle = np.radians(solar_min / 4.0 - 180.0)
    phi = np.radians(lat)
    sin_el = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    return np.degrees(np.arcsin(np.clip(sin_el, -1.0, 1.0)))


@dataclass
class _Passes:
    """The path rows as the kernel takes them: sorted by trip and time, in seconds."""

    trip_ids: np.ndarray  # per trip
    vehicle_ids: np.ndarray  # per trip
    trip_ptr: np.ndarray
    vehicle_of_trip: np.ndarray
    edge_id: np.ndarray  # per piece
    t0: np.ndarray
    t1: np.ndarray
    a: np.ndarray
    back: np.ndarray  # the first and last piece of its trip each piece's clip would overlap
    fwd: np.ndarray
    target: np.ndarray
    quality: np.ndarray


def _lead_start(trip_ptr, t0, t1, length, lead_m):
    """When each piece's trip was ``lead_m`` before the piece's start (linear within the piece
    it was on then; the trip's start at the latest; at most ``lead_m / CRAWL_MPS`` before)."""
    n = len(t0)
    trip = np.repeat(np.arange(len(trip_ptr) - 1), np.diff(trip_ptr))
    cum = np.cumsum(length) - length  # distance at each piece's start, over all trips
    first = cum[trip_ptr[:-1]][trip] if n else cum
    s = cum - first  # from the trip's start
    span = (s.max() + lead_m + 1.0) if n else 1.0
    key = trip * span + s  # trips apart along one axis
    want = key - lead_m
    at = np.searchsorted(key, want, side="right") - 1
    at = np.maximum(at, trip_ptr[:-1][trip])
    frac = np.clip((want - key[at]) / np.maximum(length[at], 1e-9), 0.0, 1.0)
    start = np.minimum(t0[at] + frac * (t1[at] - t0[at]), t0)
    return np.maximum(start, t0 - lead_m / CRAWL_MPS)


def passes(paths: pd.DataFrame, net, tgt: pd.DataFrame, *, config: PlanConfig, source: str = "paths") -> _Passes:
    """Validate the paths against the map and lay them out for the kernel."""
    from mapdiff._kernels.plan import windows
    from mapdiff.schema import require, time_seconds

    require(paths, PATH_COLUMNS, source)
    edge = paths["edge_id"]
    if not pd.api.types.is_integer_dtype(edge):
        msg = f"{source}: column 'edge_id' must be integer edge ids; found dtype {edge.dtype}"
        raise InputError(msg)
    edge = edge.to_numpy(np.int64)
    known = net.edges["edge_id"].to_numpy(np.int64)
    row_of = pd.Index(known).get_indexer(edge)
    if (row_of < 0).any():
        bad = pd.unique(edge[row_of < 0])
        msg = (f"{source}: {len(bad):,} edge ids are not in the map (e.g. {', '.join(map(str, bad[:5]))}); "
               "were the paths matched on another map?")
        raise InputError(msg)
    t0 = time_seconds(paths["t_enter"], source=source, column="t_enter")
    t1 = time_seconds(paths["t_exit"], source=source, column="t_exit")
    if (t1 < t0).any():
        msg = f"{source}: {int((t1 < t0).sum()):,} rows exit an edge before entering it (t_exit < t_enter)"
        raise InputError(msg)
    trip_codes, trip_ids = pd.factorize(paths["trip_id"].astype(str), sort=True)
    order = np.lexsort((t0, trip_codes))
    trip_codes, edge, row_of, t0, t1 = trip_codes[order], edge[order], row_of[order], t0[order], t1[order]
    if "vehicle_id" in paths:
        veh_rows = paths["vehicle_id"].astype(str).to_numpy()[order]
    else:  # no vehicles: each trip its own
        veh_rows = np.asarray(trip_ids, dtype=object)[trip_codes]
    # consecutive rows of one edge are one pass (the matcher splits a pass at a break)
    first = np.ones(len(edge), bool)
    first[1:] = (trip_codes[1:] != trip_codes[:-1]) | (edge[1:] != edge[:-1])
    last_row = np.append(np.flatnonzero(first)[1:] - 1, len(edge) - 1) if len(edge) else np.zeros(0, np.int64)
    t1 = t1[last_row]
    trip_codes, edge, row_of, t0, veh_rows = (v[first] for v in (trip_codes, edge, row_of, t0, veh_rows))
    trip_ptr = np.searchsorted(trip_codes, np.arange(len(trip_ids) + 1)).astype(np.int64)
    veh = veh_rows[trip_ptr[:-1]]
    vehicle_of_trip, vehicle_ids = pd.factorize(veh)
    a = _lead_start(trip_ptr, t0, t1, net.edge_len[row_of], config.lead_m)
    target = pd.Index(tgt["edge_id"].to_numpy(np.int64)).get_indexer(edge).astype(np.int64)
    # a trip starts and ends somewhere along its first and last edges: those passes film an
    # unknown part of them, and serve no target (they still cost seconds inside a clip)
    target[trip_ptr[:-1][np.diff(trip_ptr) > 0]] = -1
    target[trip_ptr[1:][np.diff(trip_ptr) > 0] - 1] = -1
    from mapdiff.network import free_flow_speed_mps

    length = net.edge_len[row_of]
    fast = length > BELIEVABLE_SPEED_FACTOR * free_flow_speed_mps(net.edges)[row_of] * np.maximum(t1 - t0, 1e-9)
    target[fast] = -1
    # quality: daylight at the edge's start, and how recent the pass is
    lon, lat = net.proj.to_lonlat(net.vx[net.vptr[row_of]], net.vy[net.vptr[row_of]])
    day = sun_elevation_deg(lon, lat, t0) > DAYLIGHT_ELEVATION_DEG
    age_days = ((t1.max() if len(t1) else 0.0) - t0) / 86400.0
    quality = np.where(day, 1.0, config.night_weight) * 0.5 ** (age_days / config.half_life_days)
    back, fwd = windows(trip_ptr, t0, t1, a)
    return _Passes(np.asarray(trip_ids), np.asarray(vehicle_ids), trip_ptr, vehicle_of_trip.astype(np.int64), edge,
                   t0, t1, a, back, fwd, target, quality)


# ---------------------------------------------------------------------------------------------
# the plan


def _task_id(trip_id: str, t_start: pd.Timestamp, t_end: pd.Timestamp) -> str:
    key = f"{trip_id}|{t_start.value}|{t_end.value}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


def _clips(ps: _Passes, chosen: np.ndarray, tgt: pd.DataFrame, max_clip_s: float) -> pd.DataFrame:
    """The chosen pieces as clips: union runs cut to ``max_clip_s``, with the target edges
    each clip films."""
    from mapdiff._kernels.plan import union_runs

    run_trip, run_s, run_e = union_runs(ps.trip_ptr, ps.a, ps.t1, chosen)
    parts = np.maximum(np.ceil((run_e - run_s) / max_clip_s - 1e-9), 1).astype(np.int64)
    trip = np.repeat(run_trip, parts)
    j = np.arange(parts.sum()) - np.repeat(np.cumsum(parts) - parts, parts)
    step = np.repeat((run_e - run_s) / parts, parts)
    start = np.repeat(run_s, parts) + j * step
    end = start + step
    # the chosen pieces' edges, to the clips they overlap, on one sorted axis: trip after trip,
    # time since the trip's start within a trip (small numbers: float sums stay exact)
    piece_trip = np.repeat(np.arange(len(ps.trip_ptr) - 1), np.diff(ps.trip_ptr))
    trip_start = ps.t0[ps.trip_ptr[:-1]] if len(ps.t0) else ps.t0
    span = float(np.max(ps.t1 - trip_start[piece_trip], initial=0.0)) + 1e3  # clips end inside their trip

    def key(tr, t):
        return tr * span + (t - trip_start[tr])

    p = np.flatnonzero(chosen)
    first = np.searchsorted(key(trip, end), key(piece_trip[p], ps.t0[p]), side="right")
    last = np.maximum(np.searchsorted(key(trip, start), key(piece_trip[p], ps.t1[p]), side="left") - 1, first)
    count = last - first + 1
    clip = np.repeat(first, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    piece = np.repeat(p, count)
    reasons = tgt["target"].to_numpy()[ps.target[piece]]
    by_clip = pd.DataFrame({"clip": clip, "edge_id": ps.edge_id[piece], "reason": reasons})
    edges = by_clip.groupby("clip")["edge_id"].agg(lambda e: sorted({int(v) for v in e}))
    why = by_clip.groupby("clip")["reason"].agg(lambda r: "+".join(sorted(set("+".join(r).split("+")))))
    t_start = timestamps(start)
    t_end = timestamps(end)
    frame = pd.DataFrame({
        "vehicle_id": ps.vehicle_ids[ps.vehicle_of_trip[trip]].astype(str),
        "trip_id": ps.trip_ids[trip].astype(str),
        "t_start": t_start, "t_end": t_end, "seconds": end - start,
        "edge_ids": edges.reindex(np.arange(len(trip))).to_numpy(),
        "target": why.reindex(np.arange(len(trip))).to_numpy(),
    })
    # a part cut from a run holds no chosen edge only when it is all lead-in (a clip cap
    # shorter than the lead-in)
    frame["edge_ids"] = [e if isinstance(e, list) else [] for e in frame["edge_ids"]]
    frame["target"] = frame["target"].fillna("lead-in")
    frame.insert(0, "task_id", [_task_id(*r) for r in zip(frame["trip_id"], t_start, t_end, strict=True)])
    frame["status"] = "pending"
    frame["reason"] = None
    return frame


def _unsatisfied(tgt: pd.DataFrame, trips: np.ndarray, served: np.ndarray, touched: np.ndarray) -> pd.DataFrame:
    """The targets short of their need, with the reason (``touched``: some trip started or
    ended on the edge, which does not film it through)."""
    short = np.flatnonzero(served < tgt["need"].to_numpy())
    need = tgt["need"].to_numpy()[short]
    reason = [("no trip drove it" if n == 0 and not part else f"only {n} distinct trip{'' if n == 1 else 's'} "
               "drove through it") + f"; {k} wanted"
              for n, part, k in zip(trips[short], touched[short], need, strict=True)]
    return pd.DataFrame({
        "task_id": None, "vehicle_id": None, "trip_id": None,
        "t_start": pd.Series(pd.NaT, index=np.arange(len(short)), dtype="datetime64[ns, UTC]"),
        "t_end": pd.Series(pd.NaT, index=np.arange(len(short)), dtype="datetime64[ns, UTC]"), "seconds": 0.0,
        "edge_ids": [[int(e)] for e in tgt["edge_id"].to_numpy()[short]],
        "target": tgt["target"].to_numpy()[short], "status": "unsatisfied", "reason": reason,
    }, index=np.arange(len(short)))


def _union_seconds(ps: _Passes, chosen: np.ndarray) -> float:
    from mapdiff._kernels.plan import union_runs

    _, s, e = union_runs(ps.trip_ptr, ps.a, ps.t1, chosen)
    return float((e - s).sum())


#: the HiGHS linear program is solved up to this many target passes (it grows about with their
#: square: 70,000 in 2 s, 270,000 in 33 s here); the Lagrangian bound has no such limit
LP_MAX_PIECES = 150_000
#: subgradient steps of the Lagrangian bound (measured: 300 and 1,000 agree to 0.01 %)
LAGRANGIAN_STEPS = 300


def bounds(ps: _Passes, need: np.ndarray, *, upper: float) -> dict:
    """Lower bounds on the clip-seconds of any plan that meets ``need``: the Lagrangian dual
    (always; ``upper`` is a known plan's cost, which steers its steps) and the HiGHS linear
    relaxation (up to ``LP_MAX_PIECES`` target passes). Both bound the same cost model; the
    Lagrangian one keeps whole-number choices inside each trip but stops short of its optimum
    (subgradient steps): either can be the higher, and the plan reports the higher."""
    from mapdiff._kernels.plan import lagrangian_bound

    out = {"lagrangian": float(lagrangian_bound(ps.trip_ptr, ps.t0, ps.t1, ps.a, ps.back, ps.target,
                                                need.astype(float), max(upper, 1e-9), LAGRANGIAN_STEPS))}
    if int((ps.target >= 0).sum()) <= LP_MAX_PIECES:
        out["highs_lp"] = lower_bound(ps, need)
    return out


def lower_bound(ps: _Passes, need: np.ndarray) -> float:
    """A lower bound on the clip-seconds of any plan that meets ``need`` (capped at what the
    fleet drove): the linear relaxation, solved by HiGHS, of

        min  sum_p d_p x_p + sum_p L_p s_p
        s.t. sum_{p on edge t} x_p >= need_t            (each target, its pieces)
             s_p >= x_p - sum_{q in W(p)} x_q           (a clip starting at p pays p's lead-in)
             0 <= x, s <= 1

    with ``d_p`` a piece's time on its edge, ``L_p`` its lead-in and ``W(p)`` the earlier
    target pieces of its trip that reach into that lead-in. For a whole-number choice the
    objective is at most the union of the chosen intervals (lead-ins charged here overlap no
    chosen piece nor each other), so the relaxation's optimum bounds every plan from below."""
    import scipy.sparse as sp
    from scipy.optimize import linprog

    p = np.flatnonzero(ps.target >= 0)
    if len(p) == 0 or need.sum() == 0:
        return 0.0
    back = ps.back
    var = np.full(len(ps.t0), -1, np.int64)
    var[p] = np.arange(len(p))
    n = len(p)
    rows, cols, vals = [], [], []
    # coverage rows: -sum x <= -need
    t = ps.target[p]
    rows.append(t)
    cols.append(np.arange(n))
    vals.append(-np.ones(n))
    b_cover = -need.astype(float)
    # lead-in rows: x_p - sum_W x_q - s_p <= 0
    base = len(need)
    rows += [base + np.arange(n), base + np.arange(n)]
    cols += [np.arange(n), n + np.arange(n)]
    vals += [np.ones(n), -np.ones(n)]
    span = p - back[p]
    q_rel = np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
    q = np.repeat(back[p], span) + q_rel
    owner = np.repeat(np.arange(n), span)
    keep = var[q] >= 0
    rows.append(base + owner[keep])
    cols.append(var[q[keep]])
    vals.append(-np.ones(int(keep.sum())))
    a_ub = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(base + n, 2 * n))
    b_ub = np.concatenate([b_cover, np.zeros(n)])
    c = np.concatenate([ps.t1[p] - ps.t0[p], ps.t0[p] - ps.a[p]])
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=(0.0, 1.0), method="highs")
    if res.status != 0:
        msg = f"plan: the lower bound's linear program did not solve ({res.message})"
        raise InputError(msg)
    return float(res.fun)


def plan(paths: pd.DataFrame, net, tgt: pd.DataFrame, *, config: PlanConfig | None = None, bound: bool = True,
         source: str = "paths") -> Plan:
    """Choose the clips that film every target edge from ``need`` distinct trips where the
    fleet drove it that often, at the least clip-seconds (see the module docstring)."""
    from mapdiff._kernels.plan import multicover

    config = (config or PlanConfig()).validate()
    ps = passes(paths, net, tgt, config=config, source=source)
    trips = _distinct_trips(ps, len(tgt))
    need = tgt["need"].to_numpy(np.int64)
    chosen, served = multicover(ps.trip_ptr, ps.vehicle_of_trip, ps.t1, ps.a, ps.back, ps.fwd, ps.target, ps.quality,
                                need, float(config.repeat_vehicle_weight))
    clips = _clips(ps, chosen, tgt, config.max_clip_s)
    left = _unsatisfied(tgt, trips, served, tgt["edge_id"].isin(ps.edge_id).to_numpy())
    requests = pd.concat([clips, left], ignore_index=True) if len(left) else clips
    requests = requests[REQUEST_COLUMNS]
    cost = float(clips["seconds"].sum())  # the clips are the chosen intervals' union, cut in parts
    found = bounds(ps, np.minimum(need, trips), upper=cost) if bound else {}
    return Plan(requests=requests, cost_s=cost, all_passes_s=_union_seconds(ps, ps.target >= 0),
                lower_bound_s=max(found.values()) if found else None, bounds=found, targets=len(tgt),
                unsatisfied=len(left))


def _distinct_trips(ps: _Passes, n_targets: int) -> np.ndarray:
    """Per target, the distinct trips that drove it."""
    p = np.flatnonzero(ps.target >= 0)
    trip = np.repeat(np.arange(len(ps.trip_ptr) - 1), np.diff(ps.trip_ptr))[p]
    pairs = pd.DataFrame({"t": ps.target[p], "trip": trip}).drop_duplicates()
    return np.bincount(pairs["t"].to_numpy(), minlength=n_targets).astype(np.int64)
