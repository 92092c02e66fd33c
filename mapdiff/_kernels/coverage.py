"""The coverage accumulation: one pass over path rows, per-edge counters updated in place."""

import numpy as np

from mapdiff._kernels import jit


@jit
def accumulate(edge, trip, against, t_enter, t_exit, keep, acc_n, acc_t, last_trip):
    """Add a batch of path rows to the per-edge counters.

    ``edge`` holds dense edge codes, ``trip`` global trip codes; the rows of one trip are
    contiguous (paths are written trip by trip), so a (edge, trip) pair is new exactly when the
    edge's last-seen trip differs, and distinct trips need no set.

    ``acc_n[e]`` = (passes, against, trips, trips_against); ``acc_t[e]`` = (first t_enter, last
    t_exit); ``last_trip[e]`` = (last trip seen with, last trip seen against). Rows with
    ``keep`` False are skipped.
    """
    for i in range(len(edge)):
        if not keep[i]:
            continue
        e = edge[i]
        a = 1 if against[i] else 0
        acc_n[e, a] += 1
        if last_trip[e, a] != trip[i]:
            last_trip[e, a] = trip[i]
            acc_n[e, 2 + a] += 1
        if t_enter[i] < acc_t[e, 0]:
            acc_t[e, 0] = t_enter[i]
        if t_exit[i] > acc_t[e, 1]:
            acc_t[e, 1] = t_exit[i]


@jit
def trip_starts(trip_change, t_enter, carry_start):
    """Per row, the t_enter of its trip's first row; ``carry_start`` for rows continuing the
    trip the previous batch ended with (before the first change)."""
    out = np.empty_like(t_enter)
    current = carry_start
    for i in range(len(t_enter)):
        if trip_change[i]:
            current = t_enter[i]
        out[i] = current
    return out
