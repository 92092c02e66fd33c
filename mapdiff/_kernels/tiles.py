"""Which tiles of a :class:`mapdiff.jobs.tiles.Tiling` each point reaches (its own, and the
neighbours whose edge lies within the halo): one pass that finds them and counts them, one that
writes them out."""

import numpy as np

from mapdiff._kernels import jit


@jit
def _dlon(row, dlat, tile_m, m_per_deg):
    """The degrees of longitude of a tile in ``row``."""
    return tile_m / (m_per_deg * max(np.cos(np.radians((row + 0.5) * dlat)), 1e-6))


@jit
def near_tiles(lon, lat, dlat, tile_m, halo_m, m_per_deg, shift, col_bits):
    """Every (point index, tile key) pair where the point lies in the tile or within ``halo_m``
    of it, grouped by the offset g = 3 (dr + 1) + dc + 1 of the tile from the point's own (rows
    dr, columns dc in -1, 0, 1), points in order within each; the key is ``(row + shift) <<
    col_bits | col``. The first pass keeps each point's offsets as bits, so that the second
    does no trigonometry."""
    n = len(lon)
    reach = np.zeros(n, dtype=np.uint16)
    count = np.zeros(9, dtype=np.int64)
    last_row, last_dlon = np.nan, 0.0  # (a point's row is mostly the one before's)
    for k in range(n):
        x, y = lon[k] + 180.0, lat[k]
        row0 = np.floor(y / dlat)
        m_per_lon = m_per_deg * max(np.cos(np.radians(y)), 1e-6)
        for dr in range(-1, 2):
            row = row0 + dr
            lat_gap = max(max(row * dlat - y, y - (row + 1) * dlat), 0.0) * m_per_deg
            if dr != 0 and lat_gap > halo_m:
                continue
            if row != last_row:
                last_row, last_dlon = row, _dlon(row, dlat, tile_m, m_per_deg)
            dlon = last_dlon
            col0 = np.floor(x / dlon)
            for dc in range(-1, 2):
                col = col0 + dc
                lon_gap = max(max(col * dlon - x, x - (col + 1) * dlon), 0.0) * m_per_lon
                if np.hypot(lat_gap, lon_gap) <= halo_m:
                    g = 3 * (dr + 1) + dc + 1
                    reach[k] |= np.uint16(1 << g)
                    count[g] += 1
    pos = np.zeros(9, dtype=np.int64)
    for g in range(1, 9):
        pos[g] = pos[g - 1] + count[g - 1]
    idx = np.empty(pos[8] + count[8], dtype=np.int64)
    keys = np.empty(pos[8] + count[8], dtype=np.int64)
    for k in range(n):
        bits = reach[k]
        row0 = np.floor(lat[k] / dlat)
        for g in range(9):
            if bits & (1 << g):
                dr, dc = g // 3 - 1, g % 3 - 1
                if row0 + dr != last_row:
                    last_row, last_dlon = row0 + dr, _dlon(row0 + dr, dlat, tile_m, m_per_deg)
                dlon = last_dlon
                col = np.floor((lon[k] + 180.0) / dlon) + dc
                idx[pos[g]] = k
                keys[pos[g]] = ((np.int64(row0 + dr) + shift) << col_bits) | np.int64(col)
                pos[g] += 1
    return idx, keys
