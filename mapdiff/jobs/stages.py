"""A stage run on the rows one shard owns: the jobs layer reads the rows a shard owns (batch by
batch, so a shard holds only its own), the stage function sees only frames. A shard that owns no
rows writes empty outputs with the stage's columns (one of N array jobs may draw no trips), not
an error."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mapdiff.errors import InputError
from mapdiff.jobs.shards import Shard, batch_owner


def owned_batches(paths, shard: Shard | None, column: str = "trip_id"):
    """The rows of the files ``paths`` that ``shard`` owns by the hash of ``column`` (all for
    None), whole trips in batches (:func:`mapdiff.jobs.batches.trip_batches`): per batch one frame
    per file. The batch size is ``$MAPDIFF_BATCH_ROWS`` rows of the first file, else
    :data:`mapdiff.jobs.batches.BATCH_ROWS`."""
    from mapdiff.jobs.batches import batch_rows, trip_batches

    where = None if shard is None or shard.whole else batch_owner(shard, column)
    return trip_batches(paths, max_rows=batch_rows(), where=where, column=column)


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


def read_tiles(path, tiling, shard: Shard | None) -> tuple[pd.DataFrame, str | None, np.ndarray | None]:
    """The observations a shard's tiles see (each tile's own and its halo's), read batch by
    batch; the capture kind of the whole file (:func:`mapdiff.locate.capture_kind`: the data
    set's, not a tile's; None for an unsharded run, whose frame is the whole); and the keys of
    the shard's tiles (None: all), chosen by :func:`mapdiff.jobs.tiles.balance` from a first
    pass over the trips and positions that counts every tile's rows."""
    from mapdiff.io import column_names, read_table
    from mapdiff.jobs.tiles import balance
    from mapdiff.locate import capture_kind

    if shard is None or shard.whole:
        return read_table(path), None, None
    names = column_names(path)
    missing = [c for c in ("trip_id", "t", "lon", "lat") if c not in names]
    if missing:
        msg = f"{path}: a sharded locate needs the column(s) {missing}; found columns {names}"
        raise InputError(msg)
    first = read_table(path, columns=["trip_id", "t", "lon", "lat"])
    keys, rows = np.unique(tiling.near(first["lon"].to_numpy(), first["lat"].to_numpy())[1], return_counts=True)
    kind = capture_kind(first)
    del first
    owned = keys[balance(keys, rows, shard.count) == shard.index]

    def near_owned(table):
        idx, near = _near_keys(table, tiling)
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[idx[np.isin(near, owned)]] = True
        return mask

    return read_table(path, where=near_owned), kind, owned


def _near_keys(table, tiling):
    lon = table.column("lon").to_numpy(zero_copy_only=False)
    lat = table.column("lat").to_numpy(zero_copy_only=False)
    return tiling.near(lon, lat)


def locate_part(observations: pd.DataFrame, config=None, *, tiling, tiles: np.ndarray | None = None,
                kind: str | None = None, source: str = "observations", progress=None):
    """:func:`mapdiff.locate.locate` tile by tile (:mod:`mapdiff.jobs.tiles`; ``tiling`` None:
    in one piece) over the ``tiles``
    (keys; None: every tile ``observations`` touch), a shard's (see :func:`read_tiles`): each
    tile's observations with its halo go in, the objects whose position lies in the tile come
    out, numbered by the tile. ``kind``: the whole data set's capture kind (else decided from
    ``observations``). Returns (objects, labels) like ``locate``; an observation that several
    tiles assigned keeps the first tile's (in key order) object."""
    from dataclasses import replace

    from mapdiff.jobs.tiles import object_ids
    from mapdiff.locate import OBJECT_COLUMNS, LocateConfig, capture_kind, locate, validate_observations

    if tiling is None:  # one piece: the objects get their numbers 0, 1, ...
        return locate(observations, config, source=source)
    tiling = tiling.validate()
    if tiles is not None and len(observations) == 0:
        return pd.DataFrame({c: [] for c in OBJECT_COLUMNS}), np.zeros(0, dtype=np.int64)
    lon, lat = validate_observations(observations, source)[:2]  # bad input is named once, for the whole file
    config = config or LocateConfig()
    if config.captures == "auto":  # a property of the data set, not of a tile's few rows
        config = replace(config, captures=kind or capture_kind(observations))
    rows, keys = tiling.near(lon, lat)
    order = np.argsort(keys, kind="stable")
    rows, keys = rows[order], keys[order]
    present = np.unique(keys)
    mine = present if tiles is None else present[np.isin(present, tiles)]
    starts, ends = np.searchsorted(keys, mine, "left"), np.searchsorted(keys, mine, "right")
    labels = np.full(len(observations), -1, dtype=np.int64)
    frames = []
    for tile, a, b in zip(mine, starts, ends):
        sub_rows = np.sort(rows[a:b])
        objects, lab = locate(observations.iloc[sub_rows], config, source=source)
        own = tiling.key(objects["lon"].to_numpy(), objects["lat"].to_numpy()) == tile
        ids = object_ids(int(tile), int(own.sum()))
        remap = np.full(len(objects) + 1, -1, dtype=np.int64)
        remap[np.flatnonzero(own)] = ids
        frames.append(objects[own].assign(object_id=ids))
        lab = remap[np.where(lab >= 0, lab, len(objects))]
        take = (lab >= 0) & (labels[sub_rows] < 0)
        labels[sub_rows[take]] = lab[take]
        if progress is not None:
            progress(1)
    full = [f for f in frames if len(f)]
    if not full:
        return pd.DataFrame({c: [] for c in OBJECT_COLUMNS}), labels
    objects = pd.concat(full, ignore_index=True) if len(full) > 1 else full[0].reset_index(drop=True)
    return objects.sort_values("object_id", kind="stable").reset_index(drop=True), labels


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
