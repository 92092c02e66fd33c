"""Spatial kernels: a uniform grid over polyline segments, and nearest-edge candidates."""

import numpy as np

from mapdiff._kernels import jit, jit_inline


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
def cell_range(x, y, reach, x0, y0, cell_m, nx, ny):
    """The columns and rows (first, last, inclusive) of a uniform grid's cells within ``reach``
    of point (x, y), clipped to the grid."""
    ix0 = max(int(np.floor((x - reach - x0) / cell_m)), 0)
    ix1 = min(int(np.floor((x + reach - x0) / cell_m)), nx - 1)
    iy0 = max(int(np.floor((y - reach - y0) / cell_m)), 0)
    iy1 = min(int(np.floor((y + reach - y0) / cell_m)), ny - 1)
    return ix0, ix1, iy0, iy1


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


@jit_inline
def _slot(row_edges, row_dists, m, e, d):
    """Where edge ``e`` at distance ``d`` goes in a row holding ``m`` entries sorted by distance
    (one slot per edge: its nearest part), before moving it up: its own slot, a new one, the
    last one (a full row, ``e`` nearer than its last), or -1 (not kept). Returns (slot, m)."""
    k = row_edges.shape[0]
    for q in range(m):
        if row_edges[q] == e:
            return (q if d < row_dists[q] else -1), m
    if m < k:
        return m, m + 1
    if d < row_dists[m - 1]:
        return m - 1, m
    return -1, m


@jit_inline
def _place(rows, p, slot, e, d, offset, cx, cy):
    """Put the entry in row ``p`` at ``slot``, moved up to keep the row sorted by distance.
    ``rows`` = (edges, dists, offsets, cxs, cys)."""
    edges, dists, offsets, cxs, cys = rows
    while slot > 0 and dists[p, slot - 1] > d:
        edges[p, slot] = edges[p, slot - 1]
        dists[p, slot] = dists[p, slot - 1]
        offsets[p, slot] = offsets[p, slot - 1]
        cxs[p, slot] = cxs[p, slot - 1]
        cys[p, slot] = cys[p, slot - 1]
        slot -= 1
    edges[p, slot] = e
    dists[p, slot] = d
    offsets[p, slot] = offset
    cxs[p, slot] = cx
    cys[p, slot] = cy


@jit_inline
def _interleave_twins(rows, p, m, twin_of, edge_len):
    """Follow each of row ``p``'s ``m`` entries by its wrong-way twin (same point, the offset
    from the other end), in place from the back (an entry only moves right). Returns how many
    slots the row would need."""
    edges, dists, offsets, cxs, cys = rows
    k = edges.shape[1]
    total = 0
    for q in range(m):
        total += 2 if twin_of[edges[p, q]] >= 0 else 1
    end = total
    for q in range(m - 1, -1, -1):
        e, d, o, qx, qy = edges[p, q], dists[p, q], offsets[p, q], cxs[p, q], cys[p, q]
        tw = twin_of[e]
        end -= 2 if tw >= 0 else 1
        if end < k:
            edges[p, end], dists[p, end], offsets[p, end], cxs[p, end], cys[p, end] = e, d, o, qx, qy
        if tw >= 0 and end + 1 < k:
            edges[p, end + 1], dists[p, end + 1], cxs[p, end + 1], cys[p, end + 1] = tw, d, qx, qy
            offsets[p, end + 1] = edge_len[e] - o
    return total


@jit
def query_points(px, py, radius_m, geom, edges, dists, offsets, cxs, cys):
    """Fill row p of ``edges``, ``dists``, ``offsets``, ``cxs``, ``cys`` (k columns, nearest first)
    with the nearest edges within ``radius_m`` of point p; each edge that has a wrong-way twin
    (``twin_of[e] >= 0``) is followed by it, on the same point with the offset counted from its
    other end. Unfilled slots hold edge -1. Returns the number of slots filled per point.

    ``geom`` is :attr:`mapdiff.network.Network.geom`: vertices, the grid over segments and,
    per grid entry, the segment's end points copied in cell order (``cell_xy``) so the scan
    reads memory in sequence. The helpers are inlined: a call per segment passing this many
    arrays would cost more than the scan.
    """
    vx, vy, vcum, seg_edge, twin_of, edge_len, x0, y0, cell_m, nx, ny, cell_ptr, cell_seg, cell_xy = geom
    rows = (edges, dists, offsets, cxs, cys)
    reach = radius_m + cell_m * 0.7072  # a cell holds the segments within half a diagonal of its centre
    reach2 = reach * reach
    r2 = radius_m * radius_m
    found = np.zeros(px.shape[0], dtype=np.int64)
    for p in range(px.shape[0]):
        x = px[p]
        y = py[p]
        edges[p, :] = -1
        dists[p, :] = np.inf
        ix0, ix1, iy0, iy1 = cell_range(x, y, reach, x0, y0, cell_m, nx, ny)
        m = 0  # how many slots are filled
        for iy in range(iy0, iy1 + 1):
            dy = y0 + (iy + 0.5) * cell_m - y
            for ix in range(ix0, ix1 + 1):
                dx = x0 + (ix + 0.5) * cell_m - x
                if dx * dx + dy * dy > reach2:
                    continue  # a corner cell of the square: its segments are all too far
                c = iy * nx + ix
                for j in range(cell_ptr[c], cell_ptr[c + 1]):
                    d2, f = _seg_point_dist2(cell_xy[j, 0], cell_xy[j, 1], cell_xy[j, 2], cell_xy[j, 3], x, y)
                    if d2 > r2:
                        continue
                    s = cell_seg[j]
                    d = np.sqrt(d2)
                    slot, m = _slot(edges[p], dists[p], m, seg_edge[s], d)
                    if slot >= 0:
                        _place(rows, p, slot, seg_edge[s], d, vcum[s] + f * (vcum[s + 1] - vcum[s]),
                               vx[s] + f * (vx[s + 1] - vx[s]), vy[s] + f * (vy[s + 1] - vy[s]))
        found[p] = min(_interleave_twins(rows, p, m, twin_of, edge_len), edges.shape[1])
    return found


@jit
def candidates(px, py, radius_m, k, geom):
    """The ``k`` nearest edges within ``radius_m`` of each point, nearest first (see
    :func:`query_points`).

    Returns ``edge`` (n, k) int64 (-1 where fewer than k), ``dist`` (n, k) metres,
    ``offset`` (n, k) metres along the edge, and ``cx``, ``cy`` (n, k) the projected points.
    """
    n = px.shape[0]
    edge = np.full((n, k), -1, dtype=np.int64)
    dist = np.full((n, k), np.inf)
    offset = np.zeros((n, k))
    cx = np.zeros((n, k))
    cy = np.zeros((n, k))
    query_points(px, py, radius_m, geom, edge, dist, offset, cx, cy)
    return edge, dist, offset, cx, cy


@jit
def point_on_edge(e, s, vx, vy, vcum, vptr):
    """(x, y, unit heading x, unit heading y) at ``s`` metres along edge ``e``'s polyline."""
    a, b = vptr[e], vptr[e + 1]
    k = a + np.searchsorted(vcum[a:b], s, side="right") - 1
    if k < a:
        k = a
    if k > b - 2:
        k = b - 2
    dx = vx[k + 1] - vx[k]
    dy = vy[k + 1] - vy[k]
    seg = np.hypot(dx, dy)
    if seg <= 0.0:
        return vx[k], vy[k], 0.0, 1.0
    f = min(max((s - vcum[k]) / seg, 0.0), 1.0)
    return vx[k] + f * dx, vy[k] + f * dy, dx / seg, dy / seg


@jit
def angle_deg(ax, ay, bx, by):
    """The angle (degrees, 0-180) between two unit vectors."""
    return np.degrees(np.arccos(min(max(ax * bx + ay * by, -1.0), 1.0)))


@jit
def heading_turn_deg(e1, s1, e2, s2, vx, vy, vcum, vptr):
    """How far the heading turns from edge ``e1`` at ``s1`` to edge ``e2`` at ``s2`` (degrees)."""
    _, _, hx1, hy1 = point_on_edge(e1, s1, vx, vy, vcum, vptr)
    _, _, hx2, hy2 = point_on_edge(e2, s2, vx, vy, vcum, vptr)
    return angle_deg(hx1, hy1, hx2, hy2)
