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
