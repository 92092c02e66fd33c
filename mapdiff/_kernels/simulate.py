"""Kernels of the fleet simulator: routes, vehicle poses, GPS noise and camera detections.

Every kernel that draws random numbers seeds numba's generator per trip from ``seed`` and the
trip's index, so the output does not depend on batching and the same seed gives the same bytes.
"""

import numpy as np

from mapdiff._kernels import jit
from mapdiff._kernels.geometry import point_on_edge

#: a sign's face is read up to this angle off its axis (beyond, it is a thin edge)
_READABLE_DEG = 75.0
_COS_READABLE = np.cos(np.radians(_READABLE_DEG))


@jit
def poses(trip_ptr, p_edge, p_s0, p_s1, p_t0, p_t1, p_ax, p_ay, p_bx, p_by, p_lane, time_ptr, t,
          vx, vy, vcum, vptr):
    """True vehicle pose at each time ``t`` (sorted within each trip; trip ``i``'s times are
    ``t[time_ptr[i]:time_ptr[i+1]]``, its pieces ``trip_ptr[i]:trip_ptr[i+1]``).

    A piece drives edge ``p_edge`` from ``p_s0`` to ``p_s1`` metres between ``p_t0`` and
    ``p_t1`` (a stop when ``s0 == s1``), ``p_lane`` metres right of the edge's line; or, with
    ``p_edge == -1``, the straight line from (ax, ay) to (bx, by) off the network.
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
            f = 0.0 if span <= 0.0 else min(max((t[q] - p_t0[p]) / span, 0.0), 1.0)
            e = p_edge[p]
            if e < 0:
                dx = p_bx[p] - p_ax[p]
                dy = p_by[p] - p_ay[p]
                d = np.hypot(dx, dy)
                hx, hy = (dx / d, dy / d) if d > 0 else (0.0, 1.0)
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
