"""A fleet simulator with ground truth (the ``simulate`` stage).

The input map's roads and ``features`` are the true world. From it the simulator plants
differences into a stale copy (what a user would hold), drives a fleet over the true roads,
samples noisy GPS fixes, and renders the dashcam detections of the true objects. Everything is
drawn from one seed, so the same map, config and seed give the same bytes.

Output folder::

    map.gpkg               the stale map (nodes, edges, features)
    traces.parquet         GPS fixes in the traces contract (+ vehicle_id)
    detections.parquet     pixel detections: detection_id, trip_id, t, class, value, score, box
    observations.parquet   instead of detections with ``capture="imagery"``: street-level
                           observations (the observations contract, plus detection_id)
    camera.json            the camera model
    truth/changes.parquet  the planted differences (GeoParquet), one row per change
    truth/routes.parquet   per trip the true edges driven, with times and offsets
    truth/fixes.parquet    per fix the true position, edge and whether it is an outlier
    truth/objects.parquet  the true world's objects
    truth/detections.parquet  per detection the object it came from (null: false positive)
    truth/edges.parquet    every edge id of world or map, its length and where it exists
    truth/meta.json        the config, seed and counts
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from mapdiff.camera import Camera, class_shape
from mapdiff.errors import ConfigError
from mapdiff.network import free_flow_speed_mps
from mapdiff.schema import CHANGE_KINDS, timestamps

#: where the world's objects stand: "physical" (poles at the kerb of the approaches, as on a
#: street) or "osm" (on the map's node, as OSM maps them)
PLACEMENTS = ("physical", "osm")
#: what the fleet records: "video" (dashcam frames, pixel detections, GPS traces) or "imagery"
#: (street-level captures, each its own trip, as observations: see :func:`_imagery`)
CAPTURES = ("video", "imagery")
#: a mapped point this close to a road's line is on the road (OSM's way or junction node)
ON_ROAD_M = 2.0
#: a signal pole stands this far before the junction node on its approach
STOP_LINE_M = 4.0
#: a change of heading from one road to the next beyond this is a turn, taken at
#: ``turn_speed_mps`` at most (a bend within one road is driven at the road's speed)
TURN_DEG = 30.0
#: an overhead signal hangs this high (centre of the head) above the road
OVERHEAD_Z_M = 5.5
#: physical objects of one class and value facing the same traffic (within ``SAME_FACING_DEG``)
#: this close together are one: OSM maps a crossing on every way its footway crosses (both
#: carriageways, a tram track: nodes 1-3 m apart along the footway), whose kerb signs all land on
#: one spot, and a sign once per direction on one node (Helsinki: 358 such pairs, most under
#: 0.1 m apart); a street does not repeat a sign to the same traffic within a sign's width or two
#: (0.6-0.9 m) of itself
SAME_SPOT_M = 2.0
SAME_FACING_DEG = 45.0
#: signals this close (metres) to a junction's node are its: OSM maps them on the node or on its
#: approaches' stop lines, some 5-20 m before it (the judgment's ``junction_radius_m``, 25 m)
JUNCTION_RADIUS_M = 25.0
#: features of one class this close (metres) are twins: a kerb's width, within which a removed
#: pole is indistinguishable from its twin's (the judgment's OSM twins reach 3.5 m, a pole 4-5 m)
TWIN_M = 5.0
#: signals within this of a junction's radius are too near it to move: a pole stands a kerb
#: (some 5 m) off its node's approach, so a judgment cannot tell such a signal from the
#: junction's, and the stale map's place would not be wrong by OSM's convention
JUNCTION_KERB_M = 5.0
#: draws of a moved feature's stale place before the move is given up (see ``_stale_place_check``)
MOVE_TRIES = 10
SPEED_LIMITS_KMH = ("20", "30", "40", "50", "60", "70", "80", "100")
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


@dataclass(frozen=True)
class SimConfig:
    """Simulation options; rates are probabilities or fractions, every other field carries its unit.

    The world changes: ``added_rate``, ``removed_rate``, ``moved_rate`` are fractions of the map's
    features (removed ones keep their place in the map, their poles gone from the street); ``value_changed_rate`` is a
    fraction of the features with a value; ``missing_road_rate`` and ``closed_road_rate`` are
    fractions of the roads, ``oneway_reversed_rate`` of the one-way roads.
    The fleet: each vehicle makes Poisson(``trips_per_day``) trips a day between random nodes,
    some through a waypoint (``loop_rate``) or with a U-turn (``uturn_rate``), stopping at
    signals (``signal_stop_rate``); ``offroad_rate`` of trip ends lie off the mapped network.
    GPS: white noise ``gps_sigma_m`` per axis, a drifting per-trip bias ``gps_bias_sigma_m`` per
    axis (correlation time ``gps_bias_tau_s``), outliers of 20-100 m at ``outlier_rate``, and one
    10-60 s dropout in ``dropout_rate`` of the trips.
    Camera: a frame every ``frame_interval_s``; objects within ``max_range_m`` with a box at least
    ``min_box_px`` high are detected unless missed (``miss_rate``); ``false_positive_rate`` per
    frame; ``confusion_rate`` of detections get a wrong class or value.
    The street: with ``placement="physical"`` the world's objects stand where they stand on a
    street while the stale map keeps OSM's convention (see :func:`place_objects`): a junction's
    signals on a pole at the kerb of each approach (``overhead_rate`` of them on a mast arm above
    the lane), a crossing's signs on both kerbs, a sign at the kerb (``kerb_m`` right of the
    centre line) of the approach to the nearer junction, facing its traffic (a sign seen from
    behind is not detected); the poles of features mapped on one spot are one (``SAME_SPOT_M``);
    ``"osm"`` puts every object on its map node, as OSM maps it.
    Street-level imagery (``capture="imagery"``): instead of video, a panoramic capture every
    ``capture_spacing_m`` (half to one and a half times it) along each drive, each capture its own
    trip, its position ``capture_sigma_m`` off per axis, written as observations: every readable
    object within ``max_range_m`` whose height spans ``min_box_px`` on a panorama
    ``panorama_width_px`` wide (a 0.64 m sign out to 21 m on 2048 px: an object is seen from a
    handful of captures, as in real street-level data sets), not missed (``miss_rate``), hidden
    or not behind another, with
    a bearing off by ``imagery_bearing_sigma_deg`` or, for ``bearing_tail_rate`` of them, by 10
    to 30 degrees, and a monocular range off by a factor exp(N(0, ``range_error_rel``)); the
    detector's mistakes as in the video: ``confusion_rate`` of sightings with another class or
    value, ``false_positive_rate`` false sightings per capture (any bearing, at the distances of
    real sightings; their truth has no object).
    Driving: a car speeds up at ``accel_mps2`` and brakes at ``decel_mps2`` (a car in town
    pulls away at about 1.5 m/s^2; 2.5 m/s^2 is firm but comfortable braking, below the 3.4 m/s^2
    traffic engineers design yellow lights for), takes a turn from one road to another at
    ``turn_speed_mps`` at most (about 20 km/h: 3 m/s^2 sideways on a 12 m corner) and stands
    still at its stops and trip ends: no jump in speed (a car that stops dead from 60 km/h
    within one fix would lead every smoother behind it). The camera faces the way the car turns:
    its heading is the chord of the car's path over ``turn_arc_m`` (a corner's turn spreads over
    about a junction's width, 12 m for streets of two lanes, instead of jumping at the map's
    vertex; a bend's over the same length), so near a junction it is not the heading of either
    road; 0 keeps the road's heading.
    What fools road diffs: ``multipath_rate`` of trips have a stretch of 10-60 s with the fixes
    20-80 m off to one side; ``detour_rate`` of trips stop off the network mid-trip (a car park,
    a fuel station: 30-80 m off, 1-5 minutes); tunnels (edges tagged ``tunnel``) give no fixes.
    """

    vehicles: int = 20
    days: int = 1
    seed: int = 0
    trips_per_day: float = 8.0
    start_date: str = "2026-01-05"
    min_trip_m: float = 300.0
    loop_rate: float = 0.1
    uturn_rate: float = 0.05
    signal_stop_rate: float = 0.5
    offroad_rate: float = 0.05
    lane_offset_m: float = 1.5
    sample_interval_s: float = 1.0
    gps_sigma_m: float = 5.0
    gps_bias_sigma_m: float = 2.0
    gps_bias_tau_s: float = 60.0
    outlier_rate: float = 0.01
    dropout_rate: float = 0.1
    frame_interval_s: float = 0.5
    max_range_m: float = 50.0
    min_box_px: float = 10.0
    miss_rate: float = 0.1
    false_positive_rate: float = 0.002
    confusion_rate: float = 0.02
    size_jitter: float = 0.1
    placement: str = "physical"
    overhead_rate: float = 0.3
    kerb_m: float = 4.0
    multipath_rate: float = 0.1
    accel_mps2: float = 1.5
    decel_mps2: float = 2.5
    turn_speed_mps: float = 6.0
    turn_arc_m: float = 12.0
    detour_rate: float = 0.05
    capture: str = "video"
    capture_spacing_m: float = 10.0
    capture_sigma_m: float = 1.0
    # the width street-level services serve their images at for processing (Mapillary's largest
    # thumbnail); full-size panoramas are wider, but detectors run on resized ones
    panorama_width_px: float = 2048.0
    imagery_bearing_sigma_deg: float = 2.0
    bearing_tail_rate: float = 0.2
    range_error_rel: float = 0.3
    added_rate: float = 0.02
    removed_rate: float = 0.02
    moved_rate: float = 0.02
    value_changed_rate: float = 0.03
    missing_road_rate: float = 0.04
    oneway_reversed_rate: float = 0.15
    closed_road_rate: float = 0.04

    def validate(self) -> SimConfig:
        """Raise :class:`ConfigError` naming the first impossible option."""
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("start_date", "placement", "capture"):
                continue
            name = f.name
            if name.endswith("_rate") or name == "size_jitter":
                if not 0.0 <= v <= 1.0:
                    msg = f"{name} must be in [0, 1]; found {v}"
                    raise ConfigError(msg, field=name)
            elif name in ("vehicles", "days"):
                if int(v) != v or v < 1:
                    msg = f"{name} must be a whole number >= 1; found {v}"
                    raise ConfigError(msg, field=name)
            elif name == "seed":
                if int(v) != v or v < 0:
                    msg = f"seed must be a whole number >= 0; found {v}"
                    raise ConfigError(msg, field='seed')
            elif name in ("trips_per_day", "lane_offset_m", "gps_sigma_m", "gps_bias_sigma_m", "min_trip_m", "kerb_m",
                          "capture_sigma_m", "turn_arc_m"):
                if not (np.isfinite(v) and v >= 0):
                    msg = f"{name} must be >= 0; found {v}"
                    raise ConfigError(msg, field=name)
            elif not (np.isfinite(v) and v > 0):
                msg = f"{name} must be > 0; found {v}"
                raise ConfigError(msg, field=name)
        if self.capture not in CAPTURES:
            msg = f"capture must be one of {', '.join(CAPTURES)}; found {self.capture!r}"
            raise ConfigError(msg, field='capture')
        if self.placement not in PLACEMENTS:
            msg = f"placement must be one of {', '.join(PLACEMENTS)}; found {self.placement!r}"
            raise ConfigError(msg, field='placement')
        try:
            pd.Timestamp(self.start_date)
        except ValueError:
            msg = f"start_date must be a date such as 2026-01-05; found {self.start_date!r}"
            raise ConfigError(msg, field='start_date') from None
        return self


@dataclass
class Simulation:
    """What :func:`simulate` makes: frames ready to write (see the module docstring)."""

    map_layers: dict
    traces: pd.DataFrame
    detections: pd.DataFrame
    camera: Camera
    changes: pd.DataFrame
    routes: pd.DataFrame
    fixes: pd.DataFrame
    objects: pd.DataFrame
    detection_truth: pd.DataFrame
    edges: pd.DataFrame
    meta: dict
    observations: pd.DataFrame | None = None  # street-level imagery: observations, not detections

    def write(self, out_dir, *, metadata: dict | None = None) -> None:
        """Write every file under the folder ``out_dir`` (local or s3://), which appears whole
        (see :func:`mapdiff.io.atomic_dir`); ``metadata`` labels its tables (a shard's)."""
        from mapdiff.io import atomic_dir, write_gpkg, write_table

        with atomic_dir(out_dir) as out:
            write_gpkg(self.map_layers, f"{out}/map.gpkg")
            for name, frame in self.tables().items():
                write_table(frame, f"{out}/{name}.parquet", metadata=metadata)
            _write_texts(out, self.camera, self.meta)

    def tables(self) -> dict:
        """The Parquet files of the folder by name (without the suffix)."""
        seen = {"observations": self.observations} if self.observations is not None else {
            "detections": self.detections}
        return {"traces": self.traces, **seen, **{f"truth/{name}": frame for name, frame in (
            ("changes", self.changes), ("routes", self.routes), ("fixes", self.fixes), ("objects", self.objects),
            ("detections", self.detection_truth), ("edges", self.edges))}}


def _write_texts(out: str, camera: Camera, meta: dict) -> None:
    """The camera and the run's meta data into a simulation folder being written (local)."""
    for name, text in (("camera.json", camera.to_json()),
                       ("truth/meta.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")):
        with open(f"{out}/{name}", "w") as f:
            f.write(text)


# ---------------------------------------------------------------------------------------------
# the world and the stale map


def _roads(edges: pd.DataFrame) -> pd.Series:
    """A road id per edge row: the two directions of a street share it
    (:func:`mapdiff.network.street_ids`)."""
    from mapdiff.network import street_ids

    codes = street_ids(edges["u"].to_numpy(), edges["v"].to_numpy(), edges.geometry.length.to_numpy())
    return pd.Series(codes, index=edges.index)


def _pick(rng, pool, rate) -> np.ndarray:
    """``round(rate * len(pool))`` members of ``pool``, without replacement."""
    pool = np.asarray(pool)
    n = int(round(rate * len(pool)))
    return rng.choice(pool, size=min(n, len(pool)), replace=False) if n else pool[:0]


def plant_changes(edges, features, config: SimConfig, rng):
    """Split the input map into the true world and a stale map that differs from it.

    ``edges`` and ``features`` are in local metres. Returns (world_edges, map_edges,
    world_objects, map_features, changes) with changes in local metres.
    """
    import geopandas as gpd
    import shapely

    crs = edges.crs
    road = _roads(edges)
    uv_loop = edges["u"].to_numpy() == edges["v"].to_numpy()
    sizes = road.value_counts()
    roads = np.sort(road[~uv_loop].unique())
    oneway_roads = np.sort(sizes.index[sizes == 1].intersection(roads).to_numpy())
    rows = []
    flipped = _pick(rng, oneway_roads, config.oneway_reversed_rate)
    rest = np.setdiff1d(roads, flipped)
    missing = _pick(rng, rest, config.missing_road_rate)
    rest = np.setdiff1d(rest, missing)
    closed = _pick(rng, rest, config.closed_road_rate)
    for kind, chosen in (("oneway_reversed", flipped), ("road_missing", missing), ("road_closed", closed)):
        for r in np.sort(chosen):
            part = edges[road.to_numpy() == r]
            rows.append({"kind": kind, "class": "road", "edge_ids": part["edge_id"].astype(np.int64).tolist(),
                         "geometry": part.geometry.iloc[0]})
    world_edges = edges[~road.isin(closed)].copy()
    map_edges = edges[~road.isin(missing)].copy()
    flip = road.loc[map_edges.index].isin(flipped).to_numpy()
    if flip.any():
        u = map_edges["u"].to_numpy().copy()
        map_edges.loc[flip, "u"] = map_edges.loc[flip, "v"].to_numpy()
        map_edges.loc[flip, "v"] = u[flip]
        map_edges.loc[flip, "geometry"] = shapely.reverse(map_edges.geometry[flip].values)

    objects = features.copy()
    objects["object_id"] = objects["feature_id"].astype(np.int64)
    jitter = 1.0 + config.size_jitter * rng.uniform(-1.0, 1.0, len(objects))
    shapes = np.array([class_shape(c) for c in objects["class"]]).reshape(-1, 3)
    objects["z_m"] = shapes[:, 0]
    objects["height_m"] = shapes[:, 1] * jitter
    objects["width_m"] = shapes[:, 2] * jitter
    map_feats = features.copy()
    ids = features["feature_id"].to_numpy()
    lookup = _road_lookup(edges)
    junction_of = _junction_signals(features, lookup)
    # no feature is added whose twin (another of its class within TWIN_M: a crossing mapped on
    # both ways a footway crosses) the map keeps: the twin's poles stand where the added one's
    # do, and no street shows the change (as for removals, below); a junction's signals are
    # added as the junction
    twins = _twinned(features, TWIN_M)
    addable = np.union1d(np.setdiff1d(ids, twins), junction_of.index.to_numpy())
    added = _pick(rng, addable, config.added_rate * len(ids) / max(len(addable), 1))
    # a junction is signalled on all its approaches at once, and OSM maps its signals as the
    # junction's (its node, or its approaches' stop lines): one approach's signal missing from a
    # map that has the junction's others is no change the street shows, so an addition takes
    # the junction's signals together
    with_junction = junction_of[junction_of.index.isin(added)].unique()
    added = np.union1d(added, junction_of.index[junction_of.isin(with_junction)].to_numpy())
    pool = np.setdiff1d(ids, added)
    # a junction's signals have no wrong place along a road: OSM's place for them is the node, or
    # the approach way (a stale map that has them 5 m up an approach is not wrong), whether the
    # world's poles stand at the kerb or on the node (nor has a signal a kerb beyond its radius:
    # JUNCTION_KERB_M). Nor a feature with a twin: its poles stand where the twin's do, and the
    # street shows no move, only a stale node without a pole (as for removals, below)
    near_junction = _junction_signals(features, lookup, JUNCTION_RADIUS_M + JUNCTION_KERB_M).index.to_numpy()
    movable = np.setdiff1d(pool, np.r_[near_junction, twins])
    moved = _pick(rng, movable, config.moved_rate * len(pool) / max(len(movable), 1))
    pool = np.setdiff1d(pool, moved)
    has_value = features.set_index("feature_id")["value"].reindex(pool).notna().to_numpy()
    changed = _pick(rng, pool[has_value], config.value_changed_rate)
    by_id = map_feats.set_index("feature_id", drop=False)
    values_of = {c: sorted(set(g.dropna())) for c, g in features.groupby("class")["value"]}
    for fid in np.sort(added):
        f = by_id.loc[fid]
        rows.append({"kind": "object_added", "class": f["class"], "object_id": int(fid),
                     "new_value": f["value"], "geometry": f.geometry})
    visible = _stale_place_check(features, lookup)
    row_of = pd.Series(np.arange(len(features)), index=features["feature_id"].to_numpy())
    for fid in np.sort(moved):
        f = by_id.loc[fid]
        for _ in range(MOVE_TRIES):
            dist = float(np.exp(rng.uniform(np.log(3.0), np.log(40.0))))
            old, dist = _misplaced(f.geometry, dist, lookup, rng)
            if visible(old, row_of[fid]):
                break
        else:
            continue  # no stale place a street could tell from the map's other features: unchanged
        by_id.loc[fid, "geometry"] = old
        rows.append({"kind": "object_moved", "class": f["class"], "feature_id": int(fid), "object_id": int(fid),
                     "old_value": f["value"], "new_value": f["value"], "distance_m": dist, "geometry": f.geometry})
    for fid in np.sort(changed):
        f = by_id.loc[fid]
        others = [v for v in (values_of.get(f["class"], []) if len(values_of.get(f["class"], [])) > 1
                              else SPEED_LIMITS_KMH) if v != f["value"]]
        old = others[rng.integers(len(others))]
        by_id.loc[fid, "value"] = old
        rows.append({"kind": "value_changed", "class": f["class"], "feature_id": int(fid), "object_id": int(fid),
                     "old_value": old, "new_value": f["value"], "geometry": f.geometry})
    # taken down: the map keeps a feature whose pole the street no longer has. Drawn from the
    # map's own features like the other kinds, so removals stand where features stand (busy
    # roads, junction approaches, crossings) and are as often seen as they are: the judgment's
    # calibrations assume the share of changes does not depend on the evidence, and removals
    # invented beside random roads (as first simulated) fell mostly on quiet ones. Not a
    # junction's signals (judged as a junction, as for moves), nor a feature with another of its
    # class within TWIN_M (a crossing mapped on both ways a footway crosses, two signs on one
    # post): the other's pole stands where the removed one stood and no street shows the change
    pool = np.setdiff1d(pool, changed)
    removable = np.setdiff1d(pool, np.r_[junction_of.index.to_numpy(), twins])
    removed = _pick(rng, removable, config.removed_rate * len(features) / max(len(removable), 1))
    for fid in np.sort(removed):
        f = by_id.loc[fid]
        rows.append({"kind": "object_removed", "class": f["class"], "feature_id": int(fid),
                     "old_value": f["value"], "geometry": f.geometry})
    objects = objects[~objects["feature_id"].isin(removed)].reset_index(drop=True)
    map_feats = by_id[~by_id["feature_id"].isin(added)].reset_index(drop=True)
    map_feats = gpd.GeoDataFrame(map_feats, geometry="geometry", crs=crs)
    changes = pd.DataFrame(rows, columns=["kind", "class", "feature_id", "object_id", "edge_ids", "old_value",
                                          "new_value", "distance_m", "geometry"])
    changes["kind"] = pd.Categorical(changes["kind"], categories=list(CHANGE_KINDS))
    changes = changes.sort_values("kind", kind="stable").reset_index(drop=True)
    changes.insert(0, "change_id", np.arange(len(changes), dtype=np.int64))
    for col in ("feature_id", "object_id"):
        changes[col] = changes[col].astype("Int64")
    changes["edge_ids"] = changes["edge_ids"].map(lambda v: v if isinstance(v, list) else [])
    changes["distance_m"] = changes["distance_m"].astype(float)
    changes = gpd.GeoDataFrame(changes, geometry="geometry", crs=crs)
    return world_edges, map_edges, objects, map_feats, changes


def _stale_place_check(features, lookup):
    """A test of stale places (see :func:`plant_changes`'s moves), built once: ``visible(old,
    row)``, whether a stale map that has feature ``row`` (its position in ``features``) at
    ``old`` shows a move a street can tell. Not within ``TWIN_M`` of another feature of its class
    and value (the map would then hold one sign twice, OSM's second node of it), nor, for
    signals, near a junction (see ``JUNCTION_KERB_M``)."""
    from scipy.spatial import cKDTree

    xy = np.c_[features.geometry.x, features.geometry.y]
    identity = pd.factorize(pd.MultiIndex.from_arrays([features["class"].astype(str),
                                                        features["value"].astype(object).fillna("")]))[0]
    tree = cKDTree(xy)
    junctions = lookup[2][["x", "y"]].to_numpy()
    junction_tree = cKDTree(junctions) if len(junctions) else None
    signals = (features["class"] == "traffic_signals").to_numpy()

    def visible(old, row) -> bool:
        near = np.asarray(tree.query_ball_point([old.x, old.y], TWIN_M), dtype=np.int64)
        if ((identity[near] == identity[row]) & (near != row)).any():
            return False
        if signals[row] and junction_tree is not None:
            return float(junction_tree.query([old.x, old.y])[0]) > JUNCTION_RADIUS_M + JUNCTION_KERB_M
        return True

    return visible


def _junction_signals(features, lookup, radius_m: float = JUNCTION_RADIUS_M) -> pd.Series:
    """The traffic signals a junction's: mapped on its node or up an approach within
    ``radius_m`` of it. Feature id -> junction node."""
    _tree, _lines, junctions = lookup
    sig = features[features["class"] == "traffic_signals"]
    if len(sig) == 0 or len(junctions) == 0:
        return pd.Series(np.zeros(0, dtype=np.int64), index=pd.Index(np.zeros(0, dtype=np.int64)))
    from scipy.spatial import cKDTree

    d, k = cKDTree(junctions[["x", "y"]].to_numpy()).query(np.c_[sig.geometry.x, sig.geometry.y])
    near = d <= radius_m
    return pd.Series(junctions.index.to_numpy()[k[near]], index=sig["feature_id"].to_numpy()[near])


def _twinned(features, radius_m: float) -> np.ndarray:
    """The feature ids with another feature of their class within ``radius_m``."""
    from scipy.spatial import cKDTree

    if len(features) < 2:
        return np.zeros(0, dtype=np.int64)
    i, j = cKDTree(np.c_[features.geometry.x, features.geometry.y]).query_pairs(
        radius_m, output_type="ndarray").T.reshape(2, -1)
    cls = features["class"].astype(str).to_numpy()
    same = cls[i] == cls[j]
    return np.unique(features["feature_id"].to_numpy()[np.r_[i[same], j[same]]])


def _misplaced(point, dist, lookup, rng):
    """Where a stale map has a feature ``dist`` metres off: along its road when it is mapped on
    one (a node misplaced along the way: a shift across the road is only another mapping
    convention), else in a random direction. Returns the point and the distance it moved."""
    import shapely

    tree, lines, _junctions = lookup
    idx = tree.query_nearest(point, all_matches=False) if len(lines) else []
    line = lines[int(idx[0])] if len(idx) else None
    if line is not None and line.distance(point) <= ON_ROAD_M and line.length > 6.0:
        s = line.project(point)
        step = dist if rng.random() < 0.5 else -dist
        if not 0.0 <= s + step <= line.length:
            step = -step
        target = min(max(s + step, 0.0), line.length)
        moved = line.interpolate(target)
        offset = (point.x - line.interpolate(s).x, point.y - line.interpolate(s).y)
        new = shapely.Point(moved.x + offset[0], moved.y + offset[1])
        return new, float(new.distance(point))
    ang = rng.uniform(0, 2 * np.pi)
    return shapely.Point(point.x + dist * np.cos(ang), point.y + dist * np.sin(ang)), dist


def _road_lookup(edges):
    """Nearest-road queries on edges in metres: (STRtree, lines, junction node points)."""
    import shapely

    lines = edges.geometry.values
    tree = shapely.STRtree(lines)
    start = shapely.get_point(lines, 0)
    end = shapely.get_point(lines, -1)
    nodes = pd.DataFrame({"node": np.r_[edges["u"].to_numpy(), edges["v"].to_numpy()],
                          "other": np.r_[edges["v"].to_numpy(), edges["u"].to_numpy()],
                          "x": np.r_[shapely.get_x(start), shapely.get_x(end)],
                          "y": np.r_[shapely.get_y(start), shapely.get_y(end)]})
    degree = nodes[nodes["node"] != nodes["other"]].drop_duplicates(["node", "other"]).groupby("node").size()
    at = nodes.drop_duplicates("node").set_index("node")
    junctions = at.loc[degree.index[degree >= 3]]
    return tree, lines, junctions


def _along(line, s, lateral):
    """The point ``lateral`` metres right of ``line`` at ``s`` metres along it, and the
    direction of travel there (compass degrees)."""
    length = line.length
    a = line.interpolate(max(0.0, min(s, length) - 0.5))
    b = line.interpolate(min(length, max(s, 0.0) + 0.5))
    dx, dy = b.x - a.x, b.y - a.y
    norm = np.hypot(dx, dy) or 1.0
    dx, dy = dx / norm, dy / norm
    p = line.interpolate(min(max(s, 0.0), length))
    return p.x + lateral * dy, p.y - lateral * dx, float(np.degrees(np.arctan2(dx, dy)) % 360.0)


def place_objects(objects, edges, config: SimConfig, rng, *, changes=None):
    """Where the world's objects physically stand, from the features OSM's way (``objects``:
    one row per true feature on its map node, metres). Returns one row per physical object
    (a pole, a sign), with ``feature_id`` (the map feature it belongs to) and ``facing_deg``
    (the compass direction its face looks to: it is seen by traffic coming from there; NaN:
    from everywhere).

    - ``traffic_signals`` on a junction node (three or more roads): a pole ``STOP_LINE_M``
      before the node on every approach, at the kerb (``kerb_m`` right of the centre line), or
      for ``overhead_rate`` of them on a mast arm above the lane;
    - other signals on a road: a pole at the kerb of each direction;
    - ``crossing`` on a road: a sign on each kerb (each direction's, or both of a one-way);
    - any other sign on a road: at the kerb of the direction approaching the nearer end of
      the road (the junction it regulates), facing that traffic;
    - a point mapped off the road (``ON_ROAD_M``) already stands where the mapper put it.

    Poles of several features that stand on one spot (see ``SAME_SPOT_M``) are one, which
    belongs to a feature the map has where there is one (``changes``: the planted changes, with
    ``kind`` and ``object_id``): the map's duplicate explains it, so its addition changed nothing
    on the street. ``feature_ids`` lists the features of each (its ``feature_id`` first). A
    feature moved or given another value in the map keeps its own pole: the street has it where
    and as the change says.

    ``placement="osm"`` keeps every object on its node, seen from everywhere.
    """
    import geopandas as gpd
    import shapely

    out = objects.copy()
    out["feature_id"] = out["object_id"].to_numpy()
    out["facing_deg"] = np.nan
    out["feature_ids"] = [[f] for f in out["feature_id"]]
    if config.placement == "osm" or len(objects) == 0 or len(edges) == 0:
        return out
    tree, lines, junctions = _road_lookup(edges)
    pts = objects.geometry.values
    near, dist = tree.query_nearest(pts, return_distance=True, all_matches=False)
    nearest = np.full(len(objects), -1)
    gap = np.full(len(objects), np.inf)
    nearest[near[0]] = near[1]
    gap[near[0]] = dist
    if len(junctions):
        from scipy.spatial import cKDTree

        j_dist, j_idx = cKDTree(junctions[["x", "y"]].to_numpy()).query(np.c_[shapely.get_x(pts), shapely.get_y(pts)])
    else:
        j_dist, j_idx = np.full(len(objects), np.inf), np.zeros(len(objects), np.int64)
    u, v = edges["u"].to_numpy(), edges["v"].to_numpy()
    by_pair = {}
    for k, (a, b) in enumerate(zip(u, v)):
        by_pair.setdefault((a, b), k)
    incoming = pd.Series(np.arange(len(edges))).groupby(v).apply(list).to_dict()
    rows = []
    for r, base in enumerate(objects.to_dict("records")):
        cls = base["class"]
        poles = []  # (x, y, facing, overhead)
        if cls == "traffic_signals" and j_dist[r] <= ON_ROAD_M:
            node = junctions.index[j_idx[r]]
            for k in incoming.get(node, []):
                line = lines[k]
                x, y, heading = _along(line, line.length - min(STOP_LINE_M, line.length / 2), config.kerb_m)
                overhead = rng.random() < config.overhead_rate
                if overhead:
                    x, y, heading = _along(line, line.length - min(STOP_LINE_M, line.length / 2), config.lane_offset_m)
                poles.append((x, y, (heading + 180.0) % 360.0, overhead))
        elif gap[r] <= ON_ROAD_M:
            e = nearest[r]
            ways = [e] + ([by_pair[(v[e], u[e])]] if (v[e], u[e]) in by_pair and v[e] != u[e] else [])
            spots = [(k, lines[k].project(pts[r])) for k in ways]
            if cls in ("traffic_signals", "crossing"):
                sides = [(k, sk, config.kerb_m) for k, sk in spots]
                if cls == "crossing" and len(spots) == 1:  # a one-way street: both kerbs
                    sides.append((spots[0][0], spots[0][1], -config.kerb_m))
            else:  # the approach to the nearer end: the direction with the least road left
                k, sk = min(spots, key=lambda ks: lines[ks[0]].length - ks[1])
                sides = [(k, sk, config.kerb_m)]
            for k, sk, lateral in sides:
                x, y, heading = _along(lines[k], sk, lateral)
                poles.append((x, y, (heading + 180.0) % 360.0, False))
        if not poles:
            poles = [(pts[r].x, pts[r].y, np.nan, False)]
        for x, y, facing, overhead in poles:
            row = dict(base)
            row.update(geometry=shapely.Point(x, y), facing_deg=facing, feature_id=base["object_id"])
            if overhead:
                row["z_m"] = OVERHEAD_Z_M
            rows.append(row)
    placed = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=objects.crs)
    changes = changes if changes is not None else pd.DataFrame({"kind": [], "object_id": []})
    ids = changes["object_id"].to_numpy()
    keep, group = _one_per_spot(placed, added=ids[(changes["kind"] == "object_added").to_numpy()],
                                apart=ids[changes["kind"].isin(["object_moved", "value_changed"]).to_numpy()])
    fids = placed["feature_id"].to_numpy()
    others = pd.Series(fids).groupby(group).agg(lambda f: list(dict.fromkeys(f)))
    placed = placed[keep].assign(feature_ids=[[f, *(o for o in others[g] if o != f)]
                                              for f, g in zip(fids[keep], group[keep])]).reset_index(drop=True)
    placed["object_id"] = np.arange(len(placed), dtype=np.int64)
    return placed


def _one_per_spot(placed, *, added, apart):
    """Which physical objects to keep: one of each group standing on one spot (one class and
    value, facing the same way, height, within ``SAME_SPOT_M``; the features ``apart`` stand
    apart), a feature's not ``added`` first, then the first. Returns (keep, each object's
    group)."""
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(placed)
    xy = np.c_[shapely.get_x(placed.geometry.values), shapely.get_y(placed.geometry.values)]
    i, j = cKDTree(xy).query_pairs(SAME_SPOT_M, output_type="ndarray").T.reshape(2, -1)
    ident = placed.groupby(["class", "value"], dropna=False, sort=False).ngroup().to_numpy()
    face = placed["facing_deg"].to_numpy(float)
    turn = np.abs((face[i] - face[j] + 180.0) % 360.0 - 180.0)
    facing = (np.isnan(face[i]) & np.isnan(face[j])) | (turn <= SAME_FACING_DEG)
    fid = placed["feature_id"].to_numpy()
    one = (ident[i] == ident[j]) & facing & np.isclose(placed["z_m"].to_numpy(float)[i],
                                                       placed["z_m"].to_numpy(float)[j])
    one &= ~np.isin(fid[i], apart) & ~np.isin(fid[j], apart)
    _, group = connected_components(coo_matrix((np.ones(one.sum()), (i[one], j[one])), shape=(n, n)), directed=False)
    order = np.lexsort((np.arange(n), np.isin(fid, added), group))
    keep = np.zeros(n, dtype=bool)
    keep[order[np.r_[True, group[order][1:] != group[order][:-1]]]] = True
    return keep, group


# ---------------------------------------------------------------------------------------------
# the fleet


@dataclass
class _Roads:
    """The world's road graph for routing: real edges only (no wrong-way twins)."""

    net: object
    out_ptr: np.ndarray
    out_edge: np.ndarray
    speed: np.ndarray
    reverse: np.ndarray  # per edge: the edge back along the same road, or -1
    nodes: np.ndarray  # the nodes of the largest strongly connected part
    node_x: np.ndarray
    node_y: np.ndarray
    lane_m: np.ndarray  # per edge: how far right of the centre line a car drives


def _road_graph(world_edges, config: SimConfig) -> _Roads:
    import networkx as nx

    from mapdiff.network import Network

    net = Network.from_edges(world_edges, source="world")
    n = net.n_edges
    eu, ev = net.edge_u[:n], net.edge_v[:n]
    out_edge = np.argsort(eu, kind="stable").astype(np.int64)
    out_ptr = np.zeros(net.n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(eu, minlength=net.n_nodes), out=out_ptr[1:])
    back = {}
    for e in range(n):
        back.setdefault((int(eu[e]), int(ev[e])), e)
    reverse = np.array([back.get((int(ev[e]), int(eu[e])), -1) for e in range(n)], dtype=np.int64)
    reverse[eu == ev] = -1
    G = nx.DiGraph()
    G.add_edges_from(zip(eu.tolist(), ev.tolist()))
    biggest = max(nx.strongly_connected_components(G), key=len) if n else set()
    node_x, node_y = net.node_xy()
    lane = np.where(reverse >= 0, config.lane_offset_m, 0.0)
    return _Roads(net, out_ptr, out_edge, free_flow_speed_mps(world_edges.reset_index(drop=True)), reverse,
                  np.array(sorted(biggest), dtype=np.int64), node_x, node_y, lane)


def _signal_nodes(roads: _Roads, objects) -> np.ndarray:
    """Nodes with a traffic signal within 20 m: cars may stop there."""
    sig = objects[objects["class"] == "traffic_signals"]
    near = np.zeros(roads.net.n_nodes, dtype=bool)
    if len(sig):
        from scipy.spatial import cKDTree

        tree = cKDTree(np.c_[sig.geometry.x, sig.geometry.y])
        d, _ = tree.query(np.c_[roads.node_x, roads.node_y])
        near = d < 20.0
    return near


def _draw_trips(roads: _Roads, config: SimConfig, rng, v: int):
    """Per trip of vehicle ``v``: vehicle, day, and its legs (node pairs), with an optional U-turn edge."""
    two_way = np.flatnonzero((roads.reverse >= 0) & np.isin(roads.net.edge_u[: roads.net.n_edges], roads.nodes))
    trips = []
    for d in range(config.days):
        for k in range(rng.poisson(config.trips_per_day)):
            o, dst = rng.choice(roads.nodes, 2, replace=len(roads.nodes) < 2)
            r = rng.random()
            if r < config.uturn_rate and len(two_way):
                e = int(rng.choice(two_way))
                mid = int(roads.net.edge_u[e])
                trips.append((v, d, k, [(o, mid), (mid, dst)], e, rng.uniform(0.3, 0.7)))
            elif r < config.uturn_rate + config.loop_rate:
                w = rng.choice(roads.nodes)
                trips.append((v, d, k, [(o, w), (w, dst)], -1, 0.0))
            else:
                trips.append((v, d, k, [(o, dst)], -1, 0.0))
    return trips


def _pieces(trips, legs_edges, legs_ptr, legs_ok, roads: _Roads, signal_node, config: SimConfig, rng):
    """Drive each trip: pieces (edge or off-road line, offsets, durations) per trip."""
    net = roads.net
    elen = net.edge_len
    kept, cols = [], {k: [] for k in ("edge", "s0", "s1", "dur", "ax", "ay", "bx", "by", "lane")}
    ptr = [0]

    def add(e, s0, s1, dur, ax=np.nan, ay=np.nan, bx=np.nan, by=np.nan):
        for key, val in zip(cols, (e, s0, s1, dur, ax, ay, bx, by, roads.lane_m[e] if e >= 0 else 0.0)):
            cols[key].append(val)

    leg = 0
    for ti, (_v, _d, k, legs, uturn_edge, frac) in enumerate(trips):
        nl = len(legs)
        ok = legs_ok[leg:leg + nl].all()
        route = [legs_edges[legs_ptr[j]:legs_ptr[j + 1]] for j in range(leg, leg + nl)]
        leg += nl
        if not ok:
            continue
        if uturn_edge >= 0:
            route.insert(1, None)  # the U-turn goes between the two legs
        length = sum(elen[r].sum() for r in route if r is not None)
        if length < config.min_trip_m:
            continue
        factor = float(np.clip(rng.normal(0.9, 0.1), 0.6, 1.15))
        start = len(cols["edge"])
        first_edge = next(int(r[0]) for r in route if r is not None and len(r))
        detour = rng.random() < config.detour_rate
        if rng.random() < config.offroad_rate:
            _offroad(add, net, first_edge, 0.0, rng, arrive=True)
        for r in route:
            if r is None:  # into the edge, turn on the spot, back the other way
                e, back = uturn_edge, roads.reverse[uturn_edge]
                s = frac * elen[e]
                add(e, 0.0, s, s / (roads.speed[e] * factor * 0.5))
                add(e, s, s, rng.uniform(2.0, 6.0))
                add(back, elen[back] - s, elen[back], s / (roads.speed[back] * factor * 0.5))
                continue
            for k, e in enumerate(r):
                add(int(e), 0.0, elen[e], elen[e] / max(roads.speed[e] * factor, 2.0))
                if signal_node[net.edge_v[e]] and rng.random() < config.signal_stop_rate:
                    add(int(e), elen[e], elen[e], rng.uniform(5.0, 45.0))
                if detour and r is route[-1] and k == len(r) // 2 and len(r) >= 3:
                    _detour(add, net, int(e), rng)
        last_edge = cols["edge"][-1]
        if rng.random() < config.offroad_rate:
            _offroad(add, net, last_edge, elen[last_edge], rng, arrive=False)
        if len(cols["edge"]) > start:
            kept.append(ti)
            ptr.append(len(cols["edge"]))
    arrays = {k: np.asarray(v, dtype=np.int64 if k == "edge" else np.float64) for k, v in cols.items()}
    return kept, np.asarray(ptr, dtype=np.int64), arrays


def _multipath(x, y, heading, t, ptr, start, dur, config: SimConfig, rng):
    """Multipath stretches, in place: in ``multipath_rate`` of the trips, the fixes of one
    window of 10-60 s run 20-80 m off to one side of the way the car was heading when it began
    (ramping in and out over 3 s, as a reflection takes over and lets go). Returns the flags."""
    flag = np.zeros(len(t), dtype=bool)
    for i in np.flatnonzero(rng.random(len(start)) < config.multipath_rate):
        length = rng.uniform(10.0, 60.0)
        t0 = start[i] + rng.uniform(0.0, max(dur[i] - length, 0.0))
        q = np.arange(ptr[i], ptr[i + 1])
        inside = q[(t[q] >= t0) & (t[q] < t0 + length)]
        if len(inside) == 0:
            continue
        off = rng.uniform(20.0, 80.0) * rng.choice([-1.0, 1.0])
        h = np.radians(heading[inside[0]])
        ramp = np.clip(np.minimum(t[inside] - t0, t0 + length - t[inside]) / 3.0, 0.0, 1.0)
        x[inside] += off * np.cos(h) * ramp  # right of a heading (sin h, cos h) is (cos h, -sin h)
        y[inside] -= off * np.sin(h) * ramp
        flag[inside] = True
    return flag


def _in_tunnel(world_edges, edge_index) -> np.ndarray:
    """Per fix (world edge row, -1 off the network), whether it falls in a tunnel: no fix there."""
    from mapdiff.network import tunnel_edges

    tunnel = tunnel_edges(world_edges)
    return (edge_index >= 0) & tunnel[np.maximum(edge_index, 0)] if len(tunnel) else np.zeros(len(edge_index), bool)


def _detour(add, net, e, rng):
    """A stop off the network at the end of edge ``e`` (a car park, a fuel station): a straight
    drive 30-80 m off to one side, 1-5 minutes there, and back to the same point."""
    from mapdiff._kernels.geometry import point_on_edge

    x, y, hx, hy = point_on_edge(e, net.edge_len[e], net.vx, net.vy, net.vcum, net.vptr)
    dist = rng.uniform(30.0, 80.0)
    side = rng.choice([-1.0, 1.0])
    px, py = x + side * dist * hy, y - side * dist * hx
    add(-1, np.nan, np.nan, dist / 3.0, x, y, px, py)
    add(-1, np.nan, np.nan, rng.uniform(60.0, 300.0), px, py, px, py)
    add(-1, np.nan, np.nan, dist / 3.0, px, py, x, y)


def _offroad(add, net, e, s, rng, *, arrive):
    """A straight drive between the network and a point 40-150 m off it (a car park)."""
    from mapdiff._kernels.geometry import point_on_edge

    x, y, hx, hy = point_on_edge(e, s, net.vx, net.vy, net.vcum, net.vptr)
    dist = rng.uniform(40.0, 150.0)
    side = rng.choice([-1.0, 1.0])
    px, py = x + side * dist * hy, y - side * dist * hx
    dur = dist / 3.0
    if arrive:
        add(-1, np.nan, np.nan, dur, px, py, x, y)
    else:
        add(-1, np.nan, np.nan, dur, x, y, px, py)


def _piece_times(start, ptr, dur):
    """Start and end time of each piece, the pieces of trip ``i`` (``ptr[i]:ptr[i+1]``) following
    one another from ``start[i]``."""
    trip = np.repeat(np.arange(len(start)), np.diff(ptr))
    cum = np.cumsum(dur)
    t1 = start[trip] + cum - np.r_[0.0, cum][ptr[:-1]][trip]
    return t1 - dur, t1


def _regular_times(start, end, step, phase):
    """Times ``start + phase + k * step`` up to ``end`` per trip, flattened, with the trip pointer."""
    count = np.maximum(np.floor((end - start - phase) / step).astype(np.int64) + 1, 0)
    ptr = np.zeros(len(start) + 1, dtype=np.int64)
    np.cumsum(count, out=ptr[1:])
    trip = np.repeat(np.arange(len(start)), count)
    k = np.arange(ptr[-1]) - ptr[trip]
    return (start + phase)[trip] + k * step, ptr, trip


def _object_grid(x, y, cell_m):
    x0, y0 = (x.min() - 1.0, y.min() - 1.0) if len(x) else (0.0, 0.0)
    nx = int((x.max() - x0) // cell_m) + 1 if len(x) else 1
    ny = int((y.max() - y0) // cell_m) + 1 if len(y) else 1
    cell = ((y - y0) // cell_m).astype(np.int64) * nx + ((x - x0) // cell_m).astype(np.int64)
    order = np.argsort(cell, kind="stable").astype(np.int64)
    ptr = np.zeros(nx * ny + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell, minlength=nx * ny), out=ptr[1:])
    return (float(x0), float(y0), float(cell_m), nx, ny, ptr, order)


def vehicle_id(v: int) -> str:
    """The id of the fleet's vehicle number ``v`` (0-based)."""
    return f"v{v:05d}"


@dataclass(frozen=True)
class _World:
    """What every vehicle drives in: the true roads and objects, and the projection."""

    roads: _Roads
    world_edges: pd.DataFrame
    world_ids: np.ndarray
    signal_node: np.ndarray
    objects: pd.DataFrame
    proj: object
    camera: Camera


def _concat(frames):
    """The vehicles' frames as one; ids as categoricals again (one string per trip, not per row:
    Parquet stores them as dictionaries), their categories sorted as one vehicle's are."""
    full = [f for f in frames if len(f)] or frames[:1]
    out = pd.concat(full, ignore_index=True) if len(full) > 1 else full[0].reset_index(drop=True)
    for col in ("trip_id", "vehicle_id"):
        if col in out and not isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(str).astype("category")
    return out


def _drive(v: int, world: _World, config: SimConfig) -> dict:
    """Vehicle ``v``'s trips, fixes, routes and detections (its detection ids ``v << 32`` on)."""
    from mapdiff._kernels.graph import route_legs
    from mapdiff._kernels.simulate import detect, gps_noise, poses, ramps, turned_headings

    roads, net, world_edges, world_ids = world.roads, world.roads.net, world.world_edges, world.world_ids
    signal_node, objects, proj, camera = world.signal_node, world.objects, world.proj, world.camera
    # each vehicle its own random streams (numpy's, and the kernels' seed): a subset of the
    # vehicles (a shard) gives exactly their rows of the whole fleet
    rng = np.random.default_rng([config.seed, 1, v])
    seed = int(np.random.SeedSequence([config.seed, 2, v]).generate_state(1)[0] % (1 << 30))
    trips = _draw_trips(roads, config, rng, v)
    src = np.array([a for t in trips for a, _ in t[3]], dtype=np.int64)
    dst = np.array([b for t in trips for _, b in t[3]], dtype=np.int64)
    weight = net.edge_len[: net.n_edges] / roads.speed
    legs_edges, legs_ptr, legs_ok = route_legs(src, dst, net.n_nodes, roads.out_ptr, roads.out_edge,
                                               net.edge_u, net.edge_v, weight)
    kept, pptr, pc = _pieces(trips, legs_edges, legs_ptr, legs_ok, roads, signal_node, config, rng)
    trips = [trips[i] for i in kept]
    n_trips = len(trips)
    # the car speeds up, brakes and turns as cars do: pieces of constant acceleration (``sub``)
    # for the poses; each piece's duration is the sum of its parts'
    net_arrays = (net.vx, net.vy, net.vcum, net.vptr)
    kin = (config.accel_mps2, config.decel_mps2, config.turn_speed_mps, TURN_DEG)
    *parts, source = ramps(pptr, pc["edge"], pc["s0"], pc["s1"], pc["dur"], pc["ax"], pc["ay"], pc["bx"], pc["by"],
                           net_arrays, kin)
    sub = dict(zip(("edge", "s0", "s1", "dur", "ax", "ay", "bx", "by", "shape"), parts))
    sub["lane"] = pc["lane"][source]
    pc["dur"] = np.bincount(source, weights=sub["dur"], minlength=len(pc["dur"]))
    sptr = np.searchsorted(source, pptr).astype(np.int64)

    # times: trips of a vehicle-day follow each other with idle gaps, from a morning start
    dur = np.add.reduceat(pc["dur"], pptr[:-1]) if n_trips else np.zeros(0)
    day0 = (pd.Timestamp(config.start_date, tz="UTC") - EPOCH).total_seconds()
    start = np.empty(n_trips)
    prev_key, clock = None, 0.0
    for i, (_, d, _k, *_rest) in enumerate(trips):
        if d != prev_key:  # (one vehicle's trips: a new day)
            clock = day0 + d * 86400.0 + rng.uniform(5.0, 9.0) * 3600.0
            prev_key = d
        start[i] = np.round(clock, 3)
        clock = start[i] + dur[i] + rng.uniform(120.0, 1800.0)
    trip_of_piece = np.repeat(np.arange(n_trips), np.diff(pptr))
    p_t0, p_t1 = _piece_times(start, pptr, pc["dur"])
    s_t0, s_t1 = _piece_times(start, sptr, sub["dur"])
    end = start + dur
    # ids as categoricals: one string per trip, not per row (Parquet stores them as dictionaries)
    trip_ids = pd.Categorical([f"{vehicle_id(v)}-d{d:03d}-t{k:03d}" for v, d, k, *_r in trips])
    vehicle_ids = pd.Categorical([vehicle_id(v) for v, *_r in trips])

    def pose_at(t, tptr):
        return poses(sptr, sub["edge"], sub["s0"], sub["s1"], s_t0, s_t1, sub["ax"], sub["ay"], sub["bx"], sub["by"],
                     sub["lane"], sub["shape"], tptr, t, *net_arrays)

    # GPS fixes
    phase = np.round(rng.uniform(0.0, config.sample_interval_s, n_trips), 3)
    t_fix, fptr, ftrip = _regular_times(start, end, config.sample_interval_s, phase)
    x, y, heading, fedge, foff = pose_at(t_fix, fptr)
    nx_, ny_, outlier = gps_noise(fptr, t_fix, x, y, seed, config.gps_sigma_m, config.gps_bias_sigma_m,
                                  config.gps_bias_tau_s, config.outlier_rate, 20.0, 100.0)
    multipath = _multipath(nx_, ny_, heading, t_fix, fptr, start, dur, config, rng)
    keep = ~_in_tunnel(world_edges, fedge)
    dropped = rng.random(n_trips) < config.dropout_rate
    gap = rng.uniform(10.0, 60.0, n_trips)
    gap_start = start + rng.uniform(0.2, 0.8, n_trips) * dur
    inside = (t_fix >= gap_start[ftrip]) & (t_fix < gap_start[ftrip] + gap[ftrip]) & dropped[ftrip]
    keep &= ~inside
    lon, lat = proj.to_lonlat(nx_[keep], ny_[keep])
    t_ts = timestamps(t_fix[keep])
    traces = pd.DataFrame({"trip_id": trip_ids.take(ftrip[keep]), "vehicle_id": vehicle_ids.take(ftrip[keep]),
                           "t": t_ts, "lon": lon, "lat": lat})
    true_lon, true_lat = proj.to_lonlat(x[keep], y[keep])
    kedge = fedge[keep]
    fixes = pd.DataFrame({
        "trip_id": traces["trip_id"], "t": t_ts, "lon": true_lon, "lat": true_lat,
        "edge_id": pd.array(np.where(kedge >= 0, world_ids[np.maximum(kedge, 0)], 0), dtype="Int64"),
        "offset_m": foff[keep], "heading_deg": heading[keep], "outlier": outlier[keep],
        "multipath": multipath[keep],
    })
    fixes.loc[kedge < 0, "edge_id"] = pd.NA

    # true routes: one row per edge piece (stops extend the piece before them)
    on_edge = (pc["edge"] >= 0) & (pc["s1"] > pc["s0"])
    moving = np.flatnonzero(on_edge)
    seq_trip = trip_of_piece[moving]
    # a piece's exit time runs on through the stops after it
    t_exit = p_t1[moving].copy()
    for j, i in enumerate(moving):
        q = i + 1
        while q < pptr[trip_of_piece[i] + 1] and not on_edge[q] and pc["edge"][q] >= 0:
            t_exit[j] = p_t1[q]
            q += 1
    world_tab = world_edges.reset_index(drop=True)
    e_m = pc["edge"][moving]
    routes = pd.DataFrame({
        "trip_id": trip_ids.take(seq_trip), "vehicle_id": vehicle_ids.take(seq_trip),
        "seq": (np.arange(len(moving)) - np.searchsorted(seq_trip, seq_trip)).astype(np.int64),
        "edge_id": world_ids[e_m].astype(np.int64),
        "u": world_tab["u"].to_numpy()[e_m], "v": world_tab["v"].to_numpy()[e_m],
        "key": world_tab["key"].to_numpy()[e_m] if "key" in world_tab else 0,
        "t_enter": timestamps(p_t0[moving]),
        "t_exit": timestamps(t_exit),
        "from_m": pc["s0"][moving], "to_m": pc["s1"][moving], "length_m": net.edge_len[e_m],
    })

    # camera frames and detections
    det_cols = ["detection_id", "trip_id", "t", "class", "value", "score", "x_min", "y_min", "x_max", "y_max"]
    observations = None
    if len(objects) and config.capture == "imagery":
        t_frame, cptr, ctrip = _regular_times(start, end, config.frame_interval_s, np.zeros(n_trips))
        cx, cy, _, _, _ = pose_at(t_frame, cptr)
        observations, detection_truth = _imagery(t_frame, cptr, ctrip, cx, cy, objects, trip_ids, config, rng, proj)
        detections = pd.DataFrame({c: pd.Series(dtype=object) for c in det_cols})
    elif len(objects):
        t_frame, cptr, ctrip = _regular_times(start, end, config.frame_interval_s, np.zeros(n_trips))
        cx, cy, cheading, _, _ = pose_at(t_frame, cptr)
        if config.turn_arc_m > 0:
            cheading = turned_headings(cptr, cx, cy, cheading, config.turn_arc_m)
        ox, oy = objects.geometry.x.to_numpy(), objects.geometry.y.to_numpy()
        grid = _object_grid(ox, oy, 50.0)
        frame, obj, box, score = detect(cptr, cx, cy, cheading, ox, oy, objects["z_m"].to_numpy(),
                                        objects["height_m"].to_numpy(), objects["width_m"].to_numpy(),
                                        np.radians(objects["facing_deg"].to_numpy(float)), grid,
                                        camera.kernel_tuple, seed, config.max_range_m, config.min_box_px,
                                        camera.pixel_sigma_px, config.miss_rate)
        detections, detection_truth = _finish_detections(frame, obj, box, score, t_frame, ctrip, (cx, cy, cheading),
                                                         trip_ids, objects, camera, config, rng, proj)
    else:  # nothing to see (a map without features): the tables' columns, no rows
        detections = pd.DataFrame({c: pd.Series(dtype=object) for c in det_cols})
        detection_truth = pd.DataFrame({"detection_id": pd.Series(dtype=np.int64),
                                        "object_id": pd.Series(dtype="Int64")})
        if config.capture == "imagery":
            from mapdiff.observe import OBSERVATION_COLUMNS

            observations = pd.DataFrame({c: pd.Series(dtype=object) for c in ["detection_id", *OBSERVATION_COLUMNS]})

    first_id = np.int64(v) << 32
    for frame in (detections, detection_truth, observations):
        if frame is not None and len(frame):
            frame["detection_id"] = frame["detection_id"].to_numpy(np.int64) + first_id
    return {"n_trips": n_trips, "traces": traces, "fixes": fixes, "routes": routes, "detections": detections,
            "detection_truth": detection_truth, "observations": observations}


def simulate(map_layers: dict, config: SimConfig, camera: Camera | None = None, *, progress=None,
             vehicles=None) -> Simulation:
    """Simulate a fleet on a map (``{"edges": ..., "features": ..., "nodes": ...}``, WGS84).

    A map without ``features`` gives traces but no detections. ``vehicles``: only these vehicles
    (0-based) of the fleet, as a shard does; the world (changes, objects) is the whole fleet's,
    and each vehicle draws from its own random streams, so the vehicles' rows are those of the
    whole fleet's run. :func:`simulate_to` writes the same folder vehicle by vehicle.
    """
    run = _Run(map_layers, config, camera, progress=progress, vehicles=vehicles)
    drives = [run.drive(v) for v in run.vehicles] or [run.no_drive()]
    tables = {name: _concat([d[name] for d in drives]) for name in _VEHICLE_TABLES if drives[0][name] is not None}
    run.count(sum(d["n_trips"] for d in drives), tables)
    run.say_done()
    return Simulation(run.stale, tables["traces"], tables["detections"], run.camera, run.changes_wgs84,
                      tables["routes"], tables["fixes"], run.objects_table(), tables["detection_truth"],
                      run.edge_table, run.meta(), tables.get("observations"))


def simulate_to(out_dir, map_layers: dict, config: SimConfig, camera: Camera | None = None, *, progress=None,
                vehicles=None, metadata: dict | None = None, batch_rows: int = 1_000_000) -> dict[str, int]:
    """:func:`simulate`, written to the folder ``out_dir`` as :meth:`Simulation.write` writes it
    (the same files and rows), vehicle by vehicle: the vehicles' rows are appended as they are
    made, a batch at a time of at most about ``batch_rows`` fixes and detections, so a month of
    a big fleet needs the memory of a batch, not of the month. Returns the counts of trips,
    fixes, sightings (detections, or street-level observations) and planted changes."""
    from mapdiff.io import atomic_dir, table_writer, write_gpkg, write_table

    run = _Run(map_layers, config, camera, progress=progress, vehicles=vehicles)
    names = [n for n in _VEHICLE_TABLES if n != ("detections" if run.imagery else "observations")]
    files = {"detection_truth": "truth/detections", "fixes": "truth/fixes", "routes": "truth/routes"}
    with atomic_dir(out_dir) as out, contextlib.ExitStack() as stack:
        writers = {n: stack.enter_context(table_writer(f"{out}/{files.get(n, n)}.parquet", metadata=metadata))
                   for n in names}
        n_trips, held = 0, []

        def flush():
            tables = {n: _concat([d[n] for d in held]) for n in names}
            run.count(0, tables)
            for n in names:
                writers[n].write(tables[n])
            held.clear()

        for v in run.vehicles:
            held.append(run.drive(v))
            n_trips += held[-1]["n_trips"]
            if sum(len(d["traces"]) + len(d[names[1]]) for d in held) >= batch_rows:
                flush()
        if held or not run.vehicles:
            held = held or [run.no_drive()]
            flush()
        run.count(n_trips, None)
        run.say_done()
        write_gpkg(run.stale, f"{out}/map.gpkg")
        for name, frame in (("truth/changes", run.changes_wgs84), ("truth/objects", run.objects_table()),
                            ("truth/edges", run.edge_table)):
            write_table(frame, f"{out}/{name}.parquet", metadata=metadata)
        meta = run.meta()
        _write_texts(out, run.camera, meta)
    return {"trips": run.n_trips, "fixes": run.n_fixes, "sightings": run.n_seen, "changes": len(run.changes)}


#: the tables each vehicle adds rows to (observations: street-level imagery; else detections)
_VEHICLE_TABLES = ("traces", "detections", "observations", "fixes", "routes", "detection_truth")


class _Run:
    """A simulation's world (the stale map, the planted changes, the objects), the vehicles it
    drives, and the tallies over their rows: what :func:`simulate` and :func:`simulate_to`
    share."""

    def __init__(self, map_layers: dict, config: SimConfig, camera: Camera | None, *, progress, vehicles):
        import geopandas as gpd

        from mapdiff.network import Network
        from mapdiff.projection import LocalProjection

        self.config = config = config.validate()
        self.camera = camera = (camera or Camera()).validate()
        self.say = progress or (lambda msg: None)
        rng = np.random.default_rng(config.seed)
        edges = map_layers["edges"]
        Network.from_edges(edges, source="map")  # checks the layer before any work
        if "edge_id" not in edges:
            edges = edges.assign(edge_id=np.arange(len(edges), dtype=np.int64))
        features = map_layers.get("features")
        if features is None:
            features = gpd.GeoDataFrame({"feature_id": pd.Series([], dtype=np.int64), "class": [], "value": []},
                                        geometry=gpd.GeoSeries([], crs=edges.crs))
        minx, miny, maxx, maxy = edges.geometry.to_crs(4326).total_bounds
        proj = LocalProjection.around((minx + maxx) / 2, (miny + maxy) / 2)
        edges_m = edges.to_crs(proj.crs).reset_index(drop=True)
        feats_m = features.to_crs(proj.crs).reset_index(drop=True)
        world_edges, map_edges, objects, map_feats, changes = plant_changes(edges_m, feats_m, config, rng)
        self.objects = objects = place_objects(objects, world_edges, config, rng,
                                               changes=changes)
        # a feature added where another feature's pole stands (OSM's duplicate of it) changed
        # nothing on the street: the map still has it
        void = (changes["kind"] == "object_added").to_numpy() & \
            ~changes["object_id"].isin(objects["feature_id"]).to_numpy()
        changes = changes[~void].reset_index(drop=True).assign(change_id=lambda c: np.arange(len(c), dtype=np.int64))
        self.changes = changes
        self.say(f"planted {len(changes):,} changes: " + ", ".join(
            f"{n} {k}" for k, n in changes["kind"].value_counts(sort=False).items() if n))
        roads = _road_graph(world_edges.reset_index(drop=True), config)
        world_ids = world_edges["edge_id"].to_numpy()
        self.world = _World(roads, world_edges, world_ids, _signal_nodes(roads, objects), objects, proj, camera)
        self.vehicles = list(range(config.vehicles) if vehicles is None else sorted(vehicles))
        self.imagery = config.capture == "imagery"
        self.edge_table = pd.DataFrame({
            "edge_id": edges_m["edge_id"].to_numpy().astype(np.int64),
            "u": edges_m["u"].to_numpy(), "v": edges_m["v"].to_numpy(),
            "length_m": edges_m.geometry.length.to_numpy(),
            "in_world": np.isin(edges_m["edge_id"].to_numpy(), world_ids),
            "in_map": np.isin(edges_m["edge_id"].to_numpy(), map_edges["edge_id"].to_numpy()),
        })
        self.stale = {"nodes": map_layers["nodes"]} if "nodes" in map_layers else {}
        self.stale["edges"] = map_edges.to_crs(4326).reset_index(drop=True)
        self.stale["features"] = gpd.GeoDataFrame(
            map_feats.drop(columns=[c for c in map_feats.columns
                                    if c not in ("feature_id", "osmid", "class", "value", "tags", "geometry")]),
            geometry="geometry", crs=proj.crs).to_crs(4326)
        self.changes_wgs84 = changes.to_crs(4326)
        # tallies over the vehicles' rows
        self.n_trips = self.n_fixes = self.n_detections = self.n_seen = 0
        self.detections_of = pd.Series(dtype=np.int64)  # per object, its detections
        self.trips_of = pd.Series(dtype=np.int64)  # ... and the trips that saw it

    def drive(self, v: int) -> dict:
        """Vehicle ``v``'s tables (observations None unless the fleet captures imagery)."""
        d = _drive(v, self.world, self.config)
        if not self.imagery:
            d["observations"] = None
        return d

    def no_drive(self) -> dict:
        """A vehicle's tables without their rows (the columns), for a shard with no vehicle."""
        return {k: f.iloc[:0] if isinstance(f, pd.DataFrame) else 0 for k, f in self.drive(0).items()}

    def count(self, n_trips: int, tables: dict | None) -> None:
        """Add ``n_trips`` and a batch of the vehicles' ``tables`` to the tallies: how often each
        object was really seen (false positives and confusions aside), and by how many trips (a
        trip is one vehicle's, so it never spans two batches)."""
        self.n_trips += n_trips
        if tables is None:
            return
        sightings = tables["observations"] if self.imagery else tables["detections"]
        self.n_fixes += len(tables["traces"])
        self.n_detections += len(tables.get("detections", ()))  # (imagery: none; its table is not written)
        self.n_seen += len(sightings)
        truth = tables["detection_truth"]
        real = truth["object_id"].notna().to_numpy()
        seen = pd.DataFrame({"object_id": truth["object_id"].to_numpy()[real].astype(np.int64),
                             "trip_id": sightings["trip_id"].to_numpy()[real]})
        self.detections_of = self.detections_of.add(seen["object_id"].value_counts(), fill_value=0)
        self.trips_of = self.trips_of.add(seen.drop_duplicates().groupby("object_id").size(), fill_value=0)

    def say_done(self) -> None:
        self.say(f"routed {self.n_trips:,} trips of {len(self.vehicles):,} vehicles over {self.config.days:,} days")
        self.say(f"sampled {self.n_fixes:,} GPS fixes; " + (f"{self.n_seen:,} street-level observations"
                                                           if self.imagery else f"{self.n_detections:,} detections"))

    def objects_table(self) -> pd.DataFrame:
        """The true objects, in WGS84, with how often each was seen."""
        objects, changes = self.objects, self.changes
        obj_wgs = objects.to_crs(4326)
        out = pd.DataFrame({
            "object_id": objects["object_id"].to_numpy(), "class": objects["class"].to_numpy(),
            "value": objects["value"].to_numpy(), "lon": obj_wgs.geometry.x.to_numpy(),
            "lat": obj_wgs.geometry.y.to_numpy(), "height_m": objects["height_m"].to_numpy(),
            "width_m": objects["width_m"].to_numpy(),
            "feature_id": objects["feature_id"].to_numpy(), "feature_ids": objects["feature_ids"].to_numpy(),
            "facing_deg": objects["facing_deg"].to_numpy(float),
            "in_map": ~objects["feature_id"].isin(changes.loc[changes["kind"] == "object_added", "object_id"]),
        })
        out["n_detections"] = out["object_id"].map(self.detections_of).fillna(0).astype(np.int64)
        out["n_trips_seen"] = out["object_id"].map(self.trips_of).fillna(0).astype(np.int64)
        return out

    def meta(self) -> dict:
        return {
            "config": asdict(self.config),
            "camera": asdict(self.camera),
            "crs": self.world.proj.crs,
            "counts": {
                "trips": self.n_trips,
                "fixes": self.n_fixes,
                "detections": self.n_detections,
                "objects": len(self.objects),
                **{k: int(n) for k, n in self.changes["kind"].value_counts(sort=False).items()},
            },
        }


def _imagery(t_frame, cptr, ctrip, cx, cy, objects, trip_ids, config: SimConfig, rng, proj):
    """Street-level captures along the drives (see :class:`SimConfig`): the observations (the
    observations contract, plus detection_id) and their truth (detection_id, object_id).

    A capture is taken where the drive has gone its spacing since the last one; the frames at
    ``frame_interval_s`` give the positions (a frame's distance is at most a few metres)."""
    from scipy.spatial import cKDTree

    step = np.hypot(np.diff(cx, prepend=cx[:1]), np.diff(cy, prepend=cy[:1]))
    step[cptr[:-1][np.diff(cptr) > 0]] = 0.0  # a trip's first frame starts its own count
    gone = np.cumsum(step)
    taken = []
    for k in range(len(cptr) - 1):
        a, b = cptr[k], cptr[k + 1]
        if b <= a:
            continue
        at = gone[a] + rng.uniform(0.0, config.capture_spacing_m)
        while at <= gone[b - 1]:
            taken.append(a + int(np.searchsorted(gone[a:b], at)))
            at += config.capture_spacing_m * rng.uniform(0.5, 1.5)
    cap = np.asarray(taken, dtype=np.int64)
    px = cx[cap] + rng.normal(0.0, config.capture_sigma_m, len(cap))
    py = cy[cap] + rng.normal(0.0, config.capture_sigma_m, len(cap))
    ox, oy = objects.geometry.x.to_numpy(), objects.geometry.y.to_numpy()
    near = cKDTree(np.c_[ox, oy]).query_ball_point(np.c_[cx[cap], cy[cap]], config.max_range_m)
    ci = np.repeat(np.arange(len(cap)), [len(n) for n in near])
    oi = np.fromiter((j for n in near for j in n), dtype=np.int64, count=len(ci))
    dx, dy = ox[oi] - cx[cap][ci], oy[oi] - cy[cap][ci]
    dist = np.hypot(dx, dy)
    big = objects["height_m"].to_numpy(float)[oi] / np.maximum(dist, 1e-3) * config.panorama_width_px / (2 * np.pi) \
        >= config.min_box_px
    facing = np.radians(objects["facing_deg"].to_numpy(float))[oi]
    # a sign is read from in front of it only (as in the video), a panorama looks every way
    readable = np.isnan(facing) | (-(dx * np.sin(facing) + dy * np.cos(facing)) >= np.cos(np.radians(75.0)) * dist)
    keep = (dist > 1.0) & big & readable & (rng.random(len(ci)) >= config.miss_rate)
    ci, oi, dx, dy, dist = ci[keep], oi[keep], dx[keep], dy[keep], dist[keep]
    tail = rng.random(len(ci)) < config.bearing_tail_rate
    err = np.where(tail, rng.choice([-1.0, 1.0], len(ci)) * rng.uniform(10.0, 30.0, len(ci)),
                   rng.normal(0.0, config.imagery_bearing_sigma_deg, len(ci)))
    bearing = (np.degrees(np.arctan2(dx, dy)) + err) % 360.0
    rng_m = dist * np.exp(rng.normal(0.0, config.range_error_rel, len(ci)))
    score = rng.uniform(0.5, 1.0, len(ci))
    # the detector's mistakes, as in the video: classes and values misread, and false positives
    # (false_positive_rate per capture) at any bearing, at the distances real sightings have
    vocab = _Vocabulary(objects, rng)
    cls, val = vocab.confused(oi, config.confusion_rate)
    n_fp = int(rng.poisson(config.false_positive_rate * len(cap))) if len(cap) else 0
    fp_cls, fp_val = vocab.random(n_fp)
    ci = np.r_[ci, rng.integers(0, max(len(cap), 1), n_fp)]
    oi, cls, val = np.r_[oi, np.full(n_fp, -1)], np.r_[cls, fp_cls], np.r_[val, fp_val]
    bearing = np.r_[bearing, rng.uniform(0.0, 360.0, n_fp)]
    rng_m = np.r_[rng_m, rng.choice(dist, n_fp) if len(dist) else rng.uniform(2.0, 20.0, n_fp)]
    score = np.r_[score, rng.uniform(0.2, 0.7, n_fp)]
    cls_text, val_text = vocab.text(cls, val)
    lon, lat = proj.to_lonlat(px[ci], py[ci])
    frame = cap[ci]
    trip = trip_ids.take(ctrip[frame]).astype(str)
    order = np.lexsort((oi, ci))
    detection_id = np.arange(len(ci), dtype=np.int64)
    observations = pd.DataFrame({
        "detection_id": detection_id,
        "trip_id": (pd.Series(trip[order]) + "-c" + pd.Series(ci[order]).astype(str).str.zfill(6)).to_numpy(),
        "t": timestamps(t_frame[frame][order]),
        "class": cls_text[order], "value": val_text[order],
        "score": np.round(score[order], 3),
        "lon": lon[order], "lat": lat[order], "bearing_deg": bearing[order],
        # what a capture states: its core bearing error, not the tail it does not know of
        "bearing_sigma_deg": np.full(len(ci), config.imagery_bearing_sigma_deg),
        "range_m": rng_m[order], "range_sigma_m": config.range_error_rel * rng_m[order],
    })
    object_id = pd.array(objects["object_id"].to_numpy()[np.maximum(oi, 0)][order], dtype="Int64")
    object_id[oi[order] < 0] = pd.NA
    truth = pd.DataFrame({"detection_id": detection_id, "object_id": object_id})
    return observations, truth


class _Vocabulary:
    """The objects' classes and values as codes (value code -1: none), and the detector's
    mistakes drawn from them with ``rng``."""

    def __init__(self, objects, rng):
        cls_cat, val_cat = pd.Categorical(objects["class"]), pd.Categorical(objects["value"])
        self.classes, self.values = cls_cat.categories, val_cat.categories
        self.cls, self.val = cls_cat.codes.astype(np.int64), val_cat.codes.astype(np.int64)
        # the values each class takes, as value codes
        pairs = pd.DataFrame({"c": self.cls, "v": self.val})
        self.values_of = [np.unique(pairs.loc[(pairs["c"] == c) & (pairs["v"] >= 0), "v"].to_numpy())
                          for c in range(len(self.classes))]
        self.rng = rng

    def draw_values(self, c):
        """A random value code of each class in ``c`` (-1 for a class without values)."""
        out = np.full(len(c), -1, dtype=np.int64)
        for k, vals in enumerate(self.values_of):
            at = np.flatnonzero(c == k)
            if len(at) and len(vals):
                out[at] = vals[self.rng.integers(0, len(vals), len(at))]
        return out

    def confused(self, obj, rate):
        """Class and value codes the detector reads for sightings of objects ``obj``: ``rate`` of
        them another value, half of those another class too."""
        n_cls = len(self.classes)
        cls, val = self.cls[obj].copy(), self.val[obj].copy()
        confuse = np.flatnonzero(self.rng.random(len(obj)) < rate)
        wrong_class = confuse[self.rng.random(len(confuse)) < 0.5] if n_cls > 1 else confuse[:0]
        cls[wrong_class] = (cls[wrong_class] + self.rng.integers(1, max(n_cls, 2), len(wrong_class))) % max(n_cls, 1)
        val[confuse] = self.draw_values(cls[confuse])  # may redraw the same value: the detector can be right
        return cls, val

    def random(self, n):
        """Class and value codes of ``n`` false positives."""
        cls = self.rng.integers(0, max(len(self.classes), 1), n)
        return cls, self.draw_values(cls)

    def text(self, cls, val):
        """Codes back to the class and value columns (value None where it has none)."""
        value = np.asarray(self.values, dtype=object)[np.maximum(val, 0)] if len(self.values) else \
            np.full(len(val), None, dtype=object)
        return np.asarray(self.classes, dtype=object)[cls], np.where(val >= 0, value, None)


def _finish_detections(frame, obj, box, score, t_frame, ctrip, pose, trip_ids, objects, camera, config, rng, proj):
    """Add false positives and class/value confusion; return (detections, their truth).

    Classes and values are handled as codes into the objects' vocabularies (value code -1: none).
    """
    vocab = _Vocabulary(objects, rng)
    classes, values = vocab.classes, vocab.values
    cls, val = vocab.confused(obj, config.confusion_rate)
    # false positives: random boxes of random classes in random frames
    n_fp = int(rng.poisson(config.false_positive_rate * len(t_frame))) if len(classes) else 0
    fp_frame = rng.integers(0, len(t_frame), n_fp)
    fp_cls, fp_val = vocab.random(n_fp)
    h = rng.uniform(config.min_box_px, 80.0, n_fp)
    w = h * rng.uniform(0.4, 1.2, n_fp)
    x0 = rng.uniform(0, camera.width_px - w)
    y0 = rng.uniform(0, camera.height_px / 2, n_fp)
    fp_box = np.c_[x0, y0, x0 + w, y0 + h]
    frames = np.r_[frame, fp_frame]
    all_box = np.r_[box, fp_box]
    order = np.lexsort((all_box[:, 0], frames))
    all_box = all_box[order]
    lo = np.minimum(all_box[:, [0, 1]], all_box[:, [2, 3]])
    hi = np.maximum(all_box[:, [0, 1]], all_box[:, [2, 3]])
    frames = frames[order]
    obj_all = np.r_[obj, np.full(n_fp, -1)][order]
    t = timestamps(t_frame[frames])
    det_id = np.arange(len(frames), dtype=np.int64)

    def cat(codes, vocab):
        return pd.Categorical.from_codes(codes, categories=vocab)

    detections = pd.DataFrame({
        "detection_id": det_id, "trip_id": trip_ids.take(ctrip[frames]), "t": t,
        "class": cat(np.r_[cls, fp_cls][order], classes), "value": cat(np.r_[val, fp_val][order], values),
        "score": np.r_[score, rng.uniform(0.2, 0.7, n_fp)][order],
        "x_min": lo[:, 0], "y_min": lo[:, 1], "x_max": hi[:, 0], "y_max": hi[:, 1],
    })
    real = obj_all >= 0
    cx, cy, cheading = pose
    cam_lon, cam_lat = proj.to_lonlat(cx[frames], cy[frames])
    ox, oy = objects.geometry.x.to_numpy(), objects.geometry.y.to_numpy()
    j = np.maximum(obj_all, 0)
    dx, dy = ox[j] - cx[frames], oy[j] - cy[frames]
    object_id = pd.array(objects["object_id"].to_numpy()[j], dtype="Int64")
    object_id[~real] = pd.NA
    truth = pd.DataFrame({
        "detection_id": det_id, "object_id": object_id,
        "true_class": cat(np.where(real, np.r_[vocab.cls[obj], fp_cls][order], -1), classes),
        "true_value": cat(np.where(real, np.r_[vocab.val[obj], fp_val][order], -1), values),
        "range_m": np.where(real, np.hypot(dx, dy), np.nan),
        "bearing_deg": np.where(real, np.degrees(np.arctan2(dx, dy)) % 360.0, np.nan),
        "camera_lon": cam_lon, "camera_lat": cam_lat, "camera_heading_deg": cheading[frames],
    })
    return detections, truth
