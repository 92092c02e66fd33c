"""Association of observations into objects, and their weighted least-squares positions.

An observation is an observer position ``(ox, oy)``, a bearing ``b`` (radians, clockwise from
north) with sigma ``sb``, and a range ``r`` with sigma ``sr`` (NaN when unknown). Its end point
``o + r (sin b, cos b)`` is uncertain by ``sr`` along the ray and ``r sb`` across it.
Objects are kept in a hashed grid of cells, so every step is linear in the observations.
"""

import numpy as np

from mapdiff._kernels import jit

EMPTY = -1


@jit
def _cell_key(x, y, cell_m, mask):
    ix = np.int64(np.floor(x / cell_m))
    iy = np.int64(np.floor(y / cell_m))
    return ((ix * 73856093) ^ (iy * 19349663)) & mask, ix, iy


@jit
def _index(cx, cy, alive, cell_m):
    """Hash the live centres into grid buckets: (head per bucket, next per centre, mask)."""
    n = cx.shape[0]
    size = 1
    while size < 2 * n + 2:
        size *= 2
    head = np.full(size, EMPTY, dtype=np.int64)
    nxt = np.full(max(n, 1), EMPTY, dtype=np.int64)
    mask = size - 1
    for k in range(n):
        if alive[k]:
            h = _cell_key(cx[k], cy[k], cell_m, mask)[0]
            nxt[k] = head[h]
            head[h] = k
    return head, nxt, mask


@jit
def _gate2(i, px, py, ox, oy, b, sb, r, sr, floor_m):
    """Squared normalised distance of point (px, py) from observation i (bearing and range),
    with ``floor_m`` added to both sigmas for the point's own uncertainty."""
    dx = px - ox[i]
    dy = py - oy[i]
    ux, uy = np.sin(b[i]), np.cos(b[i])
    along = dx * ux + dy * uy
    across = dx * uy - dy * ux
    if along <= 0.0:
        return np.inf
    s_across2 = (max(along, 1.0) * sb[i]) ** 2 + floor_m**2
    g = across**2 / s_across2
    if not np.isnan(r[i]):
        g += (along - r[i]) ** 2 / (sr[i] ** 2 + floor_m**2)
    return g


@jit
def _nearest_centre(i, cls, ox, oy, b, sb, r, sr, cx, cy, ccls, head, nxt, mask, cell_m, reach_m, ray_m, gate2, floor_m):
    """Best centre of observation i's class within ``gate2`` and ``reach_m`` of its end point
    (or, without a range, along its first ``ray_m`` metres), or -1."""
    ux, uy = np.sin(b[i]), np.cos(b[i])
    best, best_g = EMPTY, gate2
    if not np.isnan(r[i]):
        # look around the end point
        px, py = ox[i] + r[i] * ux, oy[i] + r[i] * uy
        steps, step_m = 1, 0.0
    else:
        # no range: walk the ray
        px, py = ox[i], oy[i]
        steps, step_m = int(ray_m / cell_m) + 1, cell_m
    n_reach = int(np.ceil(min(reach_m, 3.0 * cell_m) / cell_m))
    for s in range(steps):
        qx, qy = px + s * step_m * ux, py + s * step_m * uy
        ix = np.int64(np.floor(qx / cell_m))
        iy = np.int64(np.floor(qy / cell_m))
        for gx in range(ix - n_reach, ix + n_reach + 1):
            for gy in range(iy - n_reach, iy + n_reach + 1):
                h = ((gx * 73856093) ^ (gy * 19349663)) & mask
                k = head[h]
                while k != EMPTY:
                    if ccls[k] == cls[i]:
                        if np.hypot(cx[k] - px, cy[k] - py) <= reach_m or np.isnan(r[i]):
                            g = _gate2(i, cx[k], cy[k], ox, oy, b, sb, r, sr, floor_m)
                            if g < best_g:
                                best_g = g
                                best = k
                    k = nxt[k]
    return best


@jit
def seed_centres(order, cls, ox, oy, b, sb, r, sr, cell_m, reach_m, ray_m, gate2, floor_m):
    """Leader clustering: observations with a range, most precise first, join the best centre
    of their class in reach or start a new one (at their end point). Returns labels and
    centres (x, y, class)."""
    n = order.shape[0]
    cap = 1024
    cx = np.empty(cap)
    cy = np.empty(cap)
    cw = np.empty(cap)
    ccls = np.empty(cap, dtype=np.int64)
    labels = np.full(ox.shape[0], EMPTY, dtype=np.int64)
    size = 1 << 16
    head = np.full(size, EMPTY, dtype=np.int64)
    nxt = np.full(cap, EMPTY, dtype=np.int64)
    mask = size - 1
    m = 0
    for q in range(n):
        i = order[q]
        if np.isnan(r[i]):
            continue
        k = _nearest_centre(i, cls, ox, oy, b, sb, r, sr, cx[:m], cy[:m], ccls[:m], head, nxt, mask, cell_m,
                            reach_m, ray_m, gate2, floor_m)
        ex = ox[i] + r[i] * np.sin(b[i])
        ey = oy[i] + r[i] * np.cos(b[i])
        w = 1.0 / (sr[i] ** 2 + (r[i] * sb[i]) ** 2)
        if k != EMPTY:
            # the centre moves to the weighted mean; its bucket may change, so re-file it
            cx[k] = (cx[k] * cw[k] + ex * w) / (cw[k] + w)
            cy[k] = (cy[k] * cw[k] + ey * w) / (cw[k] + w)
            cw[k] += w
            labels[i] = k
            continue
        if m == cap:
            cap *= 2
            cx = np.concatenate((cx, np.empty(cap - m)))
            cy = np.concatenate((cy, np.empty(cap - m)))
            cw = np.concatenate((cw, np.empty(cap - m)))
            ccls = np.concatenate((ccls, np.empty(cap - m, dtype=np.int64)))
            nxt = np.concatenate((nxt, np.full(cap - m, EMPTY, dtype=np.int64)))
        if 2 * m + 2 > size:
            alive = np.ones(m, dtype=np.bool_)
            head, nxt_new, mask = _index(cx[:m], cy[:m], alive, cell_m)
            size = head.shape[0]
            nxt[:m] = nxt_new[:m]
        cx[m], cy[m], cw[m], ccls[m] = ex, ey, w, cls[i]
        h = _cell_key(ex, ey, cell_m, mask)[0]
        nxt[m] = head[h]
        head[h] = m
        labels[i] = m
        m += 1
    # centres drifted while growing: the caller re-indexes them before any lookup
    return labels, cx[:m].copy(), cy[:m].copy(), ccls[:m].copy()


@jit
def _trip_share(labels, trip, n_centres):
    """Per observation: 1 / (observations of its trip in its object), so that each trip weighs
    as one (a trip's observations share its pose error), and per object the number of trips."""
    n = labels.shape[0]
    key = np.empty(n, dtype=np.int64)
    big = np.int64(trip.max() + 1) if n else np.int64(1)
    for i in range(n):
        key[i] = labels[i] * big + trip[i] if labels[i] >= 0 else -1
    order = np.argsort(key, kind="mergesort")
    share = np.zeros(n)
    n_trips = np.zeros(n_centres, dtype=np.int64)
    s = 0
    while s < n:
        e = s
        while e < n and key[order[e]] == key[order[s]]:
            e += 1
        if key[order[s]] >= 0:
            for q in range(s, e):
                share[order[q]] = 1.0 / (e - s)
            n_trips[labels[order[s]]] += 1
        s = e
    return share, n_trips


@jit
def solve(labels, n_centres, cx, cy, ox, oy, b, sb, r, sr, trip, huber_k, rounds):
    """Robust weighted least squares of each object's position from its observations: bearing
    (across the ray, sigma = distance x sb) and range (along it, sigma sr), each trip weighing
    as one, Huber down-weighting of residuals beyond ``huber_k`` sigmas, ``rounds`` times.

    Returns x, y, the covariance terms (sxx, sxy, syy), the reduced chi-square and trips per
    object. Starts from (cx, cy)."""
    x = cx.copy()
    y = cy.copy()
    share, n_trips = _trip_share(labels, trip, n_centres)
    a11 = np.zeros(n_centres)
    a12 = np.zeros(n_centres)
    a22 = np.zeros(n_centres)
    chi = np.zeros(n_centres)
    dof = np.zeros(n_centres)
    for _ in range(rounds):
        a11[:] = 0.0
        a12[:] = 0.0
        a22[:] = 0.0
        b1 = np.zeros(n_centres)
        b2 = np.zeros(n_centres)
        chi[:] = 0.0
        dof[:] = 0.0
        for i in range(labels.shape[0]):
            k = labels[i]
            if k < 0:
                continue
            ux, uy = np.sin(b[i]), np.cos(b[i])
            nx, ny = uy, -ux
            dx, dy = x[k] - ox[i], y[k] - oy[i]
            along = dx * ux + dy * uy
            s_across = max(abs(along), 1.0) * sb[i]
            # across the ray: n . p = n . o
            res = (dx * nx + dy * ny) / s_across
            w = share[i] / s_across**2
            if abs(res) > huber_k:
                w *= huber_k / abs(res)
            a11[k] += w * nx * nx
            a12[k] += w * nx * ny
            a22[k] += w * ny * ny
            c = nx * ox[i] + ny * oy[i]
            b1[k] += w * nx * c
            b2[k] += w * ny * c
            chi[k] += share[i] * min(res * res, huber_k * huber_k)
            dof[k] += share[i]
            if not np.isnan(r[i]):
                res = (along - r[i]) / sr[i]
                w = share[i] / sr[i] ** 2
                if abs(res) > huber_k:
                    w *= huber_k / abs(res)
                a11[k] += w * ux * ux
                a12[k] += w * ux * uy
                a22[k] += w * uy * uy
                c = ux * ox[i] + uy * oy[i] + r[i]
                b1[k] += w * ux * c
                b2[k] += w * uy * c
                chi[k] += share[i] * min(res * res, huber_k * huber_k)
                dof[k] += share[i]
        for k in range(n_centres):
            det = a11[k] * a22[k] - a12[k] * a12[k]
            if det > 1e-12 * (a11[k] + a22[k]) ** 2 and det > 0:
                x[k] = (a22[k] * b1[k] - a12[k] * b2[k]) / det
                y[k] = (a11[k] * b2[k] - a12[k] * b1[k]) / det
    sxx = np.full(n_centres, np.nan)
    sxy = np.full(n_centres, np.nan)
    syy = np.full(n_centres, np.nan)
    red = np.ones(n_centres)
    for k in range(n_centres):
        det = a11[k] * a22[k] - a12[k] * a12[k]
        if det > 0:
            sxx[k] = a22[k] / det
            sxy[k] = -a12[k] / det
            syy[k] = a11[k] / det
        if dof[k] > 2.0:
            red[k] = chi[k] / (dof[k] - 2.0)
    return x, y, sxx, sxy, syy, red, n_trips


@jit
def reassign(cls, ox, oy, b, sb, r, sr, cx, cy, ccls, alive, cell_m, reach_m, ray_m, gate2, floor_m):
    """Each observation to the best live centre of its class within the gate, or -1."""
    head, nxt, mask = _index(cx, cy, alive, cell_m)
    labels = np.full(ox.shape[0], EMPTY, dtype=np.int64)
    for i in range(ox.shape[0]):
        labels[i] = _nearest_centre(i, cls, ox, oy, b, sb, r, sr, cx, cy, ccls, head, nxt, mask, cell_m, reach_m,
                                    ray_m, gate2, floor_m)
    return labels
