"""Kernels of the fleet simulator: routes, vehicle poses, GPS noise and camera detections.

Every kernel that draws random numbers seeds numba's generator per trip from ``seed`` and the
trip's index, so the output does not depend on batching and the same seed gives the same bytes.
"""

import numpy as np

from mapdiff._kernels import jit
from mapdiff._kernels.geometry import heading_turn_deg, point_on_edge

#: a car that moved less than this between two poses stood still (metres)
STILL_M = 0.01
#: a sign's face is read up to this angle off its axis (beyond, it is a thin edge)
_READABLE_DEG = 75.0
_COS_READABLE = np.cos(np.radians(_READABLE_DEG))


@jit
def _piece_length(edge, s0, s1, ax, ay, bx, by):
    return s1 - s0 if edge >= 0 else np.hypot(bx - ax, by - ay)


@jit
def _boundary_speeds(a, b, length, cruise, edge, s0, s1, net, kin):
    """Speed entering each piece of one trip (``a:b``) and leaving it: never above either
    piece's cruise speed, nor ``kin[2]`` through a turn of over ``kin[3]`` degrees, zero at a
    stop and at the trip's ends; then as fast as ``kin[0]`` (speeding up) and ``kin[1]``
    (braking) allow over each piece (a forward and a backward pass)."""
    vx, vy, vcum, vptr = net
    accel, decel, turn_mps, turn_deg = kin
    v_in = np.zeros(b - a)
    v_out = np.zeros(b - a)
    for i in range(a + 1, b):
        cap = min(cruise[i - 1], cruise[i])
        if (edge[i - 1] >= 0 and edge[i] >= 0 and edge[i - 1] != edge[i] and cap > turn_mps
                and heading_turn_deg(edge[i - 1], s1[i - 1] - 0.5, edge[i], s0[i] + 0.5, vx, vy, vcum, vptr)
                > turn_deg):
            cap = turn_mps
        v_in[i - a] = cap
        v_out[i - a - 1] = cap
    for i in range(a, b):
        v_out[i - a] = min(v_out[i - a], np.sqrt(v_in[i - a] ** 2 + 2.0 * accel * length[i]))
        if i + 1 < b:
            v_in[i + 1 - a] = v_out[i - a]
    for i in range(b - 1, a - 1, -1):
        v_in[i - a] = min(v_in[i - a], np.sqrt(v_out[i - a] ** 2 + 2.0 * decel * length[i]))
        if i > a:
            v_out[i - 1 - a] = v_in[i - a]
    return v_in, v_out


@jit
def _put(row, *values):
    for j in range(len(values)):
        row[j] = values[j]


@jit
def ramps(trip_ptr, edge, s0, s1, dur, ax, ay, bx, by, net, kin):
    """Pieces driven at constant speed (cruise ``length / dur``, stops of length 0) made into
    pieces of constant acceleration, as a car drives them: it speeds up at ``kin[0]`` m/s^2,
    brakes at ``kin[1]``, takes turns of over ``kin[3]`` degrees at ``kin[2]`` m/s at most,
    and stands still at stops and at its trip's ends. ``net`` is the roads' (vx, vy, vcum, vptr).

    Returns the new pieces (edge, s0, s1, dur, ax, ay, bx, by), their ``shape`` (see
    :func:`poses`) and the piece each came from (``source``)."""
    accel, decel = kin[0], kin[1]
    n = edge.shape[0]
    length = np.empty(n)
    cruise = np.zeros(n)
    for i in range(n):
        length[i] = _piece_length(edge[i], s0[i], s1[i], ax[i], ay[i], bx[i], by[i])
        if length[i] > 0.0 and dur[i] > 0.0:
            cruise[i] = length[i] / dur[i]
    cap = 3 * n
    o_edge = np.empty(cap, dtype=np.int64)
    o_src = np.empty(cap, dtype=np.int64)
    o = np.empty((cap, 8))  # s0, s1, dur, ax, ay, bx, by, shape
    m = 0
    for k in range(trip_ptr.shape[0] - 1):
        a, b = trip_ptr[k], trip_ptr[k + 1]
        v_in, v_out = _boundary_speeds(a, b, length, cruise, edge, s0, s1, net, kin)
        for i in range(a, b):
            L = length[i]
            v0, v1, vc = v_in[i - a], v_out[i - a], cruise[i]
            if L <= 0.0 or vc <= 0.0:  # a stop
                o_edge[m], o_src[m] = edge[i], i
                _put(o[m], s0[i], s1[i], dur[i], ax[i], ay[i], bx[i], by[i], 0.0)
                m += 1
                continue
            # (distance into the piece, speed) where each stretch of constant acceleration ends
            da = max(vc * vc - v0 * v0, 0.0) / (2.0 * accel)
            dd = max(vc * vc - v1 * v1, 0.0) / (2.0 * decel)
            if da + dd <= L:
                cuts = ((da, vc), (L - dd, vc), (L, v1))
            else:  # too short to reach the cruise speed: a peak between the two ramps
                vp = np.sqrt((2.0 * accel * decel * L + decel * v0 * v0 + accel * v1 * v1) / (accel + decel))
                # (the last cut repeats the one before: numba wants both branches' tuples alike; a
                # cut of no length is skipped below)
                cuts = (((vp * vp - v0 * v0) / (2.0 * accel), vp), (L, v1), (L, v1))
            d_prev, v_prev = 0.0, v0
            for d, v in cuts:
                ell = d - d_prev
                if ell <= 1e-9:
                    v_prev = v
                    continue
                f0, f1 = d_prev / L, d / L
                o_edge[m], o_src[m] = edge[i], i
                _put(o[m], s0[i] + f0 * (s1[i] - s0[i]), s0[i] + f1 * (s1[i] - s0[i]), 2.0 * ell / (v_prev + v),
                     ax[i] + f0 * (bx[i] - ax[i]), ay[i] + f0 * (by[i] - ay[i]),
                     ax[i] + f1 * (bx[i] - ax[i]), ay[i] + f1 * (by[i] - ay[i]), (v - v_prev) / (v_prev + v))
                m += 1
                d_prev, v_prev = d, v
    return o_edge[:m], o[:m, 0], o[:m, 1], o[:m, 2], o[:m, 3], o[:m, 4], o[:m, 5], o[:m, 6], o[:m, 7], o_src[:m]


@jit
def poses(trip_ptr, p_edge, p_s0, p_s1, p_t0, p_t1, p_ax, p_ay, p_bx, p_by, p_lane, p_shape, time_ptr, t,
          vx, vy, vcum, vptr):
    """True vehicle pose at each time ``t`` (sorted within each trip; trip ``i``'s times are
    ``t[time_ptr[i]:time_ptr[i+1]]``, its pieces ``trip_ptr[i]:trip_ptr[i+1]``).

    A piece drives edge ``p_edge`` from ``p_s0`` to ``p_s1`` metres between ``p_t0`` and
    ``p_t1`` (a stop when ``s0 == s1``), ``p_lane`` metres right of the edge's line; or, with
    ``p_edge == -1``, the straight line from (ax, ay) to (bx, by) off the network. Its speed
    changes at a constant rate: ``p_shape`` is (v_end - v_start) / (v_end + v_start), 0 at a
    steady speed, so the share of the distance covered after a share ``u`` of the time is
    ``u + shape * (u^2 - u)``.
    Returns x, y, heading (degrees clockwise from north), edge (-1 off network), offset_m.
    """
    n = t.shape[0]
    x = np.empty(n)
    y = np.empty(n)
    heading = np.empty(n)
    edge = np.empty(n, dtype=np.int64)
    offset = np.empty(n)
    for i in range(trip_ptr.shape[0] - 1):
        p = trip_ptr[i]
        last = trip_ptr[i + 1] - 1
        for q in range(time_ptr[i], time_ptr[i + 1]):
            while p < last and t[q] > p_t1[p]:
                p += 1
            span = p_t1[p] - p_t0[p]
            u = 0.0 if span <= 0.0 else min(max((t[q] - p_t0[p]) / span, 0.0), 1.0)
            f = u + p_shape[p] * (u * u - u)
            e = p_edge[p]
            if e < 0:
                dx = p_bx[p] - p_ax[p]
                dy = p_by[p] - p_ay[p]
                d = np.hypot(dx, dy)
                if d > 0:
                    hx, hy = dx / d, dy / d
                else:  # parked off the road: facing the way it drove in (or will drive out)
                    hx, hy = _standing_heading(p, trip_ptr[i], last, p_edge, p_s0, p_s1, p_ax, p_ay, p_bx,
                                               p_by, vx, vy, vcum, vptr)
                px = p_ax[p] + f * dx
                py = p_ay[p] + f * dy
                s = np.nan
            else:
                s = p_s0[p] + f * (p_s1[p] - p_s0[p])
                px, py, hx, hy = point_on_edge(e, s, vx, vy, vcum, vptr)
                px += p_lane[p] * hy
                py -= p_lane[p] * hx
            x[q] = px
            y[q] = py
            heading[q] = np.degrees(np.arctan2(hx, hy)) % 360.0
            edge[q] = e
            offset[q] = s
    return x, y, heading, edge, offset


@jit
def turned_headings(ptr, x, y, heading, arc_m):
    """Each pose's heading as a car turns: the direction of the chord of its trip's path over
    ``arc_m`` centred on it (trip i's poses ``ptr[i]:ptr[i+1]``, in time order), so a corner's
    change of heading spreads over the arc a car drives instead of jumping at the map's vertex.
    A car standing still keeps its road's ``heading`` (the one it came in on: the simulator stops
    cars at a signal on the junction's node, and a car waiting there has not begun to turn), and
    a chord ends where the car stood or will stand. A pose whose chord is under a quarter of
    ``arc_m`` (a trip's first metres, a car that has hardly moved) keeps its ``heading`` too."""
    out = heading.copy()
    half = arc_m / 2.0
    for i in range(ptr.shape[0] - 1):
        a, b = ptr[i], ptr[i + 1]
        n = b - a
        if n < 2:
            continue
        cum = np.zeros(n)
        for q in range(1, n):
            cum[q] = cum[q - 1] + np.hypot(x[a + q] - x[a + q - 1], y[a + q] - y[a + q - 1])
        # the path since the car last stood and until it next stands
        since = np.zeros(n)
        until = np.full(n, cum[-1])
        for q in range(1, n):
            since[q] = cum[q] if cum[q] - cum[q - 1] < STILL_M else since[q - 1]
        for q in range(n - 2, -1, -1):
            until[q] = cum[q] if cum[q + 1] - cum[q] < STILL_M else until[q + 1]
        for q in range(n):
            if (since[q] == cum[q] and q > 0) or (until[q] == cum[q] and q < n - 1):
                continue  # standing
            s0 = max(cum[q] - half, since[q])
            s1 = min(cum[q] + half, until[q])
            k0, f0 = _at_length(cum, s0)
            k1, f1 = _at_length(cum, s1)
            dx = x[a + k1] + f1 * (x[a + k1 + 1] - x[a + k1]) - x[a + k0] - f0 * (x[a + k0 + 1] - x[a + k0])
            dy = y[a + k1] + f1 * (y[a + k1 + 1] - y[a + k1]) - y[a + k0] - f0 * (y[a + k0 + 1] - y[a + k0])
            if np.hypot(dx, dy) >= arc_m / 4.0:
                out[a + q] = np.degrees(np.arctan2(dx, dy)) % 360.0
    return out


@jit
def _at_length(cum, s):
    """Where a path of cumulative lengths ``cum`` (non-decreasing, from 0) is ``s`` along: the
    step k from pose k to k + 1 and the share of it, (len - 2, 1.0) at the end."""
    lo, hi = 0, cum.shape[0] - 1
    while hi - lo > 1:  # the last k with cum[k] <= s, so a standing car's steps of 0 m are passed
        mid = (lo + hi) // 2
        if cum[mid] <= s:
            lo = mid
        else:
            hi = mid
    step = cum[lo + 1] - cum[lo]
    return lo, (min((s - cum[lo]) / step, 1.0) if step > 0.0 else 1.0)


@jit
def _standing_heading(p, first, last, p_edge, p_s0, p_s1, p_ax, p_ay, p_bx, p_by, vx, vy, vcum, vptr):
    """The heading (unit x, y) of a car standing off the road in piece ``p`` of the trip whose
    pieces are ``first..last``: that of the last piece before it that moved, else of the next
    (north when the trip never moves)."""
    for step in (-1, 1):
        q = p + step
        while first <= q <= last:
            if p_edge[q] >= 0:  # (where it left the road, or will join it)
                _, _, hx, hy = point_on_edge(p_edge[q], p_s1[q] if step < 0 else p_s0[q], vx, vy, vcum, vptr)
                return hx, hy
            dx, dy = p_bx[q] - p_ax[q], p_by[q] - p_ay[q]
            d = np.hypot(dx, dy)
            if d > 0:
                return dx / d, dy / d
            q += step
    return 0.0, 1.0


@jit
def gps_noise(time_ptr, t, x, y, seed, sigma_m, bias_sigma_m, bias_tau_s, outlier_rate, outlier_min_m,
              outlier_max_m):
    """Noisy GPS fixes: white noise ``sigma_m`` per axis, plus a per-trip bias that drifts as an
    Ornstein-Uhlenbeck process (stationary sigma ``bias_sigma_m`` per axis, correlation time
    ``bias_tau_s``), plus multipath outliers (a jump of ``outlier_min_m``..``outlier_max_m`` in a
    random direction) at ``outlier_rate``. Returns noisy x, y and the outlier flags."""
    n = t.shape[0]
    nx = np.empty(n)
    ny = np.empty(n)
    outlier = np.zeros(n, dtype=np.bool_)
    for i in range(time_ptr.shape[0] - 1):
        np.random.seed(seed + 7919 * i)
        bx = np.random.normal(0.0, bias_sigma_m)
        by = np.random.normal(0.0, bias_sigma_m)
        for q in range(time_ptr[i], time_ptr[i + 1]):
            if q > time_ptr[i]:
                rho = np.exp(-(t[q] - t[q - 1]) / bias_tau_s)
                keep = bias_sigma_m * np.sqrt(1.0 - rho * rho)
                bx = rho * bx + keep * np.random.normal()
                by = rho * by + keep * np.random.normal()
            nx[q] = x[q] + bx + np.random.normal(0.0, sigma_m)
            ny[q] = y[q] + by + np.random.normal(0.0, sigma_m)
            if np.random.random() < outlier_rate:
                r = outlier_min_m + (outlier_max_m - outlier_min_m) * np.random.random()
                a = 2.0 * np.pi * np.random.random()
                nx[q] += r * np.cos(a)
                ny[q] += r * np.sin(a)
                outlier[q] = True
    return nx, ny, outlier


@jit
def project_box(dx, dy, heading_deg, obj_z_m, obj_h_m, obj_w_m, cam):
    """Pixel box (x_min, y_min, x_max, y_max) of an object ``dx, dy`` metres east and north of
    the camera, or all NaN when it is behind the camera or outside the image.

    ``cam`` = (focal_px, width_px, height_px, mount_yaw_deg, mount_height_m); ``obj_z_m`` is the
    height of the object's centre above the road.
    """
    focal, width, height, yaw, cam_h = cam
    a = np.radians(heading_deg + yaw)
    fx, fy = np.sin(a), np.cos(a)  # optical axis, clockwise from north
    forward = dx * fx + dy * fy
    right = dx * fy - dy * fx
    if forward < 1.0:
        return np.nan, np.nan, np.nan, np.nan
    u = 0.5 * width + focal * right / forward
    v = 0.5 * height - focal * (obj_z_m - cam_h) / forward
    hw = 0.5 * focal * obj_w_m / forward
    hh = 0.5 * focal * obj_h_m / forward
    if u - hw < 0.0 or u + hw > width or v - hh < 0.0 or v + hh > height:
        return np.nan, np.nan, np.nan, np.nan
    return u - hw, v - hh, u + hw, v + hh


@jit
def detect(time_ptr, fx, fy, fheading, ox, oy, oz, oh, ow, ofacing, grid, cam, seed, max_range_m, min_box_px,
           pixel_sigma_px, miss_rate):
    """Detections of the objects (``ox, oy``; centre height ``oz``; size ``oh`` x ``ow``) seen
    from each camera frame (pose ``fx, fy, fheading``; trip i's frames ``time_ptr[i]:[i+1]``).

    An object within ``max_range_m`` whose box lies in the image and is at least ``min_box_px``
    high is detected unless missed (``miss_rate``); box edges get Gaussian pixel noise. An
    object with a face (``ofacing``, radians clockwise from north; NaN: seen from everywhere) is
    only read from in front of it, within ``_READABLE_DEG`` of the way it faces.
    ``grid`` = (x0, y0, cell_m, nx, ny, cell_ptr, cell_obj). Returns frame index, object index,
    box (4 arrays) and score.
    """
    x0, y0, cell, ngx, ngy, cell_ptr, cell_obj = grid
    cap = 1024
    f_out = np.empty(cap, dtype=np.int64)
    o_out = np.empty(cap, dtype=np.int64)
    box = np.empty((cap, 4))
    score = np.empty(cap)
    n = 0
    reach = int(np.ceil(max_range_m / cell))
    for i in range(time_ptr.shape[0] - 1):
        np.random.seed(seed + 104729 * i + 17)
        for q in range(time_ptr[i], time_ptr[i + 1]):
            cx = int((fx[q] - x0) // cell)
            cy = int((fy[q] - y0) // cell)
            for gx in range(max(cx - reach, 0), min(cx + reach + 1, ngx)):
                for gy in range(max(cy - reach, 0), min(cy + reach + 1, ngy)):
                    c = gy * ngx + gx
                    for k in range(cell_ptr[c], cell_ptr[c + 1]):
                        j = cell_obj[k]
                        dx = ox[j] - fx[q]
                        dy = oy[j] - fy[q]
                        if dx * dx + dy * dy > max_range_m * max_range_m:
                            continue
                        if not np.isnan(ofacing[j]):  # noqa: SIM102  (the comment below explains the inner test)
                            # the camera must stand in front of the face: from the object, the
                            # way to the camera within the readable angle of its facing
                            if -(dx * np.sin(ofacing[j]) + dy * np.cos(ofacing[j])) < _COS_READABLE * np.sqrt(
                                    dx * dx + dy * dy):
                                continue
                        b0, b1, b2, b3 = project_box(dx, dy, fheading[q], oz[j], oh[j], ow[j], cam)
                        if np.isnan(b0) or b3 - b1 < min_box_px:
                            continue
                        if np.random.random() < miss_rate:
                            continue
                        if n == cap:
                            cap *= 2
                            f_out = np.concatenate((f_out, np.empty(cap - n, dtype=np.int64)))
                            o_out = np.concatenate((o_out, np.empty(cap - n, dtype=np.int64)))
                            box = np.concatenate((box, np.empty((cap - n, 4))))
                            score = np.concatenate((score, np.empty(cap - n)))
                        f_out[n] = q
                        o_out[n] = j
                        box[n, 0] = b0 + np.random.normal(0.0, pixel_sigma_px)
                        box[n, 1] = b1 + np.random.normal(0.0, pixel_sigma_px)
                        box[n, 2] = b2 + np.random.normal(0.0, pixel_sigma_px)
                        box[n, 3] = b3 + np.random.normal(0.0, pixel_sigma_px)
                        # bigger boxes are easier: the score rises with the box height
                        s = 1.0 - 0.5 * np.exp(-(b3 - b1) / 30.0) + np.random.normal(0.0, 0.05)
                        score[n] = min(max(s, 0.05), 0.999)
                        n += 1
    return f_out[:n].copy(), o_out[:n].copy(), box[:n].copy(), score[:n].copy()
