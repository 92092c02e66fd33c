"""diff: hand-made scenes on the grid (fixtures/grid.py) where each answer can be checked by eye,
the OSM-convention rules, and the bad-input catalogue."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.grid import CRS, SPACING_M, node_xy
from mapdiff.diff import DiffConfig, _assign, _beyond_error, _calibrated, _label_codes, _not_by_chance, diff
from mapdiff.errors import ConfigError, InputError

TRIPS = 40


def _points(xy, crs=CRS):
    return gpd.GeoSeries(shapely.points(np.asarray(xy, float)), crs=crs).to_crs(4326)


def _features(rows):
    """rows: (feature_id, class, value, x, y) in grid metres."""
    g = _points([(r[3], r[4]) for r in rows])
    return gpd.GeoDataFrame({"feature_id": np.array([r[0] for r in rows], dtype=np.int64),
                             "osmid": np.array([r[0] for r in rows], dtype=np.int64) + 9000,
                             "class": [r[1] for r in rows], "value": [r[2] for r in rows], "tags": "{}"},
                            geometry=g.values, crs=4326)


def _objects(rows):
    """rows: (object_id, class, value, x, y, n_trips)."""
    g = _points([(r[3], r[4]) for r in rows])
    return pd.DataFrame({"object_id": np.array([r[0] for r in rows], dtype=np.int64), "class": [r[1] for r in rows],
                         "value": [r[2] for r in rows], "lon": g.x.to_numpy(), "lat": g.y.to_numpy(),
                         "sigma_m": 0.4, "n_observations": [10 * r[5] for r in rows],
                         "n_trips": [r[5] for r in rows], "value_share": 1.0})


def _coverage(edges, trips=TRIPS, skip=()):
    """Every edge driven by ``trips`` trips with its direction, except the edges in ``skip``."""
    keep = ~edges["edge_id"].isin(skip)
    e = edges[keep]
    return pd.DataFrame({"edge_id": e["edge_id"].to_numpy(), "u": e["u"].to_numpy(), "v": e["v"].to_numpy(),
                         "key": 0, "passes": trips, "against": 0, "trips": trips, "trips_against": 0})


def _xy(node, dx=0.0, dy=0.0):
    x, y = node_xy(node)
    return x + dx, y + dy


@pytest.fixture(scope="module")
def scene(grid_edges):
    """A row-0 street (nodes 0-10-20-30 at y=0) with signs beside it, and an undriven street."""
    x0, y0 = node_xy(0)
    features = _features([
        (1, "traffic_sign", "FI:231", x0 + 30, y0 - 4),    # kept: the object stands at the kerb
        (2, "speed_limit", "50", x0 + 130, y0 - 4),        # value changed: 30 now
        (3, "traffic_sign", "FI:311", x0 + 220, y0 - 4),   # moved: the sign stands 20 m further east
        (4, "give_way", None, x0 + 160, y0 + 4),           # removed: nothing there any more
        (5, "traffic_sign", "FI:511", x0 + 300 + 4, y0 + 250),  # on column 3, which nobody drove
    ])
    objects = _objects([
        (101, "traffic_sign", "FI:231", x0 + 30.5, y0 - 3.2, 20),
        (102, "speed_limit", "30", x0 + 130.4, y0 - 3.6, 25),
        (103, "traffic_sign", "FI:311", x0 + 240, y0 - 3.5, 22),
        (104, "stop", None, x0 + 270, y0 + 4.0, 18),        # added: no stop sign on the map
        (105, "traffic_sign", "FI:231", x0 + 31.5, y0 + 3.0, 15),  # the other kerb's FI:231: explained
    ])
    col3 = grid_edges[(grid_edges["u"] // 10 == 3) & (grid_edges["v"] // 10 == 3)]["edge_id"]
    coverage = _coverage(grid_edges, skip=set(col3))
    return {"edges": grid_edges.to_crs(4326), "features": features}, objects, coverage


def _by_kind(result):
    d = result.diffs
    return {k: d[d["kind"] == k] for k in d["kind"].unique()}


def _grid_kinds(grid_edges, feats, objs):
    """The diffs of every confidence, by kind, of ``feats`` against ``objs`` on the grid, all driven."""
    result = diff({"edges": grid_edges.to_crs(4326), "features": feats}, objs, _coverage(grid_edges),
                  DiffConfig(min_confidence=0.0))
    return _by_kind(result)


def test_hand_made_scene(scene):
    layers, objects, coverage = scene
    result = diff(layers, objects, coverage, DiffConfig(min_confidence=0.0))
    kinds = _by_kind(result)
    objects_kinds = {k: v for k, v in kinds.items() if k.startswith(("object", "value"))}
    assert sorted(objects_kinds) == ["object_added", "object_moved", "object_removed", "value_changed"]
    assert kinds["value_changed"][["feature_id", "object_id", "old_value", "new_value"]].values.tolist() == \
        [[2, 102, "50", "30"]]
    moved = kinds["object_moved"]
    assert moved["feature_id"].tolist() == [3] and moved["object_id"].tolist() == [103]
    assert moved["distance_m"].iloc[0] == pytest.approx(20.0, abs=0.5)  # along the road, kerb offsets aside
    assert kinds["object_added"]["object_id"].tolist() == [104]
    assert kinds["object_removed"]["feature_id"].tolist() == [4]
    # nobody drove past feature 5: unverified, never a change
    assert result.unverified["feature_id"].tolist() == [5]
    assert 5 not in set(result.diffs["feature_id"].dropna())
    assert ((result.diffs["confidence"] >= 0) & (result.diffs["confidence"] <= 1)).all()


def test_diff_ids_are_stable(scene):
    layers, objects, coverage = scene
    a = diff(layers, objects, coverage, DiffConfig(min_confidence=0.0)).diffs
    b = diff(
        layers, objects.sample(frac=1.0, random_state=3), coverage.iloc[::-1], DiffConfig(min_confidence=0.0)
    ).diffs
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))


def test_junction_signals_pair_with_the_poles_around_the_node(grid_edges):
    # OSM maps the signals on junction 11; the world has a pole at each approach's kerb. Junction
    # 22 has poles but no map feature: one addition, not four.
    feats = _features([(1, "traffic_signals", None, *node_xy(11))])
    poles = []
    for k, (jx, jy) in enumerate([node_xy(11), node_xy(22)]):
        for dx, dy in ((-6, -5), (6, 5), (-5, 6), (5, -6)):
            poles.append((10 * k + len(poles), "traffic_signals", None, jx + dx, jy + dy, 40 if dx == 6 else 30))
    result = diff({"edges": grid_edges.to_crs(4326), "features": feats}, _objects(poles), _coverage(grid_edges),
                  DiffConfig(min_confidence=0.0))
    kinds = _by_kind(result)
    assert set(kinds) == {"object_added"}
    added = kinds["object_added"]
    assert len(added) == 1
    # drawn where the pole seen in most trips stands (where OSM maps a junction's signals varies:
    # its node, or its approaches' stop lines)
    p = added.to_crs(CRS).geometry.iloc[0]
    assert np.hypot(p.x - node_xy(22)[0] - 6, p.y - node_xy(22)[1] - 5) < 0.5


def test_a_signal_on_the_approach_pairs_with_its_pole_just_beyond_the_junction_radius(grid_edges):
    # OSM maps the signal on the approach way 23.5 m before junction 11, within
    # junction_radius_m (25); its pole stands at the kerb beside it, 25.3 m from the node: a
    # junction's feature and a loose pole, one object where it stands
    x, y = node_xy(11)
    feats = _features([(1, "traffic_signals", None, x, y - 23.5)])
    objs = _objects([(7, "traffic_signals", None, x + 4.0, y - 25.0, 30)])
    result = diff({"edges": grid_edges.to_crs(4326), "features": feats}, objs, _coverage(grid_edges),
                  DiffConfig(min_confidence=0.0))
    assert len(result.diffs) == 0


def test_a_new_signal_at_a_junction_beside_a_mapped_one_is_an_addition(grid_edges):
    # junction 11 has its signals on the map; a second junction 12.8 m away (node 500, three
    # short roads) has poles of its own but no signal on the map: another junction's thing does
    # not explain it, as a split estimate or the other kerb's sign would be
    x, y = node_xy(11)
    hub = (x + 10.0, y + 8.0)
    stubs = [(hub[0], hub[1] + 60.0), (hub[0] + 60.0, hub[1]), (hub[0] + 45.0, hub[1] + 45.0)]
    rows = []
    for k, end in enumerate(stubs):
        rows += [(500, 501 + k, shapely.LineString([hub, end])), (501 + k, 500, shapely.LineString([end, hub]))]
    stub_edges = gpd.GeoDataFrame({"edge_id": np.arange(len(rows)) + 1000, "u": [r[0] for r in rows],
                                   "v": [r[1] for r in rows], "key": 0, "osmid": np.arange(len(rows)) + 5000,
                                   "highway": "residential", "oneway": False, "length": 60.0},
                                  geometry=[r[2] for r in rows], crs=CRS).to_crs(4326)
    edges = pd.concat([grid_edges, stub_edges], ignore_index=True)
    feats = _features([(1, "traffic_signals", None, x, y)])
    poles = [(10 + k, "traffic_signals", None, x + dx, y + dy, 30) for k, (dx, dy) in enumerate(((-6, -5), (5, -6)))]
    poles += [(20 + k, "traffic_signals", None, hub[0] + dx, hub[1] + dy, 30)
              for k, (dx, dy) in enumerate(((-4, 6), (6, 4), (5, 5)))]
    result = diff({"edges": edges, "features": feats}, _objects(poles), _coverage(edges),
                  DiffConfig(min_confidence=0.0))
    kinds = _by_kind(result)
    assert set(kinds) == {"object_added"}
    p = kinds["object_added"].to_crs(CRS).geometry.iloc[0]
    assert np.hypot(p.x - hub[0] + 4, p.y - hub[1] - 6) < 0.5  # its first pole: all seen in 30 trips


def test_two_close_signs_never_share_one_object(grid_edges):
    x0, y0 = node_xy(0)
    feats = _features([(1, "traffic_sign", "FI:231", x0 + 50, y0 - 4), (2, "traffic_sign", "FI:231", x0 + 53, y0 - 4)])
    objs = _objects([(7, "traffic_sign", "FI:231", x0 + 51.5, y0 - 4, 30)])
    kinds = _grid_kinds(grid_edges, feats, objs)
    # one of the two is explained, the other is a removal (never both explained by one object)
    assert len(kinds.get("object_removed", [])) == 1
    assert "object_added" not in kinds


def test_a_feature_on_a_road_pairs_with_the_pole_at_its_kerb_not_one_beyond(grid_edges):
    # a crossing mapped on the centre line of row 0 with its pole at the kerb, 0.8 m along; a
    # crossing mapped beside the road, 14.5 m off it, whose pole stands 12 m off, 0.2 m along
    # from the first. Measured along the road, the far pole is the first crossing's nearest:
    # pairing them would leave the near pole to the second crossing, a move of 18 m.
    x0, y0 = node_xy(0)
    feats = _features([(1, "crossing", None, x0 + 50, y0), (2, "crossing", None, x0 + 50.2, y0 + 14.5)])
    objs = _objects([(10, "crossing", None, x0 + 50.8, y0 - 4, 30), (20, "crossing", None, x0 + 50.2, y0 + 12, 30)])
    result = diff({"edges": grid_edges.to_crs(4326), "features": feats}, objs, _coverage(grid_edges),
                  DiffConfig(min_confidence=0.0))
    assert len(result.diffs) == 0


def test_a_pole_seen_once_does_not_take_a_feature_from_its_well_seen_pole(grid_edges):
    # a crossing mapped on row 0's centre line; its pole at the kerb 2.4 m along, seen in 169
    # trips, and a stray estimate 1 m from the node seen once, which read a value. Nearest
    # first, the stray took the feature, and the real pole, of another value than the stray's
    # and so not its split estimate, became a confident addition (Liechtenstein, stop 52)
    x0, y0 = node_xy(0)
    feats = _features([(1, "crossing", None, x0 + 50, y0)])
    objs = _objects([(10, "crossing", None, x0 + 52.4, y0 - 4, 169), (20, "crossing", "zebra", x0 + 50.5, y0 - 0.9, 1)])
    result = diff({"edges": grid_edges.to_crs(4326), "features": feats}, objs, _coverage(grid_edges),
                  DiffConfig(min_confidence=0.0))
    assert len(result.diffs) == 0
    # a stray estimate still explains a feature no well-seen pole stands for
    feats = _features([(1, "crossing", None, x0 + 50, y0), (2, "crossing", None, x0 + 150, y0)])
    objs = _objects([(10, "crossing", None, x0 + 52.4, y0 - 4, 169), (20, "crossing", None, x0 + 150.5, y0 - 3.5, 1)])
    result = diff({"edges": grid_edges.to_crs(4326), "features": feats}, objs, _coverage(grid_edges),
                  DiffConfig(min_confidence=0.0))
    assert len(result.diffs) == 0


def test_values_compare_as_text_over_both_sides():
    feat = pd.DataFrame({"class": ["a", "b", "a", "c"], "value": [50, None, "x", np.nan]})
    obj = pd.DataFrame({"class": ["a", "a", "b"], "value": ["50", "x", None]})
    _label_codes(feat, obj)
    assert feat["val"].tolist() == [0, -1, 1, -1] and obj["val"].tolist() == [0, 1, -1]
    assert feat["cls"].tolist() == [0, 1, 0, 2] and obj["cls"].tolist() == [0, 0, 1]


def test_assignment_prefers_pairs_in_place_to_a_chain_of_shifts():
    # features 0, 1 and things 0, 1 at the same places; feature 1 is also 20 m from thing 0
    i = np.array([0, 1, 1])
    j = np.array([0, 1, 0])
    cost = np.array([0.0, 0.0, 20.0])
    fi, ti = _assign(i, j, cost, unpaired_cost=25.0)
    assert sorted(zip(fi.tolist(), ti.tolist())) == [(0, 0), (1, 1)]
    # pairing is worth it only below twice the unpaired price
    fi, ti = _assign(np.array([0]), np.array([0]), np.array([60.0]), unpaired_cost=25.0)
    assert len(fi) == 0


def test_calibration_is_learnt_from_the_data():
    rng = np.random.default_rng(0)
    evidence = rng.integers(1, 200, 5000).astype(float)
    real = rng.random(5000) < 0.03  # 3 % real changes
    # by chance, an item with little evidence is lonely often; with much, never
    chance = rng.random(5000) < np.exp(-evidence / 5.0)
    conf = _calibrated(evidence, real | chance)
    assert conf[evidence >= 50].min() == pytest.approx(1.0)
    low = evidence < 3
    assert conf[low].max() < 0.2  # most lonely items with little evidence are chance
    assert np.all(np.diff(conf[np.argsort(evidence)]) >= -1e-12)  # never falls as evidence grows


def test_a_calibration_measures_shares_from_enough_lonely_items():
    # 40 features seen in 60 trips, none gone (a 5 % rate leaves such a pool empty one time in
    # eight); 60 seen in 30 trips and 60 in 12, five gone in each: no share is higher than the
    # one above beyond chance, so all measure one rate, and the removals keep their confidence
    # (the empty pool taken as the rate made them all zero)
    evidence = np.r_[np.full(40, 60.0), np.full(60, 30.0), np.full(60, 12.0)]
    lonely = np.zeros(160, bool)
    lonely[[40, 41, 42, 43, 44, 100, 101, 102, 103, 104]] = True
    conf = _calibrated(evidence, lonely)
    assert conf[lonely].min() > 0.5
    assert conf[evidence == 30.0].min() == pytest.approx(1.0)
    # a share higher beyond chance is kept apart: 1 of the 60 seen in 30 trips, 15 of the 60 in 12
    lonely = np.isin(np.arange(160), [40] + list(range(100, 115)))
    conf = _calibrated(evidence, lonely)
    assert conf[evidence == 12.0].max() < 0.2 and conf[evidence >= 30.0].min() == pytest.approx(1.0)


def test_a_feature_set_back_from_the_road_is_weaker_evidence_of_a_removal(grid_edges):
    # along row 0: 30 signs at its kerb, each found but one; 30 signs set back 30 m, half of
    # them found (a blind spot of the camera, not 15 removals). Same trips everywhere.
    x0, y0 = node_xy(0)
    xs = [x0 + b + dx for b in (35, 135, 235) for dx in range(0, 30, 3)]
    feats = [(k, "traffic_sign", f"FI:{k}", x, y0 - 4) for k, x in enumerate(xs)]
    feats += [(100 + k, "traffic_sign", f"FI:{100 + k}", x, y0 + 30) for k, x in enumerate(xs)]
    objs = [(1000 + f[0], *f[1:], TRIPS) for f in feats if f[0] != 7 and not (f[0] >= 100 and f[0] % 2)]
    result = diff({"edges": grid_edges.to_crs(4326), "features": _features(feats)}, _objects(objs),
                  _coverage(grid_edges), DiffConfig(min_confidence=0.0))
    removed = result.diffs[result.diffs["kind"] == "object_removed"].set_index("feature_id")["confidence"]
    assert sorted(removed.index) == [7] + list(range(101, 130, 2))
    assert removed[7] > 0.9
    assert (removed.drop(7) < 0.5).all()


@pytest.mark.parametrize("trips, along_m, value, removed", [(TRIPS, 12.0, "FI:7", True), (TRIPS, 2.0, "FI:7", False),
                                                          (TRIPS, 2.0, "FI:999", True), (3, 12.0, "FI:7", False)])
def test_a_thing_seen_once_where_many_passed_does_not_explain_a_feature_away(grid_edges, trips, along_m, value,
                                                                             removed):
    # 54 signs at the kerbs of rows 0 and 2, every street driven by ``trips`` trips, each sign
    # found by all of them or all but one; sign 7's pole is gone, and a stray estimate of its
    # value stands 12 m further along (beyond the 6.2 m a kerb's sign may stand off), seen in
    # one trip of forty (a pose gone wrong): sign 7 is removed. Where the estimate stands at
    # the sign (2 m), it is the sign seen badly: no removal; unless it reads another value, which
    # says nothing of sign 7 (a misread, or a stray of another sign): removed. On quiet streets
    # (three trips, the others found by two or three of them) an object seen in two is as good
    # as its neighbours and explains sign 7 from 12 m as before: a move too weakly seen to report
    x0, y0 = node_xy(0)
    spots = [(x0 + dx, y0 + row * SPACING_M - 4) for row in (0, 2) for dx in range(20, 290, 10)]
    feats = [(k, "traffic_sign", f"FI:{k}", x, y) for k, (x, y) in enumerate(spots)]
    objs = [(1000 + k, cls, value, x, y, trips - k % 2) for k, cls, value, x, y in feats if k != 7]
    stray_trips = 1 if trips == TRIPS else 2
    objs.append((2000, "traffic_sign", value, spots[7][0] + along_m, spots[7][1] + 0.5, stray_trips))
    result = diff({"edges": grid_edges.to_crs(4326), "features": _features(feats)}, _objects(objs),
                  _coverage(grid_edges, trips=trips), DiffConfig(min_confidence=0.0))
    gone = result.diffs[result.diffs["kind"] == "object_removed"].set_index("feature_id")["confidence"]
    assert sorted(gone.index) == ([7] if removed else [])
    assert (gone > 0.5).all()
    assert 7 not in set(result.diffs[result.diffs["kind"] == "object_moved"]["feature_id"])


@pytest.mark.parametrize("cls, value, dx, dy, added", [
    ("traffic_sign", "FI:372", 12.0, 0.0, True),    # a sign further along its road: another sign
    ("traffic_sign", "FI:372", 3.0, 0.0, False),    # within a kerb: the mapped sign's split estimate
    ("traffic_sign", "FI:372", 0.0, 8.0, False),    # level across the road: its other kerb's twin
    ("crossing", None, 12.0, 0.0, False),           # a crossing's poles stand apart: one feature
])
def test_a_one_faced_sign_further_along_is_another_sign(grid_edges, cls, value, dx, dy, added):
    # row 0 (two-way, forty trips): a mapped sign or crossing at the southern kerb, found in
    # place, and an estimate of its class and value beside it, seen as often; 30 other signs
    # along rows 2 and 3, each found in place
    x0, y0 = node_xy(0)
    feats = [(1, cls, value, x0 + 100, y0 - 4)]
    feats += [(10 + k, "traffic_sign", f"FI:{k}", x0 + 20 + 18 * (k % 15), y0 + (2 + k // 15) * SPACING_M - 4)
              for k in range(30)]
    objs = [(1000 + f[0], *f[1:], TRIPS) for f in feats]
    objs.append((2000, cls, value, x0 + 100 + dx, y0 - 4 + dy, TRIPS))
    kinds = _grid_kinds(grid_edges, _features(feats), _objects(objs))
    found = kinds.get("object_added", pd.DataFrame({"object_id": []}))["object_id"].tolist()
    assert found == ([2000] if added else [])
    assert "object_moved" not in kinds and "object_removed" not in kinds


def test_oneway_driven_backwards(grid_edges):
    # row 1 is one-way eastbound; its first edge (node 1 -> 11) is driven only westbound
    cov = _coverage(grid_edges)
    oneway = grid_edges[grid_edges["oneway"]]["edge_id"].to_numpy()
    first = int(grid_edges[(grid_edges["u"] == 1) & (grid_edges["v"] == 11)]["edge_id"].iloc[0])
    cov.loc[cov["edge_id"] == first, ["passes", "trips", "against", "trips_against"]] = [0, 0, 12, 12]
    # the matcher's wrong-way noise on the others: one trip in forty
    others = cov["edge_id"].isin(oneway) & (cov["edge_id"] != first)
    cov.loc[others, ["against", "trips_against"]] = 1
    result = diff({"edges": grid_edges.to_crs(4326)}, None, cov, DiffConfig(min_confidence=0.5))
    rev = result.diffs[result.diffs["kind"] == "oneway_reversed"]
    assert rev["edge_id"].tolist() == [first]
    assert rev["confidence"].iloc[0] > 0.9
    assert result.warnings and "features" in result.warnings[0]


@pytest.mark.parametrize("sure, reported", [(1.0, True), (0.2, False)])
def test_oneway_evidence_is_weighed_by_the_matchers_confidence(grid_edges, sure, reported):
    """Twelve trips matched backwards along a one-way, each by fixes the matcher is sure of, or
    gives a chance of 0.2 (the posterior spread over the two directions of a two-way street it
    cannot tell apart): 2.4 trips' worth is under the three trips a diff needs."""
    cov = _coverage(grid_edges)
    first = int(grid_edges[(grid_edges["u"] == 1) & (grid_edges["v"] == 11)]["edge_id"].iloc[0])
    cov.loc[cov["edge_id"] == first, ["passes", "trips", "against", "trips_against"]] = [0, 0, 12, 12]
    x0, y0 = node_xy(1)
    g = _points(np.c_[np.full(12, x0 + 50.0), np.full(12, y0 + 2.0)])
    matched = pd.DataFrame({"trip_id": [f"t{k}" for k in range(12)], "t": 0.0, "lon": g.x.to_numpy(),
                            "lat": g.y.to_numpy(), "edge_id": first, "offset_m": 50.0, "distance_m": 2.0,
                            "state": "matched", "confidence": sure, "against": True})
    result = diff({"edges": grid_edges.to_crs(4326)}, None, cov, DiffConfig(min_confidence=0.5), matched=matched)
    rev = result.diffs[result.diffs["kind"] == "oneway_reversed"]
    assert rev["edge_id"].tolist() == ([first] if reported else [])


@pytest.mark.parametrize("step_m, outlier, reported", [(8.0, False, True), (0.3, False, False), (0.3, True, False)])
def test_a_standing_car_confirms_no_direction(grid_edges, step_m, outlier, reported):
    """Twelve trips with five sure fixes each on a one-way, matched against it: cars driving it
    westward (8 m a second) reverse it; cars standing there (0.3 m a second of GPS jitter:
    waiting at a junction, their fixes land on its edges either way) say nothing of its way,
    also when a sixth fix jumps 60 m off (multipath: left out of the speed, as observe does)."""
    cov = _coverage(grid_edges)
    first = int(grid_edges[(grid_edges["u"] == 1) & (grid_edges["v"] == 11)]["edge_id"].iloc[0])
    cov.loc[cov["edge_id"] == first, ["passes", "trips", "against", "trips_against"]] = [0, 0, 12, 12]
    x0, y0 = node_xy(1)
    n = 6 if outlier else 5
    off = 70.0 - step_m * np.arange(n)
    lateral = np.where(np.arange(n) == 5, 60.0, 1.0)
    g = _points(np.c_[np.tile(x0 + off, 12), np.tile(y0 + lateral, 12)])
    matched = pd.DataFrame({"trip_id": np.repeat([f"t{k}" for k in range(12)], n),
                            "t": np.tile(np.arange(n, dtype=float), 12), "lon": g.x.to_numpy(), "lat": g.y.to_numpy(),
                            "edge_id": first, "offset_m": np.tile(off, 12), "distance_m": np.tile(lateral, 12),
                            "state": "matched", "confidence": 1.0, "against": True})
    result = diff({"edges": grid_edges.to_crs(4326)}, None, cov, DiffConfig(min_confidence=0.5), matched=matched)
    rev = result.diffs[result.diffs["kind"] == "oneway_reversed"]
    assert rev["edge_id"].tolist() == ([first] if reported else [])


def _matched_run(trip, xs, ys, t0=0.0, state="unmatched"):
    g = _points(np.c_[xs, ys])
    n = len(xs)
    return pd.DataFrame({"trip_id": trip, "t": t0 + np.arange(n, dtype=float), "lon": g.x.to_numpy(),
                         "lat": g.y.to_numpy(), "edge_id": pd.array([pd.NA] * n, dtype="Int64"),
                         "offset_m": np.nan, "distance_m": np.nan, "state": state, "against": False})


def _on_road(trip, n, t0, rng):
    x0, y0 = node_xy(0)
    xs = x0 + np.linspace(5, 95, n)
    g = _points(np.c_[xs, np.full(n, y0) + rng.normal(0, 3, n)])
    edge = 0
    return pd.DataFrame({"trip_id": trip, "t": t0 + np.arange(n, dtype=float), "lon": g.x.to_numpy(),
                         "lat": g.y.to_numpy(), "edge_id": pd.array([edge] * n, dtype="Int64"),
                         "offset_m": xs - x0, "distance_m": np.abs(rng.normal(0, 3, n)) + 0.5,
                         "state": "matched", "against": False})


def test_lines_that_join_the_map_are_raised_by_what_the_lines_show():
    from mapdiff.diff import _raise_joined

    def line(n, conf, a, b):
        return {"n_trips": n, "confidence": conf, "node_from": a, "node_to": b}

    # four lines the chance bound is sure of, three of them joined: joined roads a = 4/6
    sure = [line(12, 1.0, 1, 2), line(15, 1.0, 3, 4), line(20, 1.0, 5, 6), line(11, 1.0, 7, None)]
    # four three-trip lines, two joined (one more only touches one node at both ends)
    weak = [line(3, 0.0, 8, 9), line(3, 0.0, 10, 11), line(3, 0.0, None, 12), line(3, 0.0, 13, 13)]
    lines = [dict(x) for x in sure + weak]
    _raise_joined(lines, 0.2)  # a chance line's ends both at a node: 0.04
    a, chance, share = 4 / 6, 0.04, 3 / 6
    roads = (share - chance) / (a - chance)
    expected = roads * a / (roads * a + (1 - roads) * chance)  # 0.979
    assert [x["confidence"] for x in lines[4:]] == pytest.approx([expected, expected, 0.0, 0.0])
    assert [x["confidence"] for x in lines[:4]] == [1.0] * 4
    # where off-map fixes sit near nodes as often as roads join, joining tells nothing
    lines = [dict(x) for x in sure + weak]
    _raise_joined(lines, 0.9)
    assert [x["confidence"] for x in lines[4:]] == [0.0] * 4


def _trips_off_the_map(prefix, xs, ys, rng, n_trips=5):
    """Matched fixes of ``n_trips`` trips: 10 s on row 0, a run of unmatched fixes at ``xs``,
    ``ys`` (a fix a second, 3 m noise), 10 s on row 0 again."""
    parts = []
    for k in range(n_trips):
        n = len(xs)
        parts.append(_on_road(f"{prefix}{k}", 10, 0.0, rng))
        parts.append(_matched_run(f"{prefix}{k}", xs + rng.normal(0, 3, n), ys + rng.normal(0, 3, n), t0=10.0))
        parts.append(_on_road(f"{prefix}{k}", 10, 10.0 + n, rng))
    return parts


def test_road_missing_from_several_trips_along_a_line(grid_edges):
    # a diagonal road between nodes 0 and 11 the map lacks, driven by five trips; one trip's
    # multipath stretch somewhere else; a car park at a trip's end
    rng = np.random.default_rng(1)
    (ax, ay), (bx, by) = node_xy(0), node_xy(11)
    s = np.linspace(0.15, 0.85, 12)
    parts = _trips_off_the_map("t", ax + s * (bx - ax), ay + s * (by - ay), rng)
    # multipath: one trip, 40 m off row 2 for 20 s
    x2, y2 = node_xy(21)
    parts.append(_on_road("mp", 10, 0.0, rng))
    parts.append(_matched_run("mp", x2 + np.linspace(0, 150, 20), np.full(20, y2 + 40.0), t0=10.0))
    parts.append(_on_road("mp", 10, 30.0, rng))
    # a car park at the end of a trip: off-road fixes that end the trip
    parts.append(_on_road("park", 10, 0.0, rng))
    parts.append(_matched_run("park", np.full(15, node_xy(20)[0] + 60), np.full(15, node_xy(20)[1] - 60), t0=10.0))
    matched = pd.concat(parts, ignore_index=True)
    result = diff({"edges": grid_edges.to_crs(4326)}, None, _coverage(grid_edges), DiffConfig(min_confidence=0.0),
                  matched=matched)
    missing = result.diffs[result.diffs["kind"] == "road_missing"]
    assert len(missing) == 1
    line = missing.to_crs(CRS).geometry.iloc[0]
    assert line.geom_type == "LineString"
    truth = shapely.LineString([node_xy(0), node_xy(11)])
    assert line.hausdorff_distance(truth) < 25.0
    assert missing["n_trips"].iloc[0] == 5


def test_a_missing_road_where_trips_end_is_found_and_a_car_park_is_not(grid_edges):
    """Four trips drive on from node 10 south, 120 m down a street the map lacks, at 8 m/s, and
    end there (a new estate's dead end): one road. Four trips end in a car park south of node
    30, 60 m along one line at 4 m/s (a car park's pace): no road. (Runs at a trip's end were all
    refused once, so the estate was lost; taken at any pace, the car park is a road.)"""
    rng = np.random.default_rng(5)

    def ending(prefix, node, speed_mps):
        x, y = node_xy(node)
        parts = []
        for k in range(4):
            parts.append(_on_road(f"{prefix}{k}", 10, 0.0, rng))
            ys = y - speed_mps * np.arange(1, 16)
            parts.append(_matched_run(f"{prefix}{k}", x + rng.normal(0, 3, 15), ys + rng.normal(0, 3, 15), t0=10.0))
        return parts

    matched = pd.concat(ending("estate", 10, 8.0) + ending("park", 30, 4.0), ignore_index=True)
    result = diff({"edges": grid_edges.to_crs(4326)}, None, _coverage(grid_edges), DiffConfig(min_confidence=0.0),
                  matched=matched)
    missing = result.diffs[result.diffs["kind"] == "road_missing"]
    assert len(missing) == 1
    x, y = node_xy(10)
    assert missing.to_crs(CRS).geometry.iloc[0].hausdorff_distance(shapely.LineString([(x, y), (x, y - 120)])) < 25
    assert missing["n_trips"].iloc[0] == 4


def test_a_missing_road_ends_where_the_map_takes_over(grid_edges):
    """Five trips drive the diagonal 0 -> 11 the map lacks and go on east along mapped row 1
    while the matcher still has them elsewhere (their fixes unmatched there too): the line is the
    diagonal, not the row beyond it. Five other trips' unmatched runs lie on row 2 only (a
    matcher wrong between sparse fixes): the map explains them, no line."""
    rng = np.random.default_rng(3)
    (ax, ay), (bx, by) = node_xy(0), node_xy(11)
    s = np.linspace(0.15, 1.0, 12)
    xs, ys = np.r_[ax + s * (bx - ax), bx + np.linspace(10, 90, 9)], np.r_[ay + s * (by - ay), np.full(9, by)]
    matched = pd.concat(_trips_off_the_map("t", xs, ys, rng), ignore_index=True)
    result = diff({"edges": grid_edges.to_crs(4326)}, None, _coverage(grid_edges), DiffConfig(min_confidence=0.0),
                  matched=matched)
    missing = result.diffs[result.diffs["kind"] == "road_missing"]
    assert len(missing) == 1
    line = missing.to_crs(CRS).geometry.iloc[0]
    assert line.hausdorff_distance(shapely.LineString([node_xy(0), node_xy(11)])) < 25.0
    (cx, cy), (dx, _) = node_xy(12), node_xy(32)  # row 2, mapped
    parts = _trips_off_the_map("r", np.linspace(cx + 10, dx - 10, 15), np.full(15, cy), rng)
    result = diff({"edges": grid_edges.to_crs(4326)}, None, _coverage(grid_edges), DiffConfig(min_confidence=0.0),
                  matched=pd.concat(parts, ignore_index=True))
    assert not (result.diffs["kind"] == "road_missing").any()


def test_support_of_a_missing_road_is_a_trip_that_drove_along_it_one_way():
    """``_drove_along`` clause by clause, against a line due north (10 m cells): trip 0 drives
    50 m up it (support); trip 1 gets 15 m up it but 40 m across (mostly across: no); trip 2
    drives up it and, in a second run, back down (out and back: no); trip 3 stands on it (no
    progress: no); trip 4 drives two runs up it (support)."""
    from mapdiff.diff import _drove_along

    line = shapely.LineString([(0.0, -100.0), (0.0, 200.0)])
    runs = [  # (trip, run, start xy, end xy)
        (0, 1, (0, 0), (0, 50)), (1, 2, (-20, 0), (20, 15)), (2, 3, (0, 0), (0, 50)), (2, 4, (0, 50), (0, 0)),
        (3, 5, (0, 10), (0.5, 11)), (4, 6, (0, 0), (0, 30)), (4, 7, (0, 60), (0, 90)),
    ]
    rows = []
    for trip, run, (x0, y0), (x1, y1) in runs:
        for k, f in enumerate(np.linspace(0, 1, 6)):
            rows.append({"trip": trip, "run": run, "t": 10.0 * run + k, "x": x0 + f * (x1 - x0),
                         "y": y0 + f * (y1 - y0)})
    assert sorted(_drove_along(pd.DataFrame(rows), line, 10.0).tolist()) == [0, 4]


def test_pieces_of_one_missing_road_are_joined_across_a_gap_without_a_junction():
    """``_continued`` clause by clause: two pieces of a line due east, 20 m apart, driven by the
    same five trips, are one road (gap 40 m allowed); not with a mapped node in the gap (the
    road meets the map there), nor with two shared trips of three needed, nor with the second
    piece turning back along the first."""
    from scipy.spatial import cKDTree

    from mapdiff.diff import _continued

    def piece(xs, ys, trips):
        return {"geometry_m": shapely.LineString(np.c_[xs, ys]), "trips": np.asarray(trips), "n_observations": 10}

    a = piece([0.0, 100.0], [0.0, 0.0], [1, 2, 3, 4, 5])
    b = piece([120.0, 250.0], [0.0, 5.0], [1, 2, 3, 4, 5, 6])
    far_node = (cKDTree([[60.0, 200.0]]), np.array([7]))
    joined = _continued([a, b], (40.0, 8.0), far_node, 3)
    assert len(joined) == 1
    assert joined[0]["trips"].tolist() == [1, 2, 3, 4, 5, 6] and joined[0]["n_observations"] == 20
    assert joined[0]["geometry_m"].length == pytest.approx(100.0 + 20.0 + np.hypot(130.0, 5.0))
    assert len(_continued([a, b], (40.0, 8.0), (cKDTree([[110.0, 3.0]]), np.array([7])), 3)) == 2
    assert len(_continued([a, piece([120.0, 250.0], [0.0, 5.0], [1, 2, 9])], (40.0, 8.0), far_node, 3)) == 2
    back = piece([120.0, 30.0], [10.0, 12.0], [1, 2, 3, 4, 5])
    assert len(_continued([a, back], (40.0, 8.0), far_node, 3)) == 2


def test_a_run_with_one_fix_on_the_line_tells_nothing():
    """Fixes every 15 s cross a 10 m cell once: trip 5's run has one fix on the line, and its
    trip stays support; trip 6's other run crosses the line, which rules it out."""
    from mapdiff.diff import _drove_along

    line = shapely.LineString([(0.0, -100.0), (0.0, 200.0)])
    rows = [{"trip": 5, "run": 1, "t": 0.0, "x": 0.5, "y": 40.0}, {"trip": 6, "run": 2, "t": 0.0, "x": 0.0, "y": 60.0}]
    rows += [{"trip": 6, "run": 3, "t": 30.0 + k, "x": -20.0 + 8 * k, "y": 80.0} for k in range(6)]
    assert _drove_along(pd.DataFrame(rows), line, 10.0).tolist() == [5]


def test_a_place_visited_out_and_back_is_no_missing_road(grid_edges):
    # five trips each leave row 0 at the same spot, drive 70 m north-east off the map at
    # driving speed and come back along the same line (a car park seen from the road, the stop
    # itself hidden by fixes matched elsewhere): runs of five trips along one line, but no trip
    # drove through it; a sixth kind of trip drives the line out and back in one run
    rng = np.random.default_rng(2)
    x0, y0 = node_xy(0)
    s = np.linspace(0.1, 1.0, 10)
    out_x, out_y = x0 + 50 + 50 * s, y0 + 50 * s
    parts = []
    for k in range(5):
        parts.append(_on_road(f"t{k}", 10, 0.0, rng))
        parts.append(_matched_run(f"t{k}", out_x + rng.normal(0, 2, 10), out_y + rng.normal(0, 2, 10), t0=10.0))
        parts.append(_on_road(f"t{k}", 3, 20.0, rng))
        parts.append(_matched_run(f"t{k}", out_x[::-1] + rng.normal(0, 2, 10), out_y[::-1] + rng.normal(0, 2, 10),
                                  t0=23.0))
        parts.append(_on_road(f"t{k}", 10, 33.0, rng))
    for k in range(5):
        parts.append(_on_road(f"r{k}", 10, 0.0, rng))
        xs, ys = np.r_[out_x, out_x[::-1]], np.r_[out_y, out_y[::-1]]
        parts.append(_matched_run(f"r{k}", xs + rng.normal(0, 2, 20), ys + rng.normal(0, 2, 20), t0=10.0))
        parts.append(_on_road(f"r{k}", 10, 30.0, rng))
    matched = pd.concat(parts, ignore_index=True)
    result = diff({"edges": grid_edges.to_crs(4326)}, None, _coverage(grid_edges), DiffConfig(min_confidence=0.0),
                  matched=matched)
    assert not (result.diffs["kind"] == "road_missing").any()
    # the same runs, each trip driving the line one way only (the out legs): a road
    one_way = matched[~((matched["t"] >= 23.0) & (matched["t"] < 33.0)) & matched["trip_id"].str.startswith("t")]
    result = diff({"edges": grid_edges.to_crs(4326)}, None, _coverage(grid_edges), DiffConfig(min_confidence=0.0),
                  matched=one_way)
    assert (result.diffs["kind"] == "road_missing").sum() == 1


# ---------------------------------------------------------------------------------------------
# bad input


def test_objects_far_from_the_map(scene):
    layers, objects, coverage = scene
    far = objects.assign(lon=objects["lon"] + 30.0)
    with pytest.raises(InputError, match="objects.parquet: no object lies within 1 km of the map"):
        diff(layers, far, coverage, sources={"objects": "objects.parquet"})


def test_objects_without_class(scene):
    layers, objects, coverage = scene
    with pytest.raises(InputError, match="missing column.*'class'"):
        diff(layers, objects.drop(columns="class"), coverage)


def test_threshold_out_of_range():
    with pytest.raises(ConfigError, match="min_confidence must be in \\[0, 1\\]"):
        DiffConfig(min_confidence=1.5).validate()
    with pytest.raises(ConfigError, match="max_move_m"):
        DiffConfig(max_move_m=-1).validate()


def test_empty_objects_make_removals_or_unverified(scene):
    layers, objects, coverage = scene
    result = diff(layers, objects.iloc[:0], coverage, DiffConfig(min_confidence=0.0))
    removed = set(result.diffs.loc[result.diffs["kind"] == "object_removed", "feature_id"])
    assert removed == {1, 2, 3, 4}
    assert result.unverified["feature_id"].tolist() == [5]


@pytest.mark.parametrize(("sigma_m", "added"), [(0.4, True), (5.0, False)])
def test_a_second_estimate_of_a_mapped_sign_is_split_off_as_far_as_its_sigma_reaches(grid_edges, sigma_m, added):
    # one sign on the map and two estimates of its class and value, 0.5 m and 18 m from it: sure
    # estimates (sigma 0.4 m) 18 m apart are two signs, an addition; estimates of sigma 5 m
    # (a noisy fleet's) lie that far apart by chance (3 sqrt(2) x 5 = 21 m): one sign, split
    x0, y0 = node_xy(0)
    feats = _features([(1, "traffic_sign", "FI:231", x0 + 30, y0 - 4)])
    objs = _objects([(101, "traffic_sign", "FI:231", x0 + 30.5, y0 - 4, 20),
                     (102, "traffic_sign", "FI:231", x0 + 48, y0 - 4, 20)]).assign(sigma_m=sigma_m)
    kinds = _grid_kinds(grid_edges, feats, objs)
    assert ("object_added" in kinds) == added
    if added:
        assert kinds["object_added"]["object_id"].tolist() == [102]


@pytest.mark.parametrize(("cls", "feature_value", "added"), [
    ("crossing", None, False),          # the map gives no kind: the read value says nothing
    ("traffic_sign", "FI:231", True),   # the map's sign code: another code is another sign
])
def test_the_other_kerbs_pole_read_with_another_value_is_new_only_against_a_mapped_value(
        grid_edges, cls, feature_value, added):
    # a feature on row 0's centre line and an estimate on each kerb, 4 m either side: one read
    # with the feature's value (or none), the other with another value
    x0, y0 = node_xy(0)
    feats = _features([(1, cls, feature_value, x0 + 50, y0)])
    other = "island" if cls == "crossing" else "FI:311"
    objs = _objects([(101, cls, feature_value, x0 + 50.3, y0 - 4.0, 30), (102, cls, other, x0 + 50.2, y0 + 4.0, 25)])
    kinds = _grid_kinds(grid_edges, feats, objs)
    assert ("object_added" in kinds) == added
    if added:
        assert kinds["object_added"]["object_id"].tolist() == [102]


def test_a_crossings_second_node_is_no_removal_whatever_kind_it_says(grid_edges):
    # OSM maps a crossing on both ways its footway crosses: two nodes 1.1 m apart on row 0, one
    # edited to "traffic_signals", the other still "unmarked"; the fleet sees the crossing's pole
    x0, y0 = node_xy(0)
    feats = _features([(1, "crossing", "traffic_signals", x0 + 50, y0), (2, "crossing", "unmarked", x0 + 51.1, y0)])
    objs = _objects([(101, "crossing", "traffic_signals", x0 + 50.2, y0 - 4.0, 30)])
    kinds = _grid_kinds(grid_edges, feats, objs)
    assert "object_removed" not in kinds


def test_absences_say_nothing_where_the_objects_explain_few_of_the_features_in_view(grid_edges):
    # twelve signs along row 0, all driven past: with objects for eleven, the twelfth is a
    # removal the data can judge; with objects for two, most of the map would be gone, so the
    # camera side failed: removals at confidence 0, and a warning says why. With none at all
    # the user says nothing was seen: every sign is a removal, as before
    x0, y0 = node_xy(0)
    feats = _features([(k, "traffic_sign", "FI:231", x0 + 10 + 25 * k, y0 - 4) for k in range(12)])
    layers = {"edges": grid_edges.to_crs(4326), "features": feats}

    objs = _objects([(100 + k, "traffic_sign", "FI:231", x0 + 10.3 + 25 * k, y0 - 3.6, 20) for k in range(12)])

    def removals(n_objects):
        result = diff(layers, objs.iloc[:n_objects], _coverage(grid_edges), DiffConfig(min_confidence=0.0))
        return result.diffs[result.diffs["kind"] == "object_removed"], result.warnings

    gone, warnings = removals(11)
    assert gone["feature_id"].tolist() == [11] and gone["confidence"].iloc[0] > 0.5
    assert not any("explain" in w for w in warnings)
    gone, warnings = removals(2)
    assert len(gone) == 10 and (gone["confidence"] == 0).all()
    assert any("explain 17% of the 12 map features" in w for w in warnings)
    gone, warnings = removals(0)
    assert len(gone) == 12 and (gone["confidence"] > 0.5).all()
    assert not any("explain" in w for w in warnings)
    assert any("no objects; every map feature the fleet had in view is reported removed" in w for w in warnings)


def test_trips_the_matcher_is_all_but_sure_of_count_whole(scene):
    # the coverage confirmed by the matched fixes is an expected number of trips (each as sure
    # as the matcher is): three trips at 0.9999 are 2.9997, and still three trips in view
    layers, objects, coverage = scene
    for trips, removed in ((2.9997, {1, 2, 3, 4}), (2.4, set())):
        result = diff(layers, objects.iloc[:0], coverage.assign(trips=trips, passes=trips),
                      DiffConfig(min_confidence=0.0))
        assert set(result.diffs.loc[result.diffs["kind"] == "object_removed", "feature_id"]) == removed
        assert len(result.unverified) == 5 - len(removed)


def test_only_filmed_passes_make_a_removal(scene):
    # the fleet drove past every feature, but the uploaded clips filmed none of row 0: the
    # absences are unverified, not removals; filmed by enough trips, they are removals again
    layers, objects, coverage = scene
    video = coverage.assign(trips=0, passes=0)
    result = diff(layers, objects.iloc[:0], coverage, DiffConfig(min_confidence=0.0), video_coverage=video)
    assert "object_removed" not in set(result.diffs["kind"])
    assert sorted(result.unverified["feature_id"]) == [1, 2, 3, 4, 5]
    result = diff(layers, objects.iloc[:0], coverage, DiffConfig(min_confidence=0.0), video_coverage=coverage)
    assert set(result.diffs.loc[result.diffs["kind"] == "object_removed", "feature_id"]) == {1, 2, 3, 4}


def test_coverage_from_another_map(scene):
    layers, objects, coverage = scene
    bad = coverage.assign(edge_id=coverage["edge_id"] + 100_000)
    with pytest.raises(InputError, match="cov.parquet: .* edge ids are not in the map \\(e.g. 100000"):
        diff(layers, objects, bad, sources={"coverage": "cov.parquet"})


def test_map_without_features_still_makes_road_diffs(scene):
    layers, objects, coverage = scene
    result = diff({"edges": layers["edges"]}, objects, coverage)
    assert any("no 'features' layer" in w for w in result.warnings)
    assert not result.diffs["kind"].str.startswith("object").any()


def test_cli_diff_and_errors(tmp_path, scene, runner):
    from mapdiff.io import write_gpkg
    from mapdiff_cli.main import cli

    layers, objects, coverage = scene
    write_gpkg(layers, tmp_path / "map.gpkg")
    objects.to_parquet(tmp_path / "objects.parquet")
    coverage.to_parquet(tmp_path / "coverage.parquet")
    args = ["diff", "--map", str(tmp_path / "map.gpkg"), "--objects", str(tmp_path / "objects.parquet"),
            "--coverage", str(tmp_path / "coverage.parquet")]
    r = runner.invoke(cli, [*args, "-o", str(tmp_path / "d.gpkg"), "-q"])
    assert r.exit_code == 0, r.output
    d = gpd.read_file(tmp_path / "d.gpkg", layer="diffs")
    u = gpd.read_file(tmp_path / "d.gpkg", layer="unverified")
    assert {"object_added", "object_removed", "object_moved", "value_changed"} <= set(d["kind"])
    assert u["feature_id"].tolist() == [5]
    # same inputs, same bytes
    r = runner.invoke(cli, [*args, "-o", str(tmp_path / "d2.gpkg"), "-q"])
    assert (tmp_path / "d.gpkg").read_bytes() == (tmp_path / "d2.gpkg").read_bytes()
    r = runner.invoke(cli, [*args, "--min-confidence", "2", "-o", str(tmp_path / "x.gpkg")])
    assert r.exit_code == 2 and "--min-confidence" in r.output
    objects.drop(columns="class").to_parquet(tmp_path / "noclass.parquet")
    r = runner.invoke(cli, ["diff", "--map", str(tmp_path / "map.gpkg"), "--objects", str(tmp_path / "noclass.parquet"),
                            "--coverage", str(tmp_path / "coverage.parquet"), "-o", str(tmp_path / "x.gpkg")])
    assert r.exit_code == 1 and "noclass.parquet" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.gpkg").exists()


def test_road_closed_from_the_routes_the_trips_would_have_taken(grid_edges):
    # trips from node 0 to node 20 along row 0 would take edges 0->10->20; the fleet went round
    # by row 1 instead (0->1->11->21->20), so the street 0-10 carried nobody: closed
    e = grid_edges.set_index(["u", "v"])["edge_id"]
    around = [e[(0, 1)], e[(1, 11)], e[(11, 21)], e[(21, 20)]]
    rows = []
    for k in range(6):
        for s, edge in enumerate(around):
            rows.append({"trip_id": f"t{k}", "seq": s, "chain": 0, "edge_id": edge, "against": False,
                         "t_enter": float(100 * k + s)})
    paths = pd.DataFrame(rows)
    cov = _coverage(grid_edges, skip={e[(0, 10)], e[(10, 0)]})
    result = diff({"edges": grid_edges.to_crs(4326)}, None, cov, DiffConfig(min_confidence=0.0), paths=paths)
    closed = result.diffs[result.diffs["kind"] == "road_closed"]
    assert len(closed) == 1
    assert {int(x) for x in closed["edge_ids"].iloc[0].split(",")} == {e[(0, 10)], e[(10, 0)]}
    assert closed["expected_passes"].iloc[0] == 6
    # when the street after it is empty too (it only led there), the two are one closed stretch
    cov2 = _coverage(grid_edges, skip={e[(0, 10)], e[(10, 0)], e[(10, 20)], e[(20, 10)]})
    result2 = diff({"edges": grid_edges.to_crs(4326)}, None, cov2, DiffConfig(min_confidence=0.0), paths=paths)
    closed2 = result2.diffs[result2.diffs["kind"] == "road_closed"]
    assert len(closed2) == 1
    assert {int(x) for x in closed2["edge_ids"].iloc[0].split(",")} == {e[(0, 10)], e[(10, 0)], e[(10, 20)],
                                                                          e[(20, 10)]}
    # without the paths the kind is skipped, with a warning
    result = diff({"edges": grid_edges.to_crs(4326)}, None, cov, DiffConfig(min_confidence=0.0))
    assert not (result.diffs["kind"] == "road_closed").any()
    assert any("road_closed" in w for w in result.warnings)


def _confirming_fixes(edges, trips=TRIPS, skip=()):
    """Per edge not in ``skip`` and per trip, one fix matched 1 m from the edge's middle."""
    e = edges[~edges["edge_id"].isin(skip)].to_crs(CRS)
    mid = e.geometry.interpolate(0.5, normalized=True)
    g = _points(np.c_[mid.x, mid.y])
    n, k = len(e), np.arange(trips)
    return pd.DataFrame({"trip_id": np.repeat([f"t{i}" for i in k], n), "t": np.repeat(k * 1000.0, n),
                         "lon": np.tile(g.x.to_numpy(), trips), "lat": np.tile(g.y.to_numpy(), trips),
                         "edge_id": np.tile(e["edge_id"].to_numpy(), trips), "offset_m": 50.0, "distance_m": 1.0,
                         "state": "matched", "against": False, "confidence": 1.0})


@pytest.mark.parametrize("unconfirmed_trips, tunnel, confirming, closed",
                         [(2, False, TRIPS, True), (3, False, TRIPS, False), (2, True, TRIPS, False),
                          (2, False, 4, False), (1, False, 32, True)])
def test_passes_no_fix_confirms_are_corner_cuts_unless_many_or_in_a_tunnel(grid_edges, unconfirmed_trips, tunnel,
                                                                            confirming, closed):
    # the fleet went round street 0-10 as in the test above, but the matcher routed a few
    # trips through it (cutting the corner between fixes): none of their fixes lies on it,
    # while the fixes confirm every other street. A couple of such trips leave it closed;
    # min_road_trips of them are a road the fixes do not show (a bridge); in a tunnel no fix
    # can confirm anything; nor can sparse fixes, that confirm only 4 of the 40 trips on the
    # other streets (two passes would go unconfirmed 81 % of the time). Where fixes confirm 32
    # of 40 trips, one unconfirmed pass is more likely a corner cut than a car (a real pass
    # would have gone unconfirmed 20 % of the time): closed
    e = grid_edges.set_index(["u", "v"])["edge_id"]
    street = [e[(0, 10)], e[(10, 0)]]
    around = [e[(0, 1)], e[(1, 11)], e[(11, 21)], e[(21, 20)]]
    paths = pd.DataFrame([{"trip_id": f"t{k}", "seq": s, "chain": 0, "edge_id": edge, "against": False,
                           "t_enter": float(100 * k + s), "t_exit": float(100 * k + s + 1)}
                          for k in range(6) for s, edge in enumerate(around)])
    cov = _coverage(grid_edges)
    cov.loc[cov["edge_id"] == street[0], ["passes", "trips"]] = unconfirmed_trips
    cov.loc[cov["edge_id"] == street[1], ["passes", "trips"]] = 0
    edges = grid_edges.assign(tunnel=np.where(grid_edges["edge_id"].isin(street) & tunnel, "yes", None))
    result = diff({"edges": edges.to_crs(4326)}, None, cov, DiffConfig(min_confidence=0.0), paths=paths,
                  matched=_confirming_fixes(grid_edges, trips=confirming, skip=street))
    found = result.diffs[result.diffs["kind"] == "road_closed"]
    assert len(found) == int(closed)
    if closed:
        assert {int(x) for x in found["edge_ids"].iloc[0].split(",")} == set(street)


@pytest.mark.parametrize("far_fixes, closed", [(5, False), (2, True)])
def test_a_detour_by_a_road_the_map_lacks_closes_nothing(grid_edges, far_fixes, closed):
    # the trips from node 0 to node 20 went round street 0-10 as in the tests above, but not
    # on the map's roads: while the matched path ran 1 -> 11, their fixes lay 60 m off it,
    # moving at 10 m/s (a road the map lacks, a shortcut the drivers took). The map's fastest
    # route between the ends of such a stretch says nothing of what they would have driven:
    # no closure. Two far fixes are outliers, not a road: the stretch stands, street 0-10 is
    # expected on its trips, and closed
    e = grid_edges.set_index(["u", "v"])["edge_id"]
    street = [e[(0, 10)], e[(10, 0)]]
    around = [e[(0, 1)], e[(1, 11)], e[(11, 21)], e[(21, 20)]]
    t0 = 1000.0 * np.arange(TRIPS)
    paths = pd.DataFrame([{"trip_id": f"t{k}", "seq": s, "chain": 0, "edge_id": edge, "against": False,
                           "t_enter": t0[k] + 10.0 * s, "t_exit": t0[k] + 10.0 * (s + 1)}
                          for k in range(6) for s, edge in enumerate(around)])
    fixes = _confirming_fixes(grid_edges, skip=street)
    x0, y0 = node_xy(1)
    k, j = np.repeat(np.arange(6), far_fixes), np.tile(np.arange(far_fixes), 6)
    g = _points(np.c_[x0 - 60.0 + 0 * j, y0 + 10.0 * j])
    run = pd.DataFrame({"trip_id": [f"t{i}" for i in k], "t": t0[k] + 11.0 + j, "lon": g.x.to_numpy(),
                        "lat": g.y.to_numpy(), "edge_id": e[(1, 11)], "offset_m": 10.0 * j, "distance_m": 60.0,
                        "state": "matched", "against": False, "confidence": 1.0})
    # and a fix back on the map after the run, so that it is not the trip's end (a car park)
    after = fixes.groupby("trip_id").head(1).assign(t=lambda f: f["t"] + 30.0)
    matched = pd.concat([fixes, run, after], ignore_index=True)
    result = diff({"edges": grid_edges.to_crs(4326)}, None, _coverage(grid_edges, skip=street),
                  DiffConfig(min_confidence=0.0), paths=paths, matched=matched)
    found = result.diffs[result.diffs["kind"] == "road_closed"]
    assert len(found) == int(closed)
    if closed:
        assert {int(x) for x in found["edge_ids"].iloc[0].split(",")} == set(street)


def _line_network(points, pairs, one_way=()):
    """Residential streets between named points (metres, grid CRS): edges in WGS84; two-way but
    for the pairs in ``one_way`` (one edge, from the first point to the second)."""
    rows = []
    for a, b in pairs:
        for u, v in ((a, b),) if (a, b) in one_way else ((a, b), (b, a)):
            rows.append({"edge_id": len(rows), "u": u, "v": v, "key": 0, "osmid": 100 + len(rows),
                         "highway": "residential", "oneway": False,
                         "geometry": shapely.LineString([points[u], points[v]])})
    edges = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    return edges.assign(length=edges.length).to_crs(4326)


def test_a_closure_explains_the_empty_roads_further_along_its_routes():
    # a main street A-B-C-D and a longer bypass A-X-D. Trips from A to D would take the main
    # street; they all took the bypass. B-C carried other trips. A-B and C-D are both empty and
    # do not touch, but one closure explains both: once the trips go round it, nothing is
    # expected on the other. One road_closed, not two
    pts = {1: (0.0, 0.0), 2: (100.0, 0.0), 3: (200.0, 0.0), 4: (300.0, 0.0), 5: (150.0, 150.0)}
    edges = _line_network(pts, [(1, 2), (2, 3), (3, 4), (1, 5), (5, 4)])
    e = edges.set_index(["u", "v"])["edge_id"]
    rows = [{"trip_id": f"t{k}", "seq": s, "chain": 0, "edge_id": edge, "against": False}
            for k in range(6) for s, edge in enumerate([e[(1, 5)], e[(5, 4)]])]
    rows += [{"trip_id": f"b{k}", "seq": 0, "chain": 0, "edge_id": e[(2, 3)], "against": False} for k in range(6)]
    paths = pd.DataFrame(rows)
    empty = [e[(1, 2)], e[(2, 1)], e[(3, 4)], e[(4, 3)]]
    cov = _coverage(edges.to_crs(CRS), trips=6, skip=empty)
    result = diff({"edges": edges}, None, cov, DiffConfig(min_confidence=0.0), paths=paths)
    closed = result.diffs[result.diffs["kind"] == "road_closed"]
    assert len(closed) == 1
    assert {int(x) for x in closed["edge_ids"].iloc[0].split(",")} in ({e[(1, 2)], e[(2, 1)]}, {e[(3, 4)], e[(4, 3)]})
    assert closed["expected_passes"].iloc[0] == 6


def test_the_empty_roads_a_closure_explains_beside_it_are_its_stretch():
    # the main street A-B-C-D, nobody on any of its three roads, and every trip from A to D on
    # the bypass A-X-D. Any one of the three closed explains the others, and which one is shut
    # the data cannot tell: one closed stretch of all three, not the one taken first
    pts = {1: (0.0, 0.0), 2: (100.0, 0.0), 3: (200.0, 0.0), 4: (300.0, 0.0), 5: (150.0, 150.0)}
    edges = _line_network(pts, [(1, 2), (2, 3), (3, 4), (1, 5), (5, 4)])
    e = edges.set_index(["u", "v"])["edge_id"]
    paths = pd.DataFrame([{"trip_id": f"t{k}", "seq": s, "chain": 0, "edge_id": edge, "against": False}
                          for k in range(6) for s, edge in enumerate([e[(1, 5)], e[(5, 4)]])])
    main = [e[(a, b)] for a, b in ((1, 2), (2, 1), (2, 3), (3, 2), (3, 4), (4, 3))]
    cov = _coverage(edges.to_crs(CRS), trips=6, skip=main)
    result = diff({"edges": edges}, None, cov, DiffConfig(min_confidence=0.0), paths=paths)
    closed = result.diffs[result.diffs["kind"] == "road_closed"]
    assert len(closed) == 1
    assert {int(x) for x in closed["edge_ids"].iloc[0].split(",")} == set(main)


def test_a_way_closed_beside_another_between_the_same_nodes_is_judged_alone():
    # two ways join nodes A and B: a straight 100 m street and a 250 m loop (OSM joins some
    # pairs of nodes by two ways). Trips from W to E would take the street; all six took the
    # loop. Taken as one road by its two nodes, the loop's traffic made the street driven
    pts = {1: (0.0, 0.0), 2: (100.0, 0.0), 3: (-100.0, 0.0), 4: (200.0, 0.0)}
    lines = {(3, 1, 0): [pts[3], pts[1]], (1, 2, 0): [pts[1], pts[2]], (2, 4, 0): [pts[2], pts[4]],
             (1, 2, 1): [pts[1], (0.0, 75.0), (100.0, 75.0), pts[2]]}
    rows = []
    for (a, b, key), line in lines.items():
        for u, v, geom in ((a, b, line), (b, a, line[::-1])):
            rows.append({"edge_id": len(rows), "u": u, "v": v, "key": key, "osmid": 100 + len(rows) // 2,
                         "highway": "residential", "oneway": False, "geometry": shapely.LineString(geom)})
    edges = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    edges = edges.assign(length=edges.length)
    e = edges.set_index(["u", "v", "key"])["edge_id"]
    paths = pd.DataFrame([{"trip_id": f"t{k}", "seq": s, "chain": 0, "edge_id": edge, "against": False}
                          for k in range(6) for s, edge in enumerate([e[(3, 1, 0)], e[(1, 2, 1)], e[(2, 4, 0)]])])
    street = [e[(1, 2, 0)], e[(2, 1, 0)]]
    cov = _coverage(edges, trips=6, skip=street)
    result = diff({"edges": edges.to_crs(4326)}, None, cov, DiffConfig(min_confidence=0.0), paths=paths)
    closed = result.diffs[result.diffs["kind"] == "road_closed"]
    assert len(closed) == 1
    assert {int(x) for x in closed["edge_ids"].iloc[0].split(",")} == set(street)


def test_street_ids_pair_a_ways_two_directions_only():
    from mapdiff.network import street_ids

    # 0-1 both ways (one way's two directions), a second way 1-0 of another length, a one-way 2-3
    ids = street_ids(np.array([0, 1, 1, 2]), np.array([1, 0, 0, 3]), np.array([42.8, 42.8 + 1e-9, 255.6, 10.0]))
    assert ids.tolist() == [0, 0, 1, 2]


def test_a_one_way_the_fleet_drives_backwards_is_routed_its_way():
    # a main street A-B-C-D and a longer bypass A-X-D; B-C is mapped one-way B -> C, but the
    # fleet drives it C -> B (six trips E -> C -> B -> F: a oneway_reversed). The trips from A
    # to D all took the bypass, because B -> C cannot be driven. On the map as drawn their
    # fastest route is the main street, and A-B or C-D looks closed; routed the way the fleet
    # showed the one-way, the bypass is their fastest route, and nothing is closed
    pts = {1: (0.0, 0.0), 2: (100.0, 0.0), 3: (200.0, 0.0), 4: (300.0, 0.0), 5: (150.0, 150.0),
           6: (200.0, -100.0), 7: (100.0, -100.0)}
    edges = _line_network(pts, [(1, 2), (2, 3), (3, 4), (1, 5), (5, 4), (6, 3), (2, 7)], one_way={(2, 3)})
    e = edges.set_index(["u", "v"])["edge_id"]
    rows = [{"trip_id": f"t{k}", "seq": s, "chain": 0, "edge_id": edge, "against": False}
            for k in range(6) for s, edge in enumerate([e[(1, 5)], e[(5, 4)]])]
    rows += [{"trip_id": f"r{k}", "seq": s, "chain": 0, "edge_id": edge, "against": s == 1}
             for k in range(6) for s, edge in enumerate([e[(6, 3)], e[(2, 3)], e[(2, 7)]])]
    paths = pd.DataFrame(rows)
    empty = [e[(1, 2)], e[(2, 1)], e[(3, 4)], e[(4, 3)]]
    cov = _coverage(edges.to_crs(CRS), trips=6, skip=empty)
    cov.loc[cov["edge_id"] == e[(2, 3)], ["passes", "trips", "against", "trips_against"]] = [0, 0, 6, 6]
    result = diff({"edges": edges}, None, cov, DiffConfig(min_confidence=0.0), paths=paths)
    assert result.diffs.loc[result.diffs["kind"] == "oneway_reversed", "edge_id"].tolist() == [e[(2, 3)]]
    assert not (result.diffs["kind"] == "road_closed").any()


@pytest.mark.parametrize("with_paths", [True, False])
def test_a_pass_round_a_triangle_is_the_straight_one_ways(with_paths):
    # a slip road's triangle: one-way links B -> C (17 m) and X -> C (25 m), and the two-way
    # B-X. The fleet drives C -> X, against X -> C, which the map has backwards: four trips
    # straight, six that the matcher sent round by B (against B -> C, then B -> X). With the
    # trips' routes, those six are X -> C's, and B -> C is no reversal; from the coverage alone
    # the two cannot be told apart
    pts = {1: (-100.0, 20.0), 2: (0.0, 0.0), 3: (8.0, 15.0), 4: (25.0, 5.0), 5: (100.0, 5.0)}
    edges = _line_network(pts, [(1, 3), (2, 3), (4, 3), (2, 4), (4, 5)], one_way={(2, 3), (4, 3)})
    e = edges.set_index(["u", "v"])["edge_id"]
    rows = [{"trip_id": f"d{k}", "seq": s, "chain": 0, "edge_id": edge, "against": against}
            for k in range(6) for s, (edge, against) in enumerate([(e[(1, 3)], False), (e[(2, 3)], True),
                                                                    (e[(2, 4)], False), (e[(4, 5)], False)])]
    rows += [{"trip_id": f"s{k}", "seq": s, "chain": 0, "edge_id": edge, "against": against}
             for k in range(4) for s, (edge, against) in enumerate([(e[(1, 3)], False), (e[(4, 3)], True),
                                                                     (e[(4, 5)], False)])]
    paths = pd.DataFrame(rows)
    cov = _coverage(edges.to_crs(CRS), trips=10)
    for edge, n in ((e[(2, 3)], 6), (e[(4, 3)], 4)):
        cov.loc[cov["edge_id"] == edge, ["passes", "trips", "against", "trips_against"]] = [0, 0, n, n]
    result = diff({"edges": edges}, None, cov, DiffConfig(min_confidence=0.5), paths=paths if with_paths else None)
    reversed_ = sorted(result.diffs.loc[result.diffs["kind"] == "oneway_reversed", "edge_id"])
    assert reversed_ == ([e[(4, 3)]] if with_paths else sorted([e[(2, 3)], e[(4, 3)]]))


def test_route_windows_against_a_slow_reference():
    # a snake over the 10 x 10 grid (up column 0, across row 9, down column 9): its windows are
    # a brute-force walk over the same rule: a boundary where each half window of free-flow
    # time ends, a window from each boundary to the one two on, and the whole path; a pass
    # against a one-way or a jump starts a new stretch, and no window spans it
    from fixtures.grid import grid_edges
    from mapdiff.diff import ROUTE_WINDOW_S, _passes, _route_windows
    from mapdiff.network import Network, free_flow_speed_mps

    edges = grid_edges(n=10).to_crs(4326)
    net = Network.from_edges(edges, source="grid")
    e = edges.set_index(["u", "v"])["edge_id"]
    nodes = list(range(10)) + [10 * i + 9 for i in range(1, 10)] + [90 + j for j in range(8, -1, -1)]
    path = [e[(a, b)] for a, b in zip(nodes[:-1], nodes[1:])]
    paths = pd.DataFrame({"trip_id": "t", "chain": 0, "edge_id": path, "against": False})
    row = pd.Series(np.arange(net.n_edges), index=net.edges["edge_id"].to_numpy()).loc[path].to_numpy()
    seconds = net.edge_len[row] / free_flow_speed_mps(net.edges)[row]
    half = np.floor(np.cumsum(seconds) / (ROUTE_WINDOW_S / 2))
    bounds = [nodes[0]] + [nodes[k + 1] for k in range(len(path)) if k == len(path) - 1 or half[k + 1] != half[k]]
    want = [(bounds[i], bounds[i + 2]) for i in range(len(bounds) - 2)] + [(bounds[0], bounds[-1])]
    osm_id = dict(zip(net.edge_u[: net.n_edges].tolist(), net.edges["u"].tolist()))
    start, end, trip = _route_windows(net, _passes(net, paths, "paths"))
    assert len(bounds) >= 4
    assert [(osm_id[a], osm_id[b]) for a, b in zip(start, end)] == want
    assert (trip == 0).all()
    cut = paths.assign(against=np.arange(len(path)) == 12).drop(index=5)
    start, end, _ = _route_windows(net, _passes(net, cut, "paths"))
    spans = [(nodes.index(osm_id[a]), nodes.index(osm_id[b])) for a, b in zip(start, end)]
    assert spans and all(b <= 5 or a >= 6 for a, b in spans)
    assert all(b <= 12 or a >= 13 for a, b in spans)


@settings(max_examples=300, deadline=None)
@given(ax=st.floats(-50, 50), ay=st.floats(-50, 50), bx=st.floats(-50, 50), by=st.floats(-50, 50),
       px=st.floats(-80, 80), py=st.floats(-80, 80), half_fov=st.sampled_from([30.0, 45.0, 60.0]),
       sign=st.sampled_from([1.0, -1.0]))
def test_visibility_from_a_segment_matches_dense_sampling(ax, ay, bx, by, px, py, half_fov, sign):
    from mapdiff._kernels.diff import _seen_from_segment

    length = np.hypot(bx - ax, by - ay)
    if length < 1.0:
        return
    cot = 1.0 / np.tan(np.radians(half_fov))
    got = _seen_from_segment(ax, ay, bx, by, px, py, 40.0, cot, sign)
    # the slow reference: every 1 cm along the segment, is the point in range and in view?
    t = np.linspace(0.0, 1.0, int(length * 100) + 2)
    qx, qy = ax + t * (bx - ax), ay + t * (by - ay)
    dx, dy = px - qx, py - qy
    dist = np.hypot(dx, dy)
    ux, uy = sign * (bx - ax) / length, sign * (by - ay) / length
    inside = (dist <= 40.0) & (dist > 1e-3) & ((dx * ux + dy * uy) >= np.cos(np.radians(half_fov)) * dist)
    margin = (np.abs(dist - 40.0) < 0.05) | (np.abs(np.degrees(np.arccos(np.clip(
        (dx * ux + dy * uy) / np.maximum(dist, 1e-9), -1, 1))) - half_fov) < 0.2)
    if inside.any() and not (inside & ~margin).any():
        return  # only grazing the edge of range or view: either answer is right
    if not inside.any() and margin.any():
        return
    assert got == inside.any()


def test_a_new_crossing_on_both_kerbs_is_one_addition(grid_edges):
    # no crossing on the map; the fleet saw a crossing sign on each kerb of row 0, 60 m along
    x0, y0 = node_xy(0)
    feats = _features([(1, "traffic_sign", "FI:231", x0 + 30, y0 - 4)])
    objs = _objects([(1, "traffic_sign", "FI:231", x0 + 30, y0 - 4, 20),
                     (5, "crossing", "uncontrolled", x0 + 60, y0 - 4, 25),
                     (6, "crossing", "uncontrolled", x0 + 60.5, y0 + 4, 22)])
    result = diff({"edges": grid_edges.to_crs(4326), "features": feats}, objs, _coverage(grid_edges),
                  DiffConfig(min_confidence=0.0))
    added = result.diffs[result.diffs["kind"] == "object_added"]
    assert added["object_id"].tolist() == [5]  # one new map feature, spoken for by the better seen sign


@pytest.mark.parametrize("cls, apart_m, removals", [("crossing", 1.5, 0), ("traffic_sign", 0.0, 0),
                                                    ("traffic_sign", 3.0, 2)])
def test_a_sign_osm_maps_twice_is_one_sign_on_the_street(grid_edges, cls, apart_m, removals):
    # OSM maps a crossing on each way its footway crosses (three nodes 1.5 m apart across row 0:
    # two carriageways and a tram track), and the street has one sign on each kerb for them all;
    # a sign mapped once per direction on one node is one post. Neither is a removal. Signs
    # mapped 3 m apart along the kerb are three signs, and the two nothing explains are missing
    x0, y0 = node_xy(0)
    at = [(x0 + 60, y0 + apart_m * (k - 2)) if cls == "crossing" else (x0 + 60 + apart_m * (k - 2), y0 - 4)
          for k in (1, 2, 3)]
    feats = _features([(k, cls, "uncontrolled", *at[k - 1]) for k in (1, 2, 3)])
    objs = _objects([(5, cls, "uncontrolled", x0 + 60, y0 - 4, 25), (6, cls, "uncontrolled", x0 + 60.5, y0 + 4, 22)]
                    if cls == "crossing" else [(5, cls, "uncontrolled", x0 + 60, y0 - 4, 25)])
    result = diff({"edges": grid_edges.to_crs(4326), "features": feats}, objs, _coverage(grid_edges),
                  DiffConfig(min_confidence=0.0))
    assert (result.diffs["kind"] == "object_removed").sum() == removals
    assert not result.diffs["kind"].isin(["object_added", "object_moved"]).any()


def test_a_crossing_node_mapped_twice_does_not_move_to_a_new_crossing(grid_edges):
    # three nodes of one crossing (OSM's, one on each way the footway crosses) and its two kerb
    # signs; 30 m along, a new crossing's sign: an addition, not the third node moved there
    x0, y0 = node_xy(0)
    feats = _features([(k, "crossing", "uncontrolled", x0 + 40, y0 + 1.5 * (k - 2)) for k in (1, 2, 3)])
    objs = _objects([(5, "crossing", "uncontrolled", x0 + 40, y0 - 4, 25),
                     (6, "crossing", "uncontrolled", x0 + 40.5, y0 + 4, 22),
                     (7, "crossing", "uncontrolled", x0 + 70, y0 - 4, 24)])
    result = diff({"edges": grid_edges.to_crs(4326), "features": feats}, objs, _coverage(grid_edges),
                  DiffConfig(min_confidence=0.0))
    assert result.diffs["kind"].tolist() == ["object_added"] and result.diffs["object_id"].tolist() == [7]


@pytest.mark.parametrize("cls", ["give_way", "crossing", "traffic_signals"])
def test_a_sign_on_a_road_is_missed_only_when_its_facing_direction_had_it_in_view(grid_edges, cls):
    # a give-way sign mapped on the centre line of the street 0-10, and nothing seen there: the
    # map does not say which way it faces, so one direction's trips cannot tell it is gone. A
    # crossing has a sign on each kerb, signals a head for each approach: one direction can.
    # The roads beside and across have it in view, edge-on or from behind: they cannot
    x0, y0 = node_xy(0)
    feats = _features([(1, cls, None, x0 + 50, y0)])
    e = grid_edges.set_index(["u", "v"])["edge_id"]
    layers = {"edges": grid_edges.to_crs(4326), "features": feats}
    one_way_driven = _coverage(grid_edges, skip={e[(10, 0)]})
    result = diff(layers, None, one_way_driven, DiffConfig(min_confidence=0.0))
    removed = result.diffs.loc[result.diffs["kind"] == "object_removed", "feature_id"].tolist()
    if cls == "give_way":
        assert result.unverified["feature_id"].tolist() == [1] and removed == []
    else:
        assert removed == [1] and result.unverified.empty
    result = diff(layers, None, _coverage(grid_edges), DiffConfig(min_confidence=0.0))
    assert result.diffs.loc[result.diffs["kind"] == "object_removed", "feature_id"].tolist() == [1]
    not_its_road = _coverage(grid_edges, skip={e[(10, 0)], e[(0, 10)]})
    result = diff(layers, None, not_its_road, DiffConfig(min_confidence=0.0))
    assert result.unverified["feature_id"].tolist() == [1]


@pytest.mark.parametrize("up_m, removed", [(12.0, False), (0.0, True)])
def test_signals_mapped_up_an_approach_are_read_by_its_traffic(grid_edges, up_m, removed):
    # junction 12's signals, nothing of them seen. Mapped up the approach from the west (OSM's
    # node on the way, 12 m before the junction), they are that approach's heads: with nobody
    # on that street they were never in view, whatever drove the junction's other streets.
    # Mapped on the junction's node, every approach reads them
    x, y = node_xy(12)
    feats = _features([(1, "traffic_signals", None, x - up_m, y)])
    e = grid_edges.set_index(["u", "v"])["edge_id"]
    layers = {"edges": grid_edges.to_crs(4326), "features": feats}
    quiet_west = _coverage(grid_edges, skip={e[(2, 12)], e[(12, 2)]})
    result = diff(layers, None, quiet_west, DiffConfig(min_confidence=0.0))
    assert (result.diffs["kind"] == "object_removed").sum() == int(removed)
    assert result.unverified["feature_id"].tolist() == ([] if removed else [1])
    result = diff(layers, None, _coverage(grid_edges), DiffConfig(min_confidence=0.0))
    assert result.diffs.loc[result.diffs["kind"] == "object_removed", "feature_id"].tolist() == [1]


def test_a_pole_between_two_nodes_of_one_crossroads_explains_the_signals_of_both():
    # a crossroads of a dual carriageway, OSM's two nodes A and B 30 m apart, each with its
    # signals mapped on it; the fleet saw one pole, 15 m from A and 17 m from B: A's thing. B's
    # signals are no removal, the pole stands by its node too. Without the pole both are
    x0, y0 = node_xy(0)
    pts = {1: (x0, y0), 2: (x0 + 30.0, y0), 3: (x0, y0 + 100.0), 4: (x0, y0 - 100.0), 5: (x0 + 30.0, y0 + 100.0),
           6: (x0 + 30.0, y0 - 100.0), 7: (x0 - 100.0, y0), 8: (x0 + 130.0, y0)}
    edges = _line_network(pts, [(1, 2), (3, 1), (1, 4), (5, 2), (2, 6), (7, 1), (2, 8)])
    feats = _features([(1, "traffic_signals", None, x0, y0), (2, "traffic_signals", None, x0 + 30.0, y0)])
    layers = {"edges": edges, "features": feats}
    cov = _coverage(edges.to_crs(CRS), trips=20)
    pole = _objects([(7, "traffic_signals", None, x0 + 14.0, y0 + 5.0, 20)])
    result = diff(layers, pole, cov, DiffConfig(min_confidence=0.0))
    assert not (result.diffs["kind"] == "object_removed").any()
    far = _objects([(7, "traffic_signals", None, x0 + 14.0, y0 + 60.0, 20)])
    result = diff(layers, far, cov, DiffConfig(min_confidence=0.0))
    assert sorted(result.diffs.loc[result.diffs["kind"] == "object_removed", "feature_id"]) == [1, 2]


def test_the_other_kerbs_pole_of_a_slip_roads_crossing_is_no_move():
    # a slip road between the two carriageways of a main road, 6 m from each: its crossing's
    # kerb poles stand nearer the carriageways' centre lines than its own. A second crossing
    # mapped 7 m along the slip road, with nothing there, is removed, not moved to the pole
    x0, y0 = node_xy(0)
    rows = []
    for k, dy in enumerate((0.0, 6.0, 12.0)):
        a, b = 2 * k + 1, 2 * k + 2
        for u, v, xs in ((a, b, (x0, x0 + 200)), (b, a, (x0 + 200, x0))):
            rows.append((u, v, shapely.LineString([(xs[0], y0 + dy), (xs[1], y0 + dy)])))
    edges = gpd.GeoDataFrame({"edge_id": np.arange(len(rows), dtype=np.int64), "u": [r[0] for r in rows],
                              "v": [r[1] for r in rows], "key": 0, "osmid": np.arange(len(rows)) + 1000,
                              "highway": "primary", "oneway": False, "length": 200.0},
                             geometry=[r[2] for r in rows], crs=CRS).to_crs(4326)
    feats = _features([(1, "crossing", "uncontrolled", x0 + 100, y0 + 6),
                       (2, "crossing", "uncontrolled", x0 + 107, y0 + 6)])
    objs = _objects([(10, "crossing", "uncontrolled", x0 + 100, y0 + 2.1, 30),
                     (11, "crossing", "uncontrolled", x0 + 100.3, y0 + 9.9, 28)])
    result = diff({"edges": edges, "features": feats}, objs, _coverage(edges), DiffConfig(min_confidence=0.0))
    kinds = _by_kind(result)
    assert set(kinds) == {"object_removed"}
    assert kinds["object_removed"]["feature_id"].tolist() == [2]


@pytest.mark.parametrize("layout", ["kerbs", "no crossing 1", "centre line"])
def test_the_other_kerbs_pole_of_a_paired_crossing_is_no_move(grid_edges, layout):
    # crossing 1 on row 0, 50 m along, with its signs on both kerbs; crossing 2 mapped 30 m further
    # on, with nothing there. Crossing 1's north pole is its own, not crossing 2 moved 30 m back:
    # crossing 2 is removed. Without crossing 1 on the map, the same poles make crossing 2's move.
    # Two things level on the centre line (OSM's way: two crossings' nodes) are two features:
    # the one crossing 1 leaves is crossing 2, moved
    x0, y0 = node_xy(0)
    rows = [] if layout == "no crossing 1" else [(1, "crossing", "uncontrolled", x0 + 50, y0)]
    feats = _features(rows + [(2, "crossing", "uncontrolled", x0 + 80, y0)])
    north = y0 + (0.5 if layout == "centre line" else 4.0)
    south = y0 - (0.0 if layout == "centre line" else 4.0)
    objs = _objects([(10, "crossing", "uncontrolled", x0 + 50.3, south, 30),
                     (11, "crossing", "uncontrolled", x0 + 50.0, north, 28)])
    kinds = _grid_kinds(grid_edges, feats, objs)
    if layout == "kerbs":
        assert set(kinds) == {"object_removed"}
        assert kinds["object_removed"]["feature_id"].tolist() == [2]
    else:
        assert set(kinds) == {"object_moved"}
        assert kinds["object_moved"]["feature_id"].tolist() == [2]


def test_the_other_kerbs_pole_of_a_moved_crossing_is_no_move(grid_edges):
    # crossing 1 mapped 40 m along row 0 stands 10 m further on, a sign on each kerb (the north
    # one seen less); crossing 2, mapped 35 m beyond the poles, is gone. The poles are crossing
    # 1, moved; the weaker one is not crossing 2 moved 35 m back: crossing 2 is removed
    x0, y0 = node_xy(0)
    feats = _features([(1, "crossing", "uncontrolled", x0 + 40, y0), (2, "crossing", "uncontrolled", x0 + 85, y0)])
    objs = _objects([(10, "crossing", "uncontrolled", x0 + 50.3, y0 - 4.0, 30),
                     (11, "crossing", "uncontrolled", x0 + 50.0, y0 + 4.0, 8)])
    kinds = _grid_kinds(grid_edges, feats, objs)
    assert set(kinds) == {"object_moved", "object_removed"}
    assert kinds["object_moved"][["feature_id", "object_id"]].values.tolist() == [[1, 10]]
    assert kinds["object_removed"]["feature_id"].tolist() == [2]


@pytest.mark.parametrize("off_m", [30.0, 12.0])
def test_a_crossing_on_a_road_the_map_lacks_keeps_its_poles_a_kerb_away(grid_edges, off_m):
    # crossing 1 is mapped off_m north of row 0, on a road the map lacks, its signs on that
    # road's kerbs 4 m either side; crossing 2, mapped on row 0 30 m east, is gone. Crossing 1's
    # poles are its own (a kerb away, as on a mapped road), not crossing 2 moved. (12 m off, the
    # judgment puts crossing 1 on row 0's centre line, as a sign beside a road; its kerbs are
    # still measured from its own node: Liechtenstein)
    x0, y0 = node_xy(0)
    feats = _features([(1, "crossing", "uncontrolled", x0 + 50, y0 + off_m),
                       (2, "crossing", "uncontrolled", x0 + 80, y0)])
    objs = _objects([(10, "crossing", "uncontrolled", x0 + 46.0, y0 + off_m + 0.2, 30),
                     (11, "crossing", "uncontrolled", x0 + 54.0, y0 + off_m, 20)])
    kinds = _grid_kinds(grid_edges, feats, objs)
    assert set(kinds) == {"object_removed"}
    assert kinds["object_removed"]["feature_id"].tolist() == [2]


@pytest.mark.parametrize(("away_m", "moved"), [(6.0, False), (12.0, True)])
def test_a_pole_off_the_mapped_roads_may_stand_a_kerb_away_and_err_by_its_sigma_besides(grid_edges, away_m, moved):
    # a crossing mapped 30 m north of row 0, on a road the map lacks; one estimate of it, sigma
    # 1 m, away_m east of its node. Its pole may stand a kerb (5 m) away, and the estimate err
    # by three of its sigmas (3 m) on top of that: 6 m is the same crossing (the larger of the
    # kerb and the pair's tolerance, 4.2 m, made it a move), 12 m a move
    x0, y0 = node_xy(0)
    feats = _features([(1, "crossing", "uncontrolled", x0 + 50, y0 + 30.0)])
    objs = _objects([(10, "crossing", "uncontrolled", x0 + 50 + away_m, y0 + 30.0, 30)]).assign(sigma_m=1.0)
    kinds = _grid_kinds(grid_edges, feats, objs)
    assert ("object_moved" in kinds) == moved
    assert "object_removed" not in kinds and "object_added" not in kinds


@pytest.mark.parametrize("layout", ["both kerbs", "own pole"])
def test_a_crossing_with_a_new_value_is_no_neighbours_move(grid_edges, layout):
    # crossing 1 (mapped uncontrolled) has signals now; crossing 2 with signals, mapped further
    # on, is gone: a new value and a removal.
    # - both kerbs: a sign on each kerb of crossing 1, seen as often, crossing 2 30 m on. Either
    #   pole is crossing 1's new value, the other no evidence that crossing 2 moved 30 m back;
    # - own pole: one pole where the map has crossing 1, crossing 2 12 m on. Not crossing 2
    #   moved 12 m onto crossing 1's pole and crossing 1 removed (the price of a new value)
    x0, y0 = node_xy(0)
    if layout == "both kerbs":
        feats = _features([(1, "crossing", "uncontrolled", x0 + 50, y0),
                           (2, "crossing", "traffic_signals", x0 + 80, y0)])
        objs = _objects([(10, "crossing", "traffic_signals", x0 + 50.0, y0 - 4.0, 30),
                         (11, "crossing", "traffic_signals", x0 + 50.0, y0 + 4.0, 30)])
    else:
        feats = _features([(1, "crossing", "uncontrolled", x0 + 50, y0),
                           (2, "crossing", "traffic_signals", x0 + 62, y0)])
        objs = _objects([(10, "crossing", "traffic_signals", x0 + 50.2, y0 - 4.0, 30)])
    kinds = _grid_kinds(grid_edges, feats, objs)
    assert set(kinds) == {"value_changed", "object_removed"}
    assert kinds["value_changed"]["feature_id"].tolist() == [1]
    assert kinds["object_removed"]["feature_id"].tolist() == [2]


def test_an_addition_is_judged_by_the_share_of_passing_trips_that_saw_it(grid_edges):
    # row 0 carries 200 trips and every other road 10. Row 0's 40 mapped signs are seen by 180
    # trips each, and 30 strays (values the map lacks) by 8 each: 4 % of the trips that passed
    # them. Row 3's 40 mapped signs and its 5 new ones are seen by 9 of its 10 trips. A count of
    # trips ranks row 3's new signs with row 0's strays; the share of the passing trips tells
    # them apart: the new signs are sure, the strays doubtful
    x0, y0 = node_xy(0)
    row3 = y0 + 3 * SPACING_M
    feats = [(k, "traffic_sign", f"FI:{k}", x0 + 10 + 7 * k, y0 - 4) for k in range(40)]
    feats += [(100 + k, "traffic_sign", f"FI:{100 + k}", x0 + 10 + 7 * k, row3 - 4) for k in range(40)]
    objs = [(1000 + f[0], *f[1:], 180 if f[0] < 100 else 9) for f in feats]
    objs += [(2000 + k, "traffic_sign", f"FI:{200 + k}", x0 + 12 + 9 * k, y0 + 4, 8) for k in range(30)]
    objs += [(3000 + k, "traffic_sign", f"FI:{300 + k}", x0 + 40 + 50 * k, row3 + 4, 9) for k in range(5)]
    cov = _coverage(grid_edges, trips=10)
    busy = (grid_edges["u"].to_numpy() % 10 == 0) & (grid_edges["v"].to_numpy() % 10 == 0)
    cov.loc[busy, ["passes", "trips"]] = 200
    result = diff({"edges": grid_edges.to_crs(4326), "features": _features(feats)}, _objects(objs), cov,
                  DiffConfig(min_confidence=0.0))
    added = result.diffs[result.diffs["kind"] == "object_added"].set_index("object_id")["confidence"]
    assert set(range(3000, 3005)) <= set(added.index)
    assert added[list(range(3000, 3005))].min() > 0.9
    assert added.reindex(range(2000, 2030)).fillna(0.0).max() < 0.5


def test_a_move_is_as_sure_as_the_pairs_errors_leave_it():
    # 220 pairs: 200 at one sigma, two at 3.1 and 18 at 8. A 2-D Gaussian puts 220 x
    # exp(-3.1^2 / 2) = 1.8 pairs beyond 3.1 sigmas, of the 20 there: 91 % are not its error
    # (its own chance alone said 99 %); beyond 8 none; at one sigma 0.39 (220 x 0.61 of 220)
    z_all = np.r_[np.full(200, 1.0), 3.1, 3.1, np.full(18, 8.0)]
    conf = _beyond_error(np.array([1.0, 3.1, 8.0]), z_all)
    assert conf == pytest.approx([1 - np.exp(-0.5), 1 - 220 * np.exp(-0.5 * 3.1**2) / 20, 1.0])
    # never less sure of a farther pair: 10 pairs at 2.9 and 3.0 sigmas, 10 pairs beyond each
    assert np.all(np.diff(_beyond_error(np.array([2.9, 3.0]), np.r_[np.full(5, 2.9), np.full(5, 3.0)])) >= 0)


def test_moves_by_chance_are_counted_per_distance_bin():
    # 10 moves of 5 m and 10 of 30 m (two bins, split at their median); of 100 features found in
    # place, 2 have a lonely thing of their class within the first bin, 20 in the second: 22 %
    # within reach. 38 features are left lonely: the 78 % of the features without their object
    # that found none, so (38 + 1) x 22 / 78 = 11 found one, 1 of them so near, 10 as far: the
    # near moves are 90 % real, the far ones none
    move_m = np.r_[np.full(10, 5.0), np.full(10, 30.0)]
    chance_m = np.r_[np.full(2, 4.0), np.full(20, 25.0), np.full(78, np.inf)]
    conf = _not_by_chance(move_m, chance_m, 38)
    assert conf[:10] == pytest.approx(np.full(10, 0.9))
    assert conf[10:] == pytest.approx(np.zeros(10))
    # 15 lonely: 16 x 22 / 78 = 4.5 found one
    found = 16 * 22 / 78
    assert _not_by_chance(move_m, chance_m, 15)[[0, 10]] == pytest.approx([1 - found / 110, 1 - found / 11])
    # where nearly every feature has a lonely thing in reach, at most every move is one
    crowded = np.r_[4.0, np.full(98, 25.0), np.inf]
    assert _not_by_chance(move_m, crowded, 10)[[0, 10]] == pytest.approx([1 - 20 / 99 / 10, 0.0])
    assert _not_by_chance(move_m, np.full(5, np.inf), 40) == pytest.approx(np.ones(20))


@pytest.mark.parametrize("crowded", [False, True])
def test_a_move_is_doubted_where_lonely_signs_stand_near_mapped_ones_by_chance(grid_edges, crowded):
    # 21 give-way signs along rows 0, 2 and 3, each found in place, and 4 on the columns, each
    # found 20 m along its road: moves. Where a new sign stands 20 m from every sign found
    # in place (crowded), a feature whose sign is gone finds a lonely one that far as often as
    # not: the moves are doubted. Where none does, they are sure
    x0, y0 = node_xy(0)
    feats, objs = [], []
    for row in (0, 2, 3):
        for k in range(7):
            fid = 10 * row + k
            feats.append((fid, "give_way", None, x0 + 20 + 40 * k, y0 + row * SPACING_M - 4))
            objs.append((1000 + fid, "give_way", None, x0 + 20 + 40 * k, y0 + row * SPACING_M - 4, 30))
            if crowded:
                objs.append((2000 + fid, "give_way", None, x0 + 40 + 40 * k, y0 + row * SPACING_M - 4, 30))
    for col in range(4):  # over 50 m from the others
        feats.append((100 + col, "give_way", None, x0 + col * SPACING_M + 4, y0 + 55))
        objs.append((1100 + col, "give_way", None, x0 + col * SPACING_M + 4, y0 + 75, 30))
    moved = _grid_kinds(grid_edges, _features(feats), _objects(objs))["object_moved"]
    assert sorted(moved["feature_id"]) == list(range(100, 104))
    if crowded:
        assert moved["confidence"].max() < 0.5
    else:
        assert moved["confidence"].min() > 0.9


@pytest.mark.parametrize("value", ["FI:372", "FI:511"])
def test_an_addition_beside_a_moved_sign_of_its_code_may_be_where_the_sign_went(grid_edges, value):
    # sign 1 (FI:372) is mapped 100 m along row 0; a FI:372 pole stands 8 m east of it (the
    # move), and another pole 13 m west. Which of the two the mapped sign became the data
    # cannot tell; with no scale for moves (odds 8 : 13 for the farther) the west pole is new
    # with the chance 13 / 21. A pole of another code is no place the sign went
    x0, y0 = node_xy(0)
    feats = _features([(1, "traffic_sign", "FI:372", x0 + 100, y0 - 4)])
    objs = _objects([(10, "traffic_sign", "FI:372", x0 + 108, y0 - 4, 30),
                     (11, "traffic_sign", value, x0 + 87, y0 - 4, 30),
                     (12, "traffic_sign", "FI:372", x0 + 260, y0 - 4, 30)])  # far: new, for sure
    kinds = _grid_kinds(grid_edges, feats, objs)
    assert kinds["object_moved"][["feature_id", "object_id"]].values.tolist() == [[1, 10]]
    added = kinds["object_added"].set_index("object_id")["confidence"]
    assert sorted(added.index) == [11, 12]
    ratio = added[11] / added[12]
    assert ratio == pytest.approx(13 / 21 if value == "FI:372" else 1.0, abs=0.02)
