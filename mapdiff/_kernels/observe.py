"""Vehicle poses at detection times, from matched fixes."""

import numpy as np

from mapdiff._kernels import jit
from mapdiff._kernels.geometry import point_on_edge

POSE_OK = 0
POSE_NO_TRIP = 1  # the trip has no matched fix
POSE_OUTSIDE = 2  # the time lies before the first or after the last matched fix
POSE_GAP = 3  # the matched fixes around the time are too far apart in time
POSE_STILL = 4  # the vehicle never moved enough around the time to give a heading
SMOOTH_FIXES = 3  # fixes either side fitted for the offset along an edge
STILL_WINDOW_S = 3.0  # the speed at a time is fitted to the fixes this close to it


@jit
def route_distance(m_ptr, m_x, m_y, m_edge, m_off, vcum, vptr):
    """Distance driven since each trip's first fix, along the matched edges (the rest of an
    edge plus the start of the next where the edge changes; straight between fixes without
    one). A car standing still, matched back and forth, barely moves in it."""
    s = np.zeros(m_x.shape[0])
    for k in range(m_ptr.shape[0] - 1):
        for i in range(m_ptr[k] + 1, m_ptr[k + 1]):
            e0, e1 = m_edge[i - 1], m_edge[i]
            if e0 >= 0 and e1 == e0:
                step = m_off[i] - m_off[i - 1]
            elif e0 >= 0 and e1 >= 0:
                step = (vcum[vptr[e0 + 1] - 1] - m_off[i - 1]) + m_off[i]
            else:
                step = np.hypot(m_x[i] - m_x[i - 1], m_y[i] - m_y[i - 1])
            s[i] = s[i - 1] + step
    return s


@jit
def _speed(a, b, i, t, m_t, m_s):
    """Slope of a line fitted to the route distance of the fixes within STILL_WINDOW_S of t."""
    lo = i
    while lo > a and t - m_t[lo - 1] <= STILL_WINDOW_S:
        lo -= 1
    hi = i
    while hi < b - 1 and m_t[hi + 1] - t <= STILL_WINDOW_S:
        hi += 1
    if hi - lo < 2:
        return np.inf
    mt = 0.0
    ms = 0.0
    for k in range(lo, hi + 1):
        mt += m_t[k]
        ms += m_s[k]
    mt /= hi - lo + 1
    ms /= hi - lo + 1
    stt = 0.0
    sts = 0.0
    for k in range(lo, hi + 1):
        stt += (m_t[k] - mt) ** 2
        sts += (m_t[k] - mt) * (m_s[k] - ms)
    return sts / stt if stt > 0 else np.inf


@jit
def interpolate_poses(m_ptr, m_t, m_x, m_y, m_edge, m_off, q_trip, q_t, max_gap_s, edge_tol_s, min_baseline_m,
                      max_window_s, agree_deg, still_mps, m_s, lane_m, geom):
    """Position and heading at each query time ``q_t`` of trip ``q_trip`` (an index into
    ``m_ptr``, -1 when unknown), linear between the matched fixes around it.

    With kernel edges (``m_edge >= 0``, offset ``m_off``, ``geom`` = (vx, vy, vcum, vptr) of the
    network), a time between two fixes on one edge gets its offset from a line fitted to the
    nearby fixes on that edge and the road's heading there; between two edges the heading blends
    the two roads' (``turn`` reports the angle between them). The road's heading is kept where
    it agrees within ``agree_deg`` with the direction of the motion (between the nearest fixes
    around the time that are at least ``min_baseline_m`` apart, within ``max_window_s``, so a
    stopped car keeps the heading it drove in with); elsewhere the motion's is used. A car
    slower than ``still_mps`` along its route distance ``m_s`` (see :func:`route_distance`)
    stands: it takes the direction it came in from. On edge e the car drives ``lane_m[e]``
    metres right of the line (its side of a two-way road). Returns x, y, heading (degrees clockwise
    from north), baseline (metres; inf for a heading from the road), the turn and a status code.
    """
    n = q_t.shape[0]
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    heading = np.full(n, np.nan)
    baseline = np.full(n, np.nan)
    status = np.zeros(n, dtype=np.int64)
    turn = np.zeros(n)
    for q in range(n):
        k = q_trip[q]
        if k < 0 or m_ptr[k + 1] == m_ptr[k]:
            status[q] = POSE_NO_TRIP
            continue
        a, b = m_ptr[k], m_ptr[k + 1]
        t = q_t[q]
        if t < m_t[a] - edge_tol_s or t > m_t[b - 1] + edge_tol_s:
            status[q] = POSE_OUTSIDE
            continue
        i = a + np.searchsorted(m_t[a:b], t, side="right") - 1
        i = min(max(i, a), b - 2) if b - a >= 2 else a
        j = min(i + 1, b - 1)
        if m_t[j] - m_t[i] > max_gap_s:
            status[q] = POSE_GAP
            continue
        span = m_t[j] - m_t[i]
        f = 0.0 if span <= 0 else min(max((t - m_t[i]) / span, 0.0), 1.0)
        x[q] = m_x[i] + f * (m_x[j] - m_x[i])
        y[q] = m_y[i] + f * (m_y[j] - m_y[i])
        # the direction of the motion: between the nearest fixes around t at least
        # min_baseline_m apart (a stopped car points where it came from)
        lo, hi = i, j
        still = abs(_speed(a, b, i, t, m_t, m_s)) < still_mps
        if still:
            # standing: the way it came in (the matcher may already have it on the next road)
            while lo > a and t - m_t[lo - 1] <= max_window_s and np.hypot(m_x[i] - m_x[lo], m_y[i] - m_y[lo]) < min_baseline_m:
                lo -= 1
            hi = i
            if np.hypot(m_x[i] - m_x[lo], m_y[i] - m_y[lo]) < min_baseline_m:
                # no way in to look back on (the trip starts here): the way it leaves
                lo, hi = i, j
                while hi < b - 1 and m_t[hi + 1] - t <= max_window_s and np.hypot(m_x[hi] - m_x[i], m_y[hi] - m_y[i]) < min_baseline_m:
                    hi += 1
        while not still:
            d = np.hypot(m_x[hi] - m_x[lo], m_y[hi] - m_y[lo])
            if d >= min_baseline_m:
                break
            can_lo = lo > a and t - m_t[lo - 1] <= max_window_s
            can_hi = hi < b - 1 and m_t[hi + 1] - t <= max_window_s
            if not (can_lo or can_hi):
                break
            if can_lo and (not can_hi or t - m_t[lo - 1] <= m_t[hi + 1] - t):
                lo -= 1
            else:
                hi += 1
        d = np.hypot(m_x[hi] - m_x[lo], m_y[hi] - m_y[lo])
        motion = np.nan
        if d >= min_baseline_m:
            motion = np.degrees(np.arctan2(m_x[hi] - m_x[lo], m_y[hi] - m_y[lo])) % 360.0
        e = m_edge[i]
        road = np.nan
        if e >= 0 and m_edge[j] == e:
            # on one edge: the offset is a line in time fitted to the fixes on this edge nearby
            # (white GPS noise along the road averages out), the heading the road's there
            vx, vy, vcum, vptr = geom
            st = 0.0
            so = 0.0
            stt = 0.0
            sto = 0.0
            cnt = 0
            for k in range(max(a, i - SMOOTH_FIXES), min(b, j + SMOOTH_FIXES + 1)):
                if m_edge[k] == e and abs(m_t[k] - t) <= max_window_s:
                    dt = m_t[k] - t
                    st += dt
                    so += m_off[k]
                    stt += dt * dt
                    sto += dt * m_off[k]
                    cnt += 1
            den = cnt * stt - st * st
            off = (so * stt - st * sto) / den if cnt >= 3 and den > 1e-9 else m_off[i] + f * (m_off[j] - m_off[i])
            off = min(max(off, 0.0), vcum[vptr[e + 1] - 1])
            px, py, hx, hy = point_on_edge(e, off, vx, vy, vcum, vptr)
            x[q] = px
            y[q] = py
            road = np.degrees(np.arctan2(hx, hy)) % 360.0
        elif e >= 0 and m_edge[j] >= 0:
            # between two edges (a corner): the road's heading at each end, and the turn between
            vx, vy, vcum, vptr = geom
            hx0, hy0 = point_on_edge(e, m_off[i], vx, vy, vcum, vptr)[2:]
            hx1, hy1 = point_on_edge(m_edge[j], m_off[j], vx, vy, vcum, vptr)[2:]
            turn[q] = np.degrees(np.arccos(min(max(hx0 * hx1 + hy0 * hy1, -1.0), 1.0)))
            if turn[q] < 120.0:
                mx_, my_ = (1.0 - f) * hx0 + f * hx1, (1.0 - f) * hy0 + f * hy1
                road = np.degrees(np.arctan2(mx_, my_)) % 360.0
        # the road's heading is precise, but a car standing still gets matched to roads it is
        # not on (GPS noise at a stop line): trust the road only where the motion agrees
        if not np.isnan(road) and (np.isnan(motion) or abs((road - motion + 180.0) % 360.0 - 180.0) <= agree_deg) \
                and not still:
            heading[q] = road
            baseline[q] = np.inf
        elif not np.isnan(motion):
            heading[q] = motion
            baseline[q] = d
            turn[q] = 0.0
        else:
            status[q] = POSE_STILL
            continue
        if e >= 0 and lane_m[e] != 0.0:
            # the car keeps to its side of a two-way road's centre line
            h = np.radians(heading[q])
            x[q] += lane_m[e] * np.cos(h)
            y[q] -= lane_m[e] * np.sin(h)
    return x, y, heading, baseline, turn, status
