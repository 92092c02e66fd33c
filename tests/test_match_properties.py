"""Invariants of the matcher on random drives (hypothesis): connected paths, real edges, one row per fix."""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fixtures.grid import ONEWAY_ROW, N, drive
from mapdiff.matching import match


def _neighbours(node):
    i, j = divmod(node, 10)
    out = []
    if i + 1 < N:
        out.append(10 * (i + 1) + j)
    if i > 0 and j != ONEWAY_ROW:
        out.append(10 * (i - 1) + j)
    if j + 1 < N:
        out.append(node + 1)
    if j > 0:
        out.append(node - 1)
    return out


@st.composite
def walks(draw):
    node = draw(st.sampled_from([10 * i + j for i in range(N) for j in range(N)]))
    path = [node]
    for _ in range(draw(st.integers(2, 7))):
        options = [n for n in _neighbours(path[-1]) if len(path) < 2 or n != path[-2]]
        path.append(draw(st.sampled_from(options)))
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=walks(), noise=st.floats(0, 8), seed=st.integers(0, 2**16), hz=st.sampled_from([1.0, 0.2]),
       drop=st.floats(0, 0.3))
# (a first fix 8 m off by the one-way row: the path starts on it driven backwards, 11 -> 1)
@example(route=[1, 2, 12, 22], noise=8.0, seed=3, hz=1.0, drop=0.0)
def test_matched_paths_are_connected_and_complete(grid_net, route, noise, seed, hz, drop):
    df = drive(route, noise_m=noise, seed=seed, hz=hz)
    rng = np.random.default_rng(seed)
    keep = rng.random(len(df)) >= drop
    keep[0] = True  # dropouts, but never the whole trip
    df = df[keep]
    matched, paths = match(df, grid_net)
    assert len(matched) == len(df)
    assert set(matched["state"]) <= {"matched", "unmatched", "break"}
    edges = grid_net.edges.set_index("edge_id")
    assert paths["edge_id"].isin(edges.index).all()
    assert matched["edge_id"].dropna().isin(edges.index).all()
    for (_, _), part in paths.groupby(["trip_id", "chain"]):
        # each row is driven from u to v, or from v to u where it runs against the edge
        against = part["against"].to_numpy(bool)
        enter = np.where(against, part["v"], part["u"])
        leave = np.where(against, part["u"], part["v"])
        assert (leave[:-1] == enter[1:]).all(), part
    ok = matched["state"] != "unmatched"
    assert (matched.loc[ok, "confidence"].between(0, 1)).all()
    assert (matched.loc[ok, "distance_m"] >= 0).all()
    assert (matched["offset_m"].dropna() >= -1e-6).all()
    assert pd.Series(paths["seq"]).groupby(paths["trip_id"]).apply(lambda s: (s.diff().dropna() == 1).all()).all()
