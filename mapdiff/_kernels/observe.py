"""Vehicle poses at detection times, from matched fixes."""

import numpy as np

from mapdiff._kernels import jit
from mapdiff._kernels.simulate import _point_on_edge

POSE_OK = 0
POSE_NO_TRIP = 1  # the trip has no matched fix
POSE_OUTSIDE = 2  # the time lies before the first or after the last matched fix
POSE_GAP = 3  # the matched fixes around the time are too far apart in time
POSE_STILL = 4  # the vehicle never moved enough around the time to give a heading


@jit
def interpolate_poses(m_ptr, m_t, m_x, m_y, m_edge, m_off, q_trip, q_t, max_gap_s, edge_tol_s, min_baseline_m,
                      max_window_s, geom):
    """Position and heading at each query time ``q_t`` of trip ``q_trip`` (an index into
    ``m_ptr``, -1 when unknown), linear between the matched fixes around it.

    The heading is the road's direction at the nearer fix when it has a kernel edge
    (``m_edge >= 0``, offset ``m_off``, with ``geom`` = (vx, vy, vcum, vptr) of the network);
    otherwise the direction between the nearest fixes around the time that are at least
    ``min_baseline_m`` apart (within ``max_window_s``), so a stopped car keeps the heading it
    drove in with. Returns x, y, heading (degrees clockwise from north), baseline (metres; inf
    for a heading from the road) and a status code.
    """
    n = q_t.shape[0]
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    heading = np.full(n, np.nan)
    baseline = np.full(n, np.nan)
    status = np.zeros(n, dtype=np.int64)
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
        near = i if t - m_t[i] <= m_t[j] - t else j
        if m_edge[near] >= 0:
            vx, vy, vcum, vptr = geom
            hx, hy = _point_on_edge(m_edge[near], m_off[near], vx, vy, vcum, vptr)[2:]
            heading[q] = np.degrees(np.arctan2(hx, hy)) % 360.0
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
    return x, y, heading, baseline, status
