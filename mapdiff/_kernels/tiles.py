"""Which tiles of a :class:`mapdiff.jobs.tiles.Tiling` each point reaches (its own, and the
neighbours whose edge lies within the halo): a count pass, then a fill pass."""

import numpy as np

from mapdiff._kernels import jit


@jit
def _reached(x, y, dlat, tile_m, halo_m, m_per_deg, out):
    """The tiles around the point at longitude ``x`` + 180, latitude ``y``: ``out[g]`` = (row,
    col, within the halo) for the offset g = 3 (dr + 1) + dc + 1 from its own tile (rows more
    than the halo away are not looked at: within False). A point reaches its own tile always."""
    row0 = np.floor(y / dlat)
    m_per_lon = m_per_deg * max(np.cos(np.radians(y)), 1e-6)
    for dr in range(-1, 2):
        row = row0 + dr
        lat_gap = max(max(row * dlat - y, y - (row + 1) * dlat), 0.0) * m_per_deg
        for dc in range(-1, 2):
            out[3 * (dr + 1) + dc + 1, 2] = 0.0
        if dr != 0 and lat_gap > halo_m:
            continue
        dlon = tile_m / (m_per_deg * max(np.cos(np.radians((row + 0.5) * dlat)), 1e-6))
        col0 = np.floor(x / dlon)
        for dc in range(-1, 2):
            col = col0 + dc
            lon_gap = max(max(col * dlon - x, x - (col + 1) * dlon), 0.0) * m_per_lon
            g = 3 * (dr + 1) + dc + 1
            out[g, 0] = row
            out[g, 1] = col
            out[g, 2] = 1.0 if np.hypot(lat_gap, lon_gap) <= halo_m else 0.0


@jit
def near_tiles(lon, lat, dlat, tile_m, halo_m, m_per_deg, shift, col_bits):
    """Every (point index, tile key) pair where the point lies in the tile or within ``halo_m``
    of it, grouped by the offset of the tile from the point's own (rows -1, 0, 1, each with
    columns -1, 0, 1), points in order within each: the key is ``(row + shift) << col_bits |
    col``."""
    n = len(lon)
    out = np.zeros((9, 3))
    count = np.zeros(9, dtype=np.int64)
    for k in range(n):
        _reached(lon[k] + 180.0, lat[k], dlat, tile_m, halo_m, m_per_deg, out)
        for g in range(9):
            if out[g, 2] > 0.0:
                count[g] += 1
    pos = np.zeros(9, dtype=np.int64)
    for g in range(1, 9):
        pos[g] = pos[g - 1] + count[g - 1]
    total = pos[8] + count[8]
    idx = np.empty(total, dtype=np.int64)
    keys = np.empty(total, dtype=np.int64)
    for k in range(n):
        _reached(lon[k] + 180.0, lat[k], dlat, tile_m, halo_m, m_per_deg, out)
        for g in range(9):
            if out[g, 2] > 0.0:
                idx[pos[g]] = k
                keys[pos[g]] = ((np.int64(out[g, 0]) + shift) << col_bits) | np.int64(out[g, 1])
                pos[g] += 1
    return idx, keys
