"""Kernels of the judgment: which directed edges see a point, and near pairs over a grid."""

import numpy as np

from mapdiff._kernels import jit

_MAX_VISIBLE = 128  # distinct (edge, direction) per point; more is a dense tangle, and enough


@jit
def visible_edges(px, py, range_m, half_fov_rad, step_m, geom):
    """The directed edges from which each point is in a forward camera's view.

    A point is visible from edge e when, at some sample along e (every ``step_m``), it lies
    within ``range_m`` and within ``half_fov_rad`` of the driving direction. Each map segment
    is tried in its own direction and, for a one-way edge (it has a wrong-way twin), reversed:
    the second is reported with direction 1 (seen by cars driving against the edge).

    Returns (point, edge, direction) arrays, each (point, edge, direction) once.
    """
    vx, vy, vcum, seg_edge, twin_of, edge_len, x0, y0, cell_m, nx, ny, cell_ptr, cell_seg, cell_xy = geom
    reach = range_m + cell_m * 0.7072
    cos_fov = np.cos(half_fov_rad)
    r2 = range_m * range_m
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
                    s = cell_seg[j]
                    e = seg_edge[s]
                    ax, ay, bx, by = cell_xy[j, 0], cell_xy[j, 1], cell_xy[j, 2], cell_xy[j, 3]
                    seg = np.hypot(bx - ax, by - ay)
                    if seg <= 0.0:
                        continue
                    ux = (bx - ax) / seg
                    uy = (by - ay) / seg
                    k = int(seg / step_m) + 1
                    for direction in range(2):
                        if direction == 1 and twin_of[e] < 0:
                            break
                        sign = 1.0 if direction == 0 else -1.0
                        known = False
                        for q in range(m):
                            if seen_e[q] == e and seen_d[q] == direction:
                                known = True
                                break
                        if known:
                            continue
                        for i in range(k + 1):
                            f = min(i * step_m, seg)
                            qx = ax + ux * f
                            qy = ay + uy * f
                            dx = x - qx
                            dy = y - qy
                            d2 = dx * dx + dy * dy
                            if d2 > r2 or d2 <= 0.0:
                                continue
                            if sign * (dx * ux + dy * uy) >= cos_fov * np.sqrt(d2):
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
                                break
    return out_p[:n], out_e[:n], out_d[:n]


@jit
def near_pairs(ax, ay, a_group, bx, by, b_group, radius_m):
    """All (i, j, distance) with point i of set a and point j of set b in the same group and
    within ``radius_m``, over a uniform grid of cell ``radius_m`` built on b."""
    if bx.shape[0] == 0 or ax.shape[0] == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    cell = radius_m
    x0 = bx.min() - 1.0
    y0 = by.min() - 1.0
    nx = int((bx.max() - x0) / cell) + 1
    ny = int((by.max() - y0) / cell) + 1
    # cells as sorted ids (searched per query): the extent may be huge, the points few
    cell_of = np.empty(bx.shape[0], dtype=np.int64)
    for j in range(bx.shape[0]):
        cell_of[j] = int((by[j] - y0) / cell) * nx + int((bx[j] - x0) / cell)
    order = np.argsort(cell_of, kind="mergesort")
    sorted_cells = cell_of[order]
    out_i = np.empty(ax.shape[0] * 4 + 16, dtype=np.int64)
    out_j = np.empty(ax.shape[0] * 4 + 16, dtype=np.int64)
    out_d = np.empty(ax.shape[0] * 4 + 16)
    n = 0
    r2 = radius_m * radius_m
    for i in range(ax.shape[0]):
        cx = int(np.floor((ax[i] - x0) / cell))
        cy = int(np.floor((ay[i] - y0) / cell))
        for yy in range(cy - 1, cy + 2):
            if yy < 0 or yy >= ny:
                continue
            for xx in range(cx - 1, cx + 2):
                if xx < 0 or xx >= nx:
                    continue
                c = yy * nx + xx
                lo = np.searchsorted(sorted_cells, c)
                hi = np.searchsorted(sorted_cells, c, side="right")
                for q in range(lo, hi):
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
