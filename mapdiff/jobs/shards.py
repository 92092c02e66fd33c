"""Which rows a shard owns: trips (match, observe, coverage) and vehicles (simulate) by a stable
hash of their id, so N array jobs split the work without coordinating and every trip's rows
land in one shard."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from mapdiff.errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based). ``Shard(0, 1)`` is the whole input."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` such as ``"0/4"``."""
        try:
            index, count = (int(v) for v in str(text).split("/"))
        except ValueError:
            msg = f"shard must be I/N such as 0/4; found {text!r}"
            raise ConfigError(msg, field='shard') from None
        return cls(index, count).validate()

    def validate(self) -> Shard:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            msg = f"shard must be I/N with 0 <= I < N; found {self.index}/{self.count}"
            raise ConfigError(msg, field='shard')
        return self

    @property
    def whole(self) -> bool:
        return self.count == 1

    @property
    def name(self) -> str:
        """The part's file name stem, the same on every attempt: ``part-00003-of-00007``."""
        return f"part-{self.index:05d}-of-{self.count:05d}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def hash_shard(ids, count: int) -> np.ndarray:
    """The shard (0..count-1) of each id: CRC-32 of its text, the same on every machine, run
    and Python (not ``hash()``, which is salted per process). ``ids``: a sequence, or an Arrow
    array as a batch of a Parquet file gives it (hashed through its distinct values: converting
    every row of a month's trip ids to Python text cost a shard more than its own work)."""
    import pandas as pd  # (here: the array runner's parent process needs no pandas)
    import pyarrow as pa

    if isinstance(ids, (pa.Array, pa.ChunkedArray)):
        codes, values = arrow_codes(ids)
        names = [str(v) for v in values]
    else:
        codes, names = pd.factorize(pd.Series(ids, dtype=object).astype(str))
    # a missing id (code -1) is the text "None", as pandas writes it, however it came
    names = [*names, "None"]
    codes = np.where(codes < 0, len(names) - 1, codes)
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    per_name = np.fromiter((zlib.crc32(v.encode()) % count for v in names), dtype=np.int64, count=len(names))
    return per_name[codes]


def arrow_codes(ids) -> tuple[np.ndarray, list]:
    """An Arrow array (or chunked array) of ids as (each row's code, -1 for a null; the
    distinct values as Python objects, in the order of the codes): a Python object per distinct
    id, not per row (a month's detections are 290 M rows of a few thousand trips)."""
    import pyarrow as pa

    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    encoded = ids if pa.types.is_dictionary(ids.type) else ids.dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return codes, encoded.dictionary.to_pylist()


def batch_owner(shard: Shard, column: str = "trip_id"):
    """A function of a pyarrow Table giving the mask of the rows ``shard`` owns (for stages
    that stream their input in batches)."""
    def mask(table):
        return hash_shard(table.column(column), shard.count) == shard.index
    return mask


def vehicles_of(n_vehicles: int, shard: Shard) -> list[int]:
    """The vehicle numbers (0-based) of a simulated fleet of ``n_vehicles`` that ``shard`` owns:
    the hash of their vehicle id, as for any table with a ``vehicle_id``."""
    from mapdiff.simulate import vehicle_id

    ids = [vehicle_id(v) for v in range(n_vehicles)]
    return [v for v, s in zip(range(n_vehicles), hash_shard(ids, shard.count)) if s == shard.index]
