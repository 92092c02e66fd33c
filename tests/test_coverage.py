"""coverage: hand-checked counts, windows that merge exactly, streaming equals in-memory."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapdiff.coverage import coverage, coverage_file, merge_coverage
from mapdiff.errors import InputError

T0 = pd.Timestamp("2026-01-05 08:00", tz="UTC")


def _paths(rows):
    """rows: (trip, vehicle, edge, against, minute entered)"""
    df = pd.DataFrame(rows, columns=["trip_id", "vehicle_id", "edge_id", "against", "minute"])
    df["u"], df["v"], df["key"] = df["edge_id"] * 10, df["edge_id"] * 10 + 1, 0
    df["t_enter"] = T0 + pd.to_timedelta(df["minute"], unit="min")
    df["t_exit"] = df["t_enter"] + pd.Timedelta(seconds=30)
    return df.drop(columns="minute")


HAND = _paths([
    ("a", "v1", 1, False, 0), ("a", "v1", 2, False, 1), ("a", "v1", 1, False, 2),  # a loops over edge 1
    ("b", "v1", 1, True, 10), ("b", "v1", 3, False, 11),
    ("c", "v2", 1, False, 20),
])


def test_hand_checked_counts():
    cov = coverage(HAND).set_index("edge_id")
    assert list(cov.index) == [1, 2, 3]
    e1 = cov.loc[1]
    # edge 1: trip a twice (one trip), c once with; b once against
    assert (e1["passes"], e1["against"], e1["trips"], e1["trips_against"], e1["vehicles"]) == (3, 1, 2, 1, 2)
    assert list(e1["vehicle_ids"]) == ["v1", "v2"]
    assert e1["t_first"] == T0 and e1["t_last"] == T0 + pd.Timedelta(minutes=20, seconds=30)
    assert (e1["u"], e1["v"], e1["key"]) == (10, 11, 0)
    assert cov.loc[3, "trips"] == 1 and cov.loc[3, "vehicles"] == 1


def test_window_keeps_whole_trips_by_their_start():
    cov = coverage(HAND, since=T0 + pd.Timedelta(minutes=1), until=T0 + pd.Timedelta(minutes=15)).set_index("edge_id")
    # only trip b starts in the window; trip a's later rows (minutes 1, 2) are not counted
    assert list(cov.index) == [1, 3]
    assert cov.loc[1, "passes"] == 0 and cov.loc[1, "against"] == 1


def test_no_vehicle_column_gives_null_vehicles():
    cov = coverage(HAND.drop(columns="vehicle_id"))
    assert cov["vehicles"].isna().all() and cov["passes"].sum() == 5


def test_non_contiguous_trip_is_an_error():
    bad = pd.concat([HAND, HAND.iloc[:1]], ignore_index=True)
    with pytest.raises(InputError, match="trip 'a' are not contiguous"):
        coverage(bad, source="p.parquet")


def test_missing_column_is_named():
    with pytest.raises(InputError, match="p.parquet: missing column.*against"):
        coverage(HAND.drop(columns="against"), source="p.parquet")


def _random_paths(seed, n_trips=40):
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_trips):
        start = int(rng.integers(0, 600))
        for j in range(int(rng.integers(1, 12))):
            rows.append((f"t{k:03d}", f"v{rng.integers(0, 6)}", int(rng.integers(0, 15)), bool(rng.random() < 0.2),
                         start + j))
    df = _paths(rows)
    # one vehicle per trip
    df["vehicle_id"] = df.groupby("trip_id")["vehicle_id"].transform("first")
    return df


def _same(a, b):
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(0, 700))
def test_two_windows_merged_equal_their_union(seed, cut):
    paths = _random_paths(seed)
    mid = T0 + pd.Timedelta(minutes=cut)
    parts = [coverage(paths, until=mid), coverage(paths, since=mid)]
    _same(merge_coverage(parts), coverage(paths))


def test_streaming_in_small_batches_equals_in_memory(tmp_path):
    paths = _random_paths(3, n_trips=200)
    path = tmp_path / "paths.parquet"
    paths.to_parquet(path, index=False)
    # batches of 7 rows split trips across batches: the carried trip must keep its code
    _same(coverage_file(path, batch_rows=7), coverage(paths))


def test_against_a_slow_reference():
    paths = _random_paths(11, n_trips=100)
    cov = coverage(paths).set_index("edge_id")
    for e, g in paths.groupby("edge_id"):
        w, a = g[~g["against"]], g[g["against"]]
        assert cov.loc[e, "passes"] == len(w) and cov.loc[e, "against"] == len(a)
        assert cov.loc[e, "trips"] == w["trip_id"].nunique()
        assert cov.loc[e, "trips_against"] == a["trip_id"].nunique()
        assert cov.loc[e, "vehicles"] == g["vehicle_id"].nunique()
        assert cov.loc[e, "t_first"] == g["t_enter"].min() and cov.loc[e, "t_last"] == g["t_exit"].max()


def test_cli_coverage_and_merge(tmp_path):
    from click.testing import CliRunner

    from mapdiff_cli.main import cli

    paths = _random_paths(5, n_trips=60)
    p = tmp_path / "paths.parquet"
    paths.to_parquet(p, index=False)
    runner = CliRunner()
    mid = (T0 + pd.Timedelta(minutes=300)).isoformat()
    for args in (["-o", tmp_path / "all.parquet"], ["--until", mid, "-o", tmp_path / "a.parquet"],
                 ["--since", mid, "-o", tmp_path / "b.parquet"]):
        r = runner.invoke(cli, ["coverage", str(p), *map(str, args), "-q"])
        assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["merge", "coverage", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"),
                            "-o", str(tmp_path / "m.parquet"), "-q"])
    assert r.exit_code == 0, r.output
    _same(pd.read_parquet(tmp_path / "m.parquet"), pd.read_parquet(tmp_path / "all.parquet"))
    r = runner.invoke(cli, ["coverage", str(p), "--since", "yesterday-ish", "-o", str(tmp_path / "x.parquet")])
    assert r.exit_code == 2 and "--since" in r.output
    r = runner.invoke(cli, ["coverage", str(tmp_path / "nope.parquet"), "-o", str(tmp_path / "x.parquet")])
    assert r.exit_code == 1 and "file not found" in r.output and not (tmp_path / "x.parquet").exists()


def test_a_utc_window_on_paths_timed_in_seconds():
    # times as float seconds since the epoch, the window as UTC timestamps (what the CLI passes)
    epoch = pd.Timestamp(0, tz="UTC")
    secs = HAND.assign(t_enter=(HAND["t_enter"] - epoch).dt.total_seconds(),
                       t_exit=(HAND["t_exit"] - epoch).dt.total_seconds())
    cov = coverage(secs, since=T0 + pd.Timedelta(minutes=1), until=T0 + pd.Timedelta(minutes=15)).set_index("edge_id")
    assert list(cov.index) == [1, 3] and cov.loc[1, "against"] == 1
