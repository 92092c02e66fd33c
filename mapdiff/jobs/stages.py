"""A stage run on the rows one shard owns: the jobs layer reads the rows a shard owns (batch by
batch, so a shard holds only its own), the stage function sees only frames. A shard that owns no
rows writes empty outputs with the stage's columns (one of N array jobs may draw no trips), not
an error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mapdiff.errors import InputError
from mapdiff.jobs.shards import Shard, batch_owner


def owned_batches(paths, shard: Shard | None, column: str = "trip_id", columns=None):
    """The rows of the files ``paths`` that ``shard`` owns by the hash of ``column`` (all for
    None), whole trips in batches (:func:`mapdiff.jobs.batches.trip_batches`): per batch one frame
    per file (``columns``: only these). The batch size is ``$MAPDIFF_BATCH_ROWS`` rows of the
    first file, else :data:`mapdiff.jobs.batches.BATCH_ROWS`."""
    from mapdiff.jobs.batches import batch_rows, trip_batches

    where = None if shard is None or shard.whole else batch_owner(shard, column)
    return trip_batches(paths, max_rows=batch_rows(), where=where, column=column, columns=columns)


class MatchedFile:
    """A file of matched fixes as the judgment reads it (:func:`mapdiff.diff.fix_evidence`):
    two columns of every fix for the GPS error, then whole trips in batches of at most
    ``$MAPDIFF_BATCH_ROWS`` rows (see :func:`owned_batches`), only the columns it uses. A
    month of a fleet's fixes is never held at once."""

    def __init__(self, path):
        from mapdiff.diff import MATCHED_INPUT_COLUMNS
        from mapdiff.io import column_names

        self.path = path
        self.columns = [c for c in column_names(path) if c in MATCHED_INPUT_COLUMNS]

    def distances(self) -> pd.DataFrame:
        from mapdiff.io import read_table

        return read_table(self.path, columns=[c for c in ("state", "distance_m") if c in self.columns])

    def batches(self):
        for frames in owned_batches([self.path], None, columns=self.columns):
            yield frames[0]


def owned_rows(path, shard: Shard | None) -> int | None:
    """The rows a progress bar counts for ``shard`` of a file: all of a Parquet file's for an
    unsharded run (from its footer), else None (unknown before reading)."""
    from mapdiff.formats import trace_format
    from mapdiff.io import open_parquet

    if (shard is not None and not shard.whole) or trace_format(path) != "parquet":
        return None
    with open_parquet(path) as pf:
        return pf.metadata.num_rows


def match_part(traces: pd.DataFrame, network, config=None, *, shard: Shard | None, source: str = "traces",
               progress=None):
    """:func:`mapdiff.matching.match` on the trips of ``shard`` (``traces`` holds them)."""
    from mapdiff.matching import MATCHED_COLUMNS, PATH_COLUMNS, match

    if shard is not None and len(traces) == 0:
        return pd.DataFrame(columns=MATCHED_COLUMNS), pd.DataFrame(columns=PATH_COLUMNS)
    return match(traces, network, config, source=source, progress=progress)


def observe_part(detections: pd.DataFrame, matched: pd.DataFrame, camera, config=None, *, shard: Shard | None,
                 network=None, source: str = "detections", matched_source: str = "matched"):
    """:func:`mapdiff.observe.observe` on the trips of ``shard`` (the frames hold their
    detections and fixes)."""
    from mapdiff.observe import OBSERVATION_COLUMNS, observe

    if shard is not None and len(detections) == 0:
        return pd.DataFrame(columns=OBSERVATION_COLUMNS), detections.iloc[:0].assign(reason=pd.Series(dtype=str))
    return observe(detections, matched, camera, config, network=network, source=source, matched_source=matched_source)


@dataclass
class TileBatches:
    """The observations of a locate run, in batches of whole tiles (see :func:`tile_batches`).

    ``kind``: the whole data set's capture kind (None: decided from the one batch, the whole
    file); ``tiling``: the tiles (None: one piece); ``batches``: per batch, the keys of the tiles
    it owns (None: one piece) and its parts: functions that each read one part's (observations,
    their row numbers in the file or None when the part is the whole file in order), or with
    ``columns`` only those of it; ``path``: the file, of which :meth:`measures` reads a sample.
    """

    kind: str | None
    tiling: object
    batches: Iterator
    path: object = None
    _measured: dict = field(default_factory=dict, repr=False)

    def measures(self, config=None):
        """Locate's measures of this fleet's errors (:class:`mapdiff.locate.Measures`) for every
        tile and region of the run, measured once (then kept) over a sample of the file: at most
        ``MEASURE_ROWS`` rows in ``MEASURE_RUNS`` runs spread evenly over it (the whole file
        when it is no bigger). The same in every shard and however the run is cut into
        batches. None for a run in one piece held whole (it measures over all its tracks) and
        for single captures (measured tile by tile)."""
        from mapdiff.locate import LocateConfig

        config = config or LocateConfig()
        if config not in self._measured:
            self._measured[config] = self._measure(config)
        return self._measured[config]

    def _measure(self, config):
        from mapdiff.io import open_parquet, read_runs
        from mapdiff.locate import measure

        captures = config.captures
        if self.tiling is None or (self.kind if captures == "auto" else captures) == "imagery":
            return None
        with open_parquet(self.path) as pf:
            n = pf.metadata.num_rows
        if n <= MEASURE_ROWS:
            runs = [(0, n)]
        else:
            size = MEASURE_ROWS // MEASURE_RUNS  # (< n / MEASURE_RUNS: the runs do not overlap)
            runs = [(k * n // MEASURE_RUNS, k * n // MEASURE_RUNS + size) for k in range(MEASURE_RUNS)]
        sample = read_runs(self.path, runs)
        if not len(sample):
            return None
        origin = (float(sample["lon"].median()), float(sample["lat"].median()))  # (as locate's, held whole)
        return measure(sample, config, origin=origin, source=str(self.path))


#: the sample locate measures a tiled run's errors over (see :meth:`TileBatches.measures`): a
#: million observations make some 100,000 tracks of video passes, which measure medians and a
#: three-parameter mixture closely, and are located in seconds, under a gigabyte
#: (benchmarks/locate.py)
MEASURE_ROWS = 1_000_000
#: ... in this many runs of consecutive rows spread over the file: runs of whole trips (observe
#: writes a trip's rows together) of many vehicles and days, not one stretch of the file
MEASURE_RUNS = 16


def tile_batches(path, tiling, shard: Shard | None) -> TileBatches:
    """The observations of ``path`` a locate run works on, whole tiles (each tile's own rows
    and its halo's) in batches of at most ``$MAPDIFF_BATCH_ROWS`` rows, the tiles in key order;
    a tile with more rows than that is a batch of its own, read in parts of whole trips (by a
    hash of the trip id), each about a batch. An unsharded run without ``tiling`` is one piece
    (:class:`OnePiece` when the file is bigger than a batch: read in parts all the same). A
    shard's tiles are chosen by :func:`mapdiff.jobs.tiles.balance` from a first pass over the
    positions that counts every tile's rows; that pass also measures the data set's capture
    kind (:func:`mapdiff.locate.capture_kind`)."""
    from mapdiff.io import open_parquet, read_table
    from mapdiff.jobs.batches import batch_rows
    from mapdiff.jobs.tiles import balance

    max_rows = batch_rows()
    whole = shard is None or shard.whole
    if whole and tiling is None:
        with open_parquet(path) as pf:
            if pf.metadata.num_rows <= max_rows:
                return TileBatches(None, None, iter([(None, [lambda columns=None: (read_table(path, columns=columns),
                                                                               None)])]))
        # one piece all the same, read in parts of whole trips (no object near a tile border)
        tiling = OnePiece()
    tiling = tiling.validate()
    keys, rows, kind, bounds, trip_starts = _tile_census(path, tiling)
    if isinstance(tiling, OnePiece):
        tiling = OnePiece(bounds)
    owned = keys if whole else keys[balance(keys, rows, shard.count) == shard.index]
    owned_rows = rows[np.isin(keys, owned)]
    groups = _groups(owned, owned_rows, max_rows)
    # parts of whole trips of each group (only a tile of its own can be bigger than a batch)
    n_parts = np.array([-(-int(owned_rows[np.isin(owned, g)].sum()) // max_rows) if len(g) == 1 else 1
                        for g in groups], dtype=np.int64)

    def near_owned(table):
        idx, near = _near_keys(table, tiling)
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[idx[np.isin(near, owned)]] = True
        return mask

    def batches():
        if not groups:  # a shard that owns no tile (or no rows at all): one batch of no tiles, no objects
            yield np.zeros(0, dtype=np.int64), []
            return
        if len(groups) == 1 and n_parts[0] == 1:
            yield groups[0], [lambda columns=None: (read_table(path, columns=columns) if whole else
                                                    read_table(path, where=near_owned, columns=columns), None)]
            return
        if whole and isinstance(tiling, OnePiece) and trip_starts is not None:
            # every trip's rows already lie together (observe writes them so): each part is a
            # run of whole trips, read from the file as it is (a month's observations were
            # otherwise written out again, 16 GB, and read back)
            from mapdiff.io import read_rows

            cuts = _runs_of_trips(trip_starts, int(rows.sum()), max_rows)
            yield groups[0], [lambda columns=None, a=a, b=b: (read_rows(path, a, b, columns=columns), np.arange(a, b))
                              for a, b in zip(cuts[:-1], cuts[1:])]
            return
        import tempfile

        from mapdiff.jobs.batches import spill
        from mapdiff.jobs.shards import hash_shard

        group_of = np.repeat(np.arange(len(groups)), [len(g) for g in groups])  # of each owned key (sorted)
        first_part = np.r_[0, np.cumsum(n_parts)]

        def assign(table):
            idx, near = _near_keys(table, tiling)
            at = np.minimum(np.searchsorted(owned, near), len(owned) - 1)
            group = np.where(owned[at] == near, group_of[at], -1)
            # a row near two tiles of a group goes once: only the pairs of rows near several
            # tiles are made unique (np.unique of every row's pair took 15 of a 118 s run; of
            # a two-column array, 34 s of a 210 s run)
            row, group = idx[group >= 0].astype(np.int64), group[group >= 0]
            again = np.bincount(row, minlength=table.num_rows)[row] > 1
            pair = np.unique(row[again] * len(groups) + group[again])
            row, group = np.r_[row[~again], pair // len(groups)], np.r_[group[~again], pair % len(groups)]
            trip_hash = hash_shard(table.column("trip_id"), 1 << 32)  # (the CRC-32 itself)
            return row, first_part[group] + trip_hash[row] % n_parts[group]

        def loader(read, part):
            def load(columns=None):
                frame = read(part, only=columns)
                return frame.drop(columns=ROW_COLUMN), frame[ROW_COLUMN].to_numpy()
            return load

        with tempfile.TemporaryDirectory(prefix="mapdiff-tiles-") as tmp:
            read = spill(path, assign, f"{tmp}/g", where=None if whole else near_owned, row_column=ROW_COLUMN)
            for g, tiles in enumerate(groups):
                yield tiles, [loader(read, p) for p in range(first_part[g], first_part[g + 1])]

    return TileBatches(kind, tiling, batches(), path)


class OnePiece:
    """The tiling of an unsharded locate run that is one piece but bigger than a batch: one tile
    (key 0) that every row lies in; its objects are numbered 0, 1, ... The census gives it the
    data's ``bounds`` (lon0, lat0, lon1, lat1), whose middle centres the local metres."""

    def __init__(self, bounds=None):
        self.bounds = bounds  # (None while the census runs: it needs only ``near``)

    def validate(self) -> OnePiece:
        return self

    def near(self, lon, lat):
        return np.arange(len(lon)), np.zeros(len(lon), dtype=np.int64)

    def key(self, lon, lat):
        return np.zeros(len(lon), dtype=np.int64)

    def centre(self, key):
        lon0, lat0, lon1, lat1 = self.bounds
        return 0.5 * (lon0 + lon1), 0.5 * (lat0 + lat1)

    def object_ids(self, tile_key, n):
        return np.arange(n, dtype=np.int64)


def _near_keys(table, tiling):
    lon = table.column("lon").to_numpy(zero_copy_only=False)
    lat = table.column("lat").to_numpy(zero_copy_only=False)
    return tiling.near(lon, lat)


#: the column that carries an observation's row number in the file through a batch
ROW_COLUMN = "__mapdiff_row"


def _tile_census(path, tiling):
    """One pass over the positions and times of an observations file, batch by batch: the keys
    of the tiles it touches (sorted), the rows each sees (its own and its halo's), the data
    set's capture kind, its bounds (lon0, lat0, lon1, lat1) and, where every trip's rows lie
    together, the row each trip starts at (else None)."""
    import pyarrow as pa

    from mapdiff.io import open_parquet, storage
    from mapdiff.jobs.batches import READ_ROWS
    from mapdiff.locate import capture_kind_of_trips
    from mapdiff.schema import time_seconds

    need = ["trip_id", "t", "lon", "lat"]
    tiles = pd.Series(dtype=np.int64)
    bounds = [np.inf, np.inf, -np.inf, -np.inf]
    trips = []  # per batch: per trip its observations and first and last time
    starts, last_trip, done = [], None, 0  # the rows where a run of one trip's rows starts
    with open_parquet(path) as pf, storage(path, "read"):
        names = pf.schema_arrow.names
        missing = [c for c in need if c not in names]
        if missing:
            msg = f"{path}: locate over tiles needs the column(s) {missing}; found columns {names}"
            raise InputError(msg)
        for batch in pf.iter_batches(batch_size=READ_ROWS, columns=need):
            frame = pa.Table.from_batches([batch]).to_pandas()
            lon, lat = frame["lon"].to_numpy(float), frame["lat"].to_numpy(float)
            near = tiling.near(lon, lat)[1]
            if np.isfinite(lon).any() and np.isfinite(lat).any():
                bounds = [min(bounds[0], np.nanmin(lon)), min(bounds[1], np.nanmin(lat)),
                          max(bounds[2], np.nanmax(lon)), max(bounds[3], np.nanmax(lat))]
            tiles = tiles.add(pd.Series(near).value_counts(), fill_value=0)
            t = pd.Series(time_seconds(frame["t"], source=str(path)), index=frame.index)
            # (grouped by the codes, named after: text for every row took 4 s of 30 M rows)
            codes, names = pd.factorize(frame["trip_id"], use_na_sentinel=False)
            text = np.asarray(names.astype(str))
            if len(codes):
                run = np.r_[text[codes[0]] != last_trip, codes[1:] != codes[:-1]]
                starts.append(done + np.flatnonzero(run))
                last_trip, done = text[codes[-1]], done + len(codes)
            per = t.groupby(codes).agg(["size", "min", "max"])
            per.index = text[per.index.to_numpy()] if len(per) else per.index.astype(str)
            trips.append(per)
            if len(trips) > 1:  # (kept as one table: per trip, not per row)
                both = pd.concat(trips)
                trips = [both.groupby(level=0).agg({"size": "sum", "min": "min", "max": "max"})]
    tiles = tiles.sort_index()
    per_trip = trips[0] if trips else pd.DataFrame({"size": [], "min": [], "max": []})
    kind = capture_kind_of_trips(per_trip["size"].to_numpy(), per_trip["min"].to_numpy(), per_trip["max"].to_numpy())
    starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    together = len(starts) == len(per_trip)  # (a trip whose rows are apart starts more than once)
    return tiles.index.to_numpy(np.int64), tiles.to_numpy(np.int64), kind, tuple(bounds), starts if together else None


def _runs_of_trips(trip_starts: np.ndarray, n_rows: int, max_rows: int) -> np.ndarray:
    """Cuts (the first row of each run, then ``n_rows``) of a file whose trips' rows lie
    together into runs of whole trips of about ``max_rows`` rows: each cut is the first trip
    start at or after a multiple of ``max_rows`` (a longer trip is a run of its own)."""
    at = np.searchsorted(trip_starts, np.arange(max_rows, n_rows, max_rows))
    inner = trip_starts[at[at < len(trip_starts)]]
    return np.unique(np.r_[0, inner, n_rows]).astype(np.int64)


def _groups(keys: np.ndarray, rows: np.ndarray, max_rows: int) -> list[np.ndarray]:
    """``keys`` (sorted) cut into consecutive groups of at most ``max_rows`` rows (a tile with
    more is a group of its own)."""
    from mapdiff.jobs.batches import group_starts

    return np.split(keys, group_starts(rows, max_rows)[1:]) if len(keys) else []


class RowLabels:
    """What a locate run over an observations file found for each of its rows, joined over
    the batches of :func:`tile_batches` (an observation near tiles of two batches keeps the
    first tile's object): the object id with ``ids`` (for ``--labels``), else only whether it
    fitted one (a byte a row, not eight: a month has hundreds of millions)."""

    def __init__(self, path, *, ids: bool):
        from mapdiff.io import open_parquet

        with open_parquet(path) as pf:
            self.labels = np.full(pf.metadata.num_rows, -1, dtype=np.int64 if ids else np.int8)
        self.ids = ids

    def add(self, labels: np.ndarray, rows: np.ndarray | None) -> None:
        """A batch's labels (-1: none) of the file's ``rows`` (None: the whole file in order)."""
        rows = np.arange(len(labels)) if rows is None else rows
        take = (labels >= 0) & (self.labels[rows] < 0)
        self.labels[rows[take]] = labels[take] if self.ids else 1

    @property
    def unfitted(self) -> int:
        return int((self.labels < 0).sum())

    def write(self, source, path) -> None:
        """The observations of ``source`` with the ``object_id`` each fitted (-1: none) to
        ``path``, batch by batch."""
        from mapdiff.io import read_batches, table_writer

        with table_writer(path) as out:
            done = 0
            for frame in read_batches(source):
                out.write(frame.assign(object_id=self.labels[done:done + len(frame)]))
                done += len(frame)


def locate_part(parts, config=None, *, tiling, tiles: np.ndarray | None = None, kind: str | None = None,
                measures=None, source: str = "observations", progress=None, on_labels=None):
    """:func:`mapdiff.locate.locate` tile by tile (:mod:`mapdiff.jobs.tiles`; ``tiling`` None:
    in one piece) over the ``tiles`` (keys) of one batch of :func:`tile_batches`, whose
    ``parts`` (functions that read (observations, row numbers)) hold whole trips: each tile's
    observations with its halo go in (video passes part by part: only their tracks are held,
    a batch's worth at most, the rest on disk), the objects whose anchor lies in the tile (see
    :func:`mapdiff.locate._with_anchors`: within a metre or so of the position, but the same in
    every tile that holds the object's passes) come out, numbered by the tile. ``kind``: the
    whole data set's capture kind (:func:`tile_batches` measures it); ``measures``: a function
    giving its errors (:meth:`TileBatches.measures`): every tile takes them, none measures its
    own; one piece takes them only where its tracks go to disk (held, it measures over them all,
    as a run held whole does). Returns the objects;
    ``on_labels(labels, rows)`` is given, per part and tile read, labels like ``locate``'s and
    the rows they label (an observation that several tiles see is given once for each)."""
    from dataclasses import replace

    from mapdiff.jobs.batches import batch_rows
    from mapdiff.locate import ANCHOR_COLUMNS, LocateConfig, locate, locate_batches, no_objects

    on_labels = on_labels or (lambda labels, rows: None)
    if tiling is None:  # one piece: the objects get their numbers 0, 1, ...
        observations, rows = parts[0]()
        objects, labels = locate(observations, config, source=source)
        on_labels(labels, rows)
        return objects
    tiling = tiling.validate()
    config = config or LocateConfig()
    if config.captures == "auto":  # a property of the data set, not of a tile's few rows
        config = replace(config, captures=kind)
    # (a batch of one part is read once for all its tiles)
    one = _TileIndex(*parts[0](), tiling, source, tiles) if len(parts) == 1 else None
    frames = []
    for tile in tiles:
        with _TakenRows(on_disk=len(parts) > 1) as taken:

            def tile_frames(tile=tile, taken=taken, columns=None):
                """The tile's observations part by part (read afresh: locate reads them more
                than once), with only ``columns`` if given; the file rows of each go to
                ``taken``, the last reading's."""
                taken.clear()
                for load in parts:
                    index = one or _TileIndex(*load(columns), tiling, source, tiles)
                    sub = index.rows_of(tile)
                    if len(sub):
                        taken.append(index.file_rows(sub))
                        obs = index.obs.iloc[sub]
                        # (a missing column is named later)
                        yield obs if columns is None else obs[[c for c in columns if c in obs]]

            if config.captures == "imagery":  # (single captures are few: a tile's all at once)
                objects, lab = locate(pd.concat(list(tile_frames()), ignore_index=True), config, source=source)
                labs, rows = [lab], [np.concatenate(list(taken))]
            else:
                one_piece = isinstance(tiling, OnePiece)
                objects, labs = locate_batches(tile_frames, config, origin=tiling.centre(tile), source=source,
                                               max_tracks=batch_rows(),
                                               measures=None if one_piece or measures is None else measures(),
                                               spill_measures=measures if one_piece else None)
                rows = taken
            if progress is not None:
                progress(1)
            # a tile owns the objects whose anchor lies in it (the same in every tile that holds
            # their passes; single captures: their position)
            at = ANCHOR_COLUMNS if ANCHOR_COLUMNS[0] in objects else ["lon", "lat"]
            own = tiling.key(objects[at[0]].to_numpy(float), objects[at[1]].to_numpy(float)) == tile
            objects = objects.drop(columns=ANCHOR_COLUMNS, errors="ignore")
            ids = tiling.object_ids(int(tile), int(own.sum()))
            remap = np.full(len(objects) + 1, -1, dtype=np.int64)
            remap[np.flatnonzero(own)] = ids
            frames.append(objects[own].assign(object_id=ids))
            for lab, taken_rows in zip(labs, rows):
                on_labels(remap[np.where(lab >= 0, lab, len(objects))], taken_rows)
    full = [f for f in frames if len(f)]
    if not full:
        return no_objects()
    objects = pd.concat(full, ignore_index=True) if len(full) > 1 else full[0].reset_index(drop=True)
    return objects.sort_values("object_id", kind="stable").reset_index(drop=True)


class _TakenRows:
    """The file rows of each part a tile's reading took, in order: on disk when the tile has
    several parts (a month's tile sees some 300 M rows)."""

    def __init__(self, *, on_disk: bool):
        import tempfile

        self._tmp = tempfile.TemporaryDirectory(prefix="mapdiff-rows-") if on_disk else None
        self._held: list = []
        self._n = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._tmp is not None:
            self._tmp.cleanup()

    def clear(self) -> None:
        self._held, self._n = [], 0

    def append(self, rows: np.ndarray) -> None:
        if self._tmp is None:
            self._held.append(rows)
        else:
            from mapdiff.io import spilling

            with spilling():
                np.save(f"{self._tmp.name}/{self._n}.npy", rows)
        self._n += 1

    def __iter__(self):
        if self._tmp is None:
            yield from self._held
            return
        for i in range(self._n):
            yield np.load(f"{self._tmp.name}/{i}.npy")


class _TileIndex:
    """A part's observations of a batch of ``tiles`` and the rows each tile sees (validated where
    a part has several tiles: bad input is named once, for the whole part)."""

    def __init__(self, obs, rows, tiling, source, tiles):
        from mapdiff.locate import validate_observations

        self.obs, self.rows = obs, rows
        self.in_order = len(tiles) == 1
        if self.in_order:  # a tile of its own: every row of its parts is the tile's
            self.idx, self.keys = np.arange(len(obs)), np.full(len(obs), tiles[0], dtype=np.int64)
            return
        lon, lat = validate_observations(obs, source)[:2]
        idx, keys = tiling.near(lon, lat)
        order = np.argsort(keys, kind="stable")
        self.idx, self.keys = idx[order], keys[order]

    def rows_of(self, tile) -> np.ndarray:
        """The rows (of ``obs``, in order) that ``tile`` sees."""
        a, b = np.searchsorted(self.keys, tile, "left"), np.searchsorted(self.keys, tile, "right")
        # (a tile of its own has every row, in order: sorting them again took 4.6 s of 118)
        return self.idx[a:b] if self.in_order else np.sort(self.idx[a:b])

    def file_rows(self, sub):
        return sub if self.rows is None else self.rows[sub]


def diff_part(result, *, tiling, shard: Shard | None):
    """The rows of a :class:`mapdiff.diff.DiffResult` that ``shard`` owns: those whose place
    (the centre of the geometry) lies in one of its tiles, the tiles balanced by their rows.
    Every shard computes the whole judgment (its confidences are calibrated over the whole map)
    and keeps its own rows: the shards' outputs merge into the unsharded one, but a shard is no
    faster nor smaller than the whole."""
    from dataclasses import replace

    from mapdiff.jobs.tiles import balance

    if shard is None or shard.whole:
        return result
    tiling = tiling.validate()

    def keys(frame):
        import shapely

        centre = shapely.centroid(np.asarray(frame.geometry.values))  # (degrees: only to pick a tile)
        return tiling.key(shapely.get_x(centre), shapely.get_y(centre))

    k_diffs, k_unverified = keys(result.diffs), keys(result.unverified)
    tiles, counts = np.unique(np.r_[k_diffs, k_unverified], return_counts=True)
    owned = tiles[balance(tiles, counts, shard.count) == shard.index]
    return replace(result, diffs=result.diffs[np.isin(k_diffs, owned)].reset_index(drop=True),
                   unverified=result.unverified[np.isin(k_unverified, owned)].reset_index(drop=True))
