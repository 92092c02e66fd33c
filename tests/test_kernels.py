"""Kernels against slow reference implementations (scipy's Dijkstra, shapely distances)."""

import numpy as np
import pytest
import shapely

from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def kub_net():
    from fixtures.kubicka import read_track
    from mapdiff.network import Network

    edges, _, _ = read_track(FIXTURES / "kubicka" / "00000048")
    return Network.from_edges(edges), edges


def test_bounded_dijkstra_matches_scipy(kub_net):
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra as sp_dijkstra

    from mapdiff._kernels.graph import dijkstra, new_workspace

    net, _ = kub_net
    # parallel edges: scipy keeps the sum, so take the shortest per pair first
    w = {}
    real = slice(0, net.n_edges)  # the map's own edges; wrong-way twins cost infinity below
    for a, b, length in zip(net.edge_u[real], net.edge_v[real], net.edge_len[real]):
        w[(a, b)] = min(w.get((a, b), np.inf), length)
    rows, cols = zip(*w.keys())
    graph = csr_matrix((list(w.values()), (rows, cols)), shape=(net.n_nodes, net.n_nodes))
    rng = np.random.default_rng(0)
    ws = new_workspace(net.n_nodes, len(net.edge_u))
    for stamp, src in enumerate(rng.choice(net.n_nodes, 20, replace=False), start=1):
        ref = sp_dijkstra(graph, indices=src, limit=800.0)
        weight = net.edge_weights(np.inf)
        dijkstra(src, 800.0, 0, stamp, net.out_ptr, net.out_edge, net.edge_v, weight, ws, weight)
        dist, _, _, settled = ws[0], ws[1], ws[2], ws[3]
        mine = np.where(settled == stamp, dist, np.inf)
        assert np.allclose(mine, ref, equal_nan=False)


def test_candidates_match_brute_force(kub_net):
    from mapdiff._kernels.geometry import candidates

    net, edges = kub_net
    geoms = edges.geometry.to_crs(net.proj.crs).values
    rng = np.random.default_rng(1)
    pick = rng.choice(net.n_edges, 50)
    px = np.array([shapely.get_x(shapely.line_interpolate_point(geoms[e], 0.5, normalized=True)) for e in pick])
    py = np.array([shapely.get_y(shapely.line_interpolate_point(geoms[e], 0.5, normalized=True)) for e in pick])
    px += rng.normal(0, 20, len(px))
    py += rng.normal(0, 20, len(py))
    edge, dist, offset, cx, cy = candidates(px, py, 60.0, 6, net.geom)
    geoms = geoms[net.edge_base]  # kernel edges: the map's, then wrong-way twins on the same lines
    for p in range(len(px)):
        d = shapely.distance(geoms, shapely.Point(px[p], py[p]))
        order = np.argsort(d, kind="stable")
        ref = [(e, d[e]) for e in order[:6] if d[e] <= 60.0]
        got = [(edge[p, q], dist[p, q]) for q in range(6) if edge[p, q] >= 0]
        assert len(got) == len(ref)
        assert np.allclose([g[1] for g in got], [r[1] for r in ref], atol=1e-6)
        for q, (e, _) in enumerate(got):
            # the offset locates the projected point on its edge, in the edge's direction
            line = shapely.reverse(geoms[e]) if net.edge_against[e] else geoms[e]
            pt = shapely.line_interpolate_point(line, offset[p, q])
            assert np.hypot(shapely.get_x(pt) - cx[p, q], shapely.get_y(pt) - cy[p, q]) < 1e-6


def test_on_road_measures_each_trips_gps_error_and_its_fixes_off_the_roads():
    """Two trips: 300 fixes with a 2-D Gaussian error of sigma 3 m and 30 spread over the 50 m
    disc (a car park), then one of sigma 8 m; and a trip of three fixes (too few: left at 1)."""
    from mapdiff._kernels.hmm import _on_road_fit, on_road

    rng = np.random.default_rng(11)

    def trip(sigma):
        on = np.hypot(*rng.normal(0, sigma, (2, 300)))
        return np.r_[on, 50 * np.sqrt(rng.random(30))]

    a, b = trip(3.0), trip(8.0)
    s_a, off_a = _on_road_fit(a, 50.0)
    s_b, _ = _on_road_fit(b, 50.0)
    assert abs(s_a - 3.0) < 0.3 and abs(s_b - 8.0) < 0.8 and 0.06 < off_a < 0.13
    dist = np.r_[a, b, [20.0, np.nan, 1.0]]
    p = on_road(np.array([0, 330, 660, 663]), dist, 50.0)
    near, far = np.argmin(np.abs(a - 3.0)), np.argmin(np.abs(a - 20.0))
    assert p[near] > 0.99 and p[far] < 0.01  # 20 m is 6.7 sigmas of the first trip's error
    assert p[330 + np.argmin(np.abs(b - 20.0))] > 0.3  # and 2.5 of the second's
    assert (p[660:] == 1.0).all()
    # a fix right on its road is on it (the ring factor 2 pi d of both densities cancels)
    on = on_road(np.array([0, 331]), np.r_[0.0, a], 50.0)
    assert on[0] > 0.99


def test_a_new_workspace_has_nothing_settled_under_any_stamp():
    # a search's results are read where settled[node] == its stamp; before any search no node
    # may look settled, under stamp 0 either (the Viterbi's first stamp): zeros did, and a
    # transition read the uninitialised dist and first edge there (a segfault on a real track)
    from mapdiff._kernels.graph import new_workspace

    ws = new_workspace(6, 5)
    for stamp in (0, 1, 2):
        assert not (ws.settled == stamp).any()


def _passes(trips, frames):
    """Kernel Passes of tracks given as their trip and frame times."""
    from mapdiff._kernels.locate import Passes

    ptr = np.r_[0, np.cumsum([len(f) for f in frames])].astype(np.int64)
    return Passes(np.asarray(trips, np.int64), np.array([min(f) for f in frames], float),
                  np.array([max(f) for f in frames], float), ptr, np.concatenate(frames).astype(float))


def test_tracks_share_a_frame_only_when_one_pass_saw_both_at_one_instant():
    from mapdiff._kernels.locate import share_frame

    passes = _passes([0, 0, 0, 1], [[0.0, 1.0, 3.0], [0.5, 1.5, 2.0, 2.5], [3.0, 4.0], [1.0]])
    assert not share_frame(0, 1, passes)  # interleaved: a noisy frame split one track
    assert share_frame(0, 2, passes) and share_frame(2, 0, passes)  # both at t = 3
    assert not share_frame(1, 2, passes)  # one after the other
    assert not share_frame(0, 3, passes)  # t = 1 in another trip


@pytest.mark.parametrize("shared", [False, True])
def test_a_centre_takes_no_two_tracks_of_one_frame(shared):
    # two tracks of one pass on one spot: with frames interleaved they are pieces of one
    # object's track and join one centre; seen in one frame they are two objects
    from mapdiff._kernels.locate import cluster

    frames = [[0.0, 1.0, 2.0], [1.0 if shared else 1.5, 2.5]]
    n = 2
    one, zero = np.ones(n), np.zeros(n)
    empty = np.zeros(0)
    labels, *_ = cluster(np.arange(n), zero, zero, one, zero, one, np.zeros(n, np.int64), _passes([0, 0], frames),
                         empty, empty, empty, empty, empty, np.zeros(0, np.int64), 15.0, 15.0, 9.0, 0.5)
    assert labels.tolist() == ([0, 1] if shared else [0, 0])


def test_locate_grouping_kernels_match_numpy_sorts():
    from mapdiff._kernels.locate import group_rows, track_ends, trip_share

    rng = np.random.default_rng(3)
    n, n_groups = 2000, 40
    key = rng.integers(-1, n_groups, n)  # -1: in no group
    t = rng.integers(0, 50, n).astype(float)  # ties in time on purpose
    seq = np.lexsort((t,))  # by time, ties by row
    ptr, rows = group_rows(key, seq, n_groups)
    for k in range(n_groups):
        want = np.flatnonzero(key == k)
        want = want[np.lexsort((want, t[want]))]
        assert list(rows[ptr[k]:ptr[k + 1]]) == list(want)
    first, last = track_ends(key, t, n_groups)
    for k in range(n_groups):
        members = np.flatnonzero(key == k)
        assert first[k] == members[np.lexsort((members, t[members]))][0]  # earliest, then lowest row
        assert last[k] == members[np.lexsort((members, t[members]))][-1]  # latest, then highest row
    trip = rng.integers(0, 30, n)
    share, n_trips = trip_share(key, trip, n_groups)
    for i in rng.choice(n, 50):
        if key[i] < 0:
            assert share[i] == 0.0
        else:
            assert share[i] == 1.0 / np.sum((key == key[i]) & (trip == trip[i]))
    assert list(n_trips) == [len(np.unique(trip[key == k])) for k in range(n_groups)]


@pytest.mark.parametrize("reach_m", [0.5, 3.0, 40.0])
def test_pairs_within_are_the_brute_force_pairs_in_order(reach_m):
    """Dense clusters (a well-seen object's tracks) among sparse points, several groups, over an
    extent thousands of reaches wide, and points exactly one reach apart on a cell's border."""
    from mapdiff._kernels.locate import pairs_within

    rng = np.random.default_rng(11)
    centres = rng.uniform(-3000, 3000, (60, 2))
    pts = np.r_[centres[rng.integers(0, 60, 900)] + rng.normal(0, 2.0, (900, 2)), rng.uniform(-3000, 3000, (300, 2))]
    pts = np.r_[pts, [[0.0, 0.0], [reach_m, 0.0], [0.0, -reach_m]]]
    group = rng.integers(0, 3, len(pts))
    group[-3:] = 7
    i, j = pairs_within(pts[:, 0].copy(), pts[:, 1].copy(), group, reach_m)
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)
    bi, bj = np.nonzero(np.triu((d2 <= reach_m**2) & (group[:, None] == group[None, :]), k=1))
    assert len(bi) >= 30  # the clusters give pairs
    assert list(zip(i, j)) == list(zip(bi, bj))  # the same pairs, by i then j
    assert (len(pts) - 3, len(pts) - 2) in set(zip(i, j)) and (len(pts) - 3, len(pts) - 1) in set(zip(i, j))


def test_trips_near_counts_the_distinct_trips_within_reach_that_went_its_way():
    """Against brute force: clusters where one trip has many points, queries on cell borders,
    far from every point, with a direction and without; points without a direction."""
    from mapdiff._kernels.locate import trips_near

    rng = np.random.default_rng(5)
    centres = rng.uniform(-500, 500, (20, 2))
    pts = np.r_[centres[rng.integers(0, 20, 2000)] + rng.normal(0, 8.0, (2000, 2)), rng.uniform(-500, 500, (200, 2))]
    a = rng.uniform(0, 2 * np.pi, len(pts))
    pu = np.c_[np.sin(a), np.cos(a)]
    pu[::7] = np.nan  # standing cars
    trip = rng.integers(0, 40, len(pts))
    q = np.r_[centres, pts[:50] + [15.0, 0.0], [[5000.0, 5000.0]]]
    b = rng.uniform(0, 2 * np.pi, len(q))
    qu = np.c_[np.sin(b), np.cos(b)]
    qu[::3] = 0.0  # any way
    cos_side = np.cos(np.radians(45.0))
    got = trips_near((q[:, 0].copy(), q[:, 1].copy(), qu[:, 0].copy(), qu[:, 1].copy()),
                     (pts[:, 0].copy(), pts[:, 1].copy(), pu[:, 0].copy(), pu[:, 1].copy(), trip), 15.0, cos_side)
    d2 = ((q[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)
    way = (qu @ np.nan_to_num(pu, nan=-9.0).T >= cos_side) & ~np.isnan(pu[:, 0])[None, :]
    way[::3] = True
    want = [len(np.unique(trip[(row <= 15.0**2) & w])) for row, w in zip(d2, way)]
    assert list(got) == want
    assert max(want) > 20 and want[-1] == 0


def test_a_wrong_way_edge_on_the_way_costs_the_same_at_any_interval():
    """A route that drives a one-way edge backwards between two fixes pays ``wrong_way_cost_m``
    as it weighs between fixes close together (100 m at beta_m 10: 10 nats), however far apart
    the fixes are. Counted in the route's metres alone, it cost a tenth of that with a fix a
    minute, where the transition's scale is 90 m, and wrong-way shortcuts around a block won."""
    from mapdiff._kernels import hmm
    from mapdiff.matching import MatchConfig, _hmm_params

    params = _hmm_params(MatchConfig())
    edges = (np.array([0, 2]), np.array([1, 3]), np.array([100.0, 100.0]))  # two edges apart: no U-turn
    for straight in (50.0, 250.0, 400.0, 550.0):
        # the same 500 m of road, one way legal, the other through a wrong-way twin (+100 m)
        step = (straight, straight)  # (straight, span: as far as the straight line)
        legal = hmm._log_step(0, 50.0, 1, 50.0, 1e9, step, params, edges, (500.0, -1, 0.0), 2)
        wrong = hmm._log_step(0, 50.0, 1, 50.0, 1e9, step, params, edges, (600.0, -1, 100.0), 2)
        assert legal - wrong == pytest.approx(MatchConfig.wrong_way_cost_m / MatchConfig.beta_m)


def test_the_way_round_a_one_way_is_found_where_the_search_took_the_wrong_way(grid_net, grid_edges):
    """Row 1 of the grid is one-way eastbound. From node 21 to node 11 the cached search, which
    weighs a wrong-way twin 100 m more, takes 21 -> 11 backwards (100 m of road + 100); the
    legal-only search finds the way round (300 m), and over a minute's step, where the
    transition's scale is wide, the way round is the cheaper transition of the two."""
    from mapdiff._kernels import hmm
    from mapdiff._kernels.graph import cached_search, new_workspace
    from mapdiff.matching import MatchConfig, _hmm_params, _kernel_graph

    def node(n):
        row = int(grid_edges.index[(grid_edges["u"] == n)][0])
        return int(grid_net.edge_u[row])

    graph, params = _kernel_graph(grid_net, MatchConfig()), _hmm_params(MatchConfig())
    searches = hmm.new_searches(grid_net.n_nodes, graph)
    ws = new_workspace(grid_net.n_nodes, len(graph.edge_u))
    cached_search(node(21), 1000.0, 1, hmm._routing(graph), ws, searches[0])
    dist, _, extra = hmm._found(node(11), 1, ws)
    assert (dist, extra) == (pytest.approx(200.0), pytest.approx(100.0))
    legal = hmm._legal_found(node(21), node(11), 1000.0, graph, searches[1])
    assert legal[0] == pytest.approx(300.0) and legal[2] == 0.0
    # the two as transitions between fixes 150 m apart a minute apart (span 480 m, scale 66 m)
    edges = (graph.edge_u, graph.edge_v, graph.edge_len)
    e_in = int(np.flatnonzero((grid_net.edge_u == node(22)) & (grid_net.edge_v == node(21)))[0])  # south into 21
    e_out = int(grid_edges.index[(grid_edges["u"] == 11) & (grid_edges["v"] == 10)][0])
    step = (150.0, 480.0)
    via_twin = hmm._log_step(e_in, 50.0, e_out, 50.0, 1e9, step, params, edges, (dist, -1, extra), 2)
    way_round = hmm._log_step(e_in, 50.0, e_out, 50.0, 1e9, step, params, edges, legal, 2)
    assert way_round > via_twin


@pytest.mark.parametrize(("n_a", "n_b", "extent_m", "radius_m"), [(200, 300, 100_000.0, 1.0),
                                                                   (500, 2_000, 300.0, 5.0),
                                                                   (50, 5_000, 2_000.0, 40.0)])
def test_near_pairs_finds_what_brute_force_finds(n_a, n_b, extent_m, radius_m):
    """The pair grid's cells grow with the extent and shrink to the points' count (few points
    over 100 km make cells of kilometres): every pair of one group within the radius by the
    nearer of the two positions is found, once, whatever the cell size."""
    from mapdiff._kernels.diff import _grid_of, near_pairs

    rng = np.random.default_rng(n_a)

    def points(n):
        xy = rng.uniform(0, extent_m, (n, 2))
        # the second position a little off the first, as a thing off its road's centre line
        return np.ascontiguousarray(np.c_[xy, xy + rng.normal(0, 3.0, (n, 2))]), rng.integers(0, 3, n)

    (a, ga), (b, gb) = points(n_a), points(n_b)
    # clusters within reach, so that there are pairs at every size
    b[: n_a // 2] = a[: n_a // 2] + rng.normal(0, radius_m / 2, (n_a // 2, 4))
    i, j, d = near_pairs(a, ga, b, gb, radius_m)
    d1 = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    d2 = np.hypot(a[:, None, 2] - b[None, :, 2], a[:, None, 3] - b[None, :, 3])
    near = (np.minimum(d1, d2) <= radius_m) & (ga[:, None] == gb[None, :])
    assert near.sum() > 0
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(*np.nonzero(near)))
    np.testing.assert_allclose(d, np.minimum(d1, d2)[i, j])
    # the grid it searched: at most about two cells a point (cells of 1 m over 100 km would be
    # 10^10), never smaller than the radius
    _, _, cell, nx, ny, _, _ = _grid_of(b, radius_m)
    assert nx * ny <= max(2 * n_b, 4096) and cell >= radius_m
