"""Map matching on the hand-checkable grid (fixtures/grid.py): known paths, the edge-case catalogue."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fixtures.grid import drive, edge_of
from mapdiff.matching import MatchConfig, match


def path_edges(paths, trip="trip"):
    return paths.loc[paths["trip_id"] == trip, "edge_id"].tolist()


def expected(edges, nodes):
    return [edge_of(edges, a, b) for a, b in zip(nodes[:-1], nodes[1:])]


def test_straight_drive_follows_the_row(grid_net, grid_edges):
    route = [0, 10, 20, 30]  # along row 0, eastwards
    matched, paths = match(drive(route, noise_m=3, seed=1), grid_net)
    assert path_edges(paths) == expected(grid_edges, route)
    assert (matched["state"] == "matched").all()
    assert matched["distance_m"].max() < 15


def test_turns_follow_the_known_path(grid_net, grid_edges):
    route = [0, 1, 2, 12, 22, 21, 31]
    _, paths = match(drive(route, noise_m=4, seed=2), grid_net)
    assert path_edges(paths) == expected(grid_edges, route)


def test_one_way_row_is_driven_eastbound(grid_net, grid_edges):
    route = [1, 11, 21, 31]  # row 1 is one-way eastbound
    _, paths = match(drive(route, noise_m=3, seed=3), grid_net)
    assert path_edges(paths) == expected(grid_edges, route)


def test_driving_a_one_way_backwards_is_matched_and_flagged(grid_net, grid_edges):
    # fixes along the one-way row, driven westwards: matched to that row, flagged against
    route = [31, 21, 11, 1]
    matched, paths = match(drive(route, noise_m=2, seed=4), grid_net)
    row1 = [edge_of(grid_edges, a, b) for a, b in [(21, 31), (11, 21), (1, 11)]]
    assert path_edges(paths) == row1
    assert paths["against"].all()
    assert matched["against"].all() and (matched["state"] == "matched").all()
    # offsets stay along the map's edge (from u), so they fall while driving backwards
    first = matched[matched["edge_id"] == row1[0]]["offset_m"].to_numpy()
    assert (np.diff(first) < 0).all()


def test_driving_a_one_way_forwards_is_not_flagged(grid_net):
    matched, paths = match(drive([1, 11, 21, 31], noise_m=2, seed=4), grid_net)
    assert not paths["against"].any() and not matched["against"].any()


def test_u_turn_on_a_two_way_street(grid_net, grid_edges):
    there = drive([0, 10, 20], speed_mps=10)
    back = drive([20, 10, 0], speed_mps=10, t0=there["t"].iloc[-1] + 1)
    _, paths = match(pd.concat([there, back], ignore_index=True), grid_net)
    assert path_edges(paths) == expected(grid_edges, [0, 10, 20, 10, 0])


def test_single_outlier_does_not_make_a_detour(grid_net, grid_edges):
    route = [0, 10, 20, 30]
    df = drive(route, noise_m=2, seed=5)
    from fixtures.grid import CRS
    from mapdiff.projection import LocalProjection

    proj = LocalProjection(CRS)
    x, y = proj.to_metres(df["lon"], df["lat"])
    y[15] += 45.0  # multipath: 45 m north, halfway to row 1
    df["lon"], df["lat"] = proj.to_lonlat(x, y)
    matched, paths = match(df, grid_net)
    assert path_edges(paths) == expected(grid_edges, route)


def test_fixes_off_the_map_are_unmatched_and_the_trip_goes_on(grid_net, grid_edges):
    df = drive([0, 10, 20, 30], noise_m=1, seed=6)
    from fixtures.grid import CRS
    from mapdiff.projection import LocalProjection

    proj = LocalProjection(CRS)
    x, y = proj.to_metres(df["lon"], df["lat"])
    y[10:14] -= 400.0  # four fixes far south of the grid
    df["lon"], df["lat"] = proj.to_lonlat(x, y)
    matched, paths = match(df, grid_net)
    assert (matched["state"].iloc[10:14] == "unmatched").all()
    assert matched["edge_id"].iloc[10:14].isna().all()
    assert (matched["state"].iloc[14:] != "unmatched").all()
    assert path_edges(paths) == expected(grid_edges, [0, 10, 20, 30])


def test_long_time_gap_breaks_the_chain(grid_net):
    a = drive([0, 10], trip_id="trip")
    b = drive([22, 32], trip_id="trip", t0=a["t"].iloc[-1] + 3600)
    matched, paths = match(pd.concat([a, b], ignore_index=True), grid_net, MatchConfig(max_gap_s=600))
    assert (matched["state"] == "break").sum() == 1
    assert matched["state"].iloc[len(a)] == "break"
    assert sorted(paths["chain"].unique()) == [0, 1]


def test_a_stop_stays_on_its_edge(grid_net, grid_edges):
    df = drive([0, 10, 20], noise_m=1, seed=7)
    stop = df.iloc[[5] * 300].copy()
    stop["t"] = df["t"].iloc[5] + np.arange(1, 301) * 1.0
    rng = np.random.default_rng(8)
    stop["lon"] += rng.normal(0, 3e-5, len(stop))  # a few metres of jitter while parked
    stop["lat"] += rng.normal(0, 1.5e-5, len(stop))
    rest = df.iloc[6:].copy()
    rest["t"] += 300
    trace = pd.concat([df.iloc[:6], stop, rest], ignore_index=True)
    matched, paths = match(trace, grid_net)
    assert path_edges(paths) == expected(grid_edges, [0, 10, 20])
    assert (matched["state"] == "matched").all()


def _fixes_along_row0(xs, t=None):
    from fixtures.grid import CRS, ORIGIN
    from mapdiff.projection import LocalProjection

    lon, lat = LocalProjection(CRS).to_lonlat(ORIGIN[0] + np.asarray(xs, float), np.full(len(xs), ORIGIN[1]))
    t = np.arange(len(xs), dtype=float) if t is None else np.asarray(t, float)
    return pd.DataFrame({"trip_id": "trip", "t": t, "lon": lon, "lat": lat})


def test_a_lone_fix_near_a_node_does_not_make_the_edge_before_it_driven(grid_net, grid_edges):
    """A trip that starts at node 10 and ends at node 20 (row 0, eastwards), its first fix 8 m
    back on the edge before and its last 6 m on past node 20: one fix each, within two GPS
    sigmas (20 m) of the node, so the path is the edge between; so it is with them 15 and 14 m
    off (beyond one sigma, as the fix of a car at a node is one time in six). A car that starts
    from rest 8 m before node 10 leaves four fixes there: that edge was driven. So does a fleet
    that logs every 30 s, whose one fix there tells nothing: a car on the edge would have left
    one too."""
    _, paths = match(_fixes_along_row0([92.0, *range(110, 200, 10), 206.0]), grid_net)
    assert path_edges(paths) == expected(grid_edges, [10, 20])
    _, paths = match(_fixes_along_row0([85.0, *range(110, 200, 10), 214.0]), grid_net)
    assert path_edges(paths) == expected(grid_edges, [10, 20])
    _, paths = match(_fixes_along_row0([92.0, 93.0, 95.0, 98.0, *range(103, 200, 10)]), grid_net)
    assert path_edges(paths) == expected(grid_edges, [0, 10, 20])
    _, paths = match(_fixes_along_row0([92.0, 150.0, 206.0], t=[0.0, 30.0, 60.0]), grid_net)
    assert path_edges(paths) == expected(grid_edges, [0, 10, 20, 30])


def test_single_fix_trip(grid_net):
    df = drive([0, 10]).iloc[[3]]
    matched, paths = match(df, grid_net)
    assert len(matched) == 1 and matched["state"].iloc[0] == "matched"
    assert len(paths) == 1


def test_duplicate_timestamps_and_unsorted_rows(grid_net, grid_edges):
    df = drive([0, 10, 20], noise_m=1, seed=9)
    dup = pd.concat([df, df.iloc[[4, 9, 9]]], ignore_index=True)
    shuffled = dup.sample(frac=1.0, random_state=0)
    matched, paths = match(shuffled, grid_net)
    assert len(matched) == len(dup)
    assert matched["t"].is_monotonic_increasing
    assert path_edges(paths) == expected(grid_edges, [0, 10, 20])


def test_timestamps_round_trip_and_path_times_are_ordered(grid_net):
    df = drive([0, 10, 20, 21])
    df["t"] = pd.Timestamp("2026-11-28T08:00:00Z") + pd.to_timedelta(df["t"], unit="s")
    matched, paths = match(df, grid_net)
    assert str(matched["t"].dtype).startswith("datetime64")
    assert (paths["t_enter"] <= paths["t_exit"]).all()
    assert (paths["t_exit"].iloc[:-1].to_numpy() <= paths["t_enter"].iloc[1:].to_numpy()).all()
    assert paths["t_enter"].iloc[0] == matched["t"].iloc[0]


def test_two_trips_are_matched_independently(grid_net, grid_edges):
    a = drive([0, 10, 20], trip_id="a")
    b = drive([33, 23, 13], trip_id="b")
    matched, paths = match(pd.concat([b, a], ignore_index=True), grid_net)
    assert path_edges(paths, "a") == expected(grid_edges, [0, 10, 20])
    assert path_edges(paths, "b") == expected(grid_edges, [33, 23, 13])
    assert list(paths.groupby("trip_id")["seq"].min()) == [0, 0]


def test_accuracy_column_widens_sigma(grid_net, grid_edges):
    from mapdiff.matching import _sigma

    df = drive([0, 10, 20, 30], noise_m=2, seed=10)
    plain, _ = match(df, grid_net)
    df["accuracy_m"] = 25.0
    wide, paths = match(df, grid_net)
    assert path_edges(paths) == expected(grid_edges, [0, 10, 20, 30])
    # the same fixes trusted less: the matcher is less sure of its points (a mean of 0.957 ->
    # 0.946 here; the posterior of a clean drive is near 1 at the middle of each edge either way)
    assert wide["confidence"].mean() < plain["confidence"].mean() - 0.005
    # a reported accuracy below the model's sigma is not trusted more; a missing one is the model's
    acc = pd.DataFrame({"accuracy_m": [25.0, 3.0, np.nan, 0.0]})
    np.testing.assert_array_equal(_sigma(acc, MatchConfig(gps_sigma_m=10), "t"), [25.0, 10.0, 10.0, 10.0])


def test_thinning_keeps_one_fix_in_two_sigma_and_the_trip_end():
    """Fixes 10 m apart and sigma 10 m: each kept fix stands for the next one (within 20 m);
    a fix with a wider sigma of its own thins more; the trip's last fix stands for itself."""
    from mapdiff._kernels import hmm

    x = np.arange(9) * 10.0
    y = np.zeros(9)
    cedge = np.zeros((9, 1), dtype=np.int64)
    sigma = np.full(9, 10.0)
    anchor = hmm.thin(np.array([0, 9]), x, y, sigma, cedge, 5.0, 2.0)
    np.testing.assert_array_equal(anchor, [-1, 0, -1, 2, -1, 4, -1, 6, -1])
    sigma[3] = 20.0  # 30 m from fix 0 but within its own 2 sigma
    anchor = hmm.thin(np.array([0, 9]), x, y, sigma, cedge, 5.0, 2.0)
    np.testing.assert_array_equal(anchor[:5], [-1, 0, -1, 2, -1])
    anchor = hmm.thin(np.array([0, 9]), x, y, sigma, cedge, 5.0, 0.0)  # off: only stops
    assert (anchor == -1).all()
    anchor = hmm.thin(np.array([0, 9]), x / 5, y, sigma, cedge, 5.0, 0.0)  # 2 m apart: stops, the end one too
    np.testing.assert_array_equal(anchor, [-1, 0, 0, -1, 3, 3, -1, 6, 6])
    # (the cases above pass without the two rules; these do not) a trip ending 10 m after a
    # kept fix: the end stands for itself; fix 2, 20 m from fix 0, is within its own 2 sigma
    anchor = hmm.thin(np.array([0, 8]), x[:8], y[:8], np.full(8, 10.0), cedge[:8], 5.0, 2.0)
    np.testing.assert_array_equal(anchor, [-1, 0, -1, 2, -1, 4, -1, -1])
    wide = np.full(9, 10.0)
    wide[2] = 20.0
    anchor = hmm.thin(np.array([0, 9]), x, y, wide, cedge, 5.0, 2.0)
    np.testing.assert_array_equal(anchor[:5], [-1, 0, 0, -1, 3])


def test_thinned_fixes_add_their_emissions_to_their_anchor():
    """Fix 0 kept with candidates on edges 7 (5 m before its end, node 1) and 8; fix 1 (thinned,
    10 m on) is 1 m from edge 8 and 9 m from edge 7; fix 2 (2 m from fix 1: a stop's jitter)
    adds nothing; fix 3 has no candidate on 7 or 8, but one on edge 9, which edge 7 leads on to,
    2 m past node 1: it speaks for 7; fix 4 is on edge 9 too, but 50 m past node 1, farther than
    a car goes from fix 0 to it: the floor on both."""
    from mapdiff._kernels import hmm
    from mapdiff.matching import _hmm_params

    cedge = np.array([[7, 8], [8, 7], [8, 7], [9, -1], [9, -1]])
    cdist = np.array([[3.0, 4.0], [1.0, 9.0], [1.0, 9.0], [2.0, np.inf], [1.0, np.inf]])
    coff = np.array([[5.0, 0.0], [0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [50.0, 0.0]])
    sigma = np.full(5, 10.0)
    params = _hmm_params(MatchConfig())
    ncand, emis = hmm._emissions(cedge, cdist, sigma, params.floor, np.zeros(10))
    before = emis[0].copy()
    px, py = np.array([0.0, 10.0, 12.0, 20.0, 14.0]), np.zeros(5)
    edge_u, edge_v = np.zeros(10, dtype=np.int64), np.zeros(10, dtype=np.int64)
    edge_v[7], edge_v[8], edge_u[9] = 1, 2, 1
    graph = SimpleNamespace(edge_u=edge_u, edge_v=edge_v, edge_len=np.full(10, 10.0))
    hmm._pool.py_func(emis, ncand, (cedge, cdist, coff), np.array([-1, 0, 0, 0, 0]), px, py, sigma, graph, params)
    gauss = lambda d: -0.5 * (d / 10.0) ** 2  # noqa: E731
    np.testing.assert_allclose(emis[0], [before[0] + gauss(9.0) + gauss(2.0) + params.floor,
                                         before[1] + gauss(1.0) + 2 * params.floor])


def test_thinned_fixes_past_a_junction_are_on_the_next_edge(grid_net, grid_edges):
    """Without noise, every fix is matched to the edge it lies on (a fix within 3 m of a node
    may be on either): a thinned fix just past a turn is not left on the edge before it."""
    from fixtures.grid import node_xy

    route = [0, 1, 11, 12, 22]
    df = drive(route, speed_mps=7.0)
    matched, paths = match(df, grid_net, MatchConfig(thin_sigmas=2.0))
    assert path_edges(paths) == expected(grid_edges, route)
    x, y = grid_net.proj.to_metres(df["lon"].to_numpy(), df["lat"].to_numpy())
    nodes = np.array([node_xy(n) for n in route])
    checked = 0
    for i, (px, py) in enumerate(zip(x, y)):
        d_node = np.hypot(nodes[:, 0] - px, nodes[:, 1] - py)
        if d_node.min() < 3.0:
            continue
        # the leg whose segment the fix lies on
        for leg, (a, b) in enumerate(zip(nodes[:-1], nodes[1:])):
            ab = b - a
            f = np.dot([px, py] - a, ab) / np.dot(ab, ab)
            if 0 <= f <= 1 and np.hypot(*(a + f * ab - [px, py])) < 1e-6:
                assert matched["edge_id"].iloc[i] == expected(grid_edges, route)[leg], i
                checked += 1
    assert checked > 0.9 * len(df)
    # a thinned fix at a turn is about as near the edge before it as the one after: its
    # confidence is that edge's share of the two, not the kept fix's
    turns = np.array([node_xy(n) for n in route[1:-1]])
    at_turn = np.min(np.hypot(turns[:, :1] - x, turns[:, 1:] - y), axis=0) < 3.0
    assert at_turn.any() and (matched["confidence"][at_turn] < 0.6).all()


@pytest.mark.parametrize(
    "field, value",
    [("search_radius_m", 0), ("gps_sigma_m", -1), ("max_candidates", 0), ("route_factor", 0.5),
     ("beta_m", float("nan")), ("max_outliers", -1)],
)
def test_config_validation_names_the_field(field, value):
    from mapdiff.errors import ConfigError

    with pytest.raises(ConfigError, match=field):
        MatchConfig(**{field: value}).validate()


def test_public_api(grid_gpkg, grid_edges):
    import mapdiff

    net = mapdiff.load_network(grid_gpkg)
    matched, paths = mapdiff.match(drive([0, 10, 20]), net, mapdiff.MatchConfig(search_radius_m=40))
    assert path_edges(paths) == expected(grid_edges, [0, 10, 20])
    with pytest.raises(mapdiff.MapdiffError):
        mapdiff.match(drive([0, 10]).rename(columns={"lon": "x"}), net)


def test_integer_trip_ids_keep_their_type(grid_net):
    a = drive([0, 10, 20], trip_id="x")
    b = drive([33, 23, 13], trip_id="y")
    df = pd.concat([a.assign(trip_id=7), b.assign(trip_id=12)], ignore_index=True)
    matched, paths = match(df, grid_net)
    assert matched["trip_id"].dtype == df["trip_id"].dtype
    assert set(paths["trip_id"]) == {7, 12}


def test_fixes_minutes_apart(grid_net, grid_edges):
    # one fix a minute at 2.5 m/s: 150 m between fixes, turns between them
    route = [0, 10, 20, 30, 31, 32]
    df = drive(route, speed_mps=2.5, hz=1 / 60, noise_m=3, seed=11, margin_m=10)
    assert len(df) == 4 and df["t"].diff().dropna().min() >= 60
    matched, paths = match(df, grid_net)
    assert (matched["state"] == "matched").all()
    assert path_edges(paths) == expected(grid_edges, route)


def test_a_fix_every_30_s_on_a_winding_drive_is_matched_fix_by_fix(grid_net, grid_edges):
    # a snake up and down the grid's columns, a fix every 30 s (300 m of road, some 100-200 m
    # as the crow flies): the route between fixes winds far from the straight line, which at
    # this spacing is the rule, not a detour; no fix may be given up as an outlier for it (with
    # the transition's scale fixed at beta_m, two of the five were)
    route = [0, 1, 2, 3, 13, 12, 11, 10, 20, 21, 22, 23, 33, 32, 31, 30]
    matched, paths = match(drive(route, hz=1 / 30, noise_m=5, seed=3), grid_net)
    assert (matched["state"] == "matched").all()
    ends = grid_edges.set_index("edge_id").loc[path_edges(paths), ["u", "v"]].to_numpy()
    assert (ends[1:, 0] == ends[:-1, 1]).all()  # one connected route


def test_confidence_is_the_posterior_summed_over_every_path(grid_net):
    """The forward-backward against a slow reference: every candidate sequence of the chain
    enumerated, each scored by the same emissions and transitions, summed."""
    import itertools

    from mapdiff._kernels import hmm
    from mapdiff._kernels.geometry import candidates
    from mapdiff._kernels.graph import new_workspace
    from mapdiff.matching import _hmm_params, _kernel_graph

    config = MatchConfig(max_candidates=4)
    df = drive([0, 1, 11, 21, 22], speed_mps=10.0, hz=0.25, noise_m=8, seed=4)  # a fix every 40 m
    x, y = grid_net.proj.to_metres(df["lon"].to_numpy(), df["lat"].to_numpy())
    t, sigma = df["t"].to_numpy(float), np.full(len(df), config.gps_sigma_m)
    trip_ptr = np.array([0, len(df)])
    cand = candidates(x, y, config.search_radius_m, config.max_candidates, grid_net.geom)
    graph, params = _kernel_graph(grid_net, config), _hmm_params(config)
    anchor = hmm.thin(trip_ptr, x, y, sigma, cand[0], config.stop_radius_m, config.thin_sigmas)
    sel, chain, _, emissions = hmm.viterbi(trip_ptr, x, y, (t, t), sigma, cand, anchor, grid_net.geom,
                                           grid_net.n_nodes, graph, params)
    conf = hmm.posterior(trip_ptr, (x, y, t), emissions, cand, anchor, sel, chain, grid_net.n_nodes, graph, params)
    seq = np.flatnonzero(sel >= 0)
    assert len(seq) >= 6 and (anchor < 0).all() and len(set(chain[seq])) == 1  # one chain, nothing collapsed
    ncand, emis = hmm._emissions(cand[0], cand[1], sigma, params.floor, graph.edge_prior)
    ws, k = new_workspace(grid_net.n_nodes, len(graph.edge_u)), cand[0].shape[1]
    cache = hmm.new_searches(grid_net.n_nodes, graph)
    steps, stamp = [], 0
    for i, j in zip(seq[:-1], seq[1:]):
        trans = np.full((k, k), hmm.NEG)
        stamp = hmm._step_transitions(i, j, np.ones(k, bool), cand, ncand, (x, y, t), trans, graph, params, ws,
                                      cache, stamp)
        steps.append(trans)
    mass = np.zeros((len(seq), k))
    for path in itertools.product(*(range(ncand[i]) for i in seq)):
        score = sum(emis[i, a] for i, a in zip(seq, path))
        score += sum(trans[a, b] for trans, a, b in zip(steps, path[:-1], path[1:]))
        for s, a in enumerate(path):
            mass[s, a] += np.exp(score)
    reference = mass[np.arange(len(seq)), sel[seq]] / mass.sum(axis=1)
    np.testing.assert_allclose(conf[seq], reference, rtol=1e-9)
    assert reference.min() < 0.99  # some fix is in doubt: the sums are not all trivially 1


def test_zero_length_edges_and_self_loops_do_not_break_the_kernel(grid_edges):
    """OSM extracts carry both: a way closed on itself at a node (a turning circle drawn as a
    loop) and an edge between two nodes at one place (a duplicated node)."""
    import geopandas as gpd
    import shapely

    from fixtures.grid import CRS, node_xy
    from mapdiff.network import Network

    x, y = node_xy(11)
    loop = shapely.linestrings([(x, y), (x + 15, y + 25), (x - 15, y + 25), (x, y)])
    stub = shapely.linestrings([node_xy(21), node_xy(21)])
    extra = gpd.GeoDataFrame({"edge_id": [900, 901, 902], "u": [11, 21, 99], "v": [11, 99, 21], "key": 0,
                              "osmid": [900, 901, 902], "highway": "residential", "oneway": False,
                              "length": [70.0, 0.0, 0.0]}, geometry=[loop, stub, stub], crs=CRS).to_crs(4326)
    net = Network.from_edges(pd.concat([grid_edges, extra], ignore_index=True))
    route = [0, 1, 11, 21, 31]
    matched, paths = match(drive(route, noise_m=3, seed=5), net)
    assert (matched["state"] == "matched").all() and matched["confidence"].between(0, 1).all()
    assert [e for e in path_edges(paths) if e < 900] == expected(grid_edges, route)



def test_a_trace_that_changes_its_interval_mid_trip_is_matched_step_by_step():
    """A staircase across a 10 x 10 grid and back at 1 Hz for its first 30 s, then a fix a minute
    (600 m of road, some 420 m as the crow flies): each step's transition scale comes from its
    own gap. With one scale for the trip (its typical 1 s step's), 4 of the 5 sparse fixes were
    given up as outliers."""
    from fixtures.grid import grid_edges
    from mapdiff.network import Network

    edges = grid_edges(10)
    net = Network.from_edges(edges)
    up = [0] + [n for i in range(9) for n in (10 * (i + 1) + i, 10 * (i + 1) + i + 1)]
    down = [n for i in range(8, 1, -1) for n in (10 * i + i + 1, 10 * i + i)]
    fixes = drive(up + down, noise_m=5, seed=0)
    fixes = fixes[(fixes["t"] < 30) | ((fixes["t"] - 30) % 60 < 1)]
    assert fixes["t"].diff().max() >= 59 and fixes["t"].diff().min() <= 1.01
    matched, paths = match(fixes, net)
    assert (matched["state"] == "matched").all()
    ends = edges.set_index("edge_id").loc[path_edges(paths), ["u", "v"]].to_numpy()
    assert (ends[1:, 0] == ends[:-1, 1]).all()  # one connected route


def test_a_trips_last_fix_a_minute_on_is_not_given_up(helsinki_gpkg):
    """A fix a minute after the one before is a few hundred metres of route: skipping a trip's
    last fixes as outliers threw that route away, and was cheaper than their transition. 60
    trips on the Helsinki extract, every 60th fix of a 1 Hz trace kept: no trip's last fix is
    skipped, and the routes are closer to the truth than when the last fixes may be skipped
    whatever their time (as before). With ``travel_mps`` off: measured by its time, the route
    to such a fix costs less than the skip either way."""
    import geopandas as gpd

    from fixtures.synthetic import shortest_path_traces
    from mapdiff.evaluate import match_scores
    from mapdiff.network import Network

    edges = gpd.read_file(helsinki_gpkg, layer="edges")
    traces, truth, proj = shortest_path_traces(edges, n_trips=60, seed=7, noise_m=5.0)
    traces = traces[traces.groupby("trip_id").cumcount() % 60 == 0].reset_index(drop=True)
    net = Network.from_edges(edges)
    length = dict(zip(edges["edge_id"], edges.geometry.to_crs(proj.crs).length))
    mismatch, last_skipped = {}, {}
    for end_s in (MatchConfig.end_outlier_s, 1e9):
        matched, paths = match(traces, net, MatchConfig(end_outlier_s=end_s, travel_mps=0.0))
        mismatch[end_s] = match_scores(paths[["trip_id", "edge_id"]], truth, length)["mismatch"].mean()
        last_skipped[end_s] = int((matched.groupby("trip_id")["state"].last() == "unmatched").sum())
    assert last_skipped[MatchConfig.end_outlier_s] == 0 < last_skipped[1e9]
    assert mismatch[MatchConfig.end_outlier_s] < mismatch[1e9]


def test_a_minutes_route_between_fixes_costs_less_than_skipping_a_fix():
    """The synthetic Helsinki trace that lost its middle fix (a fix a minute, 600 m of route
    between fixes 280 m apart): scored by the straight distance alone, the route cost 13.3
    log-likelihood, more than skipping the fix (8); on the minute it took at ``travel_mps``
    (480 m) it costs 6.7. A second's step is scored as before."""
    from mapdiff._kernels import hmm
    from mapdiff.matching import _hmm_params

    edges = (np.array([0, 2]), np.array([1, 3]), np.array([100.0, 100.0]))  # two edges apart: no U-turn
    route = (400.0, -1, 0.0)  # 50 + 400 + 150 m of road from one fix's place to the other's
    skip = _hmm_params(MatchConfig()).log_skip
    for pace, clock_s, cheaper in ((MatchConfig.travel_mps, 60.0, True), (0.0, 60.0, False),
                                   (MatchConfig.travel_mps, 1.0, False)):
        params = _hmm_params(MatchConfig(travel_mps=pace))
        step = hmm.step_of((np.array([0.0, 280.0]), np.array([0.0, 0.0]), np.array([0.0, clock_s])), 0, 1,
                           params.beta)
        assert step[0] == pytest.approx(280.0) and step[1] == pytest.approx(max(280.0, pace * clock_s))
        cost = hmm._log_step(0, 50.0, 1, 150.0, 1e9, step, params, edges, route, 2)
        assert (cost > skip) == cheaper


def test_the_trace_clock_holds_a_gap_to_twice_the_trips_interval():
    from mapdiff.matching import _trace_clock

    t = np.array([0.0, 1.0, 2.0, 62.0, 63.0, 0.0, 60.0, 120.0, 240.0])
    trips = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    # a 1 Hz trip's minute without fixes counts as 2 s; a minute-a-fix trip's steps count whole,
    # its two-minute gap as two of its intervals
    np.testing.assert_allclose(_trace_clock(t, trips), [0, 1, 2, 4, 5, 0, 60, 120, 240])


def test_match_measures_its_steps_on_the_trace_clock_not_the_time(grid_net, monkeypatch):
    """The Viterbi and the posterior get each fix's time on the trace's clock: a 1 Hz trace that
    lost five minutes of fixes has that gap count as two seconds, so no step spans the 2.4 km a
    car covers in five minutes at ``travel_mps``. (Passing the real time instead matches this
    trace the same: only the kernels' inputs tell.)"""
    from mapdiff._kernels import hmm

    trace = drive([0, 10, 20, 30], noise_m=2, seed=3)
    trace.loc[trace.index >= 5, "t"] += 300.0
    seen = {}
    viterbi, posterior = hmm.viterbi, hmm.posterior

    def spy_viterbi(trip_ptr, px, py, times, *rest):
        seen["viterbi"] = times[1].copy()
        return viterbi(trip_ptr, px, py, times, *rest)

    def spy_posterior(trip_ptr, pts, *rest):
        seen["posterior"] = pts[2].copy()
        return posterior(trip_ptr, pts, *rest)

    monkeypatch.setattr(hmm, "viterbi", spy_viterbi)
    monkeypatch.setattr(hmm, "posterior", spy_posterior)
    match(trace, grid_net)
    clock = np.r_[np.arange(5.0), 6.0 + np.arange(len(trace) - 5.0)]
    np.testing.assert_allclose(seen["viterbi"], clock)
    np.testing.assert_allclose(seen["posterior"], clock)
