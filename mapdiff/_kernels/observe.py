"""Vehicle poses at detection times, from matched fixes."""

import numpy as np

from mapdiff._kernels import jit
from mapdiff._kernels.geometry import angle_deg, heading_turn_deg, point_on_edge

POSE_OK = 0
POSE_NO_TRIP = 1  # the trip has no matched fix
POSE_OUTSIDE = 2  # the time lies before the first or after the last matched fix
POSE_GAP = 3  # the matched fixes around the time are too far apart in time
POSE_STILL = 4  # the vehicle never moved enough around the time to give a heading
POSE_OFF_ROAD = 5  # the fixes around the time sit off the matched road (see ``m_off_road``)
SMOOTH_FIXES = 3  # fixes either side whose edges may hold a smoothed position
EDGE_TOL_M = 1.0  # how far past its edge's ends a route position may still fall on it


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
def gaps_seen(m_ptr, m_t, m_edge, m_off_road, m_joined, q_trip, q_t, max_gap_s, max_bridge_s):
    """The fixes after which their trip's next fix comes more than ``max_gap_s`` later (and at
    most ``max_bridge_s``), both on a road and neither off it (``m_off_road``), the two joined
    (``m_joined``: nothing the matcher left unplaced between them), where a query time (trip
    ``q_trip``, time ``q_t``) falls between the two."""
    mark = np.zeros(m_t.shape[0], dtype=np.bool_)
    for q in range(q_t.shape[0]):
        k = q_trip[q]
        if k < 0 or m_ptr[k + 1] - m_ptr[k] < 2:
            continue
        a, b = m_ptr[k], m_ptr[k + 1]
        i = a + np.searchsorted(m_t[a:b], q_t[q], side="right") - 1
        if i < a or i >= b - 1:
            continue
        dt = m_t[i + 1] - m_t[i]
        if (max_gap_s < dt <= max_bridge_s and m_joined[i] and m_edge[i] >= 0 and m_edge[i + 1] >= 0
                and not m_off_road[i] and not m_off_road[i + 1]):
            mark[i] = True
    return np.flatnonzero(mark)


@jit
def bridge_fixes(gaps, direct, length, m_t, m_edge, m_off, legs, legs_ptr, step_s, edge_len, geom):
    """Fixes every ``step_s`` seconds inside each gap (between the fix ``gaps[g]`` and the next),
    ``length[g]`` metres of route driven at one speed: the rest of the first fix's edge, the
    edges ``legs[legs_ptr[g]:legs_ptr[g + 1]]``, the start of the next fix's edge (where
    ``direct[g]``: the stretch of their one edge between them). Returns each new fix's gap,
    time, x, y, edge and offset."""
    vx, vy, vcum, vptr = geom
    n = 0
    for g in range(gaps.shape[0]):
        i = gaps[g]
        n += max(int(np.ceil((m_t[i + 1] - m_t[i]) / step_s)) - 1, 0)
    gap = np.empty(n, dtype=np.int64)
    t = np.empty(n)
    x = np.empty(n)
    y = np.empty(n)
    edge = np.empty(n, dtype=np.int64)
    off = np.empty(n)
    k = 0
    for g in range(gaps.shape[0]):
        i = gaps[g]
        e0, e1 = m_edge[i], m_edge[i + 1]
        dt = m_t[i + 1] - m_t[i]
        for step in range(1, max(int(np.ceil(dt / step_s)) - 1, 0) + 1):
            s = m_off[i] + length[g] * step * step_s / dt  # along the route, from the first edge's start
            e = e0
            if not direct[g] and s > edge_len[e0]:
                s -= edge_len[e0]
                e = e1
                for r in range(legs_ptr[g], legs_ptr[g + 1]):
                    if s <= edge_len[legs[r]]:
                        e = legs[r]
                        break
                    s -= edge_len[legs[r]]
            px, py, _, _ = point_on_edge(e, s, vx, vy, vcum, vptr)
            gap[k], t[k], x[k], y[k], edge[k], off[k] = g, m_t[i] + step * step_s, px, py, e, s
            k += 1
    return gap, t, x, y, edge, off


@jit
def raw_velocity(m_ptr, m_t, rx, ry, window_s):
    """Velocity (east, north) at each fix from a straight line fitted to the raw positions (rx,
    ry; NaN: left out) of its trip's fixes within ``window_s`` seconds; NaN where fewer than 3
    tell."""
    n = rx.shape[0]
    vel = np.full((n, 2), np.nan)
    for k in range(m_ptr.shape[0] - 1):
        a, b = m_ptr[k], m_ptr[k + 1]
        lo = a
        hi = a
        for i in range(a, b):
            while lo < b and m_t[lo] < m_t[i] - window_s:
                lo += 1
            while hi < b and m_t[hi] <= m_t[i] + window_s:
                hi += 1
            cnt = 0
            st = 0.0
            sx = 0.0
            sy = 0.0
            for q in range(lo, hi):
                if not np.isnan(rx[q]):
                    cnt += 1
                    st += m_t[q]
                    sx += rx[q]
                    sy += ry[q]
            if cnt < 3:
                continue
            st /= cnt
            sx /= cnt
            sy /= cnt
            stt = 0.0
            stx = 0.0
            sty = 0.0
            for q in range(lo, hi):
                if not np.isnan(rx[q]):
                    dt = m_t[q] - st
                    stt += dt * dt
                    stx += dt * (rx[q] - sx)
                    sty += dt * (ry[q] - sy)
            if stt > 0:
                vel[i, 0] = stx / stt
                vel[i, 1] = sty / stt
    return vel


@jit
def smooth_route(m_ptr, m_t, m_s, trip_sigma, accel, measured):
    """Route distance and speed at each fix, smoothed per trip: a constant-velocity Kalman
    filter and Rauch-Tung-Striebel smoother over ``m_s`` (see :func:`route_distance`) with
    measurement sigma ``trip_sigma[trip]`` and white-noise acceleration of spectral density
    ``accel`` (m^2/s^3); a fix more than 4 sigmas off the prediction is left out, and after
    three such fixes in a row the filter starts afresh there. A fix not ``measured`` (one that
    only carries the route through a gap) is predicted, never measured: its distance is the
    smoother's between the fixes around it."""
    n = m_s.shape[0]
    ss = m_s.copy()
    vs = np.zeros(n)
    # filtered and predicted states (s, v) and covariances (p00, p01, p11)
    fs = np.empty(n)
    fv = np.empty(n)
    f00 = np.empty(n)
    f01 = np.empty(n)
    f11 = np.empty(n)
    ps = np.empty(n)
    pv = np.empty(n)
    p00 = np.empty(n)
    p01 = np.empty(n)
    p11 = np.empty(n)
    start = np.zeros(n, dtype=np.bool_)
    for k in range(m_ptr.shape[0] - 1):
        a, b = m_ptr[k], m_ptr[k + 1]
        if b - a < 2:
            continue
        r = trip_sigma[k] ** 2
        rejected = 0
        for i in range(a, b):
            if i == a or rejected >= 3:
                # a fresh start (also after three fixes in a row disagreed: the route jumped)
                start[i] = True
                rejected = 0
                ps[i], pv[i], p00[i], p01[i], p11[i] = m_s[i], 0.0, r, 0.0, 100.0
            else:
                dt = max(m_t[i] - m_t[i - 1], 1e-3)
                ps[i] = fs[i - 1] + dt * fv[i - 1]
                pv[i] = fv[i - 1]
                p00[i] = f00[i - 1] + 2 * dt * f01[i - 1] + dt * dt * f11[i - 1] + accel * dt**3 / 3
                p01[i] = f01[i - 1] + dt * f11[i - 1] + accel * dt**2 / 2
                p11[i] = f11[i - 1] + accel * dt
            innov = m_s[i] - ps[i]
            sv = p00[i] + r
            if not start[i] and not measured[i]:
                fs[i], fv[i], f00[i], f01[i], f11[i] = ps[i], pv[i], p00[i], p01[i], p11[i]
                continue
            if not start[i] and innov * innov > 16.0 * sv:
                fs[i], fv[i], f00[i], f01[i], f11[i] = ps[i], pv[i], p00[i], p01[i], p11[i]
                rejected += 1
                continue
            rejected = 0
            k0, k1 = p00[i] / sv, p01[i] / sv
            fs[i] = ps[i] + k0 * innov
            fv[i] = pv[i] + k1 * innov
            f00[i] = p00[i] - k0 * p00[i]
            f01[i] = p01[i] - k0 * p01[i]
            f11[i] = p11[i] - k1 * p01[i]
        ss[b - 1], vs[b - 1] = fs[b - 1], fv[b - 1]
        for i in range(b - 2, a - 1, -1):
            if start[i + 1]:
                ss[i], vs[i] = fs[i], fv[i]
                continue
            dt = max(m_t[i + 1] - m_t[i], 1e-3)
            # C = F_f P_f F^T P_p^-1 (2x2), with F = [[1, dt], [0, 1]]
            c00 = f00[i] + dt * f01[i]
            c01 = f01[i]
            c10 = f01[i] + dt * f11[i]
            c11 = f11[i]
            det = p00[i + 1] * p11[i + 1] - p01[i + 1] ** 2
            i00, i01, i11 = p11[i + 1] / det, -p01[i + 1] / det, p00[i + 1] / det
            g00 = c00 * i00 + c01 * i01
            g01 = c00 * i01 + c01 * i11
            g10 = c10 * i00 + c11 * i01
            g11 = c10 * i01 + c11 * i11
            ds, dv = ss[i + 1] - ps[i + 1], vs[i + 1] - pv[i + 1]
            ss[i] = fs[i] + g00 * ds + g01 * dv
            vs[i] = fv[i] + g10 * ds + g11 * dv
    return ss, vs


@jit
def _road_heading(e, s, geom):
    """The unit heading (x, y) of edge ``e`` at ``s`` metres along it, ``s`` held to the edge
    (a matched offset may overshoot its edge's ends by a little)."""
    vx, vy, vcum, vptr = geom
    return point_on_edge(e, min(max(s, 0.0), vcum[vptr[e + 1] - 1]), vx, vy, vcum, vptr)[2:]


@jit
def _moving_along(k, still_mps, agree_deg, m_vs, m_vel, m_edge, m_off, geom):
    """Whether fix k moves (faster than ``still_mps``) along its matched road (its raw motion
    within ``agree_deg`` of the road's direction, where the raw motion is known)."""
    if m_edge[k] < 0 or abs(m_vs[k]) < still_mps:
        return False
    if np.isnan(m_vel[k, 0]):
        return True
    hx, hy = _road_heading(m_edge[k], m_off[k], geom)
    cos = (hx * m_vel[k, 0] + hy * m_vel[k, 1]) / max(np.hypot(m_vel[k, 0], m_vel[k, 1]), 1e-9)
    return cos >= np.cos(np.radians(agree_deg))


@jit
def _route_point(target, i, j, a, b, t, m_t, m_s, m_edge, m_off, geom):
    """The point at route distance ``target``, on whichever edge of the fixes near fixes i and
    j holds it: (edge or -1 when none does, x, y, road direction hx, hy)."""
    vx, vy, vcum, vptr = geom
    best, best_dt, best_off = -1, np.inf, 0.0
    for k in range(max(a, i - SMOOTH_FIXES), min(b, j + SMOOTH_FIXES + 1)):
        if m_edge[k] >= 0 and abs(m_t[k] - t) < best_dt:
            off = target - (m_s[k] - m_off[k])
            if -EDGE_TOL_M <= off <= vcum[vptr[m_edge[k] + 1] - 1] + EDGE_TOL_M:
                best, best_dt, best_off = m_edge[k], abs(m_t[k] - t), off
    if best < 0:
        return -1, 0.0, 0.0, 0.0, 0.0
    px, py, hx, hy = point_on_edge(best, min(max(best_off, 0.0), vcum[vptr[best + 1] - 1]), vx, vy, vcum, vptr)
    return best, px, py, hx, hy


@jit
def _route_position(q, i, j, f, a, b, t, m_t, m_s, m_ss, m_edge, m_off, span_m, geom, x, y, turn):
    """Put query q at the smoothed route distance (x[q], y[q] are left alone where no nearby
    edge holds it). The road's direction is averaged over ``span_m`` either side, and how much
    it turns there goes to ``turn[q]`` (degrees): near a corner the position's error along the
    route makes the heading uncertain. Returns the edge (-1: none) and the direction."""
    target = m_ss[i] + f * (m_ss[j] - m_ss[i])
    best, px, py, hx, hy = _route_point(target, i, j, a, b, t, m_t, m_s, m_edge, m_off, geom)
    if best < 0:
        return -1, 0.0, 0.0
    x[q] = px
    y[q] = py
    sx, sy = hx, hy
    e0, _, _, hx0, hy0 = _route_point(target - span_m, i, j, a, b, t, m_t, m_s, m_edge, m_off, geom)
    e1, _, _, hx1, hy1 = _route_point(target + span_m, i, j, a, b, t, m_t, m_s, m_edge, m_off, geom)
    if e0 >= 0 and e1 >= 0:
        sx += hx0 + hx1
        sy += hy0 + hy1
        turn[q] = angle_deg(hx0, hy0, hx1, hy1)
    norm = np.hypot(sx, sy)
    if norm < 1e-9:  # a U-turn within the span: the direction at the point
        return best, hx, hy
    return best, sx / norm, sy / norm


@jit
def _bracket(k, t, m_ptr, m_t, edge_tol_s, max_gap_s, m_off_road):
    """The fixes of trip ``k`` around time ``t``: (status, a, b, i, j) with the trip's fixes
    ``a:b`` and ``i``, ``j`` the ones before and after (status ``POSE_OK``), or why there are
    none."""
    if k < 0 or m_ptr[k + 1] == m_ptr[k]:
        return POSE_NO_TRIP, 0, 0, 0, 0
    a, b = m_ptr[k], m_ptr[k + 1]
    if t < m_t[a] - edge_tol_s or t > m_t[b - 1] + edge_tol_s:
        return POSE_OUTSIDE, a, b, 0, 0
    i = a + np.searchsorted(m_t[a:b], t, side="right") - 1
    i = min(max(i, a), b - 2) if b - a >= 2 else a
    j = min(i + 1, b - 1)
    if m_t[j] - m_t[i] > max_gap_s:
        return POSE_GAP, a, b, i, j
    if m_off_road[i] or m_off_road[j]:
        return POSE_OFF_ROAD, a, b, i, j
    return POSE_OK, a, b, i, j


@jit
def _way_agrees(k, a, b, back, motion, agree_deg, m_edge, m_off, geom):
    """Whether the matched positions over the last ``min_baseline_m`` into fix k (``back``; else
    the next out of it) run within ``agree_deg`` of k's road; ``motion`` = (m_t, m_x, m_y,
    max_window_s, min_baseline_m). True where they do not span the baseline within the window."""
    m_t, m_x, m_y, window_s, baseline_m = motion
    step = -1 if back else 1
    o = k
    while (a <= o + step < b and abs(m_t[o + step] - m_t[k]) <= window_s
           and np.hypot(m_x[o] - m_x[k], m_y[o] - m_y[k]) < baseline_m):
        o += step
    dx, dy = (m_x[k] - m_x[o], m_y[k] - m_y[o]) if back else (m_x[o] - m_x[k], m_y[o] - m_y[k])
    d = np.hypot(dx, dy)
    if d < baseline_m:
        return True
    hx, hy = _road_heading(m_edge[k], m_off[k], geom)
    return (hx * dx + hy * dy) / d >= np.cos(np.radians(agree_deg))


@jit
def _came_along(i, j, a, b, still_mps, agree_deg, m_vs, m_vel, m_edge, m_off, geom, motion):
    """For a standing car: the last fix before it that moved along its road (a standing car does
    not turn), else the first after it (the trip starts standing); -1: none. The road must also
    agree with the way the matched route came in over the heading's baseline (``motion``, see
    :func:`_way_agrees`): where a junction's short links make a triangle, the matcher hops
    between them while the car slows to a stop, and one fix moving along a link it never took
    gave the whole stop a heading some 50 degrees off (Helsinki: 8 % of the bearings observe
    trusted from standing cars were more than 20 degrees off, against 1 % from moving ones)."""
    came = i
    while came >= a and not (_moving_along(came, still_mps, agree_deg, m_vs, m_vel, m_edge, m_off, geom)
                             and _way_agrees(came, a, b, True, motion, agree_deg, m_edge, m_off, geom)):
        came -= 1
    if came >= a:
        return came
    came = j
    while came < b and not (_moving_along(came, still_mps, agree_deg, m_vs, m_vel, m_edge, m_off, geom)
                            and _way_agrees(came, a, b, False, motion, agree_deg, m_edge, m_off, geom)):
        came += 1
    return came if came < b else -1


@jit
def _junction_turn(came, i, a, b, span_m, m_edge, m_off, geom):
    """For a car standing at fix i, matched within ``span_m`` of a junction on the road it came
    along (fix ``came``'s): the angle (degrees) between that road and the one the route takes on
    the junction's other side (the road matched before it, where it stands just past the start;
    the next one, where it stands just before the end), else 0. A car waiting at a stop line is
    snapped across the junction as often as not, and one that turned and stopped just past it
    is left on the road before: which of the two it stands on is not known."""
    e = m_edge[came]
    if m_edge[i] != e:
        return 0.0
    vx, vy, vcum, vptr = geom
    length = vcum[vptr[e + 1] - 1]
    turn = 0.0
    if m_off[i] <= span_m:
        k = came
        while k >= a and m_edge[k] == e:
            k -= 1
        if k >= a and m_edge[k] >= 0:
            p = m_edge[k]
            turn = heading_turn_deg(p, vcum[vptr[p + 1] - 1], e, 0.0, vx, vy, vcum, vptr)
    if m_off[i] >= length - span_m:
        k = i
        while k < b and (m_edge[k] == e or m_edge[k] < 0):
            k += 1
        if k < b:
            turn = max(turn, heading_turn_deg(e, length, m_edge[k], 0.0, vx, vy, vcum, vptr))
    return turn


@jit
def _motion_span(still, t, i, j, a, b, m_t, m_x, m_y, max_window_s, min_baseline_m):
    """The fixes (lo, hi) whose positions give the direction of the motion at ``t``: the nearest
    around it at least ``min_baseline_m`` apart within ``max_window_s``. A standing car looks
    back on the way it came in (the matcher may already have it on the next road), or, with no
    way in (the trip starts here), on the way it leaves."""
    lo, hi = i, j
    if still:
        while (lo > a and t - m_t[lo - 1] <= max_window_s
               and np.hypot(m_x[i] - m_x[lo], m_y[i] - m_y[lo]) < min_baseline_m):
            lo -= 1
        if np.hypot(m_x[i] - m_x[lo], m_y[i] - m_y[lo]) >= min_baseline_m:
            return lo, i
        lo, hi = i, j
        while (hi < b - 1 and m_t[hi + 1] - t <= max_window_s
               and np.hypot(m_x[hi] - m_x[i], m_y[hi] - m_y[i]) < min_baseline_m):
            hi += 1
        return lo, hi
    while np.hypot(m_x[hi] - m_x[lo], m_y[hi] - m_y[lo]) < min_baseline_m:
        can_lo = lo > a and t - m_t[lo - 1] <= max_window_s
        can_hi = hi < b - 1 and m_t[hi + 1] - t <= max_window_s
        if not (can_lo or can_hi):
            break
        if can_lo and (not can_hi or t - m_t[lo - 1] <= m_t[hi + 1] - t):
            lo -= 1
        else:
            hi += 1
    return lo, hi


@jit
def interpolate_poses(m_ptr, m_t, m_x, m_y, m_edge, m_off, q_trip, q_t, max_gap_s, edge_tol_s, min_baseline_m,
                      max_window_s, agree_deg, still_mps, m_s, m_ss, m_vs, m_vel, lane_m, span_m, geom,
                      m_off_road):
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
    metres right of the line (its side of a two-way road). A time next to a fix flagged in
    ``m_off_road`` (the fixes there sit off the matched road) gets no pose. Returns x, y, heading
    (degrees clockwise from north), baseline (metres; inf for a heading from the road), the turn
    and a status code.
    """
    n = q_t.shape[0]
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    heading = np.full(n, np.nan)
    baseline = np.full(n, np.nan)
    status = np.zeros(n, dtype=np.int64)
    turn = np.zeros(n)
    vx, vy, vcum, vptr = geom
    for q in range(n):
        t = q_t[q]
        status[q], a, b, i, j = _bracket(q_trip[q], t, m_ptr, m_t, edge_tol_s, max_gap_s, m_off_road)
        if status[q] != POSE_OK:
            continue
        span = m_t[j] - m_t[i]
        f = 0.0 if span <= 0 else min(max((t - m_t[i]) / span, 0.0), 1.0)
        x[q] = m_x[i] + f * (m_x[j] - m_x[i])
        y[q] = m_y[i] + f * (m_y[j] - m_y[i])
        still = abs(m_vs[i] + f * (m_vs[j] - m_vs[i])) < still_mps
        came = _came_along(i, j, a, b, still_mps, agree_deg, m_vs, m_vel, m_edge, m_off, geom,
                           (m_t, m_x, m_y, max_window_s, min_baseline_m)) if still and vx.shape[0] > 1 else -1
        if came >= 0:
            hx, hy = _road_heading(m_edge[came], m_off[came], geom)
            heading[q] = np.degrees(np.arctan2(hx, hy)) % 360.0
            baseline[q] = np.inf
            here, rx, ry = _route_position(q, i, j, f, a, b, t, m_t, m_s, m_ss, m_edge, m_off, span_m, geom, x, y,
                                           turn)
            # it stands, heading the way it came in; where the matched route has it on a road
            # turned from that one, or turning around it (stopped just past a corner, or matched
            # there while still before it), which way it heads is not known: the turn says how much
            if here >= 0:
                turn[q] = max(turn[q], angle_deg(hx, hy, rx, ry))
            turn[q] = max(turn[q], _junction_turn(came, i, a, b, span_m, m_edge, m_off, geom))
            continue
        lo, hi = _motion_span(still, t, i, j, a, b, m_t, m_x, m_y, max_window_s, min_baseline_m)
        d = np.hypot(m_x[hi] - m_x[lo], m_y[hi] - m_y[lo])
        motion = np.degrees(np.arctan2(m_x[hi] - m_x[lo], m_y[hi] - m_y[lo])) % 360.0 if d >= min_baseline_m \
            else np.nan
        e = m_edge[i]
        road = np.nan
        if e >= 0:
            best, hx, hy = _route_position(q, i, j, f, a, b, t, m_t, m_s, m_ss, m_edge, m_off, span_m, geom, x, y,
                                           turn)
            if best >= 0:
                e = best
                road = np.degrees(np.arctan2(hx, hy)) % 360.0
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
