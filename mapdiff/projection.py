"""Projection between WGS84 at the edges and a local metric CRS inside.

Every kernel works in metres of one local projection: the UTM zone of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class LocalProjection:
    """A WGS84 <-> local-metres pair of transforms, chosen from a reference point."""

    crs: str

    @classmethod
    def around(cls, lon: float, lat: float) -> LocalProjection:
        """The UTM zone holding ``(lon, lat)`` (UPS near the poles is not supported)."""
        zone = int(np.floor((lon + 180.0) / 6.0)) % 60 + 1
        epsg = (32600 if lat >= 0 else 32700) + zone
        return cls(f"EPSG:{epsg}")

    @cached_property
    def _forward(self):
        from pyproj import Transformer

        return Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    @cached_property
    def _inverse(self):
        from pyproj import Transformer

        return Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)

    def to_metres(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 degrees to local x, y in metres."""
        x, y = self._forward.transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def to_lonlat(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Local metres back to WGS84 degrees."""
        lon, lat = self._inverse.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
