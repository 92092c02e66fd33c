"""Which roads the fleet drove, and which way (the ``coverage`` stage).

One row per directed map edge that was driven: ``edge_id``, ``u``, ``v``, ``key``, ``passes``
(traversals in the edge's direction), ``against`` (traversals against it: a one-way driven
backwards), ``trips`` and ``trips_against`` (distinct trips each way), ``vehicles`` (distinct
vehicles either way; null when the paths carry no ``vehicle_id``), ``t_first`` (the earliest
entry) and ``t_last`` (the latest exit), and ``vehicle_ids`` (the sorted distinct vehicles, so
that coverages merge exactly).

Windows: a trip belongs to the window in which it starts (its first path row's ``t_enter``),
with all its passes. Trips then partition into windows, so the coverage of two windows merged
(:func:`merge_coverage`) is exactly the coverage of their union: counts add, distinct trips add,
vehicles unite, first and last times take the min and max.

The input streams: a Parquet file is read in record batches, and only per-edge counters (and
the distinct edge-vehicle pairs) stay in memory. Rows of one trip must be contiguous, as
``mapdiff match --paths`` writes them (and as concatenated shard outputs keep them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mapdiff.errors import InputError

COVERAGE_COLUMNS = ["edge_id", "u", "v", "key", "passes", "against", "trips", "trips_against", "vehicles",
                    "t_first", "t_last", "vehicle_ids"]
PATH_INPUT_COLUMNS = ["trip_id", "edge_id", "u", "v", "key", "against", "t_enter", "t_exit"]
_NO_TRIP = np.iinfo(np.int64).min


class _Accumulator:
    """Per-edge counters over a stream of path batches (pyarrow tables or record batches)."""

    def __init__(self, *, since=None, until=None, source="paths"):
        self.source = source
        self.since, self.until = since, until
        self.ids = pd.Index([], dtype=np.int64)  # edge id of each dense code
        self.uvk = []  # per batch of new edges: (u, v, key) arrays
        self.n = np.zeros((0, 4), dtype=np.int64)
        self.t = None  # (first, last) per edge, in the time unit of the input
        self.last_trip = np.zeros((0, 2), dtype=np.int64)
        self.time_kind = None  # "ns" (timestamps, with tz) or "s" (float seconds)
        self.tz = None
        self.trips_done = set()
        self.carry = (None, -1, 0)  # (last trip id, its code, its start time) of the previous batch
        self.next_trip = 0
        self.vehicles = {}  # vehicle id -> code
        self.has_vehicles = None
        self.pairs = []  # unique edge * 2**32 + vehicle codes, per batch

    # -- columns of one batch

    def _times(self, col, name):
        import pyarrow as pa

        if pa.types.is_timestamp(col.type):
            kind, tz = "ns", col.type.tz
            values = col.cast(pa.timestamp("ns", tz=tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            kind, tz = "s", None
            values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        else:
            msg = f"{self.source}: column {name!r} must be UTC timestamps or float seconds; found {col.type}"
            raise InputError(msg)
        if col.null_count:
            msg = f"{self.source}: column {name!r} has {col.null_count:,} missing values"
            raise InputError(msg)
        if self.time_kind is None:
            self.time_kind, self.tz = kind, tz
            fill = (np.iinfo(np.int64).max, np.iinfo(np.int64).min) if kind == "ns" else (np.inf, -np.inf)
            self.t = np.empty((0, 2), dtype=np.int64 if kind == "ns" else np.float64)
            self._t_fill = fill
        elif kind != self.time_kind:
            msg = f"{self.source}: column {name!r} changes type between row groups ({col.type})"
            raise InputError(msg)
        return values

    def _bound(self, value):
        """A --since/--until bound in the time unit of the input."""
        if value is None:
            return None
        if isinstance(value, (int, float)) and self.time_kind == "s":
            return float(value)
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return ts.value if self.time_kind == "ns" else ts.value / 1e9

    def _grow(self, n_new):
        self.n = np.vstack([self.n, np.zeros((n_new, 4), dtype=np.int64)])
        self.t = np.vstack([self.t, np.tile(np.array(self._t_fill, dtype=self.t.dtype), (n_new, 1))])
        self.last_trip = np.vstack([self.last_trip, np.full((n_new, 2), _NO_TRIP, dtype=np.int64)])

    def add(self, table) -> None:
        import pyarrow as pa

        from mapdiff._kernels.coverage import accumulate, trip_starts

        if table.num_rows == 0:
            return
        names = table.schema.names
        missing = [c for c in PATH_INPUT_COLUMNS if c not in names]
        if missing:
            msg = f"{self.source}: missing column(s) {missing}; found columns {names}"
            raise InputError(msg)
        n_rows = table.num_rows
        t0 = self._times(table.column("t_enter"), "t_enter")
        t1 = self._times(table.column("t_exit"), "t_exit")
        edge_col = table.column("edge_id")
        if not pa.types.is_integer(edge_col.type) or edge_col.null_count:
            msg = f"{self.source}: column 'edge_id' must be integers without nulls; found {edge_col.type}" + (
                f" with {edge_col.null_count:,} nulls" if edge_col.null_count else "")
            raise InputError(msg)
        edge_ids = edge_col.to_numpy().astype(np.int64, copy=False)
        local, uniq = pd.factorize(edge_ids)
        where = self.ids.get_indexer(uniq)
        new = np.flatnonzero(where < 0)
        if len(new):
            first_row = pd.Series(np.arange(n_rows)).groupby(local).first().to_numpy()[new]
            where[new] = len(self.ids) + np.arange(len(new))
            self.ids = self.ids.append(pd.Index(uniq[new]))
            self.uvk.append(tuple(table.column(c).take(pa.array(first_row)).to_pylist() for c in ("u", "v", "key")))
            self._grow(len(new))
        edge = where[local].astype(np.int64)

        # trips: dense codes per batch, global codes by run; a run continuing the previous
        # batch's last trip keeps its code and start time
        if table.column("trip_id").null_count:
            msg = f"{self.source}: column 'trip_id' has {table.column('trip_id').null_count:,} missing values"
            raise InputError(msg)
        codes, words = _encode(table.column("trip_id"))
        change = np.r_[True, codes[1:] != codes[:-1]]
        carry_id, carry_code, carry_start = self.carry
        continues = carry_id is not None and words[codes[0]] == carry_id
        change[0] = not continues
        run_words = [words[c] for c in codes[change]]
        if carry_id is not None and (not continues or run_words):
            self.trips_done.add(carry_id)  # the previous batch's last trip has ended
        repeated = self.trips_done.intersection(run_words)
        if not repeated and len(set(run_words)) < len(run_words):
            words_s = pd.Series(run_words)
            repeated = set(words_s[words_s.duplicated()])
        if repeated:
            msg = (f"{self.source}: the rows of trip {min(repeated)!r} are not contiguous; coverage needs "
                   f"each trip's path rows together, as mapdiff match writes them (sort by trip_id, seq)")
            raise InputError(msg)
        runs = np.cumsum(change)  # 0 on the rows that continue the previous batch's last trip
        trip = (self.next_trip + runs - 1).astype(np.int64)
        trip[runs == 0] = carry_code
        start = trip_starts(change, t0, t0.dtype.type(carry_start))
        keep = np.ones(n_rows, dtype=bool)
        lo, hi = self._bound(self.since), self._bound(self.until)
        if lo is not None:
            keep &= start >= lo
        if hi is not None:
            keep &= start < hi
        against = table.column("against").to_numpy(zero_copy_only=False).astype(bool)
        accumulate(edge, trip, against, t0, t1, keep, self.n, self.t, self.last_trip)
        self.trips_done.update(run_words[:-1])
        self.next_trip += len(run_words)
        self.carry = (words[codes[-1]], int(trip[-1]), start[-1])

        has_v = "vehicle_id" in names
        if self.has_vehicles is None:
            self.has_vehicles = has_v
        if has_v and self.has_vehicles:
            vlocal, vwords = _encode(table.column("vehicle_id"))
            vmap = np.array([self.vehicles.setdefault(w, len(self.vehicles)) for w in vwords], dtype=np.int64)
            vcode = vmap[vlocal] if len(vmap) else np.zeros(0, np.int64)
            self.pairs.append(_sorted_unique((edge[keep] << 32) | vcode[keep]))
        else:
            self.has_vehicles = False

    def result(self) -> pd.DataFrame:
        n_edges = len(self.ids)
        used = np.flatnonzero((self.n[:, 0] + self.n[:, 1]) > 0) if n_edges else np.zeros(0, np.int64)
        u = np.concatenate([np.asarray(p[0], dtype=object) for p in self.uvk]) if self.uvk else np.zeros(0, object)
        v = np.concatenate([np.asarray(p[1], dtype=object) for p in self.uvk]) if self.uvk else np.zeros(0, object)
        key = np.concatenate([np.asarray(p[2], dtype=object) for p in self.uvk]) if self.uvk else np.zeros(0, object)
        out = pd.DataFrame({
            "edge_id": self.ids.to_numpy()[used].astype(np.int64),
            "u": _numeric(u[used]), "v": _numeric(v[used]), "key": _numeric(key[used]),
            "passes": self.n[used, 0], "against": self.n[used, 1],
            "trips": self.n[used, 2], "trips_against": self.n[used, 3],
        })
        if self.has_vehicles:
            # pairs as (edge, rank of the vehicle's name): sorted, each edge's names come in order
            names = np.array(list(self.vehicles), dtype=object)
            rank = np.empty(len(names), dtype=np.int64)
            rank[np.argsort(names, kind="stable")] = np.arange(len(names))
            pairs = _sorted_unique(np.concatenate(self.pairs)) if self.pairs else np.zeros(0, np.int64)
            pairs = np.sort((pairs >> 32 << 32) | rank[pairs & 0xFFFFFFFF])
            p_edge = pairs >> 32
            sorted_names = np.sort(names)[pairs & 0xFFFFFFFF]
            lists = np.split(sorted_names, np.searchsorted(p_edge, used, side="right")[:-1]) if len(used) else []
            out["vehicles"] = pd.array([len(x) for x in lists], dtype="Int64")
            out["vehicle_ids"] = lists
        else:
            out["vehicles"] = pd.array([pd.NA] * len(used), dtype="Int64")
            out["vehicle_ids"] = [[] for _ in range(len(used))]
        t = self.t[used] if self.t is not None else np.zeros((0, 2))
        out["t_first"], out["t_last"] = self._time_out(t[:, 0]), self._time_out(t[:, 1])
        return out[COVERAGE_COLUMNS].sort_values("edge_id", kind="stable").reset_index(drop=True)

    def _time_out(self, values):
        if self.time_kind == "ns":
            ts = pd.to_datetime(values, unit="ns", utc=True)
            return ts if self.tz is not None else ts.tz_localize(None)
        return values.astype(np.float64)


def _sorted_unique(values):
    """np.unique of int64 codes by one sort (faster than a hash table on millions of pairs)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _encode(column):
    """Integer codes and the words they stand for, of an id column (text, numbers or an Arrow
    dictionary, as Parquet stores categoricals: then its codes are used as they are)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column.cast(pa.string()))
    words = [str(w) for w in column.dictionary.to_pylist()]
    codes = column.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if len(set(words)) < len(words):  # a dictionary may repeat a word: fold the repeats onto one code
        inverse, uniq = pd.factorize(np.array(words, dtype=object))
        codes, words = inverse[codes], list(uniq)
    return codes, words


def _numeric(values):
    """Node ids and keys as int64 when they are integers (osmnx's), else as they came."""
    try:
        return values.astype(np.int64)
    except (TypeError, ValueError):
        return values


def coverage(paths: pd.DataFrame, *, since=None, until=None, source: str = "paths") -> pd.DataFrame:
    """Coverage of an in-memory paths frame (see the module docstring for the columns).

    Parameters
    ----------
    paths : ``mapdiff match --paths`` rows: trip_id, edge_id, u, v, key, against, t_enter,
        t_exit; optional vehicle_id.
    since, until : keep the trips that start in [since, until) (timestamps, UTC when naive;
        float seconds when the paths' times are seconds).
    source : name of the input for error messages.
    """
    import pyarrow as pa

    acc = _Accumulator(since=since, until=until, source=source)
    frame = pd.DataFrame(paths)
    if "geometry" in frame:
        frame = frame.drop(columns="geometry")
    acc.add(pa.Table.from_pandas(frame, preserve_index=False))
    return acc.result()


def coverage_file(path, *, since=None, until=None, clips=None, where=None, batch_rows: int = 1_000_000,
                  progress=None) -> pd.DataFrame:
    """Coverage of a paths Parquet file (local or s3://), read ``batch_rows`` at a time.
    ``clips`` (:func:`mapdiff.clips.read_clips`): count only the passes that lie wholly inside
    a clip of their trip, the coverage of the uploaded video. ``where``: a function of a batch
    (a pyarrow Table) giving the mask of its rows to count (the trips of one shard)."""
    import pyarrow as pa

    from mapdiff.io import open_parquet

    acc = _Accumulator(since=since, until=until, source=str(path))
    with open_parquet(path) as pf:
        names = pf.schema_arrow.names
        cols = [c for c in PATH_INPUT_COLUMNS + ["vehicle_id"] if c in names]
        missing = [c for c in PATH_INPUT_COLUMNS if c not in names]
        if missing:
            msg = f"{path}: missing column(s) {missing}; found columns {names}"
            raise InputError(msg)
        for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
            table = pa.Table.from_batches([batch])
            if where is not None:
                table = table.filter(where(table))
            if clips is not None:
                table = table.filter(_filmed(table, clips, str(path)))
            acc.add(table)
            if progress is not None:
                progress(batch.num_rows)
    return acc.result()


def _filmed(table, clips, source):
    from mapdiff.clips import within
    from mapdiff.schema import time_seconds

    frame = table.select(["trip_id", "t_enter", "t_exit"]).to_pandas()
    t0 = time_seconds(frame["t_enter"], source=source, column="t_enter")
    t1 = time_seconds(frame["t_exit"], source=source, column="t_exit")
    return within(frame["trip_id"].to_numpy(), t0, t1, clips)


def merge_coverage(parts) -> pd.DataFrame:
    """Coverages of disjoint sets of trips (windows, shards) merged into the coverage of their
    union: counts add, vehicles unite, first and last times take the min and max."""
    frames = [pd.DataFrame(p) for p in parts]
    for i, f in enumerate(frames):
        missing = [c for c in COVERAGE_COLUMNS if c not in f.columns]
        if missing:
            msg = f"coverage part {i + 1}: missing column(s) {missing}; found columns {list(f.columns)}"
            raise InputError(msg)
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: [] for c in COVERAGE_COLUMNS})
    both = pd.concat(frames, ignore_index=True)
    g = both.groupby("edge_id", sort=True)
    out = g[["u", "v", "key"]].first()
    for c in ("passes", "against", "trips", "trips_against"):
        out[c] = g[c].sum().astype(np.int64)
    with_vehicles = all(f["vehicles"].notna().all() for f in frames)
    ids = g["vehicle_ids"].agg(lambda s: sorted(set().union(*map(set, s))))
    out["vehicle_ids"] = ids
    out["vehicles"] = pd.array(ids.map(len).to_numpy() if with_vehicles else [pd.NA] * len(ids), dtype="Int64")
    out["t_first"] = g["t_first"].min()
    out["t_last"] = g["t_last"].max()
    return out.reset_index()[COVERAGE_COLUMNS]
