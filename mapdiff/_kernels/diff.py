"""Kernels of the judgment: which directed edges see a point, and near pairs over a grid."""

import numpy as np

from mapdiff._kernels import jit
from mapdiff._kernels.geometry import cell_range

_MAX_VISIBLE = 128  # distinct (edge, direction) per point; more is a dense tangle, and enough
_MAX_CELLS = 16_000_000  # a pair grid's cells (128 MB of pointers) at most


@jit
def _seen_from_segment(ax, ay, bx, by, x, y, range_m, cot_fov, sign):
    """Whether a camera driving along segment A->B (``sign`` 1) or B->A (-1) has point (x, y)
    within ``range_m`` and within the half field of view whose cotangent is ``cot_fov`` (< 0:
    a half view of 90 degrees or more, taken as all round), at some point of the segment.

    Exact, in closed form: along the segment (t from A), the point is in range for t in
    [tp - w, tp + w] (tp: its projection, w = sqrt(R^2 - h^2), h: its distance from the line)
    and in view for t <= tp - h * cot (driving towards it) or t >= tp + h * cot (backwards)."""
    dx = bx - ax
    dy = by - ay
    length = np.sqrt(dx * dx + dy * dy)
    if length <= 0.0:
        return False
    ux = dx / length
    uy = dy / length
    px = x - ax
    py = y - ay
    tp = px * ux + py * uy
    h = abs(px * uy - py * ux)
    if h > range_m:
        return False
    w = np.sqrt(range_m * range_m - h * h)
    lo = max(0.0, tp - w)
    hi = min(length, tp + w)
    if lo > hi:
        return False
    if cot_fov < 0.0:
        return True
    # strictly ahead: a point within a millimetre of the segment's end is under the car, not in view
    if sign > 0:
        return lo <= tp - h * cot_fov and lo < tp - 1e-3
    return hi >= tp + h * cot_fov and hi > tp + 1e-3


@jit
def visible_edges(px, py, range_m, half_fov_rad, geom):
    """The directed edges from which each point is in a forward camera's view.

    A point is visible from edge e when, at some point along e, it lies within ``range_m``
    and within ``half_fov_rad`` of the driving direction (:func:`_seen_from_segment`). Each
    map segment is tried in its own direction and, for a one-way edge (it has a wrong-way
    twin), reversed: the second is reported with direction 1 (seen by cars driving against
    the edge).

    Returns (point, edge, direction) arrays, each (point, edge, direction) once.
    """
    _vx, _vy, _vcum, seg_edge, twin_of, _len, x0, y0, cell_m, nx, ny, cell_ptr, cell_seg, cell_xy = geom
    reach = range_m + cell_m * 0.7072
    cot_fov = np.cos(half_fov_rad) / np.sin(half_fov_rad) if half_fov_rad < np.pi / 2 else -1.0
    cap = max(16, px.shape[0] * 8)
    out_p = np.empty(cap, dtype=np.int64)
    out_e = np.empty(cap, dtype=np.int64)
    out_d = np.empty(cap, dtype=np.int8)
    n = 0
    seen_e = np.empty(_MAX_VISIBLE, dtype=np.int64)
    seen_d = np.empty(_MAX_VISIBLE, dtype=np.int8)
    for p in range(px.shape[0]):
        x = px[p]
        y = py[p]
        m = 0
        ix0, ix1, iy0, iy1 = cell_range(x, y, reach, x0, y0, cell_m, nx, ny)
        for iy in range(iy0, iy1 + 1):
            for ix in range(ix0, ix1 + 1):
                c = iy * nx + ix
                for j in range(cell_ptr[c], cell_ptr[c + 1]):
                    e = seg_edge[cell_seg[j]]
                    for direction in range(2):
                        if direction == 1 and twin_of[e] < 0:
                            break
                        known = False
                        for q in range(m):
                            if seen_e[q] == e and seen_d[q] == direction:
                                known = True
                                break
                        if known:
                            continue
                        sign = 1.0 if direction == 0 else -1.0
                        if not _seen_from_segment(cell_xy[j, 0], cell_xy[j, 1], cell_xy[j, 2], cell_xy[j, 3], x, y,
                                                  range_m, cot_fov, sign):
                            continue
                        if m < _MAX_VISIBLE:
                            seen_e[m] = e
                            seen_d[m] = direction
                            m += 1
                        if n == out_p.shape[0]:
                            out_p = np.concatenate((out_p, np.empty(cap, dtype=np.int64)))
                            out_e = np.concatenate((out_e, np.empty(cap, dtype=np.int64)))
                            out_d = np.concatenate((out_d, np.empty(cap, dtype=np.int8)))
                        out_p[n] = p
                        out_e[n] = e
                        out_d[n] = direction
                        n += 1
    return out_p[:n], out_e[:n], out_d[:n]


@jit
def _grid_of(pos, min_cell_m):
    """A uniform grid over the first positions (columns 0, 1) of ``pos``: cells of at least
    ``min_cell_m``, doubled until the extent needs at most two cells a point (and at most
    ``_MAX_CELLS``). Returns the origin
    (x0, y0), the cell size, nx, ny, and the points in cell order (``order``, cell c's from
    ``ptr[c]`` to ``ptr[c + 1]``)."""
    n = pos.shape[0]
    x0 = pos[:, 0].min() - 1.0
    y0 = pos[:, 1].min() - 1.0
    x1 = pos[:, 0].max()
    y1 = pos[:, 1].max()
    cell = min_cell_m
    # about two cells a point at most: clearing and summing the cells' pointers costs more than
    # the query's few extra points per cell (1 M points over 32 km x 32 km: 10 M cells of 5 m
    # took 0.15 s to build, 20x the query)
    cap = min(_MAX_CELLS, max(2 * n, 4096))
    while ((x1 - x0) / cell + 1.0) * ((y1 - y0) / cell + 1.0) > cap:
        cell *= 2.0
    nx = int((x1 - x0) / cell) + 1
    ny = int((y1 - y0) / cell) + 1
    ptr = np.zeros(nx * ny + 1, dtype=np.int64)
    cell_of = np.empty(n, dtype=np.int64)
    for j in range(n):
        cell_of[j] = int((pos[j, 1] - y0) / cell) * nx + int((pos[j, 0] - x0) / cell)
        ptr[cell_of[j] + 1] += 1
    for c in range(nx * ny):
        ptr[c + 1] += ptr[c]
    order = np.empty(n, dtype=np.int64)
    fill = ptr[:-1].copy()
    for j in range(n):
        order[fill[cell_of[j]]] = j
        fill[cell_of[j]] += 1
    return x0, y0, cell, nx, ny, ptr, order


@jit
def near_pairs(a_pos, a_group, b_pos, b_group, radius_m):
    """All (i, j, distance) with point i of set a and point j of set b in the same group within
    ``radius_m`` by the nearer of their two positions: ``*_pos`` columns (x, y, x2, y2), e.g.
    on a road's centre line and where the thing stands. Each pair once. Over a uniform grid on
    b's first position (cells of at least ``radius_m``; larger where the extent would need more
    than two a point: :func:`_grid_of`); the second positions are found by widening the query by the
    largest gap between b's two positions."""
    na = a_pos.shape[0]
    nb = b_pos.shape[0]
    if nb == 0 or na == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    x0, y0, cell, nx, ny, ptr, order = _grid_of(b_pos, radius_m)
    gap = 0.0
    for j in range(nb):
        gap = max(gap, np.hypot(b_pos[j, 2] - b_pos[j, 0], b_pos[j, 3] - b_pos[j, 1]))
    mark = np.full(nb, -1, dtype=np.int64)
    cap = na * 4 + 16
    out_i = np.empty(cap, dtype=np.int64)
    out_j = np.empty(cap, dtype=np.int64)
    out_d = np.empty(cap)
    n = 0
    r2 = radius_m * radius_m
    for i in range(na):
        for w in range(2):
            qx = a_pos[i, 2 * w]
            qy = a_pos[i, 2 * w + 1]
            reach = radius_m if w == 0 else radius_m + gap
            cx0, cx1, cy0, cy1 = cell_range(qx, qy, reach, x0, y0, cell, nx, ny)
            for yy in range(cy0, cy1 + 1):
                for xx in range(cx0, cx1 + 1):
                    c = yy * nx + xx
                    for q in range(ptr[c], ptr[c + 1]):
                        j = order[q]
                        if mark[j] == i or b_group[j] != a_group[i]:
                            continue
                        mark[j] = i
                        d2 = min((b_pos[j, 0] - a_pos[i, 0]) ** 2 + (b_pos[j, 1] - a_pos[i, 1]) ** 2,
                                 (b_pos[j, 2] - a_pos[i, 2]) ** 2 + (b_pos[j, 3] - a_pos[i, 3]) ** 2)
                        if d2 <= r2:
                            if n == out_i.shape[0]:
                                out_i = np.concatenate((out_i, np.empty(out_i.shape[0], dtype=np.int64)))
                                out_j = np.concatenate((out_j, np.empty(out_j.shape[0], dtype=np.int64)))
                                out_d = np.concatenate((out_d, np.empty(out_d.shape[0])))
                            out_i[n] = i
                            out_j[n] = j
                            out_d[n] = np.sqrt(d2)
                            n += 1
    return out_i[:n], out_j[:n], out_d[:n]


@jit
def cheapest(key, cost, n_keys):
    """Per candidate, whether it is the cheapest (the first on ties) of those sharing its key."""
    best = np.full(n_keys, -1, dtype=np.int64)
    for q in range(key.shape[0]):
        b = best[key[q]]
        if b < 0 or cost[q] < cost[b]:
            best[key[q]] = q
    out = np.zeros(key.shape[0], dtype=np.bool_)
    for k in range(n_keys):
        if best[k] >= 0:
            out[best[k]] = True
    return out


@jit
def along_edge(edge, px, py, vx, vy, vcum, vptr):
    """Where each point (px, py) falls along kernel edge ``edge`` (its own, per point): the
    offset of its nearest point on the edge's polyline and its distance from it."""
    n = edge.shape[0]
    s = np.empty(n)
    dist = np.empty(n)
    for q in range(n):
        e = edge[q]
        best = np.inf
        best_s = 0.0
        for k in range(vptr[e], vptr[e + 1] - 1):
            ax, ay = vx[k], vy[k]
            dx, dy = vx[k + 1] - ax, vy[k + 1] - ay
            l2 = dx * dx + dy * dy
            f = 0.0
            if l2 > 0.0:
                f = min(max(((px[q] - ax) * dx + (py[q] - ay) * dy) / l2, 0.0), 1.0)
            ex = ax + f * dx - px[q]
            ey = ay + f * dy - py[q]
            d2 = ex * ex + ey * ey
            if d2 < best:
                best = d2
                best_s = vcum[k] + f * np.sqrt(l2)
        s[q] = best_s
        dist[q] = np.sqrt(best)
    return s, dist
