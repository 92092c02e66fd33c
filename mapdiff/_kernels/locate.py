"""Tracks within a trip, points per track, and their fusion into objects.

An observation is an observer position ``(ox, oy)``, a bearing ``b`` (radians, clockwise from
north) with sigma ``sb``, and a range ``r`` with sigma ``sr`` (NaN when unknown). Its end point
``o + r (sin b, cos b)`` is uncertain by ``sr`` along the ray and ``r sb`` across it.
A point is a position with a 2x2 covariance ``(pxx, pxy, pyy)``. Centres live in a hashed grid of
cells, so every step is linear in the observations.
"""

from collections import namedtuple

import numpy as np

from mapdiff._kernels import jit, jit_inline

EMPTY = -1

#: observations as rays: observer ``(ox, oy)``, bearing ``b`` with its unit vector ``(ux, uy)`` =
#: ``(sin b, cos b)`` (worked out once: the kernels visit each ray several times), bearing sigma
#: ``sb``, range ``r`` and its sigma ``sr`` (NaN: no range)
Rays = namedtuple("Rays", ["ox", "oy", "b", "ux", "uy", "sb", "r", "sr"])


@jit
def _cell(x, y, cell_m):
    return np.int64(np.floor(x / cell_m)), np.int64(np.floor(y / cell_m))


@jit
def _hash(ix, iy, mask):
    return ((ix * 73856093) ^ (iy * 19349663)) & mask


@jit
def _gate2(dx, dy, ux, uy, sb, r, sr, cxx, cxy, cyy, floor_m):
    """Squared normalised distance of a point (covariance ``cxx, cxy, cyy``) at ``(dx, dy)`` from
    an observer, from that observer's ray (unit vector ``(ux, uy)``, bearing sigma ``sb``; range
    ``r`` with sigma ``sr``, NaN: none), with ``floor_m`` added to both sigmas. (Scalars only: a
    helper handed the tuple of ray arrays moves every array's reference count on each call; with
    this and :func:`_ray_terms` taking scalars, :func:`build_tracks` took 0.14 s instead of 0.26 s
    on the 1 M observations of ``benchmarks/locate.py``, best of 3.)"""
    along = dx * ux + dy * uy
    across = dx * uy - dy * ux
    if along <= 0.0:
        return np.inf
    # the point's variance across the ray (normal (uy, -ux)) and along it
    v_across = uy * uy * cxx - 2.0 * ux * uy * cxy + ux * ux * cyy
    v_along = ux * ux * cxx + 2.0 * ux * uy * cxy + uy * uy * cyy
    g = across**2 / ((max(along, 1.0) * sb) ** 2 + v_across + floor_m**2)
    if not np.isnan(r):
        g += (along - r) ** 2 / (sr**2 + v_along + floor_m**2)
    return g


@jit
def _solve2(a11, a12, a22, b1, b2):
    """Solution of the 2x2 normal equations, or NaNs when they are ill-conditioned."""
    det = a11 * a22 - a12 * a12
    if not (det > 1e-9 * (a11 + a22) ** 2 and det > 0):
        return np.nan, np.nan
    return (a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det


@jit_inline
def _frame_end(order, trip, t, s):
    """One past the last of the observations from ``s`` on that share its trip and time."""
    e = s + 1
    while e < order.shape[0] and trip[order[e]] == trip[order[s]] and t[order[e]] == t[order[s]]:
        e += 1
    return e


@jit_inline
def _still_active(active, n_active, last_t, now, gap_s):
    """Keep, in order, those of the first ``n_active`` tracks of ``active`` seen within
    ``gap_s`` before ``now``; returns how many."""
    keep = 0
    for q in range(n_active):
        if now - last_t[active[q]] <= gap_s:
            active[keep] = active[q]
            keep += 1
    return keep


@jit_inline
def _mark_copies(order, s, e, same, cls, ox, oy, b, r):
    """An observation the frame already has (a row given twice: same class, observer, bearing
    and range) goes where its first copy goes: ``same`` of the copy is set to it."""
    for q in range(s + 1, e):
        i = order[q]
        for q2 in range(s, q):
            j = order[q2]
            if (same[j] == EMPTY and cls[j] == cls[i] and b[j] == b[i] and ox[j] == ox[i] and oy[j] == oy[i]
                    and (r[j] == r[i] or (np.isnan(r[j]) and np.isnan(r[i])))):
                same[i] = j
                break


@jit_inline
def _assign_best_first(pg, pi, pk, n_pair, track):
    """Pairs (observation ``pi``, track ``pk``) taken best (smallest ``pg``) first: each
    observation to one track, each track one observation."""
    if n_pair == 1:  # most frames (a frame sees one or two objects): no sort, no allocation
        if track[pi[0]] == EMPTY:
            track[pi[0]] = pk[0]
        return
    taken = np.zeros(n_pair, dtype=np.bool_)
    by_g = np.argsort(pg[:n_pair])
    for p in by_g:
        i, k = pi[p], pk[p]
        if track[i] != EMPTY or taken[p]:
            continue
        track[i] = k
        for p2 in range(n_pair):
            if pk[p2] == k:
                taken[p2] = True


@jit
def _ray_terms(ox, oy, ux, uy, sb, r, sr, tx, ty, floor_m):
    """What a ray (observer ``ox, oy``, unit vector ``ux, uy``, bearing sigma ``sb``, range ``r``
    with sigma ``sr``, NaN: none) adds to a track's normal equations (a11, a12, a22, b1, b2),
    given the track's point ``tx, ty`` (NaN: none yet) for the distance of a ray without range."""
    nx, ny = uy, -ux
    dist = r if not np.isnan(r) else (np.hypot(tx - ox, ty - oy) if not np.isnan(tx) else 20.0)
    w = 1.0 / ((max(dist, 1.0) * sb) ** 2 + floor_m**2)
    c = nx * ox + ny * oy
    d11, d12, d22, e1, e2 = w * nx * nx, w * nx * ny, w * ny * ny, w * nx * c, w * ny * c
    if not np.isnan(r):
        w = 1.0 / (sr**2 + floor_m**2)
        c = ux * ox + uy * oy + r
        d11 += w * ux * ux
        d12 += w * ux * uy
        d22 += w * uy * uy
        e1 += w * ux * c
        e2 += w * uy * c
    return d11, d12, d22, e1, e2


@jit
def build_tracks(order, trip, t, cls, rays, gap_s, gate2, floor_m, turn_deg):
    """Chain each trip's observations of one object into a track.

    ``order`` sorts the observations by trip then time; within a frame (one trip, one time) each
    observation joins the track of its class whose current point fits it best (within ``gate2``;
    a track takes one observation per frame and ends after ``gap_s`` seconds unseen) or starts a
    new one. A track's point is the least-squares fit of its rays and ranges so far; a track
    without one (bearing-only rays that do not yet meet) takes a ray within ``turn_deg`` of its
    last. An observation the frame already has (same class, observer, bearing and range) follows
    its first copy. Returns the track of each observation, each track's first and last
    observation, and for each copy the observation it copies (-1: none).
    """
    n = order.shape[0]
    track = np.full(rays.ox.shape[0], EMPTY, dtype=np.int64)
    same = np.full(rays.ox.shape[0], EMPTY, dtype=np.int64)
    ox, oy, b, ux, uy, sb, r, sr = rays
    # per track: its normal equations (a11, a12, a22, b1, b2), point, last time and bearing
    a11, a12, a22, b1, b2 = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    tx, ty = np.full(n, np.nan), np.full(n, np.nan)
    last_t, last_b = np.zeros(n), np.zeros(n)
    t_cls = np.zeros(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    last = np.empty(n, dtype=np.int64)
    active = np.empty(n, dtype=np.int64)
    cap = 64
    pg = np.empty(cap)
    pi = np.empty(cap, dtype=np.int64)
    pk = np.empty(cap, dtype=np.int64)
    n_active = 0
    m = 0
    turn = np.radians(turn_deg)

    s = 0
    while s < n:
        e = _frame_end(order, trip, t, s)
        now = t[order[s]]
        if s > 0 and trip[order[s]] != trip[order[s - 1]]:
            n_active = 0
        n_active = _still_active(active, n_active, last_t, now, gap_s)
        _mark_copies(order, s, e, same, cls, ox, oy, b, r)
        # candidate pairs (observation, track) in the gate
        n_pair = 0
        if (e - s) * n_active > cap:
            cap = 2 * (e - s) * n_active
            pg = np.empty(cap)
            pi = np.empty(cap, dtype=np.int64)
            pk = np.empty(cap, dtype=np.int64)
        for q in range(s, e):
            i = order[q]
            for a in range(n_active if same[i] == EMPTY else 0):
                k = active[a]
                if t_cls[k] != cls[i]:
                    continue
                if np.isnan(tx[k]):  # bearing-only rays that do not yet meet: a ray near the last
                    d = abs((b[i] - last_b[k] + np.pi) % (2 * np.pi) - np.pi)
                    g = 0.0 if d <= turn and np.isnan(r[i]) else np.inf
                else:
                    det = a11[k] * a22[k] - a12[k] * a12[k]
                    g = _gate2(tx[k] - ox[i], ty[k] - oy[i], ux[i], uy[i], sb[i], r[i], sr[i], a22[k] / det,
                               -a12[k] / det, a11[k] / det, floor_m)
                if g <= gate2:
                    pg[n_pair], pi[n_pair], pk[n_pair] = g, i, k
                    n_pair += 1
        _assign_best_first(pg, pi, pk, n_pair, track)
        for q in range(s, e):
            i = order[q]
            if same[i] != EMPTY:
                continue
            if track[i] == EMPTY:
                track[i], t_cls[m], first[m] = m, cls[i], i
                active[n_active] = m
                n_active += 1
                m += 1
            k = track[i]
            d11, d12, d22, e1, e2 = _ray_terms(ox[i], oy[i], ux[i], uy[i], sb[i], r[i], sr[i], tx[k], ty[k], floor_m)
            a11[k] += d11
            a12[k] += d12
            a22[k] += d22
            b1[k] += e1
            b2[k] += e2
            tx[k], ty[k] = _solve2(a11[k], a12[k], a22[k], b1[k], b2[k])
            last_t[k], last_b[k], last[k] = now, b[i], i
        for q in range(s, e):
            if same[order[q]] != EMPTY:
                track[order[q]] = track[same[order[q]]]
        s = e
    return track, first[:m].copy(), last[:m].copy(), same


@jit
def _row_keys(x, y, x0, y0, cell, nx):
    """Each point's cell as one number, row after row (``nx`` cells a row, a column of margin on
    each side so that no row wraps): the keys that :func:`pairs_within` and :func:`trips_near`
    sort by and search three rows of."""
    key = np.empty(x.shape[0], dtype=np.int64)
    for i in range(x.shape[0]):
        key[i] = (np.int64((y[i] - y0) / cell) + 1) * nx + np.int64((x[i] - x0) / cell) + 1
    return key


@jit_inline
def _first_at_least(a, lo, hi, v):
    """The first index in ``lo..hi`` of the sorted ``a`` whose value is at least ``v`` (``hi``:
    none). (In the kernel's loop: ``np.searchsorted`` of a slice moves its reference count.)"""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit_inline
def _sort_few(a, lo, hi):
    """Sort ``a[lo:hi]`` in place: by insertion when they are few (a point's neighbours, mostly),
    where ``np.sort`` would allocate; by ``np.sort`` when they are many (a month's passes by one
    sign), where insertion would take their square."""
    if hi - lo > 32:
        a[lo:hi] = np.sort(a[lo:hi])
        return
    for q in range(lo + 1, hi):
        v = a[q]
        p = q - 1
        while p >= lo and a[p] > v:
            a[p + 1] = a[p]
            p -= 1
        a[p + 1] = v


@jit
def pairs_within(x, y, group, reach_m):
    """Index pairs (i, j), i < j, of the points within ``reach_m`` of each other (distance <=
    reach) in the same ``group`` (numbers 0, 1, ...), ordered by i, then j. The points are sorted
    by group, then by cell (of ``reach_m``); each looks in the three rows of cells around its
    own within its group's range, found by binary search: no grid of the extent is allocated,
    and a place where thousands of other groups' points lie (a month's passes by one sign)
    costs nothing."""
    n = x.shape[0]
    if n < 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    x0, y0 = x.min(), y.min()
    cell = max(reach_m, 1e-9)
    nx = np.int64((x.max() - x0) / cell) + 3
    key = _row_keys(x, y, x0, y0, cell, nx)
    by_key = np.argsort(key, kind="mergesort")
    order = by_key[np.argsort(group[by_key], kind="mergesort")]
    sorted_key = key[order]
    gptr = np.zeros(group.max() + 2, dtype=np.int64)
    for i in range(n):
        gptr[group[i] + 1] += 1
    for g in range(gptr.shape[0] - 1):
        gptr[g + 1] += gptr[g]
    out_i = np.empty(4 * n + 16, dtype=np.int64)
    out_j = np.empty(4 * n + 16, dtype=np.int64)
    m = 0
    r2 = reach_m * reach_m
    for i in range(n):
        start = m
        g0, g1 = gptr[group[i]], gptr[group[i] + 1]
        for row in range(-1, 2):
            centre = key[i] + row * nx
            lo = _first_at_least(sorted_key, g0, g1, centre - 1)
            hi = _first_at_least(sorted_key, lo, g1, centre + 2)
            for q in range(lo, hi):
                j = order[q]
                if j <= i:
                    continue
                dx, dy = x[j] - x[i], y[j] - y[i]
                if dx * dx + dy * dy <= r2:
                    if m == out_i.shape[0]:
                        out_i = np.concatenate((out_i, np.empty(m, dtype=np.int64)))
                        out_j = np.concatenate((out_j, np.empty(m, dtype=np.int64)))
                    out_i[m], out_j[m] = i, j
                    m += 1
        _sort_few(out_j, start, m)
    return out_i[:m], out_j[:m]


@jit
def trips_near(query, points, reach_m, cos_side):
    """Per query point, the number of distinct trips among the points within ``reach_m`` of it
    that travelled its way. ``query``: (x, y, ux, uy), the direction a unit vector, or (0, 0)
    for any; ``points``: (x, y, ux, uy, trip), trips numbered 0, 1, ...; a point travelled the
    query's way where the cosine between their directions is at least ``cos_side`` (a point
    without a direction, NaN, travelled none). The points are sorted by cell (of ``reach_m``); a
    query looks in the three rows of cells around its own, found by binary search, and marks
    each trip it counts with its own index, so no set is built."""
    qx, qy, qux, quy = query
    px, py, pux, puy, ptrip = points
    n_q = qx.shape[0]
    out = np.zeros(n_q, dtype=np.int64)
    n = px.shape[0]
    if n == 0 or n_q == 0:
        return out
    x0, y0 = min(px.min(), qx.min()), min(py.min(), qy.min())
    x1 = max(px.max(), qx.max())
    cell = max(reach_m, 1e-9)
    nx = np.int64((x1 - x0) / cell) + 3
    key = _row_keys(px, py, x0, y0, cell, nx)
    order = np.argsort(key, kind="mergesort")
    sorted_key = key[order]
    own = _row_keys(qx, qy, x0, y0, cell, nx)
    mark = np.full(ptrip.max() + 1, -1, dtype=np.int64)
    r2 = reach_m * reach_m
    for q in range(n_q):
        any_way = qux[q] == 0.0 and quy[q] == 0.0
        for row in range(-1, 2):
            centre = own[q] + row * nx
            lo = np.searchsorted(sorted_key, centre - 1)
            hi = np.searchsorted(sorted_key, centre + 1, side="right")
            for k in range(lo, hi):
                j = order[k]
                if mark[ptrip[j]] == q:
                    continue
                if not any_way and not pux[j] * qux[q] + puy[j] * quy[q] >= cos_side:
                    continue
                dx, dy = px[j] - qx[q], py[j] - qy[q]
                if dx * dx + dy * dy <= r2:
                    mark[ptrip[j]] = q
                    out[q] += 1
    return out


@jit
def trip_share(labels, trip, n_groups):
    """Per member: 1 / (members of its trip in its group), so that each trip weighs as one (a
    trip's members share its pose error), and per group the number of trips. One pass over a
    hash table of (group, trip), not a sort."""
    n = labels.shape[0]
    keys, count = _trip_table(n)
    count[:] = 0
    slot = np.full(n, EMPTY, dtype=np.int64)
    n_trips = np.zeros(n_groups, dtype=np.int64)
    for i in range(n):
        if labels[i] < 0:
            continue
        h = _slot(keys, labels[i], trip[i])
        if keys[h, 0] == EMPTY:
            keys[h, 0], keys[h, 1] = labels[i], trip[i]
            n_trips[labels[i]] += 1
        count[h] += 1
        slot[i] = h
    share = np.zeros(n)
    for i in range(n):
        if slot[i] != EMPTY:
            share[i] = 1.0 / count[slot[i]]
    return share, n_trips


@jit
def solve(labels, n_centres, cx, cy, rays, huber_k, rounds):
    """Robust weighted least squares of each group's position from its observations: bearing
    (across the ray, sigma = distance x sb) and range (along it, sigma sr scaled from the range
    read to the fitted distance: the error is relative), Huber down-weighting
    of residuals beyond ``huber_k`` sigmas, ``rounds`` times, starting from (cx, cy).

    Returns x, y (NaN where the rays do not fix a point), the covariance (sxx, sxy, syy) and the
    reduced chi-square per group."""
    x = cx.copy()
    y = cy.copy()
    a11 = np.zeros(n_centres)
    a12 = np.zeros(n_centres)
    a22 = np.zeros(n_centres)
    b1 = np.zeros(n_centres)
    b2 = np.zeros(n_centres)
    chi = np.zeros(n_centres)
    dof = np.zeros(n_centres)
    ox, oy, sb, r, sr = rays.ox, rays.oy, rays.sb, rays.r, rays.sr
    for _ in range(rounds):
        a11[:] = 0.0
        a12[:] = 0.0
        a22[:] = 0.0
        b1[:] = 0.0
        b2[:] = 0.0
        chi[:] = 0.0
        dof[:] = 0.0
        for i in range(labels.shape[0]):
            k = labels[i]
            if k < 0:
                continue
            ux, uy = rays.ux[i], rays.uy[i]
            nx, ny = uy, -ux
            dx, dy = x[k] - ox[i], y[k] - oy[i]
            along = dx * ux + dy * uy
            s_across = max(abs(along), 1.0) * sb[i]
            # across the ray: n . p = n . o
            res = (dx * nx + dy * ny) / s_across
            w = 1.0 / s_across**2
            if abs(res) > huber_k:
                w *= huber_k / abs(res)
            a11[k] += w * nx * nx
            a12[k] += w * nx * ny
            a22[k] += w * ny * ny
            c = nx * ox[i] + ny * oy[i]
            b1[k] += w * nx * c
            b2[k] += w * ny * c
            chi[k] += min(res * res, huber_k * huber_k)
            dof[k] += 1.0
            if not np.isnan(r[i]):
                # the range's error is relative: its sigma scales with the true distance, taken
                # here as the fitted one (a sigma scaled with the measured range would weigh the
                # short readings more and pull every estimate towards the camera)
                s_along = sr[i] * max(along, 1.0) / max(r[i], 1.0)
                res = (along - r[i]) / s_along
                w = 1.0 / s_along**2
                if abs(res) > huber_k:
                    w *= huber_k / abs(res)
                a11[k] += w * ux * ux
                a12[k] += w * ux * uy
                a22[k] += w * uy * uy
                c = ux * ox[i] + uy * oy[i] + r[i]
                b1[k] += w * ux * c
                b2[k] += w * uy * c
                chi[k] += min(res * res, huber_k * huber_k)
                dof[k] += 1.0
        for k in range(n_centres):
            x[k], y[k] = _solve2(a11[k], a12[k], a22[k], b1[k], b2[k])
    sxx = np.full(n_centres, np.nan)
    sxy = np.full(n_centres, np.nan)
    syy = np.full(n_centres, np.nan)
    red = np.ones(n_centres)
    for k in range(n_centres):
        det = a11[k] * a22[k] - a12[k] * a12[k]
        if not np.isnan(x[k]):
            sxx[k] = a22[k] / det
            sxy[k] = -a12[k] / det
            syy[k] = a11[k] / det
        if dof[k] > 2.0:
            red[k] = chi[k] / (dof[k] - 2.0)
    return x, y, sxx, sxy, syy, red


@jit
def track_sums(track, n, rays, extra_var):
    """Per track (``track``: each ray's, -1: none; ``n`` tracks) the number of its rays and the
    sums over them, in rows: end point x and y (20 m along a ray without a range), ``extra_var``,
    rays with a range, unit vector x and y, observer x and y."""
    n_rays = np.zeros(n, dtype=np.int64)
    sums = np.zeros((8, n))
    for i in range(track.shape[0]):
        k = track[i]
        if k < 0:
            continue
        dist = 20.0 if np.isnan(rays.r[i]) else rays.r[i]
        n_rays[k] += 1
        sums[0, k] += rays.ox[i] + dist * rays.ux[i]
        sums[1, k] += rays.oy[i] + dist * rays.uy[i]
        sums[2, k] += extra_var[i]
        sums[3, k] += 1.0 if np.isfinite(rays.r[i]) else 0.0
        sums[4, k] += rays.ux[i]
        sums[5, k] += rays.uy[i]
        sums[6, k] += rays.ox[i]
        sums[7, k] += rays.oy[i]
    return n_rays, sums


@jit
def track_spread(track, x, y, rays):
    """Per track, the sum of its rays' squared distances from its point ``(x, y)`` (NaN where it
    has none), and whether its point lies behind one of its observers."""
    n = x.shape[0]
    dist2 = np.zeros(n)
    behind = np.zeros(n, dtype=np.bool_)
    for i in range(track.shape[0]):
        k = track[i]
        if k < 0:
            continue
        dx, dy = x[k] - rays.ox[i], y[k] - rays.oy[i]
        dist2[k] += dx * dx + dy * dy
        if dx * rays.ux[i] + dy * rays.uy[i] < 0.0:
            behind[k] = True
    return dist2, behind


@jit
def track_ends(track, t, n):
    """Each of the ``n`` tracks' first and last ray in time (ties: the first and the last in
    index order)."""
    first = np.full(n, EMPTY, dtype=np.int64)
    last = np.full(n, EMPTY, dtype=np.int64)
    for i in range(track.shape[0]):
        k = track[i]
        if k < 0:
            continue
        if first[k] == EMPTY or t[i] < t[first[k]]:
            first[k] = i
        if last[k] == EMPTY or t[i] >= t[last[k]]:
            last[k] = i
    return first, last


@jit
def group_rows(key, seq, n):
    """The rows ``seq`` grouped by their ``key`` (0..n-1; -1 left out), each group in ``seq``'s
    order (a counting sort): (ptr, rows), group k's rows ``rows[ptr[k]:ptr[k + 1]]``."""
    ptr = np.zeros(n + 1, dtype=np.int64)
    for q in range(seq.shape[0]):
        k = key[seq[q]]
        if k >= 0:
            ptr[k + 1] += 1
    for k in range(n):
        ptr[k + 1] += ptr[k]
    at = ptr[:-1].copy()
    rows = np.empty(ptr[n], dtype=np.int64)
    for q in range(seq.shape[0]):
        k = key[seq[q]]
        if k >= 0:
            rows[at[k]] = seq[q]
            at[k] += 1
    return ptr, rows


#: a scale mixture of two normals of the squared normalised residuals (see
#: ``mapdiff.locate._tail_model``): tail weight, core and tail variance factors
Mixture = namedtuple("Mixture", ["tail", "core_var", "tail_var"])


@jit
def _mixture_score(g, logdet, n_trips, mix):
    """Log of an object's trips times the mixture's density of a track at squared normalised
    distance ``g`` (covariance of log-determinant ``logdet``)."""
    dens = ((1.0 - mix.tail) * np.exp(-g / (2.0 * mix.core_var)) / mix.core_var
            + mix.tail * np.exp(-g / (2.0 * mix.tail_var)) / mix.tail_var)
    return np.log(max(dens, 1e-300)) - 0.5 * logdet + np.log(n_trips)


@jit
def best_objects(tracks, points, objects, n_trips, reach_m, mix):
    """For each of ``tracks`` (indices into ``points``: px, py, pxx, pxy, pyy, cls), the object
    of its class within ``reach_m`` (``objects``: x, y, xx, xy, yy, cls; ``n_trips`` > 0) of
    the best :func:`_mixture_score` (-1: none within reach; ties: the lowest object). Objects are
    found through a hashed grid of cells of ``reach_m``."""
    px, py, pxx, pxy, pyy, pcls = points
    x, y, sxx, sxy, syy, ocls = objects
    n_obj = x.shape[0]
    size = 1
    while size < 2 * n_obj + 2:
        size *= 2
    mask = size - 1
    head = np.full(size, EMPTY, dtype=np.int64)
    nxt = np.full(n_obj, EMPTY, dtype=np.int64)
    for j in range(n_obj - 1, -1, -1):  # (each bucket lists its objects lowest first)
        ix, iy = _cell(x[j], y[j], reach_m)
        h = _hash(ix, iy, mask)
        nxt[j] = head[h]
        head[h] = j
    best = np.full(tracks.shape[0], EMPTY, dtype=np.int64)
    r2 = reach_m * reach_m
    for q in range(tracks.shape[0]):
        i = tracks[q]
        ix, iy = _cell(px[i], py[i], reach_m)
        best_s = -np.inf
        for gx in range(ix - 1, ix + 2):
            for gy in range(iy - 1, iy + 2):
                j = head[_hash(gx, gy, mask)]
                while j != EMPTY:
                    dx, dy = px[i] - x[j], py[i] - y[j]
                    if ocls[j] == pcls[i] and dx * dx + dy * dy <= r2:
                        cxx, cxy, cyy = pxx[i] + sxx[j], pxy[i] + sxy[j], pyy[i] + syy[j]
                        score = _mixture_score(_mahal2(dx, dy, cxx, cxy, cyy), np.log(cxx * cyy - cxy * cxy),
                                               n_trips[j], mix)
                        if score > best_s or (score == best_s and j < best[q]):
                            best_s = score
                            best[q] = j
                    j = nxt[j]
    return best


@jit
def _mahal2(dx, dy, cxx, cxy, cyy):
    det = cxx * cyy - cxy * cxy
    return (cyy * dx * dx - 2.0 * cxy * dx * dy + cxx * dy * dy) / det


@jit
def _unlink(head, nxt, h, k):
    """Take centre k out of bucket h's list."""
    if head[h] == k:
        head[h] = nxt[k]
        return
    p = head[h]
    while nxt[p] != k:
        p = nxt[p]
    nxt[p] = nxt[k]


#: one pass's tracks: the trip, the time span (t0, t1) and the frames each was seen in (the
#: times ``frame_t[frame_ptr[k]:frame_ptr[k + 1]]`` of track k, sorted)
Passes = namedtuple("Passes", ["trip", "t0", "t1", "frame_ptr", "frame_t"])


@jit
def share_frame(a, b, passes):
    """Whether tracks a and b were seen in one frame of one trip (a pass sees two objects
    there); tracks of one pass whose frames interleave but never coincide may be one object's,
    split by a noisy frame."""
    if passes.trip[a] != passes.trip[b] or passes.t0[a] > passes.t1[b] or passes.t0[b] > passes.t1[a]:
        return False
    ptr, ft = passes.frame_ptr, passes.frame_t
    i, j = ptr[a], ptr[b]
    while i < ptr[a + 1] and j < ptr[b + 1]:
        if ft[i] == ft[j]:
            return True
        if ft[i] < ft[j]:
            i += 1
        else:
            j += 1
    return False


@jit
def share_frames(a, b, passes):
    """``share_frame`` for each pair (a[k], b[k])."""
    out = np.empty(a.shape[0], dtype=np.bool_)
    for k in range(a.shape[0]):
        out[k] = share_frame(a[k], b[k], passes)
    return out


@jit
def _seen_together(i, j, prev, passes):
    """Whether point i shares a frame with one of the points chained from j."""
    while j != EMPTY:
        if share_frame(i, j, passes):
            return True
        j = prev[j]
    return False


@jit
def _trip_table(n):
    """An empty table of (centre, trip) -> last point for ``n`` points (see :func:`_slot`)."""
    size = 1
    while size < 2 * n + 2:
        size *= 2
    return np.full((size, 2), EMPTY, dtype=np.int64), np.full(size, EMPTY, dtype=np.int64)


@jit
def _remember(keys, last_point, prev, centre, trip, i):
    """Point ``i`` of ``trip`` joined ``centre``: it becomes the pair's last, the one before
    chained in ``prev``."""
    h = _slot(keys, centre, trip)
    keys[h, 0], keys[h, 1] = centre, trip
    prev[i] = last_point[h]
    last_point[h] = i


@jit
def _slot(keys, centre, trip):
    """The slot of (centre, trip) in the open-addressing table ``keys`` (rows: centre, trip;
    -1: free): where it is, or the free slot where it goes."""
    mask = keys.shape[0] - 1
    h = ((centre * 73856093) ^ (trip * 19349663)) & mask
    while keys[h, 0] != EMPTY and (keys[h, 0] != centre or keys[h, 1] != trip):
        h = (h + 1) & mask
    return h


@jit
def cluster(order, px, py, pxx, pxy, pyy, pcls, passes, cx, cy, cxx, cxy, cyy, ccls, cell_m, reach_m, gate2, floor_m):
    """Leader clustering of points with covariances.

    The given centres stay where they are; each point, in ``order``, joins the centre of its
    class within ``reach_m`` (more for a point whose gate reaches further) whose Mahalanobis
    distance (point covariance + centre covariance + ``floor_m`` squared) is smallest and within
    ``gate2``, or starts a new centre, which then
    moves to the information-weighted mean of the points that join it. A centre takes no point
    that shares a frame of its pass (``passes``) with one it holds already: what one pass sees
    at once are different objects.
    Returns the label of each point and the centres (x, y, covariance, class), given ones first.
    """
    n0 = cx.shape[0]
    cap = max(2 * n0, 1024)
    x = np.empty(cap)
    y = np.empty(cap)
    vxx = np.empty(cap)
    vxy = np.empty(cap)
    vyy = np.empty(cap)
    c_cls = np.empty(cap, dtype=np.int64)
    # information sums of new centres: i11, i12, i22, j1, j2 (-1 in i11: a given centre)
    info = np.zeros((cap, 5))
    x[:n0], y[:n0], c_cls[:n0] = cx, cy, ccls
    vxx[:n0], vxy[:n0], vyy[:n0] = cxx, cxy, cyy
    info[:n0, 0] = -1.0
    size = 1
    while size < 4 * (px.shape[0] + n0) + 2:
        size *= 2
    mask = size - 1
    head = np.full(size, EMPTY, dtype=np.int64)
    nxt = np.full(cap, EMPTY, dtype=np.int64)
    filed = np.empty(cap, dtype=np.int64)  # the bucket each centre is in
    for k in range(n0):
        ix, iy = _cell(x[k], y[k], cell_m)
        h = _hash(ix, iy, mask)
        nxt[k] = head[h]
        head[h] = k
        filed[k] = h
    m = n0
    labels = np.full(px.shape[0], EMPTY, dtype=np.int64)
    # per (centre, trip) the last point it took of that trip, earlier ones chained in ``prev``:
    # only points of one trip can share a frame, so a point is checked against those alone
    # (against every point a centre holds, the check grew with the square of the trips)
    last, last_point = _trip_table(px.shape[0])
    prev = np.full(px.shape[0], EMPTY, dtype=np.int64)
    f2 = floor_m**2
    for q in range(order.shape[0]):
        i = order[q]
        ix, iy = _cell(px[i], py[i], cell_m)
        # a vague point (a far, narrow box) may reach as far as its gate: up to 4 x reach_m
        half = 0.5 * (pxx[i] - pyy[i])
        major2 = 0.5 * (pxx[i] + pyy[i]) + np.sqrt(half * half + pxy[i] * pxy[i]) + f2
        reach = min(max(reach_m, np.sqrt(gate2 * major2)), 4.0 * reach_m)
        n_reach = int(np.ceil(reach / cell_m))
        best, best_g = EMPTY, gate2
        for gx in range(ix - n_reach, ix + n_reach + 1):
            for gy in range(iy - n_reach, iy + n_reach + 1):
                k = head[_hash(gx, gy, mask)]
                while k != EMPTY:
                    if c_cls[k] == pcls[i]:
                        dx, dy = px[i] - x[k], py[i] - y[k]
                        if dx * dx + dy * dy <= reach * reach:
                            g = _mahal2(dx, dy, pxx[i] + vxx[k] + f2, pxy[i] + vxy[k], pyy[i] + vyy[k] + f2)
                            if g < best_g and not _seen_together(i, last_point[_slot(last, k, passes.trip[i])],
                                                                 prev, passes):
                                best_g = g
                                best = k
                    k = nxt[k]
        det = pxx[i] * pyy[i] - pxy[i] * pxy[i]
        w11, w12, w22 = pyy[i] / det, -pxy[i] / det, pxx[i] / det
        if best == EMPTY:
            if m == cap:
                cap *= 2
                x = np.concatenate((x, np.empty(cap - m)))
                y = np.concatenate((y, np.empty(cap - m)))
                vxx = np.concatenate((vxx, np.empty(cap - m)))
                vxy = np.concatenate((vxy, np.empty(cap - m)))
                vyy = np.concatenate((vyy, np.empty(cap - m)))
                c_cls = np.concatenate((c_cls, np.empty(cap - m, dtype=np.int64)))
                info = np.concatenate((info, np.zeros((cap - m, 5))))
                nxt = np.concatenate((nxt, np.full(cap - m, EMPTY, dtype=np.int64)))
                filed = np.concatenate((filed, np.empty(cap - m, dtype=np.int64)))
            best = m
            c_cls[m] = pcls[i]
            h = _hash(ix, iy, mask)
            nxt[m] = head[h]
            head[h] = m
            filed[m] = h
            m += 1
        labels[i] = best
        _remember(last, last_point, prev, best, passes.trip[i], i)
        if info[best, 0] >= 0.0:
            s = info[best]
            s[0] += w11
            s[1] += w12
            s[2] += w22
            s[3] += w11 * px[i] + w12 * py[i]
            s[4] += w12 * px[i] + w22 * py[i]
            d = s[0] * s[2] - s[1] * s[1]
            vxx[best], vxy[best], vyy[best] = s[2] / d, -s[1] / d, s[0] / d
            x[best] = vxx[best] * s[3] + vxy[best] * s[4]
            y[best] = vxy[best] * s[3] + vyy[best] * s[4]
            gx, gy = _cell(x[best], y[best], cell_m)
            h = _hash(gx, gy, mask)
            if h != filed[best]:
                # the centre moved to another cell: re-file it there
                _unlink(head, nxt, filed[best], best)
                nxt[best] = head[h]
                head[h] = best
                filed[best] = h
    return labels, x[:m].copy(), y[:m].copy(), vxx[:m].copy(), vxy[:m].copy(), vyy[:m].copy(), c_cls[:m].copy()


@jit
def fuse(labels, n_centres, px, py, pxx, pxy, pyy, share, cx, cy, huber_k, rounds):
    """Robust information-weighted mean of each centre's points, each weighted by ``share``
    (a trip weighs as one), Huber down-weighting beyond ``huber_k`` sigmas, ``rounds`` times
    from (cx, cy). Returns x, y, the covariance (sxx, sxy, syy) and the reduced chi-square."""
    x = cx.copy()
    y = cy.copy()
    s = np.zeros((n_centres, 5))
    chi = np.zeros(n_centres)
    dof = np.zeros(n_centres)
    for _ in range(rounds):
        s[:] = 0.0
        chi[:] = 0.0
        dof[:] = 0.0
        for i in range(labels.shape[0]):
            k = labels[i]
            if k < 0:
                continue
            det = pxx[i] * pyy[i] - pxy[i] * pxy[i]
            w11, w12, w22 = pyy[i] / det, -pxy[i] / det, pxx[i] / det
            dx, dy = px[i] - x[k], py[i] - y[k]
            z = np.sqrt(_mahal2(dx, dy, pxx[i], pxy[i], pyy[i]))
            w = share[i]
            if z > huber_k:
                w *= huber_k / z
            s[k, 0] += w * w11
            s[k, 1] += w * w12
            s[k, 2] += w * w22
            s[k, 3] += w * (w11 * px[i] + w12 * py[i])
            s[k, 4] += w * (w12 * px[i] + w22 * py[i])
            chi[k] += share[i] * min(z * z, huber_k * huber_k) / 2.0
            dof[k] += share[i]
        for k in range(n_centres):
            if s[k, 0] > 0:
                x[k], y[k] = _solve2(s[k, 0], s[k, 1], s[k, 2], s[k, 3], s[k, 4])
    sxx = np.full(n_centres, np.nan)
    sxy = np.full(n_centres, np.nan)
    syy = np.full(n_centres, np.nan)
    red = np.ones(n_centres)
    for k in range(n_centres):
        d = s[k, 0] * s[k, 2] - s[k, 1] * s[k, 1]
        if d > 0:
            sxx[k], sxy[k], syy[k] = s[k, 2] / d, -s[k, 1] / d, s[k, 0] / d
        if dof[k] > 1.0:
            red[k] = chi[k] / (dof[k] - 1.0)
    return x, y, sxx, sxy, syy, red


@jit
def trip_offsets(order, trip, t, residuals, heading, window_s, prior):
    """Each track's pose offset: the residuals (``residuals`` = dx, dy and the inverse of their
    covariance wxx, wxy, wyy; 0 where unknown) of the other tracks of its trip within
    ``window_s`` seconds, combined by generalised least squares with a prior of none whose
    variances are ``prior`` = (along, across) the track's direction of travel (``heading`` =
    ux, uy; NaN where the observer stood still: the larger of the two, both ways). ``order``
    sorts the tracks by trip then time. Returns the offsets (x, y)."""
    dx, dy, wxx, wxy, wyy = residuals
    ux, uy = heading
    n = order.shape[0]
    ox = np.zeros(n)
    oy = np.zeros(n)
    still = 1.0 / max(prior[0], prior[1])
    s = 0
    while s < n:
        e = s + 1
        while e < n and trip[order[e]] == trip[order[s]]:
            e += 1
        lo = s
        hi = s
        # the window's sums: information (axx, axy, ayy) and information-weighted residuals
        axx = axy = ayy = bx = by = 0.0
        for q in range(s, e):
            k = order[q]
            # slide the window [t - window_s, t + window_s] over the trip's tracks
            while hi < e and t[order[hi]] <= t[k] + window_s:
                j = order[hi]
                axx += wxx[j]
                axy += wxy[j]
                ayy += wyy[j]
                bx += wxx[j] * dx[j] + wxy[j] * dy[j]
                by += wxy[j] * dx[j] + wyy[j] * dy[j]
                hi += 1
            while t[order[lo]] < t[k] - window_s:
                j = order[lo]
                axx -= wxx[j]
                axy -= wxy[j]
                ayy -= wyy[j]
                bx -= wxx[j] * dx[j] + wxy[j] * dy[j]
                by -= wxy[j] * dx[j] + wyy[j] * dy[j]
                lo += 1
            # leave the track itself out: its offset must come from the others
            cxx = axx - wxx[k]
            cxy = axy - wxy[k]
            cyy = ayy - wyy[k]
            rx = bx - (wxx[k] * dx[k] + wxy[k] * dy[k])
            ry = by - (wxy[k] * dx[k] + wyy[k] * dy[k])
            if np.isfinite(ux[k]):
                ia, ic = 1.0 / prior[0], 1.0 / prior[1]
                cxx += ia * ux[k] * ux[k] + ic * uy[k] * uy[k]
                cxy += (ia - ic) * ux[k] * uy[k]
                cyy += ia * uy[k] * uy[k] + ic * ux[k] * ux[k]
            else:
                cxx += still
                cyy += still
            det = cxx * cyy - cxy * cxy
            ox[k] = (cyy * rx - cxy * ry) / det
            oy[k] = (cxx * ry - cxy * rx) / det
        s = e
    return ox, oy
