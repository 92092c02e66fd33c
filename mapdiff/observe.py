"""Pixel detections to observations (the ``observe`` stage).

A detection's box, the vehicle's matched pose at that instant and the camera model give the
observer position, the absolute bearing to the object (from the box's centre column) and a
range (from the box height and the class's typical size).

The pose (see :func:`mapdiff._kernels.observe.interpolate_poses`): with the map, the distance
along the matched route is smoothed per trip (a constant-velocity Kalman/RTS smoother) and put
back on the road; the heading is the road's, averaged a few metres either side, where the
motion agrees; a car standing still (the raw fixes' speed) heads along the last road it moved
along; on a two-way road the camera sits ``lane_offset_m`` right of the centre line. Without
the map, positions are linear between matched fixes and the heading is the motion's.

Sigmas are those of the sighting; the observer's position error is shared by a whole pass and
left to ``locate``, which models it per pass:

- bearing: the box centre's pixel noise (``pixel_sigma_px / sqrt 2`` over the focal length) and
  the heading's (the road's alignment, or the pose error over the baseline of a heading from
  the motion, and the road's turn around the position);
- range: the box height's relative error (two noisy edges) and the spread of real object sizes
  (:data:`SIZE_SIGMA_REL`), times the range, and the pose error (the RMS of the trip's fixes'
  distance to the matched road). The range is corrected for the bias of dividing by a noisy
  height, and left out (null) where the height's relative error exceeds :data:`MAX_RANGE_REL`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mapdiff.camera import Camera, class_shape
from mapdiff.errors import InputError, check_fields

#: relative spread of real object sizes around the class's typical size
SIZE_SIGMA_REL = 0.08
#: the speed at a fix is fitted to the raw fixes this many seconds either side
STILL_WINDOW_S = 5.0
#: a box whose height is this uncertain (relative, from pixel noise) gives no range: the noise
#: could halve or double it, and the correction for dividing by a noisy height (``1 + rel^2``)
#: no longer holds (its next term, 3 rel^4, is a fifth). The cut is on the measured height, so
#: it keeps the small boxes that the noise made taller, and their ranges come out short: at
#: 0.25 (a box of 11 px at 2 px of noise per edge) the ranges kept at 40-50 m were 7 % short on
#: average, and every object seen from far was placed towards the camera (located objects,
#: Helsinki: recall 0.888 -> 0.891, precision 0.830 -> 0.837 at 0.5; Liechtenstein, objects on
#: the OSM node: precision 0.840 -> 0.907). Short of the cut, a range's honest sigma weighs it
MAX_RANGE_REL = 0.5
#: how far a car's heading strays from its road's direction (lane changes, wide lanes)
ROAD_HEADING_SIGMA_DEG = 1.0
OBSERVATION_COLUMNS = ["trip_id", "t", "class", "value", "score", "lon", "lat", "bearing_deg", "bearing_sigma_deg",
                       "range_m", "range_sigma_m"]
DETECTION_COLUMNS = ["trip_id", "t", "class", "score", "x_min", "y_min", "x_max", "y_max"]
REASONS = {1: "trip not in matched", 2: "time outside the trip's matched fixes",
           3: "matched fixes around it too far apart", 4: "vehicle not moving enough for a heading",
           5: "fixes around it far off the matched road"}
#: fixes within this many seconds either side of a fix tell whether the car was on its matched
#: road there (tens of fixes at the usual 1 Hz; a multipath stretch lasts tens of seconds)
OFF_ROAD_WINDOW_S = 10.0
#: the car is off its matched road where the median distance of the fixes around it to that road
#: is this many times the trip's median distance (the trip's: its device's noise, and a stage
#: that depends on no other trip runs the same in any shard). On the road that distance is the
#: fixes' noise across it, half-normal: a window's median beyond 2.5 times the overall one needs half its ten
#: fixes past 1.7 sigma (9 % each), which independent noise gives about once in 1,000 windows
#: (a drifting bias, more often); a car on an unmapped road beside the matched one, or a
#: multipath stretch, gives it. On the simulations of three cities x two placements the located
#: objects' precision rose 0.02-0.04 in five scenes and fell 0.015 in one (Harrisburg, physical).
OFF_ROAD_RATIO = 2.5


@dataclass(frozen=True)
class ObserveConfig:
    """Observe parameters.

    Attributes
    ----------
    max_gap_s : a detection between matched fixes further apart than this has no pose, unless
        the gap is bridged (``max_bridge_s``).
    max_bridge_s : with the map, a gap in the matched fixes up to this long (a fleet that logs
        every 10 or 15 s; a short tunnel) is driven along the shortest legal route between the
        fixes either side, where the route smoother places the car from the real fixes around,
        and the detections in it take their poses from there.
    edge_tol_s : how far before the first or after the last matched fix a pose may be taken.
    min_baseline_m : the heading comes from matched fixes at least this far apart.
    max_heading_window_s : ... looked for within this many seconds of the detection.
    min_pose_sigma_m : floor of the pose position error.
    road_agree_deg : the matched road's heading is used where it agrees this well with the
        direction of the motion (a car at a stop line gets matched onto roads it is not on).
    still_mps : a car slower than this along the matched route stands, heading the way it came.
    accel_m2s3 : how freely the car speeds up and slows down (spectral density of its
        acceleration) in the smoother of the distance along the matched route.
    heading_span_m : the road's direction is averaged this far either side of the position
        along the route; how much it turns there widens the heading's sigma.
    lane_offset_m : how far right of a two-way road's centre line the camera drives (half a
        lane in right-hand traffic; negative where traffic keeps left; 0 to switch it off).
    """

    max_gap_s: float = 5.0
    # fleets log every 1 to 60 s. Measured on simulated fleets (benchmarks/README.md, "Sparse
    # fleets in observe"; Liechtenstein kerb, objects seen in >= 5 trips): fixes every 10 s gave
    # 0.68 / 0.72 recall / precision, every 15 s 0.61 / 0.59, every 30 s 0.40 / 0.23 (every 60 s,
    # OSM node: 0.46 / 0.11): past 15 s the poses between fixes err by so much that the objects
    # are mostly false, and no pose is better
    max_bridge_s: float = 15.0
    edge_tol_s: float = 0.5
    min_baseline_m: float = 20.0
    max_heading_window_s: float = 30.0
    min_pose_sigma_m: float = 1.0
    road_agree_deg: float = 45.0
    still_mps: float = 2.0
    lane_offset_m: float = 1.5
    # a car stopping from town speed v at d m/s^2 changes its speed by v within v/d seconds; the
    # smoother lets its speed wander by sqrt(accel * seconds), so accel = v * d follows such a
    # stop: about 10 m/s x 2.5 m/s^2 = 25. With 5, every pass braking for a signal was placed
    # 2.4 m behind the car (median), and a signal's passes from one approach sat apart from the
    # others (precision 0.85 against 0.92 with 20, Harrisburg, objects on the OSM node). The
    # fixes' likelihood is no guide: cruising dominates it, and it chose the least (1.0).
    accel_m2s3: float = 20.0
    heading_span_m: float = 5.0

    def validate(self) -> ObserveConfig:
        check_fields(self, ("max_gap_s", "max_bridge_s", "min_baseline_m", "max_heading_window_s", "min_pose_sigma_m",
                            "road_agree_deg", "still_mps", "accel_m2s3", "heading_span_m"), lambda v: v > 0, "> 0")
        check_fields(self, ("edge_tol_s",), lambda v: v >= 0, ">= 0")
        check_fields(self, ("lane_offset_m",), np.isfinite, "a finite number of metres")
        return self


def _check_detections(df, source):
    from mapdiff.schema import numbers, require, time_seconds

    require(df, DETECTION_COLUMNS, source)
    box = np.column_stack([numbers(df, c, source, missing=True) for c in ("x_min", "y_min", "x_max", "y_max")])
    numbers(df, "score", source, missing=True)
    bad = ~np.isfinite(box).all(axis=1) | (box[:, 2] <= box[:, 0]) | (box[:, 3] <= box[:, 1])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        msg = (f"{source}: {int(bad.sum())} boxes are NaN or empty (x_max <= x_min or y_max <= y_min), "
               f"first at row {row}: {box[row].tolist()}")
        raise InputError(msg)
    return time_seconds(df["t"], source=source), box


def _matched_poses(matched, source, network):
    """The projection (the network's, else one around the matched positions) and the matched
    fixes with a position, per trip in time order: (trip codes, ptr, t, x, y, kernel edge (-1
    without a network), offset along it, pose sigma, raw fix x and y (NaN where missing or an
    outlier), whether the fixes around sit off the road, whether the trip's next fix is the next
    of these (no fix the matcher left without a position comes between, nor a break of its
    chain): a gap to bridge, not a stretch the car drove off the map)."""
    from mapdiff.projection import LocalProjection
    from mapdiff.schema import flags, numbers, require, time_seconds

    require(matched, ["trip_id", "t", "matched_lon", "matched_lat", "distance_m"], source)
    if matched["trip_id"].isna().any():
        msg = f"{source}: column 'trip_id' has {int(matched['trip_id'].isna().sum())} missing values"
        raise InputError(msg)
    t = time_seconds(matched["t"], source=source)
    mlon, mlat = (numbers(matched, c, source, missing=True) for c in ("matched_lon", "matched_lat"))
    ok = np.isfinite(mlon) & np.isfinite(mlat)
    if not ok.any():
        msg = f"{source}: no matched fixes with a position (matched_lon, matched_lat)"
        raise InputError(msg)
    proj = network.proj if network is not None else LocalProjection.around(float(np.median(mlon[ok])),
                                                                            float(np.median(mlat[ok])))

    def optional(name, default):
        return numbers(matched, name, source, missing=True)[ok] if name in matched else default

    # each fix's place among all its trip's fixes, those without a position too
    rank = pd.Series(t).groupby(matched["trip_id"].astype(str).to_numpy()).rank(method="dense").to_numpy()
    broke = (matched["state"].astype(str) == "break").to_numpy() if "state" in matched else np.zeros(len(t), bool)

    m = pd.DataFrame(
        {
            "trip": matched["trip_id"].astype(str).to_numpy()[ok],
            "t": t[ok],
            "lon": mlon[ok],
            "lat": mlat[ok],
            "d": numbers(matched, "distance_m", source, missing=True)[ok],
            "edge": _kernel_edges(matched, network, source)[ok],
            "off": optional("offset_m", np.nan),
            "against": flags(matched, "against", source, missing=True)[ok],
            "rlon": optional("lon", np.nan),
            "rlat": optional("lat", np.nan),
            "rank": rank[ok],
            "broke": broke[ok],
        }
    )
    m = m.sort_values(["trip", "t"], kind="stable").drop_duplicates(["trip", "t"]).reset_index(drop=True)
    trips, codes = np.unique(m["trip"].to_numpy(), return_inverse=True)
    ptr = np.zeros(len(trips) + 1, dtype=np.int64)
    np.cumsum(np.bincount(codes, minlength=len(trips)), out=ptr[1:])
    x, y = proj.to_metres(m["lon"].to_numpy(), m["lat"].to_numpy())
    rms = np.sqrt(pd.Series(m["d"].to_numpy() ** 2).groupby(codes).mean().to_numpy()) if len(m) else np.zeros(0)
    edge = m["edge"].to_numpy()
    off = m["off"].to_numpy()
    if network is not None:
        # driven against a one-way edge: the kernel's wrong-way twin, measured from its own start
        twin = network.twin_of[np.maximum(edge, 0)]
        back = m["against"].to_numpy() & (edge >= 0) & (twin >= 0)
        off = np.where(back, network.edge_len[np.maximum(edge, 0)] - off, off)
        edge = np.where(back, twin, edge)
    edge = np.where(np.isfinite(off), edge, -1)
    # the raw fixes tell a standing car best (the matcher can hop between a junction's edges);
    # outliers (far off the matched road) are left out
    rx, ry = proj.to_metres(m["rlon"].to_numpy(), m["rlat"].to_numpy())
    far = m["d"].to_numpy() > np.maximum(3.0 * rms[codes], 15.0) if len(m) else np.zeros(0, bool)
    rx = np.where(far, np.nan, rx)
    r = m["rank"].to_numpy()
    joined = np.r_[(codes[1:] == codes[:-1]) & (r[1:] == r[:-1] + 1) & ~m["broke"].to_numpy()[1:], False]
    return proj, (trips, ptr, m["t"].to_numpy(), x, y, edge.astype(np.int64), off, rms, rx, ry, _off_road(codes, m),
                  joined)


#: the bridged fixes of a gap come one a second, as a dense fleet's fixes do
BRIDGE_STEP_S = 1.0
#: a bridge whose route would have to be driven faster than this (about 200 km/h) is not the
#: route the car took (the shortest route is the fastest it can have driven)
MAX_BRIDGE_SPEED_MPS = 55.0


def _bridged(fixes, network, config, q_trip, q_t):
    """``fixes`` (as :func:`_matched_poses` gives them) with fixes added in the gaps that hold a
    query time (trip ``q_trip``, time ``q_t``): one a second along the shortest legal route
    between the matched fixes either side (see ``ObserveConfig.max_bridge_s``), placed at one
    speed. They only carry the route: the second array returned says which fixes are measured
    (the route smoother places the car at the others from those)."""
    from mapdiff._kernels.graph import route_legs
    from mapdiff._kernels.observe import bridge_fixes, gaps_seen

    trips, ptr, t, x, y, edge, off, rms, rx, ry, off_road, joined = fixes
    gaps = gaps_seen(ptr, t, edge, off_road, joined, q_trip, q_t, config.max_gap_s, config.max_bridge_s)
    if len(gaps) == 0:
        return fixes, np.ones(len(t), dtype=bool)
    e0, e1 = edge[gaps], edge[gaps + 1]
    same = (e0 == e1) & (off[gaps + 1] >= off[gaps])
    # a route the wrong way along a one-way edge (its wrong-way twin) is none
    weight = np.where(network.edge_against, np.inf, network.edge_len)
    src, dst = network.edge_v[e0][~same], network.edge_u[e1][~same]
    legs, legs_ptr, ok = route_legs(src, dst, network.n_nodes, network.out_ptr, network.out_edge, network.edge_u,
                                    network.edge_v, weight)
    counts = np.zeros(len(gaps), dtype=np.int64)
    counts[~same] = np.diff(legs_ptr)
    routed = np.ones(len(gaps), dtype=bool)
    routed[~same] = ok
    leg_gap = np.repeat(np.arange(len(gaps)), counts)
    length = np.where(same, off[gaps + 1] - off[gaps],
                      network.edge_len[e0] - off[gaps] + off[gaps + 1]
                      + np.bincount(leg_gap, weights=network.edge_len[legs], minlength=len(gaps)))
    good = routed & (length <= MAX_BRIDGE_SPEED_MPS * (t[gaps + 1] - t[gaps]))
    keep_leg = good[leg_gap]
    g, bt, bx, by, be, bo = bridge_fixes(gaps[good], same[good], length[good], t, edge, off, legs[keep_leg],
                                         np.r_[0, np.cumsum(counts[good])].astype(np.int64), BRIDGE_STEP_S,
                                         network.edge_len, (network.vx, network.vy, network.vcum, network.vptr))
    trip_of = np.repeat(np.arange(len(trips)), np.diff(ptr))
    new_trip = trip_of[gaps[good][g]]
    nan = np.full(len(g), np.nan)
    cols = [np.r_[a, b] for a, b in ((t, bt), (x, bx), (y, by), (edge, be), (off, bo), (rx, nan), (ry, nan),
                                     (off_road, np.zeros(len(g), bool)), (joined, np.ones(len(g), bool)),
                                     (np.ones(len(t), bool), np.zeros(len(g), bool)))]
    every_trip = np.r_[trip_of, new_trip]
    order = np.lexsort((cols[0], every_trip))
    ptr = np.r_[0, np.cumsum(np.bincount(every_trip, minlength=len(trips)))].astype(np.int64)
    t, x, y, edge, off, rx, ry, off_road, joined, measured = (c[order] for c in cols)
    return (trips, ptr, t, x, y, edge, off, rms, rx, ry, off_road, joined), measured


def _off_road(codes, m):
    """Per matched fix (in ``m``'s order): whether the fixes before it or those after it (within
    ``OFF_ROAD_WINDOW_S``) sit off the matched road (``OFF_ROAD_RATIO``): the pose the matched
    road gives there is not where the car was (an unmapped road beside a mapped one, a car park,
    multipath). Either side, so that a stretch is caught up to its ends."""
    if len(m) == 0:
        return np.zeros(0, dtype=bool)
    window = pd.Timedelta(seconds=OFF_ROAD_WINDOW_S)
    t = m["t"].to_numpy()
    d = m["d"].to_numpy()
    limit = OFF_ROAD_RATIO * pd.Series(d).groupby(codes).transform("median").to_numpy()
    # a trailing window over time, and one over time run backwards (the leading window)
    before = pd.Series(d, index=pd.to_datetime(t, unit="s")).groupby(codes).rolling(window).median().to_numpy()
    # (groups in order of appearance: the reversed rows' order, turned back)
    after = pd.Series(d[::-1], index=pd.to_datetime(-t[::-1], unit="s")).groupby(codes[::-1], sort=False).rolling(
        window).median().to_numpy()[::-1]
    return (before > limit) | (after > limit)


def _kernel_edges(matched, network, source):
    """Row of each fix's matched edge in the network (-1: none or no network)."""
    if network is None or "edge_id" not in matched:
        return np.full(len(matched), -1, dtype=np.int64)
    from mapdiff.schema import numbers

    ids = pd.Series(numbers(matched, "edge_id", source, integer=True, missing=True))
    rows = pd.Index(network.edges["edge_id"].to_numpy()).get_indexer(ids.fillna(-1).astype(np.int64).to_numpy())
    unknown = (rows < 0) & ids.notna().to_numpy()
    if unknown.any():
        shown = ", ".join(str(v) for v in pd.unique(ids[unknown])[:5])
        msg = f"{source}: {int(unknown.sum()):,} fixes are matched to edge ids the map does not have (e.g. {shown})"
        raise InputError(msg)
    return rows.astype(np.int64)


def _lane_offsets(network, lane_offset_m):
    """Per kernel edge: how far right of its line a car drives (``lane_offset_m`` on a two-way
    road, one whose reverse edge the map also has; 0 on a one-way road)."""
    e = network.edges
    fwd = pd.MultiIndex.from_arrays([e["u"].to_numpy(), e["v"].to_numpy()])
    back = pd.MultiIndex.from_arrays([e["v"].to_numpy(), e["u"].to_numpy()])
    lane = np.zeros(len(network.edge_len))
    lane[:len(e)] = np.where(back.isin(fwd), lane_offset_m, 0.0)
    return lane


def _frames(trip: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each detection's frame (the distinct trip and time) and the first detection of every
    frame: (frame of each, index of each frame's first)."""
    order = np.lexsort((t, trip))
    st, sx = trip[order], t[order]
    new = np.r_[True, (st[1:] != st[:-1]) | (sx[1:] != sx[:-1])] if len(order) else np.zeros(0, dtype=bool)
    frame_of = np.empty(len(order), dtype=np.int64)
    frame_of[order] = np.cumsum(new) - 1
    return frame_of, order[new]


def observe(detections, matched, camera: Camera, config: ObserveConfig | None = None, *, network=None,
            source="detections", matched_source="matched"):
    """Observations (``OBSERVATION_COLUMNS`` plus ``detection_id`` when the input has one) for
    the detections that have a matched pose, and a table of the others with the reason.

    With the ``network`` the fixes were matched on, the heading is the matched road's direction;
    without it, the direction of the motion between matched fixes.

    Returns (observations, rejected): the observations sorted by trip and time; ``rejected``
    holds the detections without a pose and a ``reason`` column.
    """
    from mapdiff._kernels.observe import (
        POSE_OK,
        interpolate_poses,
        raw_velocity,
        route_distance,
        smooth_route,
    )
    config = (config or ObserveConfig()).validate()
    t_det, box = _check_detections(detections, source)
    proj, fixes = _matched_poses(matched, matched_source, network)
    geom = (network.vx, network.vy, network.vcum, network.vptr) if network is not None else (
        np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, dtype=np.int64))
    codes, names = _label_codes(detections["trip_id"])
    q_trip = pd.Index(fixes[0]).get_indexer(names)[codes].astype(np.int64)
    # one pose per frame: a camera frame's detections share the instant (8 a frame in the simulations)
    frame_of, first = _frames(q_trip, t_det)
    # (a fix that only carries the route through a gap is no measurement of where the car was)
    measured = np.ones(len(fixes[2]), dtype=bool)
    if network is not None:
        fixes, measured = _bridged(fixes, network, config, q_trip[first], t_det[first])
    trips, ptr, mt, mx, my, medge, moff, rms, rx, ry, off_road, _ = fixes
    ms = route_distance(ptr, mx, my, medge, moff, geom[2], geom[3])
    ss, vs = smooth_route(ptr, mt, ms, np.maximum(rms, config.min_pose_sigma_m), config.accel_m2s3, measured)
    vel = raw_velocity(ptr, mt, rx, ry, STILL_WINDOW_S)
    vs = np.where(np.isnan(vel[:, 0]), vs, np.hypot(vel[:, 0], vel[:, 1]))
    lane = _lane_offsets(network, config.lane_offset_m) if network is not None else np.zeros(1)
    poses = interpolate_poses(ptr, mt, mx, my, medge, moff, q_trip[first], t_det[first], config.max_gap_s,
                              config.edge_tol_s, config.min_baseline_m, config.max_heading_window_s,
                              config.road_agree_deg, config.still_mps, ms, ss, vs, vel, lane, config.heading_span_m,
                              geom, off_road)
    x, y, heading, baseline, turn, status = (a[frame_of] for a in poses)
    ok = status == POSE_OK
    pose_sigma = np.maximum(np.where(q_trip >= 0, rms[np.maximum(q_trip, 0)] if len(rms) else 0.0, 0.0),
                            config.min_pose_sigma_m)[ok]
    cls_codes, cls_names = _label_codes(detections["class"])
    b = box[ok]
    focal = camera.focal_px
    u = 0.5 * (b[:, 0] + b[:, 2]) - 0.5 * camera.width_px
    h_px = b[:, 3] - b[:, 1]
    off = np.arctan2(u, focal)  # angle of the ray off the optical axis
    bearing = (heading[ok] + camera.mount_yaw_deg + np.degrees(off)) % 360.0
    obj_h = np.array([class_shape(c)[1] for c in cls_names], dtype=float)[cls_codes[ok]]
    # pixel noise: the centre column averages two noisy edges; the height is their difference
    sig_px = camera.pixel_sigma_px
    rel_px = np.sqrt(2.0) * sig_px / h_px
    # f H / h overestimates the distance by (1 + rel_px^2) on average (1/h is convex)
    forward = focal * obj_h / h_px / (1.0 + rel_px**2)
    rng = forward / np.cos(off)
    rel = np.sqrt(rel_px**2 + SIZE_SIGMA_REL**2)
    range_sigma = np.sqrt((rel * rng) ** 2 + pose_sigma**2)
    # a box a few pixels high gives no range
    no_range = rel_px > MAX_RANGE_REL
    # a heading from the road is as good as the car's alignment with it; one from the motion
    # carries the position error of the two fixes it was taken from; at a corner, the turn
    heading_sigma = np.sqrt(
        np.radians(ROAD_HEADING_SIGMA_DEG) ** 2
        + np.arctan2(np.sqrt(2.0) * pose_sigma, baseline[ok]) ** 2
        + (np.radians(turn[ok]) / 4.0) ** 2
    )
    pix_sigma = (sig_px / np.sqrt(2.0)) * np.cos(off) ** 2 / focal
    bearing_sigma = np.degrees(np.sqrt(pix_sigma**2 + heading_sigma**2))
    lon, lat = proj.to_lonlat(x[ok], y[ok])
    keep_cols = ["detection_id"] if "detection_id" in detections else []
    det_ok = detections.loc[ok]
    obs = pd.DataFrame({
        **{c: det_ok[c].to_numpy() for c in keep_cols},
        # the columns as they are (to_numpy makes a Python object per row of a categorical or zoned time)
        "trip_id": det_ok["trip_id"].array, "t": det_ok["t"].array, "class": det_ok["class"].array,
        "value": det_ok["value"].array if "value" in det_ok else None,
        "score": det_ok["score"].to_numpy(float), "lon": lon, "lat": lat,
        "bearing_deg": bearing, "bearing_sigma_deg": bearing_sigma,
        "range_m": np.where(no_range, np.nan, rng), "range_sigma_m": np.where(no_range, np.nan, range_sigma),
    })
    rejected = detections.loc[~ok].copy()
    rejected["reason"] = pd.Categorical([REASONS[s] for s in status[~ok]], categories=list(REASONS.values()))
    # trips in order, each in time: the order of any shard's rows, so merged shards are this
    t = obs["t"].array
    order = np.lexsort((t.asi8 if hasattr(t, "asi8") else np.asarray(t, dtype=float), _text_rank(obs["trip_id"])))
    return obs.iloc[order].reset_index(drop=True), rejected


def _label_codes(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each row's code and the labels as text, a missing label's text last ("nan", as
    ``astype(str)`` reads it), code -1 being the last: text for the few labels, not for every
    row (that took a sixth of observe's time)."""
    codes, uniques = pd.factorize(col)
    names = np.append(np.asarray(uniques, dtype=object).astype(str).astype(object), "nan")
    return codes.astype(np.int64), names


def _text_rank(col: pd.Series) -> np.ndarray:
    """Each value's rank in text order (a categorical's by its categories' text, whatever
    their order in the file), so that trips sort as text in any input."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        rank = np.argsort(np.argsort(np.asarray(col.cat.categories.astype(str), dtype=object), kind="stable"))
        return rank[col.cat.codes.to_numpy()]
    codes, names = _label_codes(col)
    return np.unique(names, return_inverse=True)[1][codes]
