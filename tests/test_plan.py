"""plan: targets, the multicover on hand-checkable grid trips, its lower bound against brute
force, and the CLI's bad inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapdiff.errors import InputError
from mapdiff.plan import PlanConfig, bounds, passes, plan, sun_elevation_deg, targets

NOON = pd.Timestamp("2026-06-21T10:00", tz="UTC")  # midday in Helsinki: daylight
NIGHT = pd.Timestamp("2026-06-21T23:00", tz="UTC")  # 02:00 local, the sun 7 degrees down even at midsummer
PURE = {"night_weight": 1.0, "half_life_days": 1e9, "repeat_vehicle_weight": 1.0}  # seconds only


@pytest.fixture(scope="module")
def eid(grid_edges):
    """edge id of the directed grid edge u -> v."""
    lookup = {(int(u), int(v)): int(e) for u, v, e in zip(grid_edges["u"], grid_edges["v"], grid_edges["edge_id"],
                                                           strict=True)}
    return lambda u, v: lookup[(u, v)]


def _trip(trip_id, nodes, eid, start, *, vehicle=None, speed_mps=10.0):
    """A trip along grid nodes, 100 m edges at ``speed_mps``: one path row per edge."""
    dt = pd.Timedelta(seconds=100.0 / speed_mps)
    edges = [eid(a, b) for a, b in itertools.pairwise(nodes)]
    return pd.DataFrame({
        "trip_id": trip_id, "vehicle_id": vehicle or f"car-{trip_id}", "edge_id": edges,
        "t_enter": [start + i * dt for i in range(len(edges))],
        "t_exit": [start + (i + 1) * dt for i in range(len(edges))],
    })


def _targets(edge_ids, k=1):
    return pd.DataFrame({"edge_id": np.asarray(edge_ids, np.int64), "need": np.int64(k), "target": "user"})


def _clips(result):
    return result.requests[result.requests["status"] == "pending"].reset_index(drop=True)


# along row 0 eastwards: 0 -> 10 -> 20 -> 30, then north at the end
ROW = [0, 10, 20, 30, 31]


def test_one_target_edge_costs_its_pass_and_the_lead_in(grid_net, eid):
    paths = _trip("a", ROW, eid, NOON)
    result = plan(paths, grid_net, _targets([eid(10, 20)]), config=PlanConfig(lead_m=30.0))
    clips = _clips(result)
    assert len(clips) == 1
    # enters 10 -> 20 at 10 s; the lead-in starts 30 m (3 s) before, on the edge before
    assert clips["t_start"][0] == NOON + pd.Timedelta(seconds=7)
    assert clips["t_end"][0] == NOON + pd.Timedelta(seconds=20)
    assert clips["edge_ids"][0] == [eid(10, 20)]
    assert result.cost_s == pytest.approx(13.0)
    # nothing to choose: both bounds are tight
    assert result.bounds["highs_lp"] == pytest.approx(13.0)
    assert result.bounds["lagrangian"] == pytest.approx(13.0, rel=1e-3)


def test_adjacent_target_edges_of_one_pass_merge_into_one_clip(grid_net, eid):
    paths = _trip("a", ROW, eid, NOON)
    result = plan(paths, grid_net, _targets([eid(10, 20), eid(20, 30)]), config=PlanConfig(lead_m=30.0))
    clips = _clips(result)
    assert len(clips) == 1 and clips["edge_ids"][0] == [eid(10, 20), eid(20, 30)]
    assert result.cost_s == pytest.approx(23.0)  # one lead-in, not two


def test_first_and_last_pass_of_a_trip_serve_nothing(grid_net, eid):
    paths = _trip("a", ROW, eid, NOON)
    result = plan(paths, grid_net, _targets([eid(0, 10), eid(30, 31)]))
    assert _clips(result).empty and result.unsatisfied == 2
    assert set(result.requests["reason"]) == {"only 0 distinct trips drove through it; 1 wanted"}


def test_a_pass_faster_than_the_road_allows_serves_nothing(grid_net, eid):
    # the matcher's jitter: 10 -> 20 (100 m) "driven" in 2 s while the car stands; a real pass
    # an hour later costs more, and is the one chosen
    jitter = _trip("jitter", ROW, eid, NOON)
    jitter.loc[1, "t_exit"] = jitter.loc[1, "t_enter"] + pd.Timedelta(seconds=2)
    jitter.loc[2:, ["t_enter", "t_exit"]] -= pd.Timedelta(seconds=8)
    paths = pd.concat([jitter, _trip("real", ROW, eid, NOON + pd.Timedelta(hours=1))])
    assert list(_clips(plan(paths, grid_net, _targets([eid(10, 20)])))["trip_id"]) == ["real"]


def test_rows_of_one_pass_split_by_the_matcher_are_one_pass(grid_net, eid):
    paths = _trip("a", ROW, eid, NOON)
    split = paths.iloc[[1]].copy()
    paths.loc[1, "t_exit"] = paths.loc[1, "t_enter"] + pd.Timedelta(seconds=4)  # 10 -> 20 in two rows
    split["t_enter"] = paths.loc[1, "t_exit"]
    paths = pd.concat([paths, split], ignore_index=True)
    result = plan(paths, grid_net, _targets([eid(10, 20)]), config=PlanConfig(lead_m=30.0))
    assert result.cost_s == pytest.approx(13.0) and len(_clips(result)) == 1  # not two 4 s and 6 s passes


def test_k_distinct_trips_not_one_trip_twice(grid_net, eid):
    # trip a drives edge 10 -> 20 twice, round a block; trip b drives it once
    loop = [0, 10, 20, 21, 22, 12, 11, 10, 20, 30, 31]
    paths = pd.concat([_trip("a", loop, eid, NOON), _trip("b", ROW, eid, NOON + pd.Timedelta(hours=1))])
    result = plan(paths, grid_net, _targets([eid(10, 20)], k=2))
    clips = _clips(result)
    assert sorted(clips["trip_id"]) == ["a", "b"] and result.unsatisfied == 0


def test_distinct_vehicles_are_preferred_where_possible(grid_net, eid):
    hour = pd.Timedelta(hours=1)
    paths = pd.concat([_trip("a", ROW, eid, NOON, vehicle="v1"), _trip("b", ROW, eid, NOON + hour, vehicle="v1"),
                       _trip("c", ROW, eid, NOON + 2 * hour, vehicle="v2", speed_mps=9.0)])
    # c is slower (dearer); the seconds-only plan takes a and b, the default takes v2's c
    pure = plan(paths, grid_net, _targets([eid(10, 20)], k=2), config=PlanConfig(**PURE))
    assert sorted(_clips(pure)["trip_id"]) == ["a", "b"]
    default = plan(paths, grid_net, _targets([eid(10, 20)], k=2))
    assert sorted(_clips(default)["vehicle_id"]) == ["v1", "v2"]


def test_daylight_passes_are_preferred(grid_net, eid):
    day = NOON - pd.Timedelta(days=1)
    paths = pd.concat([_trip("night", ROW, eid, NIGHT), _trip("day", ROW, eid, day, speed_mps=8.0)])
    assert sun_elevation_deg(24.93, 60.17, NIGHT.value / 1e9) < -6 < sun_elevation_deg(24.93, 60.17, day.value / 1e9)
    assert list(_clips(plan(paths, grid_net, _targets([eid(10, 20)])))["trip_id"]) == ["day"]
    assert list(_clips(plan(paths, grid_net, _targets([eid(10, 20)]), config=PlanConfig(**PURE)))["trip_id"]) == [
        "night"]


def test_recent_passes_are_preferred(grid_net, eid):
    # a pass 14 days older is worth a quarter (7-day half-life): it loses though a little cheaper
    old = _trip("old", ROW, eid, NOON - pd.Timedelta(days=14), speed_mps=10.5)
    paths = pd.concat([old, _trip("new", ROW, eid, NOON)])
    assert list(_clips(plan(paths, grid_net, _targets([eid(10, 20)])))["trip_id"]) == ["new"]
    assert list(_clips(plan(paths, grid_net, _targets([eid(10, 20)]), config=PlanConfig(**PURE)))["trip_id"]) == [
        "old"]


def test_a_lead_in_is_no_longer_than_a_crawl_takes(grid_net, eid):
    # 0 -> 10 at 1 m/s (100 s): 30 m of lead-in would be 30 s of a queue; at a crawl (3 m/s) 10 s
    slow = _trip("a", ROW, eid, NOON)
    slow.loc[0, "t_enter"] = slow.loc[0, "t_exit"] - pd.Timedelta(seconds=100)
    clips = _clips(plan(slow, grid_net, _targets([eid(10, 20)]), config=PlanConfig(lead_m=30.0)))
    assert clips["t_start"][0] == NOON + pd.Timedelta(seconds=0)  # 10 s before entering at 10 s


def test_sun_elevation_at_the_solstice_noon_in_helsinki():
    # solar noon at 24.94 E is about 10:20 UTC; 90 - 60.17 + 23.44 = 53.27 degrees
    noon = pd.Timestamp("2026-06-21T10:20", tz="UTC").value / 1e9
    assert sun_elevation_deg(24.94, 60.17, noon) == pytest.approx(53.27, abs=0.3)
    assert sun_elevation_deg(24.94, 60.17, noon + 12 * 3600) == pytest.approx(60.17 - 90 + 23.44, abs=0.3)


def test_long_runs_are_cut_at_the_clip_cap(grid_net, eid):
    snake = [0, 10, 20, 30, 31, 32, 22, 12, 2, 3, 13, 23, 33]
    paths = _trip("a", snake, eid, NOON)
    inner = [eid(a, b) for a, b in itertools.pairwise(snake)][1:-1]  # 10 target edges, 100 s
    result = plan(paths, grid_net, _targets(inner), config=PlanConfig(lead_m=30.0, max_clip_s=60.0))
    clips = _clips(result)
    assert list(clips["seconds"]) == pytest.approx([51.5, 51.5])
    assert clips["t_end"][0] == clips["t_start"][1]  # contiguous
    assert sorted({e for ids in clips["edge_ids"] for e in ids}) == sorted(inner)
    assert clips["task_id"].is_unique


def test_unsatisfied_targets_are_listed_with_the_reason(grid_net, eid):
    paths = pd.concat([_trip("a", ROW, eid, NOON), _trip("b", ROW, eid, NOON + pd.Timedelta(hours=1))])
    result = plan(paths, grid_net, _targets([eid(10, 20), eid(1, 2)], k=3))
    left = result.requests[result.requests["status"] == "unsatisfied"].set_index(
        result.requests["edge_ids"][result.requests["status"] == "unsatisfied"].str[0])
    assert left.loc[eid(10, 20), "reason"] == "only 2 distinct trips drove through it; 3 wanted"
    assert left.loc[eid(1, 2), "reason"] == "no trip drove it; 3 wanted"
    assert left["task_id"].isna().all()
    assert len(_clips(result)) == 2  # what there is, is still requested


def test_the_plan_is_reproducible(grid_net, eid):
    paths = pd.concat([_trip(f"t{i}", ROW, eid, NOON + pd.Timedelta(minutes=7 * i)) for i in range(6)])
    a = plan(paths, grid_net, _targets([eid(10, 20), eid(20, 30)], k=3)).requests
    b = plan(paths.sample(frac=1.0, random_state=1), grid_net, _targets([eid(10, 20), eid(20, 30)], k=3)).requests
    pd.testing.assert_frame_equal(a, b)


def test_paths_from_another_map_name_the_edges(grid_net, eid):
    paths = _trip("a", ROW, eid, NOON)
    paths.loc[1, "edge_id"] = 99_991
    with pytest.raises(InputError, match=r"paths: 1 edge ids are not in the map \(e.g. 99991\); were the paths"):
        plan(paths, grid_net, _targets([eid(10, 20)]))


def test_targets_from_features_stale_edges_and_reasons(grid_net, grid_edges, eid):
    import geopandas as gpd
    import shapely

    from fixtures.grid import CRS, node_xy

    x, y = node_xy(20)
    feature = gpd.GeoDataFrame({"feature_id": [0]}, geometry=[shapely.Point(x - 20.0, y)], crs=CRS)  # on 10 -> 20
    cov = pd.DataFrame({"edge_id": [eid(10, 20), eid(1, 2)]})
    now = NOON
    seen = pd.DataFrame({"edge_id": [eid(1, 2)], "t_last": [now - pd.Timedelta(days=1)]})
    tgt = targets(grid_net, cov, config=PlanConfig(stale_days=30), features=feature, seen=seen, now=now)
    why = dict(zip(tgt["edge_id"], tgt["target"], strict=True))
    assert why[eid(10, 20)] == "feature+stale"
    assert eid(1, 2) not in why  # filmed yesterday: not stale
    assert why.get(eid(20, 10)) == "feature"  # seen from the other direction too
    tgt = targets(grid_net, cov, config=PlanConfig(stale_days=None, features=False), features=feature)
    assert tgt.empty


# -- the lower bound against brute force on tiny random instances


def _brute_force(ps, need):
    """The least clip-seconds over every subset of the target pieces that meets ``need`` with
    distinct trips (exponential: tiny cases only)."""
    from mapdiff.plan import _union_seconds

    cand = np.flatnonzero(ps.target >= 0)
    trip = np.repeat(np.arange(len(ps.trip_ptr) - 1), np.diff(ps.trip_ptr))
    best = np.inf
    for r in range(len(cand) + 1):
        for subset in itertools.combinations(cand, r):
            pairs = {(ps.target[p], trip[p]) for p in subset}
            got = np.bincount([t for t, _ in pairs], minlength=len(need))
            if (got >= need).all():
                chosen = np.zeros(len(ps.t0), bool)
                chosen[list(subset)] = True
                best = min(best, _union_seconds(ps, chosen))
    return best


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2]), st.floats(6.0, 14.0)), min_size=2, max_size=4),
       st.integers(1, 2), st.sets(st.integers(0, 2), min_size=1, max_size=3), st.floats(0.0, 40.0))
def test_lower_bound_le_optimum_le_greedy(grid_net, eid, trips, k, target_ix, lead_m):
    routes = [ROW, [1, 11, 21, 31, 32], [0, 10, 20, 21, 22]]
    paths = pd.concat([_trip(f"t{i}", routes[r], eid, NOON + pd.Timedelta(minutes=10 * i), speed_mps=v)
                       for i, (r, v) in enumerate(trips)])
    inner = sorted({e for r in routes for e in [eid(a, b) for a, b in itertools.pairwise(r)][1:-1]})
    tgt = _targets([inner[i] for i in sorted(target_ix)], k=k)
    config = PlanConfig(lead_m=lead_m, **PURE)
    ps = passes(paths, grid_net, tgt, config=config)
    result = plan(paths, grid_net, tgt, config=config)
    from mapdiff.plan import _distinct_trips

    need = np.minimum(tgt["need"].to_numpy(), _distinct_trips(ps, len(tgt)))
    best = _brute_force(ps, need)
    found = bounds(ps, need, upper=result.cost_s)
    assert found["highs_lp"] <= best + 1e-6
    assert found["lagrangian"] <= best + 1e-6
    assert best <= result.cost_s + 1e-6


# -- the command line: plan, tasks, upload


def _run(runner, *args):
    from mapdiff_cli.main import cli

    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture()
def fleet(tmp_path, eid):
    """Paths of five trips along row 0 and their coverage, as files."""
    from mapdiff.coverage import coverage

    paths = pd.concat([_trip(f"t{i}", ROW, eid, NOON + pd.Timedelta(minutes=5 * i), vehicle=f"v{i % 2}")
                       for i in range(5)], ignore_index=True)
    for c, fill in (("u", 0), ("v", 0), ("key", 0), ("against", False)):
        paths[c] = fill
    paths.to_parquet(tmp_path / "paths.parquet")
    coverage(paths).to_parquet(tmp_path / "coverage.parquet")
    return tmp_path


def _plan(runner, fleet, grid_gpkg, *extra):
    return _run(runner, "plan", fleet / "coverage.parquet", fleet / "paths.parquet", "--map", grid_gpkg,
                "-o", fleet / "out" / "requests.parquet", *extra)


def test_cli_plan_writes_requests_and_tasks_and_the_bound(runner, fleet, grid_gpkg):
    result = _plan(runner, fleet, grid_gpkg, "-k", "2", "--no-features")
    assert result.exit_code == 0, result.output
    req = pd.read_parquet(fleet / "out" / "requests.parquet")
    clips = req[req["status"] == "pending"]
    assert len(clips) > 0 and clips["task_id"].is_unique
    assert "linear relaxation (HiGHS)" in result.output and "the plan costs" in result.output
    listed = _run(runner, "tasks", "list", "--store", fleet / "out" / "tasks.sqlite", "--json")
    assert listed.exit_code == 0
    assert len(pd.read_json(__import__("io").StringIO(listed.stdout), lines=True)) == len(clips)


def test_cli_plan_paths_from_another_map(runner, fleet, grid_gpkg):
    paths = pd.read_parquet(fleet / "paths.parquet")
    paths.loc[2, "edge_id"] = 123_456
    paths.to_parquet(fleet / "paths.parquet")
    result = _plan(runner, fleet, grid_gpkg)
    assert result.exit_code == 1
    assert "edge ids are not in the map (e.g. 123456)" in result.output
    assert not (fleet / "out" / "requests.parquet").exists()


def test_cli_plan_empty_coverage_is_an_empty_plan(runner, fleet, grid_gpkg):
    cov = pd.read_parquet(fleet / "coverage.parquet")
    cov.iloc[:0].to_parquet(fleet / "coverage.parquet")
    result = _plan(runner, fleet, grid_gpkg)
    assert result.exit_code == 0, result.output
    assert "no edges were driven; the plan is empty" in result.output
    assert len(pd.read_parquet(fleet / "out" / "requests.parquet")) == 0


def test_cli_plan_k_beyond_every_edge(runner, fleet, grid_gpkg):
    result = _plan(runner, fleet, grid_gpkg, "-k", "50", "--no-features")
    assert result.exit_code == 0, result.output
    req = pd.read_parquet(fleet / "out" / "requests.parquet")
    left = req[req["status"] == "unsatisfied"]
    assert len(left) == 4  # every driven edge
    assert "4 of 4 target edges unsatisfied: fewer than 50 distinct trips" in result.output
    assert sorted(left["reason"]) == ["only 0 distinct trips drove through it; 50 wanted"] * 2 + [
        "only 5 distinct trips drove through it; 50 wanted"] * 2  # the first and last edges film nothing


def test_cli_plan_unreachable_store(runner, fleet, grid_gpkg):
    result = _plan(runner, fleet, grid_gpkg, "--store", "postgresql://u:pw@127.0.0.1:1/db")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "cannot connect" in result.output and "pw" not in result.output
    assert not (fleet / "out").exists()


def test_cli_tasks_refusals_are_one_line(runner, fleet, grid_gpkg):
    _plan(runner, fleet, grid_gpkg, "--no-features")
    store = fleet / "out" / "tasks.sqlite"
    shown = _run(runner, "tasks", "show", "nope", "--store", store)
    assert shown.exit_code == 1 and "no task 'nope'" in shown.output
    task = pd.read_parquet(fleet / "out" / "requests.parquet")["task_id"].iloc[0]
    wrong = _run(runner, "tasks", "set", task, "done", "--store", store)
    assert wrong.exit_code == 1 and "cannot go from pending to done" in wrong.output
    claimed = _run(runner, "tasks", "claim", "--store", store, "--worker", "w1", "--json")
    assert claimed.exit_code == 0 and '"worker":"w1"' in claimed.output
    first = claimed.output.split('"task_id":"')[1].split('"')[0]
    assert _run(runner, "tasks", "set", first, "requested", "--store", store, "--worker", "w1").exit_code == 0
    assert '"to_status": "requested"' in _run(runner, "tasks", "show", first, "--store", store).output


def test_cli_upload_keeps_the_detections_inside_the_clips(runner, fleet, grid_gpkg):
    import json

    _plan(runner, fleet, grid_gpkg, "-k", "1", "--no-features")
    req = pd.read_parquet(fleet / "out" / "requests.parquet")
    clips = req[req["status"] == "pending"]
    sim = fleet / "sim"
    sim.mkdir()
    # one detection a second on every trip
    paths = pd.read_parquet(fleet / "paths.parquet")
    det = pd.concat([pd.DataFrame({"trip_id": trip, "t": pd.date_range(g["t_enter"].min(), g["t_exit"].max(),
                                                                       freq="1s"), "class": "stop"})
                     for trip, g in paths.groupby("trip_id")], ignore_index=True)
    det.to_parquet(sim / "detections.parquet")
    result = _run(runner, "upload", fleet / "out" / "requests.parquet", "--sim", sim, "-o", fleet / "uploaded")
    assert result.exit_code == 0, result.output
    kept = pd.read_parquet(fleet / "uploaded" / "detections.parquet")
    inside = det.apply(lambda r: ((clips["trip_id"] == r["trip_id"]) & (clips["t_start"] <= r["t"])
                                  & (r["t"] <= clips["t_end"])).any(), axis=1)
    assert len(kept) == int(inside.sum()) > 0
    summary = json.loads((fleet / "uploaded" / "upload.json").read_text())
    assert summary["clip_seconds"] == pytest.approx(clips["seconds"].sum(), abs=0.01)
    assert summary["bytes"] == pytest.approx(summary["clip_seconds"] * 1e6, rel=1e-6)  # 8 Mbit/s
    listed = _run(runner, "tasks", "list", "--store", fleet / "out" / "tasks.sqlite", "--status", "uploaded")
    assert f"{len(clips)} uploaded" in listed.output


def test_cli_upload_bad_requests_leave_no_folder(runner, fleet, tmp_path):
    (tmp_path / "sim").mkdir()
    pd.DataFrame({"task_id": ["a"], "trip_id": ["t"]}).to_parquet(tmp_path / "bad.parquet")
    result = _run(runner, "upload", tmp_path / "bad.parquet", "--sim", tmp_path / "sim", "-o", tmp_path / "up")
    assert result.exit_code == 1 and "missing column(s) 't_start'" in result.output
    assert not (tmp_path / "up").exists()


def test_within_clips_edge_cases():
    from mapdiff.clips import within

    clips = pd.DataFrame({"task_id": ["a", "b", "c"], "trip_id": ["t1", "t1", "t2"],
                          "t0": [10.0, 15.0, 10.0], "t1": [20.0, 30.0, 12.0]})  # a and b overlap: one run
    trip = np.array(["t1", "t1", "t1", "t1", "t2", "t2", "t3"])
    t0 = np.array([10.0, 18.0, 29.9995, 9.0, 11.0, 11.0, 15.0])
    t1 = np.array([10.0, 25.0, 30.0, 11.0, 11.0, 12.5, 15.0])
    # inside at the start; across the overlap; to the end (within the millisecond); starts before;
    # inside t2; past t2's end; a trip with no clip
    assert within(trip, t0, t1, clips).tolist() == [True, True, True, False, True, False, False]
    assert within(trip, t0, t1, clips.iloc[:0]).tolist() == [False] * 7


def test_cli_coverage_of_the_clips_counts_filmed_passes_only(runner, fleet, grid_gpkg, eid):
    _plan(runner, fleet, grid_gpkg, "-k", "2", "--no-features")
    result = _run(runner, "coverage", fleet / "paths.parquet", "--clips", fleet / "out" / "requests.parquet",
                  "-o", fleet / "video.parquet", "-q")
    assert result.exit_code == 0, result.output
    video = pd.read_parquet(fleet / "video.parquet").set_index("edge_id")
    # k = 2 of the 5 trips film the two inner edges; the first and last edges are filmed by no one
    assert video["trips"].to_dict() == {eid(10, 20): 2, eid(20, 30): 2}


def test_cli_plan_confirms_only_the_doubtful_diffs(runner, fleet, grid_gpkg, eid):
    import geopandas as gpd
    import shapely

    from mapdiff.io import write_gpkg

    line = shapely.LineString([(24.93, 60.17), (24.931, 60.17)])
    diffs = gpd.GeoDataFrame({"kind": ["oneway_reversed", "oneway_reversed"], "confidence": [0.9, 0.2],
                              "edge_ids": [str(eid(10, 20)), str(eid(20, 30))]}, geometry=[line, line], crs=4326)
    write_gpkg({"diffs": diffs}, fleet / "diffs.gpkg")
    result = _plan(runner, fleet, grid_gpkg, "--diffs", fleet / "diffs.gpkg", "--confirm-below", "0.5",
                   "--no-features", "--no-stale", "-k", "2")
    assert result.exit_code == 0, result.output
    req = pd.read_parquet(fleet / "out" / "requests.parquet")
    assert {e for ids in req["edge_ids"] for e in ids} == {eid(20, 30)}
    assert set(req["target"]) == {"diff"}


def test_cli_upload_takes_a_plan_and_its_confirmation_round(runner, fleet, grid_gpkg):
    _plan(runner, fleet, grid_gpkg, "-k", "1", "--no-features")
    first = pd.read_parquet(fleet / "out" / "requests.parquet")
    _run(runner, "plan", fleet / "coverage.parquet", fleet / "paths.parquet", "--map", grid_gpkg, "-o",
         fleet / "out" / "second.parquet", "-k", "3", "--no-features")
    second = pd.read_parquet(fleet / "out" / "second.parquet")
    sim = fleet / "sim"
    sim.mkdir()
    paths = pd.read_parquet(fleet / "paths.parquet")
    pd.DataFrame({"trip_id": paths["trip_id"], "t": paths["t_exit"] - pd.Timedelta(seconds=1)}).to_parquet(
        sim / "detections.parquet")
    result = _run(runner, "upload", fleet / "out" / "requests.parquet", fleet / "out" / "second.parquet", "--sim",
                  sim, "-o", fleet / "up")
    assert result.exit_code == 0, result.output
    ids = set(first["task_id"].dropna()) | set(second["task_id"].dropna())
    assert f"{len(ids)} clips" in result.output  # a clip in both plans is uploaded once
    assert len(set(second["task_id"].dropna()) & set(first["task_id"].dropna())) > 0


def test_cli_upload_refuses_tasks_of_another_store(runner, fleet, grid_gpkg, tmp_path):
    _plan(runner, fleet, grid_gpkg, "-k", "1", "--no-features")
    (tmp_path / "sim").mkdir()
    pd.DataFrame({"trip_id": ["t0"], "t": [NOON]}).to_parquet(tmp_path / "sim" / "detections.parquet")
    result = _run(runner, "upload", fleet / "out" / "requests.parquet", "--sim", tmp_path / "sim", "-o",
                  tmp_path / "up", "--store", tmp_path / "other.sqlite")
    assert result.exit_code == 1 and "tasks are not in the task store" in result.output
    assert not (tmp_path / "up").exists()
