"""Kernels of the judgment: which directed edges see a point, and near pairs over a grid."""

import numpy as np

from mapdiff._kernels import jit

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
    if sign > 0:
        return lo <= tp - h * cot_fov and lo < tp
    return hi >= tp + h * cot_fov and hi > tp


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
    vx, vy, vcum, seg_edge, twin_of, edge_len, x0, y0, cell_m, nx, ny, cell_ptr, cell_seg, cell_xy = geom
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
        ix0 = max(int(np.floor((x - reach - x0) / cell_m)), 0)
        ix1 = min(int(np.floor((x + reach - x0) / cell_m)), nx - 1)
        iy0 = max(int(np.floor((y - reach - y0) / cell_m)), 0)
        iy1 = min(int(np.floor((y + reach - y0) / cell_m)), ny - 1)
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
def near_pairs(ax, ay, a_group, bx, by, b_group, radius_m):
    """All (i, j, distance) with point i of set a and point j of set b in the same group and
    within ``radius_m``, over a uniform grid built on b (cells of at least ``radius_m``; larger
    when the extent would need more than ``_MAX_CELLS`` cells)."""
    if bx.shape[0] == 0 or ax.shape[0] == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    x0 = bx.min() - 1.0
    y0 = by.min() - 1.0
    cell = radius_m
    while ((bx.max() - x0) / cell + 1.0) * ((by.max() - y0) / cell + 1.0) > _MAX_CELLS:
        cell *= 2.0
    nx = int((bx.max() - x0) / cell) + 1
    ny = int((by.max() - y0) / cell) + 1
    ptr = np.zeros(nx * ny + 1, dtype=np.int64)
    cell_of = np.empty(bx.shape[0], dtype=np.int64)
    for j in range(bx.shape[0]):
        cell_of[j] = int((by[j] - y0) / cell) * nx + int((bx[j] - x0) / cell)
        ptr[cell_of[j] + 1] += 1
    for c in range(nx * ny):
        ptr[c + 1] += ptr[c]
    order = np.empty(bx.shape[0], dtype=np.int64)
    fill = ptr[:-1].copy()
    for j in range(bx.shape[0]):
        order[fill[cell_of[j]]] = j
        fill[cell_of[j]] += 1
    cap = ax.shape[0] * 4 + 16
    out_i = np.empty(cap, dtype=np.int64)
    out_j = np.empty(cap, dtype=np.int64)
    out_d = np.empty(cap)
    n = 0
    r2 = radius_m * radius_m
    reach = int(np.ceil(radius_m / cell))
    for i in range(ax.shape[0]):
        cx = int(np.floor((ax[i] - x0) / cell))
        cy = int(np.floor((ay[i] - y0) / cell))
        for yy in range(max(cy - reach, 0), min(cy + reach + 1, ny)):
            for xx in range(max(cx - reach, 0), min(cx + reach + 1, nx)):
                c = yy * nx + xx
                for q in range(ptr[c], ptr[c + 1]):
                    j = order[q]
                    if b_group[j] != a_group[i]:
                        continue
                    dx = bx[j] - ax[i]
                    dy = by[j] - ay[i]
                    d2 = dx * dx + dy * dy
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
