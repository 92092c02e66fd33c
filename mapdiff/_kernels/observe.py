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


@jit
def interpolate_poses(m_ptr, m_t, m_x, m_y, m_edge, m_off, q_trip, q_t, max_gap_s, edge_tol_s, min_baseline_m,
                      max_window_s, geom):
    """Position and heading at each query time ``q_t`` of trip ``q_trip`` (an index into
    ``m_ptr``, -1 when unknown), linear between the matched fixes around it.

    With kernel edges (``m_edge >= 0``, offset ``m_off``, ``geom`` = (vx, vy, vcum, vptr) of the
    network), a time between two fixes on one edge gets its offset from a line fitted to the
    nearby fixes on that edge and the road's heading there; between two edges the heading blends
    the two roads' (``turn`` reports the angle between them). Otherwise the direction between the nearest fixes around the time that are at least
    ``min_baseline_m`` apart (within ``max_window_s``), so a stopped car keeps the heading it
    drove in with. Returns x, y, heading (degrees clockwise from north), baseline (metres; inf
    for a heading from the road), the turn and a status code.
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
        e = m_edge[i]
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
            heading[q] = np.degrees(np.arctan2(hx, hy)) % 360.0
            baseline[q] = np.inf
            continue
        if e >= 0 and m_edge[j] >= 0:
            # between two edges (a corner): the road's heading at each end, and the turn between
            vx, vy, vcum, vptr = geom
            hx0, hy0 = point_on_edge(e, m_off[i], vx, vy, vcum, vptr)[2:]
            hx1, hy1 = point_on_edge(m_edge[j], m_off[j], vx, vy, vcum, vptr)[2:]
            turn[q] = np.degrees(np.arccos(min(max(hx0 * hx1 + hy0 * hy1, -1.0), 1.0)))
            if turn[q] < 120.0:
                mx_, my_ = (1.0 - f) * hx0 + f * hx1, (1.0 - f) * hy0 + f * hy1
                heading[q] = np.degrees(np.arctan2(mx_, my_)) % 360.0
                baseline[q] = np.inf
                continue
        # widen the pair of fixes around t until they are far enough apart for a heading
        lo, hi = i, j
        while True:
            d = np.hypot(m_x[hi] - m_x[lo], m_y[hi] - m_y[lo])
            if d >= min_baseline_m:
                break
            can_lo = lo > a and t - m_t[lo - 1] <= max_window_s
            can_hi = hi < b - 1 and m_t[hi + 1] - t <= max_window_s
            if not (can_lo or can_hi):
                break
            # prefer the past: a stopped car points where it came from
            if can_lo and (not can_hi or t - m_t[lo - 1] <= m_t[hi + 1] - t):
                lo -= 1
            else:
                hi += 1
        d = np.hypot(m_x[hi] - m_x[lo], m_y[hi] - m_y[lo])
        if d < min_baseline_m:
            status[q] = POSE_STILL
            continue
        heading[q] = np.degrees(np.arctan2(m_x[hi] - m_x[lo], m_y[hi] - m_y[lo])) % 360.0
        baseline[q] = d
    return x, y, heading, baseline, turn, status
