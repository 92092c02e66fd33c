"""Spatial kernels: a uniform grid over polyline segments, and nearest-edge candidates."""

import numpy as np

from mapdiff._kernels import jit


@jit
def _seg_point_dist2(ax, ay, bx, by, px, py):
    """Squared distance from P to segment AB, and the fraction along AB of the closest point."""
    dx = bx - ax
    dy = by - ay
    l2 = dx * dx + dy * dy
    f = 0.0
    if l2 > 0.0:
        f = ((px - ax) * dx + (py - ay) * dy) / l2
        if f < 0.0:
            f = 0.0
        elif f > 1.0:
            f = 1.0
    qx = ax + f * dx - px
    qy = ay + f * dy - py
    return qx * qx + qy * qy, f


@jit
def build_grid(vx, vy, seg_valid, x0, y0, cell_m, nx, ny):
    """Bucket segments (vertex i to i+1 where ``seg_valid[i]``) into square cells.

    A segment goes into every cell whose centre lies within half a cell diagonal of it, so a
    query of radius r that scans cells within r + half a diagonal sees every segment within r.
    Returns CSR arrays ``cell_ptr`` (nx*ny+1) and ``cell_seg``.
    """
    half_diag2 = 0.5 * cell_m * cell_m
    counts = np.zeros(nx * ny + 1, dtype=np.int64)
    for phase in range(2):
        if phase == 1:
            for c in range(nx * ny):
                counts[c + 1] += counts[c]
            cell_seg = np.empty(counts[nx * ny], dtype=np.int64)
            fill = counts[:-1].copy()
        for i in range(vx.shape[0] - 1):
            if not seg_valid[i]:
                continue
            ax, ay, bx, by = vx[i], vy[i], vx[i + 1], vy[i + 1]
            ix0 = max(int((min(ax, bx) - x0) / cell_m), 0)
            ix1 = min(int((max(ax, bx) - x0) / cell_m), nx - 1)
            iy0 = max(int((min(ay, by) - y0) / cell_m), 0)
            iy1 = min(int((max(ay, by) - y0) / cell_m), ny - 1)
            for iy in range(iy0, iy1 + 1):
                cy = y0 + (iy + 0.5) * cell_m
                for ix in range(ix0, ix1 + 1):
                    cx = x0 + (ix + 0.5) * cell_m
                    d2, _ = _seg_point_dist2(ax, ay, bx, by, cx, cy)
                    if d2 <= half_diag2:
                        c = iy * nx + ix
                        if phase == 0:
                            counts[c + 1] += 1
                        else:
                            cell_seg[fill[c]] = i
                            fill[c] += 1
    return counts, cell_seg


@jit
def query_point(x, y, radius_m, vx, vy, vcum, seg_edge, x0, y0, cell_m, nx, ny, cell_ptr, cell_seg,
                edge, dist, offset, cx, cy, exclude):
    """Fill the rows ``edge``, ``dist``, ``offset``, ``cx``, ``cy`` (length k, nearest first) with
    the nearest edges within ``radius_m`` of (x, y), skipping the edges listed in ``exclude``
    (-1 entries are ignored). Returns how many slots were filled; the rest hold edge -1."""
    k = edge.shape[0]
    edge[:] = -1
    dist[:] = np.inf
    reach = radius_m + cell_m * 0.7072
    r2 = radius_m * radius_m
    ix0 = max(int(np.floor((x - reach - x0) / cell_m)), 0)
    ix1 = min(int(np.floor((x + reach - x0) / cell_m)), nx - 1)
    iy0 = max(int(np.floor((y - reach - y0) / cell_m)), 0)
    iy1 = min(int(np.floor((y + reach - y0) / cell_m)), ny - 1)
    m = 0  # how many slots are filled
    for iy in range(iy0, iy1 + 1):
        for ix in range(ix0, ix1 + 1):
            c = iy * nx + ix
            for j in range(cell_ptr[c], cell_ptr[c + 1]):
                s = cell_seg[j]
                d2, f = _seg_point_dist2(vx[s], vy[s], vx[s + 1], vy[s + 1], x, y)
                if d2 > r2:
                    continue
                e = seg_edge[s]
                skip = False
                for q in range(exclude.shape[0]):
                    if exclude[q] == e:
                        skip = True
                        break
                if skip:
                    continue
                d = np.sqrt(d2)
                # one slot per edge: keep its nearest part
                slot = -1
                for q in range(m):
                    if edge[q] == e:
                        slot = q
                        break
                if slot >= 0:
                    if d >= dist[slot]:
                        continue
                elif m < k:
                    slot = m
                    m += 1
                elif d < dist[m - 1]:
                    slot = m - 1
                else:
                    continue
                # move the entry up to keep the row sorted by distance
                while slot > 0 and dist[slot - 1] > d:
                    edge[slot] = edge[slot - 1]
                    dist[slot] = dist[slot - 1]
                    offset[slot] = offset[slot - 1]
                    cx[slot] = cx[slot - 1]
                    cy[slot] = cy[slot - 1]
                    slot -= 1
                edge[slot] = e
                dist[slot] = d
                offset[slot] = vcum[s] + f * (vcum[s + 1] - vcum[s])
                cx[slot] = vx[s] + f * (vx[s + 1] - vx[s])
                cy[slot] = vy[s] + f * (vy[s + 1] - vy[s])
    return m


@jit
def candidates(px, py, radius_m, k, vx, vy, vcum, seg_edge, x0, y0, cell_m, nx, ny, cell_ptr, cell_seg):
    """The ``k`` nearest edges within ``radius_m`` of each point, nearest first.

    Returns ``edge`` (n, k) int64 (-1 where fewer than k), ``dist`` (n, k) metres,
    ``offset`` (n, k) metres along the edge, and ``cx``, ``cy`` (n, k) the projected points.
    """
    n = px.shape[0]
    edge = np.full((n, k), -1, dtype=np.int64)
    dist = np.full((n, k), np.inf)
    offset = np.zeros((n, k))
    cx = np.zeros((n, k))
    cy = np.zeros((n, k))
    none = np.empty(0, dtype=np.int64)
    for p in range(n):
        query_point(px[p], py[p], radius_m, vx, vy, vcum, seg_edge, x0, y0, cell_m, nx, ny, cell_ptr, cell_seg,
                    edge[p], dist[p], offset[p], cx[p], cy[p], none)
    return edge, dist, offset, cx, cy
