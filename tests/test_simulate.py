"""The fleet simulator: its noise has the asked-for distribution, planted changes are where the
truth says, routes are connected, detections project back onto their objects, same seed same bytes."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mapdiff.camera import Camera
from mapdiff.simulate import SimConfig

QUIET_WORLD = {"outlier_rate": 0.0, "dropout_rate": 0.0, "offroad_rate": 0.0, "multipath_rate": 0.0, "detour_rate": 0.0}


def _read(sim_dir, name):
    from mapdiff.io import read_table

    return read_table(Path(sim_dir) / name)


def _helsinki_metres(gpkg):
    """The bundled Helsinki map's edges and features in metres (UTM 35N)."""
    from mapdiff.io import read_map_layers

    layers = read_map_layers(gpkg)
    return layers["edges"].to_crs("EPSG:32635"), layers["features"].to_crs("EPSG:32635")


def test_gps_noise_has_the_asked_distribution():
    from mapdiff._kernels.simulate import gps_noise

    n_trips, n = 400, 300
    ptr = np.arange(n_trips + 1, dtype=np.int64) * n
    t = np.tile(np.arange(n, dtype=float), n_trips)
    zero = np.zeros(n_trips * n)
    sigma, bias, tau = 4.0, 3.0, 60.0
    x, y, outlier = gps_noise(ptr, t, zero, zero, 11, sigma, bias, tau, 0.02, 20.0, 100.0)
    clean = ~outlier
    # outliers: a binomial share, and 20-100 m away
    assert abs(outlier.mean() - 0.02) < 4 * np.sqrt(0.02 * 0.98 / len(t))
    r = np.hypot(x[outlier], y[outlier])
    assert r.min() > 20.0 - 5 * (sigma + bias) and np.median(r) > 40.0
    # white noise: fix-to-fix steps have variance 2 sigma^2 (+ the bias drift 2 b^2 (1 - rho))
    steps = np.diff(x.reshape(n_trips, n), axis=1)
    ok = clean.reshape(n_trips, n)[:, 1:] & clean.reshape(n_trips, n)[:, :-1]
    rho = np.exp(-1.0 / tau)
    want = 2 * sigma**2 + 2 * bias**2 * (1 - rho)
    assert steps[ok].var() == pytest.approx(want, rel=0.03)
    # bias: a trip's mean error is its bias (the white part averages out), with sigma ``bias``
    means = np.where(clean, x, np.nan).reshape(n_trips, n)
    trip_mean = np.nanmean(means, axis=1)
    # the mean of an OU process over T = 5 tau keeps most, not all, of its variance
    T = n / tau
    keep = 2 * (T - 1 + np.exp(-T)) / T**2
    assert trip_mean.var() == pytest.approx(bias**2 * keep + sigma**2 / n, rel=0.25)
    # and the bias is slowly varying: strongly correlated 10 s apart
    smooth = means[:, :-10] - trip_mean[:, None]
    later = means[:, 10:] - trip_mean[:, None]
    both = np.isfinite(smooth) & np.isfinite(later)
    assert np.corrcoef(smooth[both], later[both])[0, 1] > 0.15


def test_traces_deviate_from_truth_by_the_configured_noise(helsinki_gpkg):
    from mapdiff.io import read_gpkg_layer
    from mapdiff.projection import LocalProjection
    from mapdiff.simulate import simulate

    layers = {"edges": read_gpkg_layer(helsinki_gpkg, "edges")}
    sim = simulate(layers, SimConfig(vehicles=8, seed=5, gps_sigma_m=3.0, gps_bias_sigma_m=0.5, **QUIET_WORLD))
    proj = LocalProjection.around(24.94, 60.17)
    x, y = proj.to_metres(sim.traces["lon"], sim.traces["lat"])
    tx, ty = proj.to_metres(sim.fixes["lon"], sim.fixes["lat"])
    err = np.r_[x - tx, y - ty]
    assert err.std() == pytest.approx(np.hypot(3.0, 0.5), rel=0.05)
    assert abs(err.mean()) < 0.3
    assert len(sim.detections) == 0  # no features layer: traces only


def _straight_net(length_m):
    """One straight edge due north, ``length_m`` long: (vx, vy, vcum, vptr)."""
    return (np.array([0.0, 0.0]), np.array([0.0, length_m]), np.array([0.0, length_m]), np.array([0, 2]))


def test_a_car_speeds_up_cruises_and_brakes_as_a_car_does():
    from mapdiff._kernels.simulate import poses, ramps

    # 200 m at 10 m/s, a 20 s stop, 100 m at 10 m/s: accel 1, decel 2
    net = _straight_net(300.0)
    edge = np.array([0, 0, 0])
    s0, s1 = np.array([0.0, 200.0, 200.0]), np.array([200.0, 200.0, 300.0])
    dur = np.array([20.0, 20.0, 10.0])
    nan = np.full(3, np.nan)
    kin = (1.0, 2.0, 6.0, 30.0)
    out = ramps(np.array([0, 3]), edge, s0, s1, dur, nan, nan, nan, nan, net, kin)
    e, a0, a1, d, *_, shape, source = out
    # each drive: up to 10 m/s over 50 m (10 s), cruise, down over 25 m (5 s); the stop stays
    assert list(source) == [0, 0, 0, 1, 2, 2, 2]
    assert d == pytest.approx([10.0, 12.5, 5.0, 20.0, 10.0, 2.5, 5.0])
    assert a0 == pytest.approx([0.0, 50.0, 175.0, 200.0, 200.0, 250.0, 275.0])
    assert shape == pytest.approx([1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0])
    # the poses: position 1/2 a t^2 while speeding up, and no step in speed anywhere
    t1 = np.cumsum(d)
    t = np.arange(0.0, t1[-1], 0.1)
    lane = np.zeros(len(e))
    x, y, *_ = poses(np.array([0, len(e)]), e, a0, a1, t1 - d, t1, *out[4:8], lane, shape,
                     np.array([0, len(t)]), t, *net)
    assert y[t <= 10.0] == pytest.approx(0.5 * t[t <= 10.0] ** 2)
    speed = np.diff(y) / 0.1
    assert np.abs(np.diff(speed) / 0.1).max() <= 2.0 + 1e-6
    assert speed.max() == pytest.approx(10.0)


@pytest.mark.parametrize("stand_first", [False, True])
def test_a_car_parked_off_the_road_faces_the_way_it_drove(stand_first):
    """Parked off the road (a car park), a car faces the way it drove in, or, standing before
    it ever moved, the way it drives out: not north, which made its camera film whatever lay
    north of every parked car."""
    from mapdiff._kernels.simulate import poses

    net = _straight_net(100.0)  # due north
    nan = np.nan
    # up the road 50 m, off it 20 m due east, parked 30 s; or parked first, then east, then on
    edge = np.array([0, -1, -1])
    s0, s1 = np.array([0.0, nan, nan]), np.array([50.0, nan, nan])
    ax, ay = np.array([nan, 0.0, 20.0]), np.array([nan, 50.0, 50.0])
    bx, by = np.array([nan, 20.0, 20.0]), np.array([nan, 50.0, 50.0])
    t0, t1 = np.array([0.0, 5.0, 7.0]), np.array([5.0, 7.0, 37.0])
    if stand_first:  # parked at (0, 50), then east to (20, 50)
        edge, s0, s1 = edge[[2, 1]], s0[[2, 1]], s1[[2, 1]]
        ax, ay, bx, by = np.array([0.0, 0.0]), np.array([50.0, 50.0]), np.array([0.0, 20.0]), np.array([50.0, 50.0])
        t0, t1 = np.array([0.0, 30.0]), np.array([30.0, 32.0])
    n = len(edge)
    t = np.array([20.0])
    *_, heading, _, _ = poses(np.array([0, n]), edge, s0, s1, t0, t1, ax, ay, bx, by, np.zeros(n), np.zeros(n),
                              np.array([0, 1]), t, *net)
    assert heading[0] == pytest.approx(90.0)


def test_a_camera_turns_with_its_car_over_the_corners_arc():
    """East along a road to a corner, then north, a pose every metre (the car stood at the start):
    the camera faces the chord of 12 m of path around it, so its heading is halfway round (45
    degrees) at the map's vertex and straight on 6 m before and after it, not a jump from 90 to 0
    there; a car that has not moved yet keeps its road's heading."""
    from mapdiff._kernels.simulate import turned_headings

    x = np.r_[-20.0, np.arange(-20.0, 0.0), np.zeros(21)]
    y = np.r_[0.0, np.zeros(20), np.arange(0.0, 21.0)]
    road = np.where(y > 0, 0.0, 90.0)
    h = turned_headings(np.array([0, len(x)]), x, y, road, 12.0)
    at = {(x[q], y[q]): h[q] for q in range(len(x))}
    assert at[(0.0, 0.0)] == pytest.approx(45.0)
    assert at[(-3.0, 0.0)] == pytest.approx(np.degrees(np.arctan2(9.0, 3.0)))  # the chord (-9, 0) to (0, 3)
    assert at[(0.0, 3.0)] == pytest.approx(np.degrees(np.arctan2(3.0, 9.0)))  # (-3, 0) to (0, 9)
    assert at[(-6.0, 0.0)] == pytest.approx(90.0) and at[(0.0, 6.0)] == pytest.approx(0.0)
    assert h[0] == pytest.approx(90.0) and np.all(np.diff(h[1:]) <= 1e-9)  # turning one way only
    # the same drive with a wait at the corner (the simulator stops cars on a signal's node): the
    # car arrives and waits facing east, and faces north as it pulls away
    stop = int(np.flatnonzero((x == 0.0) & (y == 0.0))[0])
    xs, ys, roads = (np.insert(v, stop, v[stop]) for v in (x, y, road))
    h = turned_headings(np.array([0, len(xs)]), xs, ys, roads, 12.0)
    assert h[stop - 3] == pytest.approx(90.0) and h[stop:stop + 2] == pytest.approx([90.0, 90.0])
    assert h[stop + 4] == pytest.approx(0.0)


def test_a_short_drive_peaks_below_its_cruise_speed():
    from mapdiff._kernels.simulate import ramps

    # 30 m between two stops at a cruise of 20 m/s, accel = decel = 2: up for 15 m, down for 15 m
    net = _straight_net(30.0)
    nan = np.full(1, np.nan)
    out = ramps(np.array([0, 1]), np.array([0]), np.array([0.0]), np.array([30.0]), np.array([1.5]),
                nan, nan, nan, nan, net, (2.0, 2.0, 6.0, 30.0))
    d, shape = out[3], out[8]
    peak = np.sqrt(2 * 2.0 * 15.0)
    assert d == pytest.approx([peak / 2.0, peak / 2.0])
    assert shape == pytest.approx([1.0, -1.0])


def test_simulated_cars_never_jump_in_speed(sim_dir):
    from mapdiff.projection import LocalProjection

    fixes = _read(sim_dir, "truth/fixes.parquet").sort_values(["trip_id", "t"])
    proj = LocalProjection.around(float(fixes["lon"].median()), float(fixes["lat"].median()))
    x, y = proj.to_metres(fixes["lon"].to_numpy(), fixes["lat"].to_numpy())
    trip = fixes["trip_id"].astype(str).to_numpy()
    on_road = fixes["edge_id"].notna().to_numpy()
    seconds = (fixes["t"] - fixes["t"].min()).dt.total_seconds().to_numpy()
    speed = np.hypot(np.diff(x), np.diff(y)) / np.diff(seconds)
    same = (trip[1:] == trip[:-1]) & on_road[1:] & on_road[:-1]
    accel = np.diff(speed)[same[1:] & same[:-1]]
    config = SimConfig()
    # speeds from 1 s chords, which cut corners and swing with the lane offset there: a little
    # over the asked rates (a dead stop from 50 km/h would be -14 m/s^2)
    assert np.percentile(accel, 0.5) > -1.5 * config.decel_mps2
    assert np.percentile(accel, 99.5) < 1.5 * config.accel_mps2
    assert (speed[same] < 0.1).mean() > 0.01  # and they stop


def test_planted_changes_are_in_the_stale_map_and_not_in_the_world(sim_dir):
    import geopandas as gpd

    changes = _read(sim_dir, "truth/changes.parquet")
    objects = _read(sim_dir, "truth/objects.parquet")
    edges = _read(sim_dir, "truth/edges.parquet").set_index("edge_id")
    routes = _read(sim_dir, "truth/routes.parquet")
    feats = gpd.read_file(Path(sim_dir) / "map.gpkg", layer="features").set_index("feature_id")
    map_edges = gpd.read_file(Path(sim_dir) / "map.gpkg", layer="edges").set_index("edge_id")
    counts = changes["kind"].value_counts()
    assert (counts >= 10).all() and len(counts) == 7, counts  # tens of each kind on Helsinki
    from mapdiff.projection import LocalProjection

    world = objects.groupby("feature_id").first()  # a feature's poles share its class and value
    changes_m = changes.to_crs(LocalProjection.around(24.94, 60.17).crs)
    # the map's junctions (nodes of three roads or more) and its signals, in those metres
    ends = pd.DataFrame({"node": np.r_[map_edges["u"], map_edges["v"]], "other": np.r_[map_edges["v"], map_edges["u"]],
                         "pt": np.r_[map_edges.geometry.to_crs(changes_m.crs).apply(lambda g: g.coords[0]),
                                     map_edges.geometry.to_crs(changes_m.crs).apply(lambda g: g.coords[-1])]})
    degree = ends[ends["node"] != ends["other"]].drop_duplicates(["node", "other"]).groupby("node").size()
    from scipy.spatial import cKDTree

    junctions = cKDTree(ends.drop_duplicates("node").set_index("node").loc[degree.index[degree >= 3], "pt"].tolist())
    signals = feats[feats["class"] == "traffic_signals"].to_crs(changes_m.crs)
    d, k = junctions.query(np.c_[signals.geometry.x, signals.geometry.y])
    signal_junction = set(k[d <= 25.0])  # the junctions whose signals the map has (each its nearest)
    for c, where in zip(changes.itertuples(), changes_m.geometry):
        if c.kind == "object_added":
            assert c.object_id in world.index and c.object_id not in feats.index
            if changes["class"].iloc[c.Index] == "traffic_signals":
                # a junction's signals are added together: none of its others is left on the map
                d, k = junctions.query([where.x, where.y])
                assert d > 25.0 or k not in signal_junction
        elif c.kind == "object_removed":
            # a map feature, where the map has it, whose pole the street lost; none of its class
            # within a kerb's width stands in for it
            assert c.feature_id in feats.index and c.feature_id not in world.index
            f = feats.loc[c.feature_id]
            assert f.geometry.distance(changes.geometry.iloc[c.Index]) < 1e-9 and pd.notna(f["osmid"])
            others = feats[(feats["class"] == changes["class"].iloc[c.Index]) & (feats.index != c.feature_id)]
            p = LocalProjection.around(24.94, 60.17)
            fx, fy = p.to_metres([f.geometry.x], [f.geometry.y])
            ox, oy = p.to_metres(others.geometry.x.to_numpy(), others.geometry.y.to_numpy())
            assert np.hypot(ox - fx[0], oy - fy[0]).min() > 5.0
        elif c.kind == "object_moved":
            # the stale map has it that far from where OSM would map the true object
            p = LocalProjection.around(24.94, 60.17)
            f = feats.loc[c.feature_id]
            fx, fy = p.to_metres([f.geometry.x], [f.geometry.y])
            assert np.hypot(fx[0] - where.x, fy[0] - where.y) == pytest.approx(c.distance_m, rel=1e-3, abs=1e-3)
            assert 0.0 < c.distance_m <= 40.5
        elif c.kind == "value_changed":
            assert feats.loc[c.feature_id, "value"] == c.old_value != c.new_value == world.loc[c.object_id, "value"]
        elif c.kind == "road_missing":
            assert all(edges.loc[e, "in_world"] and e not in map_edges.index for e in c.edge_ids)
        elif c.kind == "road_closed":
            assert all(not edges.loc[e, "in_world"] and e in map_edges.index for e in c.edge_ids)
            assert not routes["edge_id"].isin(c.edge_ids).any()
        elif c.kind == "oneway_reversed":
            (e,) = c.edge_ids
            assert (map_edges.loc[e, "u"], map_edges.loc[e, "v"]) == (edges.loc[e, "v"], edges.loc[e, "u"])
    # every unchanged feature stands in the world, as one or more physical objects
    same = world.index.intersection(feats.index).difference(changes["feature_id"].dropna())
    assert len(same) > 1000


def test_physical_placement_follows_the_street(helsinki_gpkg):
    import shapely

    from mapdiff.io import read_map_layers
    from mapdiff.simulate import ON_ROAD_M, _road_lookup, place_objects

    layers = read_map_layers(helsinki_gpkg)
    crs = "EPSG:32635"
    edges = layers["edges"].to_crs(crs)
    feats = layers["features"].to_crs(crs).assign(object_id=lambda f: f["feature_id"], z_m=2.2)
    config = SimConfig(kerb_m=4.0, overhead_rate=0.0)
    placed = place_objects(feats, edges, config, np.random.default_rng(0))
    _tree, lines, junctions = _road_lookup(edges)
    # (a feature whose poles stand where another's do has none of its own: see the test below)
    per = placed.groupby("feature_id").size().reindex(feats["feature_id"], fill_value=0)
    # a signal on a junction node: a pole on every approach, at the kerb, facing its traffic
    sig = feats[feats["class"] == "traffic_signals"]
    node_d = np.array([np.hypot(junctions["x"] - g.x, junctions["y"] - g.y).min() for g in sig.geometry])
    at_node = sig["feature_id"].to_numpy()[node_d <= ON_ROAD_M]
    assert len(at_node) > 0 and (per.loc[at_node] >= 2).mean() > 0.9  # one-way approaches count once
    poles = placed[placed["feature_id"].isin(at_node)]
    assert poles["facing_deg"].notna().all()
    d_road = shapely.distance(np.asarray(poles.geometry.values)[:, None], np.asarray(lines)[None, :]).min(axis=1)
    assert np.allclose(d_road, 4.0, atol=0.6)
    # a crossing on a road: a sign on each kerb, one on each side of the centre line
    cross = feats[feats["class"] == "crossing"]
    on_road = cross["feature_id"].to_numpy()[shapely.distance(np.asarray(cross.geometry.values)[:, None],
                                                              np.asarray(lines)[None, :]).min(axis=1) <= 0.5]
    assert len(on_road) > 20 and (per.loc[on_road] == 2).mean() > 0.9
    # a point mapped beside the road stays where the mapper put it, seen from everywhere
    off = placed[placed["feature_id"].isin(per.index[per == 1])]
    kept = off[off["facing_deg"].isna()]
    orig = feats.set_index("feature_id").loc[kept["feature_id"]]
    assert np.allclose(kept.geometry.x.to_numpy(), orig.geometry.x.to_numpy())
    # no two poles of one identity stand on one spot facing the same traffic
    from scipy.spatial import cKDTree

    xy = np.c_[placed.geometry.x, placed.geometry.y]
    i, j = cKDTree(xy).query_pairs(1.0, output_type="ndarray").T
    same = (placed["class"].to_numpy()[i] == placed["class"].to_numpy()[j]) & \
        (placed["value"].astype(str).to_numpy()[i] == placed["value"].astype(str).to_numpy()[j]) & \
        (np.abs((placed["facing_deg"].to_numpy()[i] - placed["facing_deg"].to_numpy()[j] + 180) % 360 - 180) < 45)
    assert len(i) > 0 and not same.any()
    # the OSM placement keeps one object per feature on its node
    osm = place_objects(feats, edges, SimConfig(placement="osm"), np.random.default_rng(0))
    assert len(osm) == len(feats) and osm["facing_deg"].isna().all()


def test_features_mapped_on_one_spot_stand_as_one_pole_each_side():
    # OSM maps a crossing on each way its footway crosses: three nodes 1.5 m apart along the
    # footway across a two-way street put their signs on the same two kerb spots; the street has
    # one sign on each kerb, which belongs to a feature without a planted change
    import geopandas as gpd
    import shapely

    from mapdiff.simulate import place_objects

    road = shapely.LineString([(0, 0), (100, 0)])
    edges = gpd.GeoDataFrame({"u": [0, 1], "v": [1, 0], "edge_id": [0, 1]},
                             geometry=[road, shapely.reverse(road)], crs="EPSG:32635")
    feats = gpd.GeoDataFrame({"feature_id": [5, 6, 7], "object_id": [5, 6, 7], "class": "crossing",
                              "value": None, "z_m": 2.2},
                             geometry=[shapely.Point(50, -1.5), shapely.Point(50, 0), shapely.Point(50, 1.5)],
                             crs="EPSG:32635")
    config = SimConfig(kerb_m=4.0)
    placed = place_objects(feats, edges, config, np.random.default_rng(0))
    assert len(placed) == 2 and sorted(placed.geometry.y.round(1)) == [-4.0, 4.0]
    assert (placed["feature_id"] == 5).all() and all(list(f) == [5, 6, 7] for f in placed["feature_ids"])
    assert list(placed["object_id"]) == [0, 1]
    # an added feature's pole is the map's duplicate's; a moved one or one of another value in
    # the map keeps its own
    added = pd.DataFrame({"kind": ["object_added"], "object_id": [5]})
    placed = place_objects(feats, edges, config, np.random.default_rng(0), changes=added)
    assert (placed["feature_id"] == 6).all() and all(list(f) == [6, 5, 7] for f in placed["feature_ids"])
    moved = pd.DataFrame({"kind": ["object_moved"], "object_id": [6]})
    placed = place_objects(feats, edges, config, np.random.default_rng(0), changes=moved)
    assert sorted(placed["feature_id"]) == [5, 5, 6, 6]
    # two signs of one crossing facing the two directions stay two; so do two values
    feats.loc[2, "value"] = "zebra"
    assert len(place_objects(feats, edges, config, np.random.default_rng(0))) == 4


@pytest.mark.parametrize("placement", ["physical", "osm"])
def test_a_junctions_signals_are_never_planted_as_moved(helsinki_gpkg, placement):
    # OSM's place for a junction's signals is its node or the approach way: moved 3-40 m up an
    # approach they are still mapped right, so the stale map never has them there
    from mapdiff.simulate import _junction_signals, _road_lookup, plant_changes

    edges, feats = _helsinki_metres(helsinki_gpkg)
    at_junction = _junction_signals(feats, _road_lookup(edges)).index
    assert len(at_junction) >= 5
    config = SimConfig(placement=placement, moved_rate=0.9)  # nearly every feature, were they movable
    changes = plant_changes(edges, feats, config, np.random.default_rng(0))[-1]
    moved = changes.loc[changes["kind"] == "object_moved", "feature_id"].astype(int)
    assert len(moved) > 100 and not moved.isin(at_junction).any()


def test_a_junctions_signals_are_added_together(helsinki_gpkg):
    # a junction is signalled on all its approaches at once: a stale map lacks all its signals
    # (nodes on the junction or up its approaches) or none
    from mapdiff.simulate import _junction_signals, _road_lookup, plant_changes

    edges, feats = _helsinki_metres(helsinki_gpkg)
    junction_of = _junction_signals(feats, _road_lookup(edges))
    shared = junction_of[junction_of.duplicated(keep=False)]
    assert shared.nunique() >= 20  # junctions with two signal nodes or more
    changes = plant_changes(edges, feats, SimConfig(added_rate=0.2), np.random.default_rng(0))[-1]
    added = set(changes.loc[changes["kind"] == "object_added", "object_id"].astype(int))
    whole = shared.index.isin(list(added)).astype(int)
    per_junction = pd.Series(whole, index=shared.to_numpy()).groupby(level=0).mean()
    assert (per_junction > 0).sum() >= 3 and per_junction.isin([0.0, 1.0]).all()


def test_a_sign_is_only_seen_from_in_front(sim_dir):
    from mapdiff.projection import LocalProjection

    objects = _read(sim_dir, "truth/objects.parquet").set_index("object_id")
    det = _read(sim_dir, "truth/detections.parquet").dropna(subset=["object_id"])
    det = det.join(objects[["lon", "lat", "facing_deg"]], on="object_id")
    det = det[det["facing_deg"].notna()]
    assert len(det) > 1000
    p = LocalProjection.around(24.94, 60.17)
    ox, oy = p.to_metres(det["lon"], det["lat"])
    cx, cy = p.to_metres(det["camera_lon"], det["camera_lat"])
    f = np.radians(det["facing_deg"].to_numpy())
    to_cam = np.c_[cx - ox, cy - oy]
    cos = (to_cam[:, 0] * np.sin(f) + to_cam[:, 1] * np.cos(f)) / np.hypot(*to_cam.T)
    assert cos.min() >= np.cos(np.radians(75.0)) - 1e-6


def test_multipath_detours_and_tunnels(helsinki_gpkg):
    from mapdiff.io import read_gpkg_layer
    from mapdiff.simulate import simulate

    edges = read_gpkg_layer(helsinki_gpkg, "edges")
    tunnel_ids = edges.loc[edges["tunnel"].notna() & (edges["tunnel"] != "no"), "edge_id"] if "tunnel" in edges else []
    # (the extract's 4 tunnel edges lie on few routes: with this seed one of the 10 cars' trips
    # takes one)
    sim = simulate({"edges": edges}, SimConfig(vehicles=10, seed=0, multipath_rate=0.5, detour_rate=0.5,
                                               outlier_rate=0.0))
    fx = sim.fixes
    assert 0.05 < fx["multipath"].mean() < 0.5
    from mapdiff.projection import LocalProjection

    p = LocalProjection.around(24.94, 60.17)
    x, y = p.to_metres(sim.traces["lon"], sim.traces["lat"])
    tx, ty = p.to_metres(fx["lon"], fx["lat"])
    err = np.hypot(x - tx, y - ty)
    assert np.median(err[fx["multipath"].to_numpy()]) > 15.0  # 20-80 m off, ramps aside
    # detours: fixes off the network mid-trip, not only at the trips' ends
    off = fx["edge_id"].isna().to_numpy()
    first_last = np.r_[True, fx["trip_id"].to_numpy()[1:] != fx["trip_id"].to_numpy()[:-1]]
    assert off[~first_last].sum() > 100
    # no fix on a tunnel edge, though the cars drove through tunnels
    assert len(tunnel_ids) and sim.routes["edge_id"].isin(list(tunnel_ids)).any()
    assert not fx["edge_id"].isin(list(tunnel_ids)).any()


def test_true_routes_are_connected_paths_of_the_world(sim_dir):
    routes = _read(sim_dir, "truth/routes.parquet")
    edges = _read(sim_dir, "truth/edges.parquet").set_index("edge_id")
    assert edges.loc[routes["edge_id"], "in_world"].all()
    assert len(routes["trip_id"].unique()) > 20
    uturns = 0
    for _, part in routes.groupby("trip_id", observed=True):
        part = part.sort_values("seq")
        assert (part["t_enter"].diff().dropna() >= pd.Timedelta(0)).all()
        for a, b in zip(part.iloc[:-1].itertuples(), part.iloc[1:].itertuples()):
            if a.v == b.u and a.to_m == pytest.approx(a.length_m):
                continue
            # a U-turn: part way into an edge, then back along its other direction
            assert (b.u, b.v) == (a.v, a.u) and a.to_m < a.length_m and b.from_m > 0
            assert a.to_m + b.from_m == pytest.approx(a.length_m, abs=1.0)
            uturns += 1
    assert uturns >= 1


def test_detection_boxes_project_back_onto_their_objects(sim_dir):
    import json

    det = _read(sim_dir, "detections.parquet")
    truth = _read(sim_dir, "truth/detections.parquet")
    objects = _read(sim_dir, "truth/objects.parquet").set_index("object_id")
    cam = Camera(**json.loads((Path(sim_dir) / "camera.json").read_text()))
    both = det.merge(truth, on="detection_id")
    real = both[both["object_id"].notna()]
    assert len(real) > 1000 and 0 < (~both["object_id"].notna()).sum() < 0.05 * len(both)
    u = 0.5 * (real["x_min"] + real["x_max"])
    bearing = (
        real["camera_heading_deg"] + cam.mount_yaw_deg + np.degrees(np.arctan((u - cam.width_px / 2) / cam.focal_px))
    )
    err = (bearing - real["bearing_deg"] + 180) % 360 - 180
    assert np.median(np.abs(err)) < 0.3 and np.percentile(np.abs(err), 99) < 3.0
    # range from the box height and the object's true size
    h = objects.loc[real["object_id"].astype(int), "height_m"].to_numpy()
    ranged = cam.focal_px * h / (real["y_max"] - real["y_min"])
    forward = real["range_m"] * np.cos(np.radians(err + np.degrees(np.arctan((u - cam.width_px / 2) / cam.focal_px))))
    rel = (ranged / forward - 1).abs()
    assert rel.median() < 0.1
    # each pass sees an object in several consecutive frames
    per_pass = both[both["object_id"].notna()].groupby(["trip_id", "object_id"], observed=True).size()
    assert per_pass.median() >= 4


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(helsinki_gpkg, tmp_path):
    from mapdiff_cli.main import cli

    runs = []
    for name, seed in (("a", 9), ("b", 9), ("c", 10)):
        res = CliRunner().invoke(cli, ["simulate", "--map", str(helsinki_gpkg), "-o", str(tmp_path / name),
                                       "--vehicles", "2", "--seed", str(seed), "-q"])
        assert res.exit_code == 0, res.output
        runs.append(_digest(tmp_path / name))
    assert runs[0] == runs[1]
    assert len(runs[0]) == 11
    assert runs[0]["traces.parquet"] != runs[2]["traces.parquet"]


@pytest.mark.parametrize(("args", "hint"), [
    (["--vehicles", "0"], "--vehicles"),
    (["--miss-rate", "-0.1"], "--miss-rate"),
    (["--hfov-deg", "200"], "--hfov-deg"),
    (["--gps-sigma-m", "-1"], "--gps-sigma-m"),
])
def test_impossible_options_name_the_option(helsinki_gpkg, tmp_path, args, hint):
    from mapdiff_cli.main import cli

    res = CliRunner().invoke(cli, ["simulate", "--map", str(helsinki_gpkg), "-o", str(tmp_path / "s"), *args])
    assert res.exit_code == 2
    assert hint in res.output
    assert not (tmp_path / "s").exists()


def test_map_without_features_says_so(grid_gpkg, tmp_path):
    from mapdiff_cli.main import cli

    res = CliRunner().invoke(cli, ["simulate", "--map", str(grid_gpkg), "-o", str(tmp_path / "s"), "--vehicles", "2"])
    assert res.exit_code == 0, res.output
    assert "no 'features' layer" in res.output
    assert len(_read(tmp_path / "s", "traces.parquet")) > 0
    assert len(_read(tmp_path / "s", "detections.parquet")) == 0


@pytest.mark.parametrize("capture", ["video", "imagery"])
def test_a_map_without_features_runs_the_whole_chain(grid_gpkg, tmp_path, capture):
    """The simulator's empty detections (their columns untyped, as an empty frame writes them)
    go through observe and locate as empty files, diff still judges the roads and evaluate
    scores them: a map or a window with nothing to see is no error (before, observe refused "no
    detections"). With --capture imagery the simulator writes its empty observations (it wrote
    video's detections instead), and evaluate's locate scores, of no object against none, are
    no traceback."""
    from mapdiff_cli.main import cli

    s, run = tmp_path / "s", CliRunner().invoke
    obs = tmp_path / "obs.parquet" if capture == "video" else s / "observations.parquet"
    steps = [
        ["simulate", "--map", grid_gpkg, "-o", s, "--vehicles", "2", "--seed", "1", "--capture", capture],
        ["match", s / "traces.parquet", "--map", s / "map.gpkg", "-o", tmp_path / "m.parquet",
         "--paths", tmp_path / "p.parquet"],
        ["coverage", tmp_path / "p.parquet", "-o", tmp_path / "c.parquet"],
        *([["observe", s / "detections.parquet", "--matched", tmp_path / "m.parquet", "--camera", s / "camera.json",
            "-o", obs]] if capture == "video" else []),
        ["locate", obs, "-o", tmp_path / "objects.parquet", "--labels", tmp_path / "l.parquet"],
        ["diff", "--map", s / "map.gpkg", "--objects", tmp_path / "objects.parquet", "--coverage",
         tmp_path / "c.parquet", "-o", tmp_path / "diffs.gpkg"],
        ["evaluate", "--truth", s, "--diffs", tmp_path / "diffs.gpkg", "--objects", tmp_path / "objects.parquet"],
    ]
    for step in steps:
        res = run(cli, [str(a) for a in step] + (["-q"] if step[0] != "evaluate" else []))
        assert res.exit_code == 0, (step[0], res.output)
    assert len(_read(obs.parent, obs.name)) == 0
    objects = _read(tmp_path, "objects.parquet")
    assert len(objects) == 0 and {"object_id", "lon", "lat", "sigma_m"} <= set(objects.columns)
    assert (tmp_path / "diffs.gpkg").exists()
    labels = _read(tmp_path, "l.parquet")  # (written from the observations read in batches: there were none)
    assert len(labels) == 0 and {"object_id", "bearing_deg"} <= set(labels.columns)
    assert "true_objects" in res.output  # (the last step's: evaluate scored locate)


def test_a_map_too_small_for_a_trip_says_so(grid_gpkg, tmp_path):
    """A map whose longest route is shorter than --min-trip-m (the osmnx test map of Bavaria:
    213 m against the default 300) drives no trip: an empty simulation must not pass without a
    word (match then refuses its empty traces)."""
    from mapdiff_cli.main import cli

    longest = ["--min-trip-m", "100000"]  # (longer than any route of the test grid)
    res = CliRunner().invoke(cli, ["simulate", "--map", str(grid_gpkg), "-o", str(tmp_path / "s"), *longest])
    assert res.exit_code == 0, res.output
    assert "no trip was driven" in res.output and "--min-trip-m 100000" in res.output
    assert len(_read(tmp_path / "s", "traces.parquet")) == 0
    res = CliRunner().invoke(cli, ["simulate", "--map", str(grid_gpkg), "-o", str(tmp_path / "t")])
    assert res.exit_code == 0 and "no trip" not in res.output
    assert len(_read(tmp_path / "t", "traces.parquet")) > 0


def test_street_level_imagery_has_the_detectors_mistakes(helsinki_gpkg):
    # as in the video: a share of the sightings with another class or value, and false
    # positives per capture with no object in the truth, at the distances real sightings have
    from mapdiff.io import read_map_layers
    from mapdiff.simulate import simulate

    config = SimConfig(vehicles=2, seed=4, capture="imagery", placement="osm", confusion_rate=0.2,
                       false_positive_rate=0.5, **QUIET_WORLD)
    sim = simulate(read_map_layers(helsinki_gpkg), config)
    obs = sim.observations.merge(sim.detection_truth, on="detection_id")
    fp = obs["object_id"].isna()
    captures = obs["trip_id"].nunique()
    assert fp.sum() == pytest.approx(config.false_positive_rate * captures, rel=0.3)  # (captures with none too)
    assert obs.loc[fp, "range_m"].between(0.5, config.max_range_m * 2).all()
    real = obs[~fp].merge(sim.objects[["object_id", "class", "value"]], on="object_id", suffixes=("", "_true"))
    read = (real["class"] == real["class_true"]) & (real["value"].fillna("") == real["value_true"].fillna(""))
    # a confused sighting may draw its own class and value again
    assert 0.1 <= (~read).mean() <= config.confusion_rate


def test_street_level_imagery_has_the_asked_errors(helsinki_gpkg):
    # each capture its own trip at one instant, a capture every 5-15 m along a drive, bearings
    # off by the core sigma or, for the tail's share, by 10-30 degrees, ranges off by a factor
    from mapdiff.io import read_map_layers
    from mapdiff.projection import LocalProjection
    from mapdiff.simulate import simulate

    config = SimConfig(vehicles=2, seed=4, capture="imagery", placement="osm", miss_rate=0.0, capture_sigma_m=0.0,
                       false_positive_rate=0.0, **QUIET_WORLD)
    sim = simulate(read_map_layers(helsinki_gpkg), config)
    obs = sim.observations
    assert len(sim.detections) == 0 and len(obs) > 500
    assert (obs.groupby("trip_id")["t"].nunique() == 1).all()
    truth = sim.objects.set_index("object_id").loc[sim.detection_truth["object_id"].astype(int).to_numpy()]
    proj = LocalProjection.around(24.94, 60.17)
    ox, oy = proj.to_metres(obs["lon"], obs["lat"])
    tx, ty = proj.to_metres(truth["lon"].to_numpy(), truth["lat"].to_numpy())
    err = (obs["bearing_deg"].to_numpy() - np.degrees(np.arctan2(tx - ox, ty - oy)) + 180) % 360 - 180
    tail = np.abs(err) > 9.0  # 4.5 core sigmas
    assert tail.mean() == pytest.approx(config.bearing_tail_rate, abs=0.03)
    assert ((np.abs(err[tail]) >= 9.99) & (np.abs(err[tail]) <= 30.01)).all()
    log_range = np.log(obs["range_m"].to_numpy() / np.hypot(tx - ox, ty - oy))
    assert log_range.std() == pytest.approx(config.range_error_rel, rel=0.1)
    # an object is seen where it spans the detector's smallest box on the panorama: a sign out
    # to some 21 m, not to max_range_m
    span_px = truth["height_m"].to_numpy() / np.hypot(tx - ox, ty - oy) * config.panorama_width_px / (2 * np.pi)
    assert (span_px >= config.min_box_px * 0.99).all() and config.max_range_m > 40
    # captures along one drive: consecutive ones 5 to 15 m apart (a straight stretch)
    drive = obs.drop_duplicates("trip_id").assign(x=ox[~obs.duplicated("trip_id")], y=oy[~obs.duplicated("trip_id")])
    drive["drive"] = drive["trip_id"].str.rsplit("-c", n=1).str[0]
    gaps = drive.sort_values("t").groupby("drive")[["x", "y"]].diff().dropna()
    assert 5.0 <= np.median(np.hypot(gaps["x"], gaps["y"])) <= 15.0


def test_a_feature_whose_twin_the_map_keeps_is_never_planted_as_added(helsinki_gpkg):
    # a crossing mapped on both ways its footway crosses (nodes a few metres apart): with one of
    # them missing from the map, the other's poles stand where its did and the street shows no
    # change, so the stale map never lacks just one of them (a junction's signals go as one)
    from mapdiff.simulate import TWIN_M, _junction_signals, _road_lookup, _twinned, plant_changes

    edges, feats = _helsinki_metres(helsinki_gpkg)
    twins = np.setdiff1d(_twinned(feats, TWIN_M), _junction_signals(feats, _road_lookup(edges)).index)
    assert len(twins) >= 20
    changes = plant_changes(edges, feats, SimConfig(added_rate=0.5), np.random.default_rng(0))[-1]
    added = changes.loc[changes["kind"] == "object_added", "object_id"].astype(int)
    assert len(added) > 100 and not added.isin(twins).any()


def test_no_move_is_planted_that_a_street_cannot_show(helsinki_gpkg):
    # a stale map whose moved sign lands on another of its class and value holds one sign twice
    # (OSM's second node of it), a signal by a junction is the junction's, and a twin's poles
    # stand where its twin's do: none is a move a street can show, so the simulator plants none
    from mapdiff.simulate import JUNCTION_KERB_M, JUNCTION_RADIUS_M, TWIN_M, _road_lookup, _twinned, plant_changes

    edges, feats = _helsinki_metres(helsinki_gpkg)
    *_, stale, changes = plant_changes(edges, feats, SimConfig(moved_rate=0.5), np.random.default_rng(0))
    moved = changes.loc[changes["kind"] == "object_moved", "feature_id"].astype(int).to_numpy()
    assert len(moved) > 300
    at = stale.set_index("feature_id").geometry
    cls, value, fids = feats["class"].to_numpy(), feats["value"].astype(str).to_numpy(), feats["feature_id"].to_numpy()
    junctions = _road_lookup(edges)[2][["x", "y"]].to_numpy()
    by_junction = JUNCTION_RADIUS_M + JUNCTION_KERB_M
    assert not np.isin(moved, _twinned(feats, TWIN_M)).any()
    for fid in moved:
        p = at[fid]
        f = feats[feats["feature_id"] == fid].iloc[0]
        same = (cls == f["class"]) & (value == str(f["value"])) & (fids != fid)
        gx, gy = feats.geometry.x.to_numpy()[same], feats.geometry.y.to_numpy()[same]
        assert np.hypot(gx - p.x, gy - p.y).min(initial=np.inf) > TWIN_M
        if f["class"] == "traffic_signals":
            for q in (p, f.geometry):
                assert np.hypot(junctions[:, 0] - q.x, junctions[:, 1] - q.y).min() > by_junction
