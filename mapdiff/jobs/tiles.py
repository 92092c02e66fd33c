"""Spatial tiles with a halo, for the stages whose work is local in space (locate).

The tiles are a fixed grid on the globe, the same for every input and shard: rows of
``tile_m`` metres of latitude, each row cut into columns of ``tile_m`` metres at its middle
latitude. A tile owns the objects whose position lies in it (for locate, the object's anchor: the
mean of its passes' own points, within a metre or so of its position but the same in every tile
that fits it); its work sees every row whose point lies within ``halo_m`` of it, so that an
object near a border is estimated from all its observations, and once, by the tile that owns it.
A stage run over tiles gives the same rows whether the tiles run in one process or are spread
over N shards, which is the sharding law. The tiles go to the shards by :func:`balance`: every
shard counts the rows of every tile in one pass over the input's positions and makes the same
choice, so the shards agree without talking and carry about equal work (a hash of the key would
leave a small city's few tiles unevenly spread).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapdiff.errors import ConfigError

#: metres per degree of latitude (mean; the grid only needs to be fixed, not exact)
M_PER_DEG = 111_320.0
#: an object's id (its tile's key, then its number in the tile) stays below 2**53, so that it is
#: exact as a double: in JavaScript (the report) and in readers that hold an integer column
#: with nulls as floats (geopandas reading ``diffs.gpkg``). 100 m tiles leave 16 bits (65,536
#: objects a tile), the default 5 km ones 28
ID_BITS = 53


@dataclass(frozen=True)
class Tiling:
    """``tile_m``: the side of a tile; ``halo_m``: how far beyond it a tile's work reaches (at
    least the farthest an observer sees an object, plus the association's reach)."""

    # a tile's work reads its halo's rows too, (tile_m + 2 halo_m)^2 / tile_m^2 of its own: 1.17
    # at 5 km, 1.96 at 1 km; a city's month still spreads over dozens of 5 km tiles. (Tiles once
    # measured locate's errors from their own objects and needed many: 2 km tiles made 15 % more
    # objects than one piece on the demo's fleet; since stop 47 every tile takes the run's
    # measures, and 1 km tiles give one piece's objects: benchmarks/locate_tiles.py)
    tile_m: float = 5000.0
    halo_m: float = 200.0

    def validate(self) -> Tiling:
        if not self.tile_m >= 100:
            msg = f"tile_m must be >= 100 metres; found {self.tile_m!r}"
            raise ConfigError(msg, field='tile_m')
        if not 0 <= self.halo_m <= self.tile_m:
            msg = f"halo_m must be in [0, tile_m={self.tile_m}] metres; found {self.halo_m!r}"
            raise ConfigError(msg, field='halo_m')
        return self

    @property
    def dlat(self) -> float:
        return self.tile_m / M_PER_DEG

    @property
    def _bits(self) -> tuple[int, int, int]:
        """(row shift, bits of a key's column, bits of an object's number within its tile): rows
        run -shift..shift over the latitudes (shifted to be non-negative), columns 0..cols along
        the equator, the longest row."""
        shift = int(np.ceil(90.0 / self.dlat)) + 1
        col_bits = (int(np.ceil(360.0 * M_PER_DEG / self.tile_m)) + 1).bit_length()
        return shift, col_bits, ID_BITS - (2 * shift).bit_length() - col_bits

    def _key(self, row, col):
        shift, col_bits, _ = self._bits
        return ((np.asarray(row, dtype=np.int64) + shift) << col_bits) | np.asarray(col, dtype=np.int64)

    def object_ids(self, tile_key: int, n: int) -> np.ndarray:
        """Ids of the ``n`` objects a tile owns: the tile's key, then their number in it, so ids
        are the same whichever shard ran the tile."""
        local_bits = self._bits[2]
        if n > 1 << local_bits:
            msg = f"a tile owns {n:,} objects, more than {1 << local_bits:,}; use smaller tiles"
            raise ConfigError(msg, field="tile_m")
        return (np.int64(tile_key) << local_bits) | np.arange(n, dtype=np.int64)

    def centre(self, key: int) -> tuple[float, float]:
        """(lon, lat) of the middle of the tile ``key``."""
        shift, col_bits, _ = self._bits
        row = (int(key) >> col_bits) - shift
        col = int(key) & ((1 << col_bits) - 1)
        return float((col + 0.5) * self._dlon(row) - 180.0), float((row + 0.5) * self.dlat)

    def _dlon(self, row):
        mid = (np.asarray(row, dtype=np.float64) + 0.5) * self.dlat
        return self.tile_m / (M_PER_DEG * np.maximum(np.cos(np.radians(mid)), 1e-6))

    def key(self, lon, lat) -> np.ndarray:
        """The key (int64) of the tile holding each point."""
        row = np.floor(np.asarray(lat, dtype=np.float64) / self.dlat).astype(np.int64)
        col = np.floor((np.asarray(lon, dtype=np.float64) + 180.0) / self._dlon(row)).astype(np.int64)
        return self._key(row, col)

    def near(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Every (point index, tile key) pair where the point lies in the tile or within
        ``halo_m`` of it: the rows each tile's work sees (see :mod:`mapdiff._kernels.tiles`)."""
        from mapdiff._kernels.tiles import near_tiles

        shift, col_bits, _ = self._bits
        return near_tiles(np.ascontiguousarray(lon, dtype=np.float64), np.ascontiguousarray(lat, dtype=np.float64),
                          self.dlat, self.tile_m, self.halo_m, M_PER_DEG, shift, col_bits)


def balance(keys: np.ndarray, rows: np.ndarray, n_shards: int) -> np.ndarray:
    """The shard of each tile: the biggest tiles first (by ``rows``, then by key), each to the
    shard with the least rows so far (then the lowest index); the same on every shard."""
    shard = np.zeros(len(keys), dtype=np.int64)
    load = np.zeros(n_shards, dtype=np.int64)
    for i in np.lexsort((keys, -np.asarray(rows))):
        k = int(np.argmin(load))
        shard[i] = k
        load[k] += rows[i]
    return shard
