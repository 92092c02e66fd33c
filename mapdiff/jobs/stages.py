"""A stage run on the rows one shard owns: the jobs layer picks the rows, the stage function
sees only frames. A shard that owns no rows writes empty outputs with the stage's columns (one
of N array jobs may draw no trips), not an error."""

from __future__ import annotations

import pandas as pd

from mapdiff.jobs.shards import Shard, owned


def match_part(traces: pd.DataFrame, network, config=None, *, shard: Shard, source: str = "traces", progress=None):
    """:func:`mapdiff.matching.match` on the trips of ``shard``."""
    from mapdiff.matching import MATCHED_COLUMNS, PATH_COLUMNS, match

    part = owned(traces, shard)
    if len(part) == 0 and len(traces) > 0:
        return pd.DataFrame(columns=MATCHED_COLUMNS), pd.DataFrame(columns=PATH_COLUMNS)
    return match(part, network, config, source=source, progress=progress)


def observe_part(detections: pd.DataFrame, matched: pd.DataFrame, camera, config=None, *, shard: Shard, network=None,
                 source: str = "detections", matched_source: str = "matched"):
    """:func:`mapdiff.observe.observe` on the trips of ``shard`` (their detections and fixes)."""
    from mapdiff.observe import OBSERVATION_COLUMNS, observe

    det, fixes = owned(detections, shard), owned(matched, shard)
    if len(det) == 0 and len(detections) > 0:
        return pd.DataFrame(columns=OBSERVATION_COLUMNS), detections.iloc[:0].assign(reason=pd.Series(dtype=str))
    return observe(det, fixes, camera, config, network=network, source=source, matched_source=matched_source)


def locate_part(observations: pd.DataFrame, config=None, *, tiling, shard: Shard, source: str = "observations",
                progress=None):
    """:func:`mapdiff.locate.locate` tile by tile (:mod:`mapdiff.jobs.tiles`) over the tiles
    ``shard`` owns: each tile's observations with its halo go in, the objects whose position
    lies in the tile come out, numbered by the tile. Returns (objects, labels) like ``locate``;
    an observation that several tiles assigned keeps the first tile's (in key order) object."""
    from dataclasses import replace

    import numpy as np

    from mapdiff.jobs.shards import hash_shard
    from mapdiff.jobs.tiles import object_ids
    from mapdiff.locate import OBJECT_COLUMNS, LocateConfig, capture_kind, locate, validate_observations

    tiling = tiling.validate()
    lon, lat = validate_observations(observations, source)[:2]  # bad input is named once, for the whole file
    config = config or LocateConfig()
    if config.captures == "auto":  # a property of the data set, not of a tile's few rows
        config = replace(config, captures=capture_kind(observations))
    rows, keys = tiling.near(lon, lat)
    order = np.argsort(keys, kind="stable")
    rows, keys = rows[order], keys[order]
    tiles = np.unique(keys)
    mine = tiles[hash_shard(tiles, shard.count) == shard.index] if not shard.whole else tiles
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
