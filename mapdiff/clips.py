"""Clips: stretches of a trip's video (``trip_id``, ``t_start``, ``t_end``), as requested by
``mapdiff plan``; what was filmed is what lies inside them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mapdiff.errors import InputError

#: times are compared to the millisecond (the contracts' resolution)
TOLERANCE_S = 1e-3


def read_clips(requests: pd.DataFrame, source: str = "requests") -> pd.DataFrame:
    """The clips of a requests frame (rows with a ``task_id``), validated: ``task_id``,
    ``trip_id`` (text), ``t0``, ``t1`` (float seconds), sorted by trip and start."""
    from mapdiff.schema import require, time_seconds

    require(requests, ["task_id", "trip_id", "t_start", "t_end"], source)
    rows = requests[requests["task_id"].notna()]
    if "status" in rows:
        rows = rows[rows["status"] != "unsatisfied"]
    t0 = time_seconds(rows["t_start"], source=source, column="t_start")
    t1 = time_seconds(rows["t_end"], source=source, column="t_end")
    if (t1 < t0).any():
        msg = f"{source}: {int((t1 < t0).sum()):,} clips end before they start (t_end < t_start)"
        raise InputError(msg)
    clips = pd.DataFrame({"task_id": rows["task_id"].astype(str).to_numpy(),
                          "trip_id": rows["trip_id"].astype(str).to_numpy(), "t0": t0, "t1": t1})
    return clips.sort_values(["trip_id", "t0", "t1"], kind="stable").reset_index(drop=True)


def read_clip_files(paths) -> pd.DataFrame:
    """The clips of one or more requests files (a plan and its confirmation rounds), each clip
    once (by task id)."""
    from mapdiff.io import read_table

    parts = [read_clips(read_table(p), str(p)) for p in paths]
    clips = pd.concat(parts, ignore_index=True).drop_duplicates("task_id")
    return clips.sort_values(["trip_id", "t0", "t1"], kind="stable").reset_index(drop=True)


def merged(clips: pd.DataFrame) -> pd.DataFrame:
    """Per trip, overlapping clips (two plans may ask for the same stretch) merged into one."""
    end = clips.groupby("trip_id")["t1"].cummax()
    prev_end = end.groupby(clips["trip_id"]).shift()
    new = (prev_end.isna() | (clips["t0"] > prev_end + TOLERANCE_S)).cumsum()
    return clips.groupby(new).agg(trip_id=("trip_id", "first"), t0=("t0", "min"), t1=("t1", "max"))


def within(trip_id, t0, t1, clips: pd.DataFrame) -> np.ndarray:
    """Which rows (their trip, and the time span ``[t0, t1]`` in float seconds; an instant has
    ``t0 == t1``) lie wholly inside a clip of their trip."""
    t0 = np.asarray(t0, float)
    t1 = np.asarray(t1, float)
    if len(clips) == 0 or len(t0) == 0:
        return np.zeros(len(t0), bool)
    runs = merged(clips)
    trips = pd.Index(pd.unique(runs["trip_id"]))
    code = trips.get_indexer(pd.Index(np.asarray(trip_id).astype(str)))
    run_code = trips.get_indexer(runs["trip_id"])
    origin = min(float(runs["t0"].min()), float(t0.min()))
    span = max(float(runs["t1"].max()), float(t1.max())) - origin + 1.0
    # one sorted axis: trip after trip, time within a trip
    start_key = run_code * span + (runs["t0"].to_numpy() - origin)
    end_key = run_code * span + (runs["t1"].to_numpy() - origin)
    key0 = code * span + (t0 - origin)
    key1 = code * span + (t1 - origin)
    at = np.searchsorted(start_key, key0 + TOLERANCE_S, side="right") - 1
    ok = (code >= 0) & (at >= 0)
    at = np.maximum(at, 0)
    return ok & (run_code[at] == code) & (key1 <= end_key[at] + TOLERANCE_S)
