"""The judgment: where the map is wrong (the ``diff`` stage).

Objects against the map's ``features``
--------------------------------------
OpenStreetMap and the street place the same thing differently: signals on the junction node
(or the approach way), crossings and signs on the way's centre line, while the physical poles
stand at the kerb, a few metres off, several per junction or crossing. So both sides are first
brought to OSM's convention (``_conventional``):

- ``traffic_signals`` within ``junction_radius_m`` of a junction node (three or more roads)
  belong to that junction: a junction's map signals and its observed signal poles are compared
  as one thing, whatever their number;
- a junction's signal feature pairs with a loose pole (one outside ``junction_radius_m``)
  only where the map has it, within ``kerb_m``: a signal mapped on the approach near the edge
  of the radius, whose pole stands just beyond it; and it is explained by any pole of its class
  seen within ``junction_radius_m`` of its node, whichever junction node the pole went to (the
  two nodes of a dual carriageway's crossroads: :func:`_junction_poles`);
- a feature mapped on a road (within ``ON_ROAD_M`` of its centre line) is compared with the
  objects beside that road (within ``snap_m``) by the distance along it: where a pole stands
  across the road is convention, not error (though of the poles level with it, the pairing
  prefers one within ``kerb_m`` of the centre line to one beyond); a feature mapped beside the
  road claims where it stands (with ``kerb_m`` of allowance where the map has no road under it);
- an object of the class and value of one the map explains, within ``split_m`` of it (the
  sign on the other kerb, a split estimate), is explained too; a junction's things are not
  (another junction's signals do not explain a junction's).

Map features and observed things of one class are then paired one to one by a minimum-cost
assignment (distance, plus ``value_mismatch_m`` when the values differ) over the candidate pairs
within ``max_move_m``, so two close signs never both take one object. A thing level with one
paired in place across the road (of its class and value, within its tolerance on the centre
line, on the other side of it: the other kerb's pole of a crossing), or with one left to the
assignment too that stands at a feature or was seen in more trips (the poles of a crossing
that moved, or whose value changed), pairs in place or not at
all, never as another feature moved to it: that would take two changes where one, the other
feature's removal, explains the same. A pair within the tolerance
(``3 * sqrt(sigma_m**2 + map_sigma_m**2)`` with the sigmas scaled to what the pairs' distances show,
at least ``min_tolerance_m``) is the same object: a different value is ``value_changed``; beyond it,
where the map's place was in view, ``object_moved``. An observed thing seen in at least
``min_trips`` trips that nothing explains is ``object_added`` (one per place: a new crossing's two
kerb signs are one addition); beside a moved feature of its class and value it may be where that
feature went, and its confidence says so. A thing seen by a share of the trips in view below what
nearly all pairs show, in fewer than ``min_trips`` trips, explains no feature it stands beyond the
tolerance of or reads another value than. A map feature that nothing observed explains is ``object_removed``
only where the fleet should have seen it: the directed edges from which it is in the camera's view
and range carried at least ``min_visible_trips`` trips (for a sign mapped on a road, in both its
directions: the map does not say which way it faces); otherwise it is ``unverified`` (its own layer,
never a change). Its confidence is calibrated on the trips that had it in view and on how close
the fleet passed it (objects set back from the road are located less often).

Roads against the edges
-----------------------
- ``oneway_reversed``: a one-way edge whose trips against it outweigh the trips with it, by a
  likelihood ratio with the matcher's wrong-way noise rate measured on all one-way edges. With
  the trips' routes, a pass the matcher sent round a slip road's triangle against one one-way,
  where the straight way is another one-way driven against, counts for that one (:func:`_detours`).
- ``road_closed``: a road (both directions of a node pair) nobody drove although the fleet's
  own trips would have taken it: the map's fastest routes over windows of each trip's path
  (:func:`_route_windows`) take it. Closures are taken one at a time, most expected first, and
  the trips routed again around each, so that a closure explains the empty roads further along
  its routes (:func:`_explained_closures`); closures that touch are one closed stretch, with
  the empty roads beside them that they explain (which of them is shut the data cannot tell). The
  confidence is calibrated on the data (how often roads expected on that many trips are empty
  anyway; see :func:`_calibrated`). A road counts as driven by the trips whose fixes confirm
  it; a few passes with no fix on the road are the matcher cutting a corner (see
  :func:`_driven`). Where a trip drove a road the map lacks (a run of off-map fixes, as
  ``road_missing`` reads them), its matched path is a stand-in and no window spans it
  (:func:`_off_map_passes`). Needs the paths.
- ``road_missing``: runs of fixes the matcher left unmatched or matched far off (beyond
  ``FAR_SIGMAS`` of the GPS error measured from the matched distances), away from the trip's ends
  (car parks) and getting somewhere at driving speed, from ``min_road_trips`` distinct trips
  through the same ``road_cell_m`` cells; each connected run of such cells is one inferred
  centre line, cut to where it lies off the mapped roads (:func:`_off_map_part`); lines that
  continue one another across a gap with no mapped node, driven by the same trips, are one road
  (:func:`_continued`: noisy fixes near a mapped road are matched onto it and cut the road);
  each is joined to the mapped nodes near its ends, counted by the trips whose fixes
  lie along it and that drove along it one way (not across it, not out to a car park and
  back: :func:`_drove_along`); its confidence is the chance that scattered off-map runs
  (multipath, car parks) would not gather that many trips anywhere (:func:`_chance_windows`),
  or, for a line that joins the map at two nodes, what the lines show of joining
  (:func:`_raise_joined`).

Every diff gets a ``confidence`` in [0, 1] from its evidence: additions and removals by a
calibration on the data itself (:func:`_calibrated`; an addition by the share of the trips that
had it in view that saw it, a removal by the trips that had it in view and how close they
passed), moves by the chance that the two positions' errors put them that far apart, calibrated
on the trips that saw the object and discounted by how often a feature whose object the fleet did
not find has a lonely thing of its class that far by chance (:func:`_not_by_chance`), new values
by their share of the sightings, road diffs by the likelihoods named above.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mapdiff.errors import InputError, check_fields
from mapdiff.schema import CHANGE_KINDS

DIFF_COLUMNS = ["diff_id", "kind", "class", "feature_id", "edge_id", "edge_ids", "old_value", "object_id",
                "new_value", "distance_m", "confidence", "n_trips", "n_observations", "visible_trips",
                "value_share", "passes", "against", "expected_passes", "node_from", "node_to", "geometry"]
#: the columns of the matched fixes the judgment reads (the rest of a big file is not read)
MATCHED_INPUT_COLUMNS = ("trip_id", "t", "lon", "lat", "state", "distance_m", "edge_id", "offset_m", "against",
                         "confidence")
#: a fix this close to an edge's end (or within a third of a short edge) does not confirm it:
#: at a junction every edge there is near
END_M = 10.0
#: a map point this close to a road's centre line is mapped on it (OSM's way): where a sign
#: stands beside that road is a convention, and it is compared along the road; a point mapped
#: further off claims where it stands
ON_ROAD_M = 2.0
#: classes OSM maps on the junction node (when a junction is near)
JUNCTION_CLASSES = ("traffic_signals",)
#: classes OSM maps on every way a footway crosses (both carriageways, a tram track: nodes a few
#: metres apart for one crossing, whose street has one sign on each kerb for them all)
FOOTWAY_CLASSES = ("crossing",)
#: ... and its nodes lie at most a lane or a tram track apart (3-3.5 m; nearer still on the
#: centre line): nodes further apart are two crossings, or one on each carriageway of a divided
#: road, where each has its own kerb signs
FOOTWAY_NODES_M = 3.5
#: classes whose street furniture faces both ways of its road (a crossing's sign on each kerb,
#: a signal head for each approach); any other sign faces one way
TWO_FACED_CLASSES = ("crossing", "traffic_signals")
#: two map features of one class and value this close are one sign mapped twice (on two nodes,
#: or once per direction on one node: ``traffic_sign:forward`` and ``:backward``): a street does
#: not repeat a sign within a sign's width or two (0.6-0.9 m) of itself, and a fleet cannot tell
#: one of the two gone. Two such signs 3 m apart are two signs
SAME_SPOT_M = 2.0
#: a pole this far off the centre line stands beside the road (at a kerb), not on it: a lane's
#: half-width; a located pole's error is under it (sigmas of 0.6 m are typical). The opposite
#: sides do the work: 0.5 m and 1.5 m give the same diffs on the three cities' simulations but
#: one move in Helsinki; 3 m, beyond some located poles of narrow streets, lost a removal and
#: made a false move in Liechtenstein and two in Helsinki
KERB_TWIN_MIN_M = 1.5


@dataclass(frozen=True)
class DiffConfig:
    """Thresholds of the judgment, each with its unit.

    Attributes
    ----------
    min_trips : an observed object seen in fewer trips is no evidence of an addition (it can
        still explain a map feature) [3].
    max_move_m : a map feature and an object further apart than this are never the same
        object: an addition and a removal, not a move [50].
    map_sigma_m : how precisely the map places a feature along its road (metres) [1].
    min_tolerance_m : the least distance that counts as a move [2].
    value_mismatch_m : the assignment's price of pairing different values (which it does only
        within the tolerance), in metres: a new value on a feature's own pole is one change,
        as a move is, so it costs as much as the least move [2]. (At 20 m, a crossing whose
        signals were new took a removed neighbour's move of 12 m instead: Helsinki.)
    junction_radius_m : signals this close to a junction node belong to it [25].
    snap_m : points this close to a road are put on its centre line [15].
    kerb_m : how far a pole may stand from the node OSM maps it on, where the map has no road
        under the feature to measure along (plus three of the object's sigmas); and from the
        centre line of the road a feature is mapped on before the pairing prefers poles nearer
        it: half a two-lane road and a pavement [5].
    split_m : an object of a crossing's or signals' class and value of one the map explains,
        this close to it on the centre line, is explained too (the other kerb's pole, a split
        estimate); for a sign that faces one way, ``kerb_m`` or level across the road [15].
    range_m, hfov_deg : what the dashcam sees: distance and horizontal field of view [50, 90].
    min_visible_trips : a map feature seen by nothing is a removal only when the edges it is
        visible from carried this many trips [3].
    min_road_trips : distinct trips that make a road diff (missing road, reversed one-way) [3].
    road_cell_m : the grid on which off-road runs of different trips meet [10].
    min_confidence : diffs below this confidence are not reported [0.5].
    """

    min_trips: int = 3
    max_move_m: float = 50.0
    map_sigma_m: float = 1.0
    min_tolerance_m: float = 2.0
    value_mismatch_m: float = 2.0
    junction_radius_m: float = 25.0
    snap_m: float = 15.0
    kerb_m: float = 5.0
    split_m: float = 15.0
    range_m: float = 50.0
    hfov_deg: float = 90.0
    min_visible_trips: int = 3
    min_road_trips: int = 3
    road_cell_m: float = 10.0
    min_confidence: float = 0.5

    def validate(self) -> DiffConfig:
        check_fields(self, ("min_trips", "min_visible_trips", "min_road_trips"),
                     lambda v: float(v) == int(v) and v >= 1, "a whole number >= 1")
        check_fields(
            self,
            (
                "max_move_m",
                "min_tolerance_m",
                "junction_radius_m",
                "snap_m",
                "kerb_m",
                "split_m",
                "range_m",
                "road_cell_m",
            ),
            lambda v: np.isfinite(v) and v > 0,
            "a positive number of metres",
        )
        check_fields(self, ("map_sigma_m", "value_mismatch_m"), lambda v: np.isfinite(v) and v >= 0, ">= 0")
        check_fields(self, ("hfov_deg",), lambda v: 0 < v <= 360, "in (0, 360]")
        check_fields(self, ("min_confidence",), lambda v: 0 <= v <= 1, "in [0, 1]")
        return self


@dataclass
class DiffResult:
    """What :func:`diff` returns: the diffs and the unverified map features (GeoDataFrames in
    WGS84), and warnings for the user."""

    diffs: object
    unverified: object
    warnings: list

    def layers(self) -> dict:
        return {"diffs": self.diffs, "unverified": self.unverified}


# ---------------------------------------------------------------------------------------------
# inputs


def _object_frame(objects: pd.DataFrame, proj, source: str) -> pd.DataFrame:
    from mapdiff.schema import lonlat_columns, numbers, require

    if len(objects) == 0:
        return pd.DataFrame({"object_id": pd.Series(dtype=np.int64), "class": pd.Series(dtype=object),
                             "value": pd.Series(dtype=object), "x": [], "y": [], "sigma_m": [],
                             "n_trips": pd.Series(dtype=np.int64), "n_observations": pd.Series(dtype=np.int64),
                             "value_share": []})
    require(objects, ["class"], source)
    lon, lat = lonlat_columns(objects, source)
    x, y = proj.to_metres(lon, lat)
    n = len(objects)

    def col(name, default, *, integer=False):  # a missing value or column: the default
        if name not in objects:
            return np.full(n, default)
        values = numbers(objects, name, source, integer=integer, missing=True)
        return np.where(np.isfinite(values), values, default)

    if objects["class"].isna().any():
        msg = f"{source}: column 'class' has {int(objects['class'].isna().sum())} missing values"
        raise InputError(msg)
    value = objects["value"] if "value" in objects else pd.Series([None] * n, dtype=object)
    return pd.DataFrame({
        "object_id": numbers(objects, "object_id", source, integer=True) if "object_id" in objects else np.arange(n),
        "class": objects["class"].array, "value": value.array,  # as they are, like the features
        "x": x, "y": y, "sigma_m": col("sigma_m", np.inf),
        "n_trips": col("n_trips", 1, integer=True).astype(np.int64),
        "n_observations": col("n_observations", 1, integer=True).astype(np.int64),
        "value_share": col("value_share", 1.0),
    })


def _label_codes(feat: pd.DataFrame, obj: pd.DataFrame) -> None:
    """Add integer ``cls`` and ``val`` (-1: no value) over one vocabulary of both sides: the
    judgment compares codes (strings only come back for the rows it writes). Classes and values
    compare as text, so 50 and "50" are one value. ``at_junction``: the class is one OSM maps on
    a junction node."""
    feat["cls"], obj["cls"] = _text_codes(feat["class"], obj["class"])
    feat["val"], obj["val"] = _text_codes(feat["value"], obj["value"])
    feat["at_junction"] = feat["class"].isin(JUNCTION_CLASSES).to_numpy()
    obj["at_junction"] = obj["class"].isin(JUNCTION_CLASSES).to_numpy()


def _text_codes(a: pd.Series, b: pd.Series):
    """Codes of two columns' values over one vocabulary, compared as text, in the order of first
    appearance in ``a`` then ``b`` (-1: missing). Each column is factorized as it is (an Arrow
    column natively), then its few distinct values as text: no Python string per row."""
    codes_a, uniq_a = pd.factorize(a)
    codes_b, uniq_b = pd.factorize(b)
    text = pd.Index(np.r_[np.asarray(uniq_a, dtype=object), np.asarray(uniq_b, dtype=object)]).astype(str)
    shared, _ = pd.factorize(text)
    shared = shared.astype(np.int64)
    out_a = np.where(codes_a >= 0, shared[np.maximum(codes_a, 0)] if len(uniq_a) else -1, -1)
    out_b = np.where(codes_b >= 0, shared[len(uniq_a) + np.maximum(codes_b, 0)] if len(uniq_b) else -1, -1)
    return out_a.astype(np.int64), out_b.astype(np.int64)


def _feature_frame(features, proj) -> pd.DataFrame:
    wgs = features.geometry.to_crs(4326)
    x, y = proj.to_metres(wgs.x.to_numpy(), wgs.y.to_numpy())
    n = len(features)
    return pd.DataFrame({
        "feature_id": features["feature_id"].to_numpy().astype(np.int64) if "feature_id" in features
        else np.arange(n, dtype=np.int64),
        # as they are (an Arrow column stays one): compared as text by _label_codes
        "class": features["class"].array,
        "value": features["value"].array if "value" in features else np.full(n, None, dtype=object),
        "x": x, "y": y,
    })


# ---------------------------------------------------------------------------------------------
# OSM's convention


@dataclass
class _Roads:
    """The map's roads in metres, for snapping and junctions."""

    net: object
    junction_x: np.ndarray
    junction_y: np.ndarray


def _roads(net) -> _Roads:
    n = net.n_edges
    u, v = net.edge_u[:n], net.edge_v[:n]
    # a node's degree counts the distinct neighbours it has a road to, either way
    key = np.unique(np.minimum(u, v) * net.n_nodes + np.maximum(u, v))
    a, b = key // net.n_nodes, key % net.n_nodes
    loop = a == b
    degree = np.bincount(np.r_[a[~loop], b[~loop]], minlength=net.n_nodes)
    node_x, node_y = net.node_xy()
    j = np.flatnonzero(degree >= 3)
    return _Roads(net, node_x[j], node_y[j])


def _conventional(x, y, junction_class, roads: _Roads, config: DiffConfig):
    """Where OSM's convention puts a thing standing at (x, y): a junction's node for junction
    classes near one, else the nearest point of the centre line of a road within ``snap_m``,
    else where it stands. Returns (x, y, junction index or -1, and for a point mapped on a
    road (within ``ON_ROAD_M``) the road's kernel edge and the offset along it, else -1, 0)."""
    from mapdiff._kernels.geometry import candidates

    x, y = np.asarray(x, float).copy(), np.asarray(y, float).copy()
    junction = np.full(len(x), -1, dtype=np.int64)
    road = np.full(len(x), -1, dtype=np.int64)
    along = np.zeros(len(x))
    if len(x) == 0:
        return x, y, junction, road, along
    at_junction = np.asarray(junction_class, bool)
    if at_junction.any() and len(roads.junction_x):
        from scipy.spatial import cKDTree

        d, k = cKDTree(np.c_[roads.junction_x, roads.junction_y]).query(np.c_[x[at_junction], y[at_junction]])
        near = d <= config.junction_radius_m
        idx = np.flatnonzero(at_junction)[near]
        junction[idx] = k[near]
        x[idx], y[idx] = roads.junction_x[k[near]], roads.junction_y[k[near]]
    rest = np.flatnonzero(junction < 0)
    if len(rest):
        edge, dist, off, cx, cy = _chunked(candidates, (x[rest], y[rest]), (config.snap_m, 1, roads.net.geom))
        ok = edge[:, 0] >= 0
        x[rest[ok]], y[rest[ok]] = cx[ok, 0], cy[ok, 0]
        # the road a point is mapped on (OSM's way), for distances along it
        on = ok & (dist[:, 0] <= ON_ROAD_M)
        road[rest[on]], along[rest[on]] = edge[on, 0], off[on, 0]
    return x, y, junction, road, along


def _observed_things(obj: pd.DataFrame, roads: _Roads, config: DiffConfig) -> pd.DataFrame:
    """Objects in OSM's convention: a junction's poles of one class become one thing at the
    junction node (OSM maps the junction, not the poles; the thing's trips are the most of any
    pole, since one pass sees them all); every other object is one thing on its road's centre
    line. ``show_x``, ``show_y`` is where a diff about it is drawn: where the object stands
    (for a junction's, where its pole seen in the most trips does: OSM maps a junction's signals
    on its node or on its approaches' stop lines, up to ``junction_radius_m`` away, and a
    reviewer looks for the pole)."""
    cx, cy, junction, _road, _along = _conventional(obj["x"].to_numpy(), obj["y"].to_numpy(),
                                                    obj["at_junction"].to_numpy(), roads, config)
    n = len(obj)
    label = np.arange(n)
    jx = np.flatnonzero(junction >= 0)
    if len(jx):
        key = pd.MultiIndex.from_arrays([junction[jx], obj["cls"].to_numpy()[jx]])
        label[jx] = n + pd.factorize(key)[0]
    # the member seen in the most trips speaks for its group
    rank = np.lexsort((obj["object_id"].to_numpy(), -obj["n_trips"].to_numpy(), label))
    lead = rank[np.r_[True, label[rank][1:] != label[rank][:-1]]] if n else rank
    g = pd.DataFrame({"label": label, "n_obs": obj["n_observations"].to_numpy()})
    sums = g.groupby("label").agg(n_obs=("n_obs", "sum"), members=("n_obs", "size"))
    things = obj.iloc[lead].reset_index(drop=True)
    s = sums.loc[label[lead]].reset_index(drop=True)
    at_j = junction[lead] >= 0
    things["raw_x"] = np.where(at_j, cx[lead], things["x"].to_numpy())
    things["raw_y"] = np.where(at_j, cy[lead], things["y"].to_numpy())
    things["show_x"], things["show_y"] = things["x"], things["y"]
    things["x"], things["y"] = cx[lead], cy[lead]
    things["n_observations"] = s["n_obs"].to_numpy()
    things["members"] = s["members"].to_numpy()
    things["junction"] = junction[lead]
    return things


# ---------------------------------------------------------------------------------------------
# pairing


def _assign(cand_i, cand_j, cost, unpaired_cost, sure=None, components=True):
    """Minimum-cost one-to-one pairs among candidate pairs (i, j, cost), where leaving a member
    of either side unpaired costs ``unpaired_cost``: pairing is worth it only below twice that,
    and a chain of shifted pairs never beats pairs that sit on each other. Candidates marked
    ``sure`` that are each other's cheapest are taken first (the unchanged objects, nearly all
    of them; what is left forms small components); the rest is solved per connected component
    of the candidate graph (a component of one pair is its own answer); ``components=False``
    stops after the first step."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keep = cost < 2.0 * unpaired_cost
    cand_i, cand_j, cost = cand_i[keep], cand_j[keep], cost[keep]
    taken_i, taken_j = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if sure is not None and len(cand_i):
        sure = sure[keep]
        best_i = _cheapest(cand_i, cost)
        best_j = _cheapest(cand_j, cost)
        mutual = sure & best_i & best_j
        taken_i, taken_j = cand_i[mutual], cand_j[mutual]
        free = ~_member(cand_i, taken_i) & ~_member(cand_j, taken_j)
        cand_i, cand_j, cost = cand_i[free], cand_j[free], cost[free]
    if len(cand_i) == 0 or not components:
        return taken_i, taken_j
    ui, ii = np.unique(cand_i, return_inverse=True)
    uj, jj = np.unique(cand_j, return_inverse=True)
    n_i = len(ui)
    graph = coo_matrix((np.ones(len(ii)), (ii, n_i + jj)), shape=(n_i + len(uj), n_i + len(uj)))
    _, label = connected_components(graph, directed=False)
    comp = label[ii]
    sizes = np.bincount(comp)
    single = sizes[comp] == 1
    out_i, out_j = [cand_i[single]], [cand_j[single]]
    multi = np.flatnonzero(~single)
    if len(multi):
        order = multi[np.argsort(comp[multi], kind="stable")]
        cuts = np.flatnonzero(np.diff(comp[order])) + 1
        never = 1e12
        for part in np.split(order, cuts):
            a, ia = np.unique(cand_i[part], return_inverse=True)
            b, ib = np.unique(cand_j[part], return_inverse=True)
            na, nb = len(a), len(b)
            # [pairs | a unpaired] over [b unpaired | nothing]
            m = np.full((na + nb, nb + na), never)
            np.minimum.at(m, (ia, ib), cost[part])
            m[np.arange(na), nb + np.arange(na)] = unpaired_cost
            m[na + np.arange(nb), np.arange(nb)] = unpaired_cost
            m[na:, nb:] = 0.0
            r, c = linear_sum_assignment(m)
            ok = (r < na) & (c < nb)
            out_i.append(a[r[ok]])
            out_j.append(b[c[ok]])
    return np.concatenate([taken_i, *out_i]), np.concatenate([taken_j, *out_j])


def _member(values, of):
    """``np.isin`` for non-negative int ids, by a mask (hashing millions is slower)."""
    if len(values) == 0:
        return np.zeros(0, bool)
    mask = np.zeros(int(max(values.max(), of.max() if len(of) else 0)) + 1, bool)
    mask[of] = True
    return mask[values]


def _cheapest(key, cost):
    """Whether each candidate is the cheapest (first, on ties) of those sharing its ``key``
    (non-negative ints)."""
    from mapdiff._kernels.diff import cheapest

    return cheapest(key, np.asarray(cost, float), int(key.max()) + 1 if len(key) else 0)


def _threads() -> int:
    """Worker threads for the kernels (they release the GIL): the cores this process may use."""
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _chunked(kernel, split, rest, *, offset_first=False):
    """``kernel(*split, *rest)`` over chunks of the ``split`` arrays run in threads, the
    outputs concatenated in order; with ``offset_first`` the first output holds indices into
    the chunk and is shifted back to the whole."""
    from concurrent.futures import ThreadPoolExecutor

    n = len(split[0])
    k = min(_threads(), max(1, n // 50_000))
    if k == 1:
        return kernel(*split, *rest)
    cuts = np.linspace(0, n, k + 1).astype(np.int64)
    with ThreadPoolExecutor(k) as pool:
        outs = list(pool.map(lambda c: kernel(*(a[cuts[c]:cuts[c + 1]] for a in split), *rest), range(k)))
    if offset_first:
        outs = [(o[0] + cuts[c], *o[1:]) for c, o in enumerate(outs)]
    return tuple(np.concatenate(parts) for parts in zip(*outs))


def _positions(frame: pd.DataFrame) -> np.ndarray:
    """Where things stand (``raw_x``, ``raw_y``), in the rows :func:`_near` takes."""
    return _near_rows(frame[["raw_x", "raw_y"]].to_numpy(float))


def _near_rows(xy: np.ndarray) -> np.ndarray:
    """Points (n, 2) as the (x, y, x, y) rows :func:`_near` takes."""
    return np.ascontiguousarray(np.c_[xy, xy])


def _pair_distance(feat: pd.DataFrame, things: pd.DataFrame, i, j, net, config: DiffConfig):
    """How far apart feature i and thing j are, in OSM's terms: along the feature's road when
    the feature is mapped on one (``ON_ROAD_M``) and the thing stands beside it (within
    ``snap_m``: the kerb is a convention, not an error); 0 for a junction and its own things;
    for a junction's feature and a loose thing, straight from where the map has the feature
    (``map_x``, ``map_y``); else straight. Returned with how much further from that road than ``kerb_m`` the thing
    stands (0 elsewhere): no error, but of the poles level with a feature the pairing prefers
    one at its kerb to one beyond it (at a dense corner, another crossing's pole)."""
    from mapdiff._kernels.diff import along_edge

    fx, fy, tx, ty = (frame[c].to_numpy()[k] for frame, c, k in
                      ((feat, "raw_x", i), (feat, "raw_y", i), (things, "raw_x", j), (things, "raw_y", j)))
    d = np.hypot(fx - tx, fy - ty)
    beyond = np.zeros(len(d))
    fj, tj = feat["junction"].to_numpy()[i], things["junction"].to_numpy()[j]
    d[(fj >= 0) & (fj == tj)] = 0.0
    loose = (fj >= 0) & (tj < 0)
    d[loose] = np.hypot(feat["map_x"].to_numpy()[i[loose]] - tx[loose], feat["map_y"].to_numpy()[i[loose]] - ty[loose])
    on = np.flatnonzero((feat["road"].to_numpy()[i] >= 0) & (fj < 0))
    if len(on):
        s, lateral = along_edge(feat["road"].to_numpy()[i][on], tx[on], ty[on], net.vx, net.vy, net.vcum, net.vptr)
        beside = lateral <= config.snap_m
        d[on[beside]] = np.abs(s[beside] - feat["along"].to_numpy()[i][on][beside])
        beyond[on[beside]] = np.maximum(lateral[beside] - config.kerb_m, 0.0)
    return d, beyond


def _near(a_pos, a_group, b_pos, b_group, radius_m: float):
    """Pairs (i, j, distance) of a's and b's rows (:func:`_positions`) in the same group within
    ``radius_m``, each pair once."""
    from mapdiff._kernels.diff import near_pairs

    return _chunked(near_pairs, (a_pos, np.asarray(a_group, np.int64)), (b_pos, np.asarray(b_group, np.int64),
                                                                          radius_m), offset_first=True)


def _off_road(feat: pd.DataFrame) -> np.ndarray:
    """Per feature, whether it is on no mapped road and no junction: it may be a node of a way
    the map leaves out (a footway, a service road, a road the map lacks)."""
    return (feat["road"].to_numpy() < 0) & (feat["junction"].to_numpy() < 0)


def _kerb_allowance(tol: np.ndarray, off_road: np.ndarray, sigma_m: np.ndarray, config: DiffConfig) -> np.ndarray:
    """A pair's tolerance ``tol``, where its feature is off the mapped roads (:func:`_off_road`)
    at least ``kerb_m`` plus three of the object's ``sigma_m``: its pole may stand a kerb away
    from the node, with no road under the feature to measure along, and its estimate err by its
    sigma besides. (``kerb_m`` alone, as before stop 56, made kerb poles of crossings on roads
    the map lacks into moves once their sigmas were honest: Liechtenstein's kerb scene, seed 1,
    four false moves at confidence >= 0.9, estimates of sigma 1.1 m 4.5-5.5 m from their nodes.
    The map's own sigma is not added: the kerb bounds where the convention puts the pole.)"""
    return np.where(off_road, np.maximum(tol, config.kerb_m + 3.0 * np.minimum(sigma_m, 1e6)), tol)


def _pair(feat: pd.DataFrame, things: pd.DataFrame, net, config: DiffConfig):
    """One-to-one pairs (feature row, thing row): junction things pair with their junction's
    features; the rest by assignment within ``max_move_m``.

    In two rounds, for speed on millions: first the pairs in place (each other's nearest,
    within the tolerance, same value), nearly all of a map; then an assignment among what is
    left, whose candidate graph falls into small components. Things seen in fewer than
    ``min_trips`` trips go through both rounds after the others, with the features left."""
    f_cls, t_cls = feat["cls"].to_numpy(), things["cls"].to_numpy()
    f_val, t_val = feat["val"].to_numpy(), things["val"].to_numpy()
    fj, tj = feat["junction"].to_numpy(), things["junction"].to_numpy()
    sigma = things["sigma_m"].to_numpy(float)
    tol = _tolerance(sigma, config)
    f_pos, t_pos = _positions(feat), _positions(things)
    off_road = _off_road(feat)

    def candidates(fs, ts, radius):
        """Candidate pairs among feature rows ``fs`` and thing rows ``ts`` within ``radius``,
        under the junction and value rules: (i, j, cost, in place with its value, in place)."""
        # the straight distance is at most the road distance plus the kerb
        i, j, _ = _near(f_pos[fs], f_cls[fs], t_pos[ts], t_cls[ts], radius + config.snap_m)
        i, j = fs[i], ts[j]
        d, beyond = _pair_distance(feat, things, i, j, net, config)
        close = d <= radius
        i, j, d, beyond = i[close], j[close], d[close], beyond[close]
        # a junction's things pair only with its own features; a junction's feature with a loose
        # thing only where it stands (a kerb away at most: a signal mapped on the approach, near
        # the edge of ``junction_radius_m``, whose pole stands just beyond it)
        same_junction = (fj[i] >= 0) & (fj[i] == tj[j])
        loose = (fj[i] >= 0) & (tj[j] < 0) & (d <= np.maximum(tol[j], config.kerb_m))
        keep = same_junction | loose | ((fj[i] < 0) & (tj[j] < 0))
        i, j, d, beyond, same_junction = i[keep], j[keep], d[keep], beyond[keep], same_junction[keep]
        differ = (f_val[i] >= 0) & (t_val[j] >= 0) & (f_val[i] != t_val[j])
        # a sign that moved keeps its value: different values are one object only where it stands
        near = (d <= _kerb_allowance(tol[j], off_road[i], sigma[j], config)) | same_junction
        keep = ~differ | near
        i, j, d, beyond, differ, near = i[keep], j[keep], d[keep], beyond[keep], differ[keep], near[keep]
        return i, j, d + beyond + np.where(differ, config.value_mismatch_m, 0.0), near & ~differ, near

    all_f, all_t = np.arange(len(feat)), np.arange(len(things))
    # where a feature's road runs: its place on the centre line of a mapped road, or, off every
    # mapped road, its own place (a crossing's node on a road the map lacks)
    f_centre = np.where(off_road[:, None], feat[["raw_x", "raw_y"]].to_numpy(float), feat[["x", "y"]].to_numpy(float))
    in_place = min(config.max_move_m, float(np.quantile(np.minimum(tol, config.max_move_m), 0.99))) if len(tol) else 0.0

    def rounds(fs, ts, placed_i, placed_j):
        """Pairs among feature rows ``fs`` and thing rows ``ts``: in place, then by assignment;
        ``placed_i``, ``placed_j``: pairs in place already made (for the twins' rules)."""
        i, j, cost, sure, _ = candidates(fs, ts, max(in_place, config.min_tolerance_m, config.kerb_m))
        first_i, first_j = _assign(i[sure], j[sure], cost[sure], config.max_move_m / 2.0,
                                   sure=np.ones(sure.sum(), bool), components=False)
        placed_i, placed_j = np.r_[placed_i, first_i], np.r_[placed_j, first_j]
        i, j, cost, sure, near = candidates(fs[~_member(fs, first_i)], ts[~_member(ts, first_j)], config.max_move_m)
        # the other kerb's pole of a crossing paired in place is no evidence that another
        # feature moved to it: that takes two changes (a move, and a crossing with one pole
        # where it has two) where one, the other feature's removal, explains the same. It pairs
        # in place only. (Two things on one side or on the centre line are two features, as
        # OSM maps a dense junction's crossings: each may have moved)
        centre = things[["x", "y"]].to_numpy(float)
        centre[placed_j] = f_centre[placed_i]
        twin = _kerb_twins(things, _member(all_t, placed_j), tol, 2.0 * config.kerb_m, centre)
        twin |= _weaker_kerb_twins(things, ts[~_member(ts, first_j)], _member(all_t, j[near]), tol,
                                   (2.0 * config.kerb_m, centre))
        # likewise a map feature that a feature paired in place stands for (OSM's second node of
        # one sign or crossing) is no evidence of a move to a pole further off: it pairs in place
        f_twin = _osm_twins(feat, _member(all_f, placed_i), config)
        keep = (~twin[j] & ~f_twin[i]) | near
        more_i, more_j = _assign(i[keep], j[keep], cost[keep], config.max_move_m / 2.0, sure=sure[keep])
        return np.r_[first_i, more_i], np.r_[first_j, more_j], placed_i, placed_j

    # things seen in fewer than ``min_trips`` trips (stray estimates, a pole seen once) pair
    # only with the features the well-seen ones leave: nearest first, a pole seen once 1 m from
    # a crossing's node took it from its real pole 2.4 m off, seen in 169 trips, which became
    # an addition (Liechtenstein: four of the six false additions at confidence >= 0.9)
    seen = things["n_trips"].to_numpy() >= config.min_trips
    none = np.zeros(0, np.int64)
    fi, ti, placed_i, placed_j = rounds(all_f, all_t[seen], none, none)
    weak_i, weak_j, _, _ = rounds(all_f[~_member(all_f, fi)], all_t[~seen], placed_i, placed_j)
    fi, ti = np.r_[fi, weak_i], np.r_[ti, weak_j]
    # a junction's extra features (two signal nodes at one junction) are explained by its things
    paired_f = np.zeros(len(feat), bool)
    paired_f[fi] = True
    extra = np.flatnonzero(~paired_f & (fj >= 0))
    if len(extra):
        lookup = (
            pd.Series(np.arange(len(things)), index=pd.MultiIndex.from_arrays([tj, t_cls]))
            .groupby(level=[0, 1])
            .first()
        )
        k = lookup.reindex(pd.MultiIndex.from_arrays([fj[extra], f_cls[extra]])).to_numpy()
        ok = ~np.isnan(k.astype(float))
        fi = np.r_[fi, extra[ok]]
        ti = np.r_[ti, k[ok].astype(np.int64)]
    return fi.astype(np.int64), ti.astype(np.int64)


def _split_estimates(things: pd.DataFrame, paired: np.ndarray, config: DiffConfig) -> np.ndarray:
    """Unpaired things explained by a paired one of the same class and value: within
    ``SPLIT_SIGMAS`` of the distance between two estimates of one object where the thing's
    position is that uncertain (its finite ``sigma_m`` on each, at most ``max_move_m``), and at
    least within ``split_m`` of it for the classes that stand as a pole on each kerb or approach
    (``TWO_FACED_CLASSES``: a crossing's signs, a junction's signal heads, one map feature), or,
    for a sign that faces one way, within ``kerb_m`` or level with it across the road (the other
    kerb's sign of a two-sided street, which OSM maps once: :func:`_kerb_twins`). Locate splits
    an object when some of its passes disagree (a stray pose, a junction crossed); neither that
    nor a feature's other pole is an addition. A one-faced sign further along its road is
    another sign: ``split_m`` for every class took 16 of the planted additions of seed 0's
    Helsinki scenes (a new FI:372 11 m from a mapped one; additions recall with the true objects
    0.683 -> 0.766, precision kept). A junction's things stand for the junction: another
    junction's do not explain them. (At a GPS sigma of 15 m, Liechtenstein's objects had sigmas
    of 4.5-6.5 m and split ones stood 10-20 m from their twins: 16 of 18 additions false, each
    at confidence 1.)"""
    sigma = things["sigma_m"].to_numpy(float)
    sigma = np.where(np.isfinite(sigma), sigma, 0.0)  # (none given, or none fixed: the floor)
    one_faced = ~things["class"].astype(str).isin(TWO_FACED_CLASSES).to_numpy()
    floor = np.where(one_faced, config.kerb_m, config.split_m)
    radius = np.clip(SPLIT_SIGMAS * np.sqrt(2.0) * sigma, floor, config.max_move_m)
    # the twins across the road as :func:`_kerb_twins` finds them, from the same search
    tol = _tolerance(sigma, config)
    across_m = tol + 2.0 * config.kerb_m
    pos = _positions(things)
    lonely, mate = _beside_pairs(things, paired, pos, np.where(one_faced, np.maximum(radius, across_m), radius))
    d = np.hypot(pos[lonely, 0] - pos[mate, 0], pos[lonely, 1] - pos[mate, 1])
    twin = one_faced[lonely] & (d <= across_m[lonely])
    twin[twin] = _level_across(things, lonely[twin], mate[twin], tol, things[["x", "y"]].to_numpy(float))
    out = np.zeros(len(things), bool)
    out[lonely[(d <= radius[lonely]) | twin]] = True
    return out


#: two estimates of one object with a position sigma s each lie within 3 sqrt(2) s of each
#: other but for 1 % of the time (a 2-D Gaussian's tail beyond 3 sigmas: exp(-4.5))
SPLIT_SIGMAS = 3.0


def _osm_twins(feat: pd.DataFrame, paired: np.ndarray, config: DiffConfig) -> np.ndarray:
    """Unpaired features off junctions that a paired one of their class and value stands for:
    within ``SAME_SPOT_M`` of it, or of ``FOOTWAY_CLASSES`` within ``FOOTWAY_NODES_M``, on the
    centre line (``x``, ``y``): OSM maps a crossing on every way its footway crosses (nodes 1-3 m apart), and
    the street has one sign on each kerb for them all, so the second node is no removal, whatever
    kind it says the crossing is."""
    pos = feat[["x", "y"]].to_numpy(float)
    foot = feat["class"].isin(FOOTWAY_CLASSES).to_numpy()
    pos = np.ascontiguousarray(np.c_[pos, pos])
    twins = _beside_paired(feat, paired, pos, np.where(foot, FOOTWAY_NODES_M, SAME_SPOT_M))
    # the nodes of one crossing whatever their values: a stale map keeps the old kind on the
    # node that was not edited (Helsinki's demo: a crossing's node still "unmarked" 1.1 m from
    # its "traffic_signals" twin, whose pole the fleet saw, was a removal at confidence 1)
    return twins | (foot & _beside_paired(feat.assign(val=-1), paired & foot, pos, FOOTWAY_NODES_M))


def _kerb_twins(things: pd.DataFrame, paired: np.ndarray, tol: np.ndarray, reach_m: float,
                centre: np.ndarray) -> np.ndarray:
    """Unpaired things that stand level with a paired one of their class and value across the
    road, as the poles on the two kerbs of one crossing do. Measured in the paired one's frame:
    from ``centre`` (per thing, the point of its feature's road it pairs with: the feature's
    place on the centre line) towards where it stands is its side; the other stands within its
    tolerance along the road, on the other side, each at least ``KERB_TWIN_MIN_M`` off the centre
    line (things on the centre line, or two on one side, are not), at most ``reach_m`` (two
    kerbs) beyond its tolerance from it. (Each thing on its own nearest road, the poles of a slip
    road's crossing between two carriageways snapped to those and were not level: Liechtenstein's
    removed crossings moved to such poles.)"""
    lonely, mate = _beside_pairs(things, paired, _positions(things), tol + reach_m)
    out = np.zeros(len(things), bool)
    out[lonely[_level_across(things, lonely, mate, tol, centre)]] = True
    return out


def _weaker_kerb_twins(things: pd.DataFrame, rows: np.ndarray, at_feature: np.ndarray, tol: np.ndarray,
                       across: tuple) -> np.ndarray:
    """Of the things ``rows``, those level across the road (as :func:`_kerb_twins` measures it,
    ``across`` = (its reach_m, centre)) with one within its tolerance of a feature
    (``at_feature``: a crossing whose value changed; two such are each other's), or, neither
    so, with one seen in more trips (of equals, the first). The two kerb poles of one crossing
    are one object, and the other pole no evidence that another feature moved to it.
    (Liechtenstein: a crossing moved 10 m; one pole paired with it, the other with a removed
    crossing 39 m off, a false move for a missed removal.)"""
    reach_m, centre = across
    out = np.zeros(len(things), bool)
    rows = rows[things["junction"].to_numpy()[rows] < 0]
    if len(rows) < 2:
        return out
    key = _identity(things)
    pos = _positions(things)[rows]
    i, j, d = _near(pos, key[rows], pos, key[rows], float(tol[rows].max()) + reach_m)
    a, b = rows[np.r_[i, j]], rows[np.r_[j, i]]
    trips = things["n_trips"].to_numpy()
    better = at_feature[b] | (~at_feature[a] & ((trips[b] > trips[a]) | ((trips[b] == trips[a]) & (b < a))))
    ok = (a != b) & (np.r_[d, d] <= tol[a] + reach_m) & better
    a, b = a[ok], b[ok]
    out[a[_level_across(things, a, b, tol, centre)]] = True
    return out


def _level_across(things: pd.DataFrame, a: np.ndarray, b: np.ndarray, tol: np.ndarray,
                  centre: np.ndarray) -> np.ndarray:
    """Whether thing a stands level with thing b across the road, per pair: in b's frame, from
    ``centre[b]`` towards where b stands is b's side; a stands within its tolerance along the
    road, on the other side, each at least ``KERB_TWIN_MIN_M`` off the centre line."""
    raw = things[["raw_x", "raw_y"]].to_numpy(float)
    side = raw[b] - centre[b]
    off = np.hypot(side[:, 0], side[:, 1])
    normal = side / np.maximum(off, 1e-9)[:, None]
    r = raw[a] - centre[b]
    across = np.sum(r * normal, axis=1)
    along = np.abs(r[:, 0] * normal[:, 1] - r[:, 1] * normal[:, 0])
    return (off >= KERB_TWIN_MIN_M) & (across <= -KERB_TWIN_MIN_M) & (along <= tol[a])


def _beside_paired(things: pd.DataFrame, paired: np.ndarray, pos: np.ndarray, radius_m) -> np.ndarray:
    """Unpaired things off junctions within ``radius_m`` of a paired thing of their class and
    value, at ``pos`` (:func:`_positions` rows)."""
    out = np.zeros(len(things), bool)
    out[_beside_pairs(things, paired, pos, radius_m)[0]] = True
    return out


def _identity(things: pd.DataFrame) -> np.ndarray:
    """One number per class and value of each thing (a missing value is one of its own)."""
    values = int(things["val"].max()) + 2 if len(things) else 1
    return things["cls"].to_numpy() * values + things["val"].to_numpy() + 1


def _beside_pairs(things: pd.DataFrame, paired: np.ndarray, pos: np.ndarray, radius_m):
    """(unpaired row, paired row) of :func:`_beside_paired`, ``radius_m`` a number or one per
    thing."""
    key = _identity(things)
    lonely, explained = np.flatnonzero(~paired & (things["junction"].to_numpy() < 0)), np.flatnonzero(paired)
    radius = np.broadcast_to(np.asarray(radius_m, float), (len(things),))
    reach = float(radius[lonely].max()) if len(lonely) else 0.0
    i, j, d = _near(pos[lonely], key[lonely], pos[explained], key[explained], reach)
    ok = d <= radius[lonely[i]]
    return lonely[i[ok]], explained[j[ok]]


def _sigma_scale(distance_m: np.ndarray, sigma_m: np.ndarray) -> float:
    """How much larger the real position errors are than the sigmas claim, from pairs that are
    nearly all the same object: the median of distance / sigma over the 1.177 a 2-D Gaussian
    gives (never below 1: sigmas are not made smaller than claimed)."""
    ok = np.isfinite(distance_m) & np.isfinite(sigma_m) & (sigma_m > 0)
    if ok.sum() < MIN_PER_BIN:
        return 1.0
    return max(1.0, float(np.median(distance_m[ok] / sigma_m[ok])) / 1.177)


def _one_per_place(things: pd.DataFrame, rows: np.ndarray, config: DiffConfig) -> np.ndarray:
    """Of the things ``rows`` that make additions, one per place: things of one class and value
    within ``split_m`` of each other (a new crossing's sign on each kerb, a new signal's poles
    away from a junction) are one new map feature, spoken for by the one seen in most trips."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(rows) < 2:
        return rows
    key = _identity(things)
    pos = _positions(things)[rows]
    i, j, _ = _near(pos, key[rows], pos, key[rows], config.split_m)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(rows), len(rows)))
    _, comp = connected_components(graph, directed=False)
    order = np.lexsort((-things["n_trips"].to_numpy()[rows], comp))
    lead = order[np.r_[True, comp[order][1:] != comp[order][:-1]]]
    return np.sort(rows[lead])


def _tolerance(sigma_m, config: DiffConfig) -> np.ndarray:
    """How far apart a map feature and an object may be and still be the same, unmoved object:
    three sigmas of the two positions together (the object's ``sigma_m`` and the map's
    ``map_sigma_m``), at least ``min_tolerance_m``."""
    sigma = np.minimum(np.asarray(sigma_m, float), 1e6)
    return np.maximum(config.min_tolerance_m, 3.0 * np.sqrt(sigma**2 + config.map_sigma_m**2))


# ---------------------------------------------------------------------------------------------
# visibility


def visible_from(x, y, net, *, range_m: float, hfov_deg: float):
    """The directed map edges from which points (local metres of ``net``) are in a forward
    camera's view: (point index, edge_id, against) arrays, ``against`` True for a one-way edge
    driven backwards (exact along each segment; see ``_kernels.diff``)."""
    from mapdiff._kernels.diff import visible_edges

    p, e, direction = _chunked(visible_edges, (np.asarray(x, float), np.asarray(y, float)),
                               (range_m, np.radians(hfov_deg / 2.0), net.geom), offset_first=True)
    return p, net.edges["edge_id"].to_numpy()[net.edge_base[e]], direction.astype(bool)


def _trips_in_view(x, y, net, coverage_n: pd.DataFrame, config: DiffConfig) -> np.ndarray:
    """Per point, the trips that drove an edge from which it is in view: the most on any one
    such edge and direction (a lower bound on the distinct trips; the edges of one approach
    carry mostly the same trips)."""
    p, ids, direction = visible_from(x, y, net, range_m=config.range_m, hfov_deg=config.hfov_deg)
    cov = coverage_n.reindex(ids)
    trips = np.where(~direction, cov["trips"].to_numpy(), cov["trips_against"].to_numpy())
    out = np.zeros(len(x))
    np.maximum.at(out, p, np.nan_to_num(trips.astype(float)))
    return out


def _visible_trips(feat: pd.DataFrame, net, coverage_n: pd.DataFrame, config: DiffConfig) -> np.ndarray:
    """Per map feature, the trips that had it in view (:func:`_trips_in_view`). Returned twice:
    as is (it was in view), and for the judgment of a removal, at most the trips of the
    direction of the road a feature is mapped on that reads it (the less driven one, but for
    ``TWO_FACED_CLASSES``)."""
    out = _trips_in_view(feat["x"].to_numpy(), feat["y"].to_numpy(), net, coverage_n, config)
    # a sign mapped on a road is read by the traffic of that road, which it faces (a car on a
    # road beside or across has it in view edge-on or from behind): it faces one of its road's
    # directions, and the map does not say which, so to miss it both must have had it in view.
    # A crossing has a sign on each kerb, facing each way, and signals a head for each
    # approach: either direction of their road sees them
    both = out.copy()
    on = np.flatnonzero(feat["road"].to_numpy() >= 0) if "road" in feat else np.zeros(0, np.int64)
    if len(on):
        fewer, more = _road_directions_trips(feat["road"].to_numpy()[on], net, coverage_n)
        two_faced = feat["class"].astype(str).isin(TWO_FACED_CLASSES).to_numpy()[on]
        both[on] = np.minimum(out[on], np.where(two_faced, more, fewer))
    return out, both


def _reading_places(feat: pd.DataFrame, roads: _Roads, config: DiffConfig) -> pd.DataFrame:
    """``feat`` with the place and road its heads are read from: a junction's signals that OSM
    maps up an approach (on the way, off the junction's node) are that approach's heads, read
    by its traffic, placed on it as any feature mapped on a road is (:func:`_conventional`); the
    others are read where the convention puts them (``x``, ``y``, ``road``)."""
    up = np.flatnonzero((feat["junction"].to_numpy() >= 0)
                        & (np.hypot(feat["map_x"] - feat["x"], feat["map_y"] - feat["y"]).to_numpy() > ON_ROAD_M))
    if len(up) == 0:
        return feat
    x, y, _, road, _ = _conventional(feat["map_x"].to_numpy()[up], feat["map_y"].to_numpy()[up],
                                     np.zeros(len(up), bool), roads, config)
    on = road >= 0
    out = feat.copy()
    rows = out.index[up[on]]
    out.loc[rows, "x"], out.loc[rows, "y"], out.loc[rows, "road"] = x[on], y[on], road[on]
    return out


def _driven_distance(x, y, net, coverage_n: pd.DataFrame, config: DiffConfig, k: int = 8) -> np.ndarray:
    """How far each point is from the nearest road the fleet drove (either way), among its
    ``k`` nearest within ``range_m``; infinite beyond. (The two nearest first: for nearly every
    point one of them was driven, and then it is the answer.)"""
    from mapdiff._kernels.geometry import candidates

    cov = coverage_n.reindex(net.edges["edge_id"].to_numpy()).fillna(0)
    driven = ((cov["trips"].to_numpy() + cov["trips_against"].to_numpy()) > 0)[net.edge_base]  # per kernel edge
    x, y = np.asarray(x, float), np.asarray(y, float)
    out = np.full(len(x), np.inf)
    todo = np.arange(len(x))
    for kk in (min(2, k), k):
        if len(todo) == 0:
            break
        edge, dist, *_ = _chunked(candidates, (x[todo], y[todo]), (config.range_m, kk, net.geom))
        out[todo] = np.where((edge >= 0) & driven[np.maximum(edge, 0)], dist, np.inf).min(axis=1)
        # a point whose kk nearest were all there and undriven may have a driven road further on
        todo = todo[~np.isfinite(out[todo]) & (edge[:, -1] >= 0)]
    return out


def _road_directions_trips(kernel_edge: np.ndarray, net, coverage_n: pd.DataFrame) -> tuple:
    """Per kernel edge, the trips of the less and of the more driven direction of its road: its
    own edge's and its reverse's (the edge back between the same nodes, or a one-way's wrong-way
    twin)."""
    n = net.n_edges
    base = net.edge_base[kernel_edge]
    ids = net.edges["edge_id"].to_numpy()
    cov = coverage_n.reindex(ids).fillna(0)
    with_t, against_t = cov["trips"].to_numpy(float), cov["trips_against"].to_numpy(float)
    back = pd.Series(np.arange(n), index=pd.MultiIndex.from_arrays([net.edge_u[:n], net.edge_v[:n]]))
    back = back[~back.index.duplicated()]
    rev = back.reindex(pd.MultiIndex.from_arrays([net.edge_v[base], net.edge_u[base]])).to_numpy()
    has_rev = ~np.isnan(rev.astype(float))
    rev_trips = np.where(has_rev, with_t[np.where(has_rev, rev, 0).astype(np.int64)], against_t[base])
    return np.minimum(with_t[base], rev_trips), np.maximum(with_t[base], rev_trips)


# ---------------------------------------------------------------------------------------------
# confidences: each a probability from the evidence, with its assumption in the docstring


#: evidence bins (trips) for the calibrations below: wide enough to hold many features each
EVIDENCE_BINS = np.array([1, 2, 3, 4, 6, 10, 20, 50, np.inf])
MIN_PER_BIN = 30
#: the best-evidenced pool, which measures the rate of real changes, holds this many lonely
#: items at least: a share counted from k of them is good to about 1 / sqrt(k), some 45 % at 5
MIN_LONELY = 5
#: bins of the share of the trips that had a thing in view that saw it: a stray estimate's few
#: of many (a split or a stray of a pole by a busy road: a few percent), to a real object's most
#: (over 1 where trips saw it from roads beside the busiest, which is a lower bound)
SHARE_BINS = np.array([0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, np.inf])
#: a pool's lonely share is higher than the pool's above it where a one-sided Fisher test gives
#: less than this chance of so many lonely items if the two shared one rate
RISE_P = 0.01


#: bins of how close the fleet passed a map feature (metres from the nearest driven road): at
#: its kerb or across it (up to 10 m: half a street of two lanes each way and parking), then set
#: back, out to the camera's range. Objects far from the road are seen small, from few frames,
#: at wide angles: located less often (Helsinki: 3-7 % of the features within 10 m of a driven
#: road found no object, 57 % at 30-50 m), so a feature there that nothing explains is weaker
#: evidence of a removal. Within 10 m one bin: where a map's features stand beside their road
#: varies by mapper (on the centre line, at the kerb), and a finer split would mistake a map
#: whose few off-road features are mostly the removed ones for a blind spot
DISTANCE_BINS_M = np.array([0.0, 10.0, 15.0, 20.0, 30.0, 50.0])
#: map features that pair in place stand for each other in the calibrations: this many are
#: enough to measure a share of a few percent
VISIBILITY_SAMPLE = 50_000


def _calibrated(evidence: np.ndarray, lonely: np.ndarray, weight: np.ndarray | None = None, *,
                bins: np.ndarray = EVIDENCE_BINS) -> np.ndarray:
    """The probability that a lonely item (a map feature nothing explains, or an object no
    feature explains) is a real change, given its evidence (trips), estimated from the data.

    Most of a map is right, so among items with plenty of evidence the lonely share is the
    share of real changes (``pi``); with less evidence, more items are lonely by chance (a
    feature not yet seen, a ghost object). Among the lonely items of a bin, ``pi /
    lonely_share(bin)`` are real changes. Bins with few items (or lonely ones) borrow from the
    next better one (the confidence never falls as evidence grows). ``weight``: how many items
    each stands for (a sample); ``bins``: the evidence's bin edges, increasing."""
    evidence = np.asarray(evidence, float)
    weight = np.ones(len(evidence)) if weight is None else np.asarray(weight, float)
    which = np.clip(np.searchsorted(bins, evidence, side="right") - 1, 0, len(bins) - 2)
    n = np.bincount(which, weights=weight, minlength=len(bins) - 1)
    k = np.bincount(which, weights=weight * lonely, minlength=len(bins) - 1)
    # from the best-evidenced bin down, pool bins until each pool holds enough items
    pools, members, pool_n, pool_k = [], [], 0.0, 0.0
    for b in range(len(n) - 1, -1, -1):
        members.append(b)
        pool_n, pool_k = pool_n + n[b], pool_k + k[b]
        if pool_n >= MIN_PER_BIN:
            pools.append((members, pool_n, pool_k))
            members, pool_n, pool_k = [], 0.0, 0.0
    if not pools:
        # too few items to learn from: each unit of evidence beyond the first halves the doubt
        return 1.0 - 0.5 ** np.maximum(evidence - 1.0, 0.0)
    # the best-evidenced pool measures the rate of real changes: it takes enough lonely items to
    # measure a share, joining the pools below it until it holds MIN_LONELY, unless the next one's
    # share is higher beyond chance (then the few it has are a measure: 1 of 30 by the kerb,
    # against 15 of 30 set back). Liechtenstein's 40 best-seen features held no removal, as a
    # 7 % rate leaves none one time in 16: taken as the rate, that zero made every other
    # removal's confidence zero. (Every pool held to it, the pools below the rate's merged where
    # their gradient was real but thin: seed 1's additions with true objects, all real, went
    # 17 -> 5 at confidence >= 0.9 in Liechtenstein)
    (rate, rate_n, rate_k), rest = pools[0], pools[1:]
    while rest and rate_k < MIN_LONELY and not _rises(rate_k, rate_n, rest[0][2], rest[0][1]):
        below, below_n, below_k = rest.pop(0)
        rate, rate_n, rate_k = rate + below, rate_n + below_n, rate_k + below_k
    kept = [(rate, rate_n, rate_k), *rest]
    share = np.full(len(n), np.nan)
    for pool, pool_n, pool_k in kept:
        share[pool] = pool_k / pool_n
    # the least-evidenced leftovers take the share above
    share[members] = share[kept[-1][0][0]]
    top = len(n) - 1
    pi = max(share[top], 1e-6)
    conf = np.clip(pi / np.maximum(share, 1e-9), 0.0, 1.0)
    conf = np.maximum.accumulate(conf)
    return conf[which]


def _addition_confidence(things: pd.DataFrame, lonely: np.ndarray, net, coverage_n: pd.DataFrame,
                         config: DiffConfig) -> np.ndarray:
    """How sure each thing is a real object, were it lonely: calibrated (:func:`_calibrated`)
    over the share of the trips that had it in view that saw it (``SHARE_BINS``). A real object
    is seen by most of the trips that pass it, a busy road's or a quiet one's; a stray
    estimate (a split, a pose gone wrong) by a few of many, so a count of trips ranks a new
    sign on a quiet road with a busy road's strays (seed 1's kerb scenes, additions recall at
    confidence >= 0.5: Liechtenstein 0.23 located, 0.32 with the true objects; Helsinki 0.34
    located). With fewer things than a calibration needs, by
    their trips. The lonely things are measured, and a regular sample of the others stands for
    them all (``VISIBILITY_SAMPLE``); the others' confidence is 0."""
    trips = things["n_trips"].to_numpy().astype(float)
    if len(things) < MIN_PER_BIN:
        return _calibrated(trips, lonely)
    weight = _sample_the_others(lonely.astype(float), np.flatnonzero(~lonely))
    known = np.flatnonzero(weight > 0)
    raw = things[["raw_x", "raw_y"]].to_numpy(float)[known]
    in_view = _trips_in_view(raw[:, 0], raw[:, 1], net, coverage_n, config)
    share = np.where(in_view > 0, trips[known] / np.maximum(in_view, 1.0), 0.0)
    out = np.zeros(len(things))
    out[known] = _calibrated(share, lonely[known], weight[known], bins=SHARE_BINS)
    return out


#: the least number of moves in each distance bin of :func:`_not_by_chance`: a share of chance
#: pairs counted from so many is good to about a third
MOVES_PER_BIN = 10


def _chance_distance(feat: pd.DataFrame, things: pd.DataFrame, controls: np.ndarray, lonely: np.ndarray,
                     where: tuple) -> np.ndarray:
    """Per feature row of ``controls``, how far (as a pair is measured) the nearest of the things
    ``lonely`` stands that could pair with it: its class, and its value where both have one;
    ``inf`` beyond ``max_move_m``. ``where``: (network, config)."""
    net, config = where
    f_cls, t_cls = feat["cls"].to_numpy(), things["cls"].to_numpy()
    i, j, _ = _near(_positions(feat)[controls], f_cls[controls], _positions(things)[lonely], t_cls[lonely],
                    config.max_move_m + config.snap_m)
    i, j = controls[i], lonely[j]
    d, _beyond = _pair_distance(feat, things, i, j, net, config)
    fv, tv = feat["val"].to_numpy()[i], things["val"].to_numpy()[j]
    ok = ((fv < 0) | (tv < 0) | (fv == tv)) & (d <= config.max_move_m)
    nearest = pd.Series(d[ok]).groupby(i[ok]).min()
    out = pd.Series(np.inf, index=controls)
    out[nearest.index] = nearest.to_numpy()
    return out.to_numpy()


def _not_by_chance(move_m: np.ndarray, chance_m: np.ndarray, lonely: int) -> np.ndarray:
    """Per move (its distance ``move_m``), the share of the moves that far that are not a
    feature whose object the fleet did not find beside a lonely thing of its class by chance.

    A feature whose object is gone or was missed pairs with the nearest lonely thing (an
    addition, a ghost, another's moved object) within ``max_move_m`` as often as the features
    the fleet found in place have one that far (``chance_m``, their nearest: a share ``p``
    within reach). The ``lonely`` features in view are those that found none; the others,
    ``(lonely + 1) x p / (1 - p)`` of them as expected (the mean of the negative binomial, over
    any number of features without their object), are among the moves, spread over the
    distance bins as ``chance_m`` is (quantiles of the moves, ``MOVES_PER_BIN`` at least); at
    most every move is one (where every feature has a lonely thing in reach, no lonely one
    says how many found one). (Seed 0's kept scenes: 23 of 38 false moves at confidence >= 0.9
    were a planted removal beside a planted addition or a ghost. Until stop 57 every move was
    counted among the features without their object as well, an upper bound that doubted the
    ten moves beyond 11 m of Liechtenstein's OSM-node scene (true objects, seed 0) to a
    confidence of 0.22, where 7 in 10 were real.)"""
    n = len(move_m)
    out = np.ones(n)
    if n == 0 or len(chance_m) == 0:
        return out
    n_bins = max(1, n // MOVES_PER_BIN)
    edges = np.quantile(move_m, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = 0.0, np.inf
    which = np.clip(np.searchsorted(edges, move_m, side="right") - 1, 0, n_bins - 1)
    moves = np.bincount(which, minlength=n_bins)
    finite = chance_m[np.isfinite(chance_m)]
    if len(finite) == 0:
        return out
    p = len(finite) / len(chance_m)
    paired = n if p >= 1.0 else min((lonely + 1) * p / (1.0 - p), n)
    by_chance = paired * np.bincount(np.clip(np.searchsorted(edges, finite, side="right") - 1, 0, n_bins - 1),
                                     minlength=n_bins) / len(finite)
    return np.clip(1.0 - by_chance / np.maximum(moves, 1), 0.0, 1.0)[which]


def _beyond_error(z: np.ndarray, z_all: np.ndarray) -> np.ndarray:
    """Per pair (its distance in its sigmas, ``z``), the share of the pairs at least that far
    (among ``z_all``) that their errors do not put there: of the len(z_all) pairs, a 2-D
    Gaussian puts len(z_all) x exp(-z^2 / 2) that far (never less sure of a farther pair).
    Until stop 57 a move had 1 - exp(-z^2 / 2), its own chance, as if it were the only pair: at
    3 sigmas 0.99, where among some 200 pairs two are that far by chance (seed 1's
    Liechtenstein kerb scene: three false moves at 3.1-4.0 sigmas, at confidence >= 0.9)."""
    ranked = np.sort(z_all)
    beyond = len(ranked) - np.searchsorted(ranked, z, side="left")
    by_error = len(ranked) * np.exp(-0.5 * z**2) / np.maximum(beyond, 1)
    conf = np.clip(1.0 - by_error, 0.0, 1.0)
    order = np.argsort(z, kind="stable")
    conf[order] = np.maximum.accumulate(conf[order])
    return conf


def _regular_sample(rows: np.ndarray) -> tuple:
    """Every k-th of ``rows``, about ``VISIBILITY_SAMPLE`` of them, and k: how many each stands for."""
    step = max(1, len(rows) // VISIBILITY_SAMPLE)
    return rows[::step], step


def _sample_the_others(weight: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``weight`` (each row measured has 1, in place) with a regular sample of the rows
    ``others`` standing for them all (:func:`_regular_sample`), each weighing as many as it
    stands for."""
    sample, step = _regular_sample(others)
    weight[sample] = step
    return weight


def _rises(k_a: float, n_a: float, k_b: float, n_b: float) -> bool:
    """Whether ``k_b`` lonely items of ``n_b`` is a higher share than ``k_a`` of ``n_a`` beyond
    chance (see ``RISE_P``); counts of weighted items, rounded."""
    from scipy.stats import fisher_exact

    ka, na, kb, nb = (int(round(v)) for v in (k_a, n_a, k_b, n_b))
    return fisher_exact([[kb, nb - kb], [ka, na - ka]], alternative="greater")[1] < RISE_P


# ---------------------------------------------------------------------------------------------
# the object diffs


def _object_diffs(features, objects, roads, coverage_n, config):
    feat = features.copy()
    feat["map_x"], feat["map_y"] = feat["x"], feat["y"]
    fx, fy, fj, f_road, f_along = _conventional(feat["x"].to_numpy(), feat["y"].to_numpy(),
                                                feat["at_junction"].to_numpy(), roads, config)
    feat["raw_x"] = np.where(fj >= 0, fx, feat["x"].to_numpy())
    feat["raw_y"] = np.where(fj >= 0, fy, feat["y"].to_numpy())
    feat["x"], feat["y"], feat["junction"], feat["road"], feat["along"] = fx, fy, fj, f_road, f_along
    things = _observed_things(objects, roads, config)
    pole_near = _junction_poles(feat, objects, roads, config)
    fi, ti = _pair(feat, things, roads.net, config)
    d, _beyond = _pair_distance(feat, things, fi, ti, roads.net, config)
    junction = feat["junction"].to_numpy()[fi] >= 0
    # the objects' sigmas as the data show them: scaled so that the pairs' distances (nearly
    # all of the same, unmoved object) have the median distance a 2-D Gaussian gives
    sigma_t = np.minimum(things["sigma_m"].to_numpy(float)[ti], 1e6)
    sigma_c = np.sqrt(sigma_t**2 + config.map_sigma_m**2)
    scale = _sigma_scale(d[~junction], sigma_c[~junction])
    sigma_c = sigma_c * scale
    tol = _kerb_allowance(np.maximum(config.min_tolerance_m, 3.0 * sigma_c), _off_road(feat)[fi], sigma_t * scale,
                          config)
    moved = (d > tol) & ~junction
    f_val, t_val = feat["val"].to_numpy(), things["val"].to_numpy()
    changed = (f_val[fi] >= 0) & (t_val[ti] >= 0) & (f_val[fi] != t_val[ti]) & ~moved
    f_paired = _paired_features(feat, fi, config, pole_near)
    # what the fleet had in view: needed for every lonely feature and every pair that may be a
    # change; for the calibrations a regular sample of the other pairs stands for them all
    weight = np.zeros(len(feat))
    weight[~f_paired] = 1.0
    weak = things["n_trips"].to_numpy()[ti] < config.min_trips
    weight[fi[moved | changed | weak]] = 1.0
    known = _sample_the_others(weight, fi[~(moved | changed | weak)]) > 0
    visible = np.full(len(feat), np.nan)
    missed = np.full(len(feat), np.nan)  # the in-view trips that would have seen it either way
    visible[known], missed[known] = _visible_trips(_reading_places(feat[known], roads, config), roads.net,
                                                   coverage_n, config)
    # the trips are an expected count (each as sure as the matcher is that it drove there): the
    # thresholds count them to the nearest whole trip (three trips the matcher is all but sure
    # of are three, not 2.9997: Liechtenstein lost three planted removals so)
    visible_n, missed_n = np.floor(visible + 0.5), np.floor(missed + 0.5)
    # a real object is seen by a good share of the trips that pass it; a stray estimate by a
    # few: a pair whose object's share is below what nearly all same-place pairs show is no
    # evidence of a move or a new value
    share = things["n_trips"].to_numpy()[ti] / np.maximum(visible[fi], 1.0)
    same = ~moved & known[fi] & (visible_n[fi] >= config.min_visible_trips)
    least_share = float(np.quantile(share[same], 0.05)) if same.sum() >= MIN_PER_BIN else 0.0
    trusted = (share >= least_share) | (visible_n[fi] < config.min_visible_trips)
    # ... nor does it explain its feature away when it was seen in fewer than ``min_trips`` trips
    # and stands beyond the feature's tolerance: a thing seen once 20 m from a sign that fifty
    # trips had in view is a stray estimate (a pose gone wrong, a split), not the sign's pole,
    # which would have been seen; nor is it a move, too weakly seen. Such strays took 15 of the
    # 56 planted removals of seed 0's Helsinki kerb scene, 4 of them from beyond the tolerance
    # (a weak thing's is 8-12 m). Within its tolerance it stays paired if it reads the feature's
    # value: there it is the feature's pole seen badly (the demo's clips see poles in one filmed
    # trip of ten: unpaired, 22 of its 28 such features were false removals). Reading another
    # value it is a misread or a stray of another sign, no sign that this one stands (Helsinki,
    # seed 0: 20 of the 73 planted removals its two scenes did not report were so explained,
    # by things seen once, 1.5-14 m off; diff_sim's removals' recall 0.327 -> 0.400, seed 1
    # 0.429 -> 0.579). A well-seen thing stays paired (by construction 5 % of the real pairs
    # are below ``least_share``)
    keep = ~(weak & ~trusted & (moved | changed))
    fi, ti, d, junction, sigma_c, moved, changed, trusted = (
        a[keep] for a in (fi, ti, d, junction, sigma_c, moved, changed, trusted))
    f_paired = _paired_features(feat, fi, config, pole_near)
    changed &= trusted & (things["n_trips"].to_numpy()[ti] >= config.min_trips)
    t_paired = np.zeros(len(things), bool)
    t_paired[ti] = True
    split = _split_estimates(things, t_paired, config)
    # where the map gives no value (a crossing without its kind), the value an estimate was read
    # with is no evidence of another object: a detector that misreads values leaves one kerb's
    # pole of a crossing read one way and the other another (Liechtenstein, a tenth of the
    # sightings confused: 16 of 20 additions were such poles, 8 m from the paired one)
    valueless = np.zeros(len(things), bool)
    valueless[ti[f_val[fi] < 0]] = True
    split |= _split_estimates(things.assign(val=-1), t_paired & valueless, config)
    # how sure an unexplained object is real, by the share of the passing trips that saw it
    # (calibrated on the data)
    conf_seen = _addition_confidence(things, ~t_paired & ~split, roads.net, coverage_n, config)
    # a move: the share of the pairs this far apart that both positions' errors (Gaussian, 2-D)
    # do not put there, and as sure as pairs like it are: among the pairs whose object was seen
    # in as many trips, the share beyond the tolerance (split or stray estimates show up as
    # moves among the poorly seen; calibrated like the other kinds)
    z = d / sigma_c
    conf_moved = _beyond_error(z, z[~junction]) * _calibrated(things["n_trips"].to_numpy()[ti], moved)
    enough = things["n_trips"].to_numpy()[ti] >= config.min_trips
    # how sure a feature nothing explains is gone, by the trips that had it in view (calibrated)
    in_view = known & (missed >= 1)
    conf_gone = np.zeros(len(feat))
    # ... and by how close the fleet passed it (calibrated the same way, over closeness)
    near_m = _driven_distance(feat["raw_x"].to_numpy()[in_view], feat["raw_y"].to_numpy()[in_view], roads.net,
                              coverage_n, config)
    closeness = np.ones(len(near_m))
    if weight[in_view].sum() >= MIN_PER_BIN:  # (with fewer, nothing to learn: no discount)
        closeness = _calibrated(-near_m, ~f_paired[in_view], weight[in_view], bins=-DISTANCE_BINS_M[::-1])
    conf_gone[in_view] = _calibrated(missed[in_view], ~f_paired[in_view], weight[in_view]) * closeness
    # (with no objects at all the user says nothing was seen: every feature in view is gone)
    judged = known & (missed_n >= config.min_visible_trips)
    blind = _blind(f_paired[judged], weight[judged]) if len(things) else None
    if blind:
        conf_gone[:] = 0.0
    parts = []
    # a move: the object is not where the map has it, a place the fleet had in view, but near
    seen_there = visible_n[fi] >= config.min_visible_trips
    mv = np.flatnonzero(moved & trusted & enough & seen_there)
    # ... and not a lonely feature (a removal, an object locate missed) beside a lonely thing
    # (an addition, a ghost) by chance
    gone_if_lonely = ~f_paired & (missed_n >= config.min_visible_trips)  # the removals, below
    unexplained = int((gone_if_lonely & (feat["junction"].to_numpy() < 0)).sum())
    lonely = np.r_[np.flatnonzero(~t_paired & ~split & (things["n_trips"].to_numpy() >= config.min_trips)), ti[mv]]
    controls = _regular_sample(fi[~moved & ~changed & ~junction])[0]  # a sample stands for them all
    chance_m = _chance_distance(feat, things, controls, lonely, (roads.net, config))
    conf_moved[mv] *= _not_by_chance(d[mv], chance_m, unexplained)
    parts.append(_rows("object_moved", feat, fi[mv], things, ti[mv], d[mv], conf_moved[mv], visible[fi[mv]]))
    # a new value: as sure as the share of the object's sightings that read it
    k = np.flatnonzero(changed)
    parts.append(_rows("value_changed", feat, fi[k], things, ti[k], d[k],
                       things["value_share"].to_numpy()[ti[k]], visible[fi[k]]))
    k = _one_per_place(things, np.flatnonzero(~t_paired & ~split & (things["n_trips"].to_numpy() >= config.min_trips)),
                       config)
    # ... unless it may be where a moved feature went
    conf_added = conf_seen[k] * _not_the_moved_one(feat, things, (fi[mv], d[mv]), k, roads.net, config)
    parts.append(_rows("object_added", feat, np.full(len(k), -1), things, k, np.full(len(k), np.nan), conf_added,
                       np.full(len(k), np.nan)))
    k = np.flatnonzero(gone_if_lonely)
    # drawn where the map has it
    parts.append(_rows("object_removed", features, k, things, np.full(len(k), -1), np.full(len(k), np.nan),
                       conf_gone[k], missed[k]))
    unseen = np.flatnonzero(~f_paired & ~gone_if_lonely)
    unverified = features.iloc[unseen].assign(visible_trips=missed[unseen])
    return parts, unverified, blind


def _not_the_moved_one(feat: pd.DataFrame, things: pd.DataFrame, moves: tuple, added: np.ndarray, net,
                       config: DiffConfig) -> np.ndarray:
    """Per added thing (rows ``added``): the chance that it is new, not where a moved feature
    went. ``moves`` (feature rows, distances) are the moves found; where a feature
    moved ``d_B`` to thing B and an added thing A of its class and value stands ``d_A`` from it
    (within ``max_move_m``), the data cannot tell which of the two the mapped one became: the
    other is the new one. With no scale for how far things move (a prior uniform in the log of
    the distance: a likelihood 1/d), A is where the feature went with odds d_B : d_A, and new
    with the chance d_A / (d_A + d_B); the least over such moves. (Helsinki, seed 0: a sign
    mapped 12.6 m from where it stood and a new one of the same code 8.8 m from the map's; the
    nearer was paired as the move and the other reported added at confidence 1, where the
    simulator had planted the move to it.)"""
    f_row, d_moved = moves
    out = np.ones(len(added))
    if len(f_row) == 0 or len(added) == 0:
        return out
    # one group per class and value: a moved sign's place is no other sign's
    group = _identity(pd.concat([feat[["cls", "val"]].iloc[f_row], things[["cls", "val"]].iloc[added]]))
    m, a, _ = _near(_positions(feat.iloc[f_row]), group[: len(f_row)], _positions(things.iloc[added]),
                    group[len(f_row):], config.max_move_m)
    d_a, _ = _pair_distance(feat, things, f_row[m], added[a], net, config)
    np.minimum.at(out, a, d_a / np.maximum(d_a + d_moved[m], 1e-9))
    return out


def _paired_features(feat: pd.DataFrame, fi: np.ndarray, config: DiffConfig, pole_near: np.ndarray) -> np.ndarray:
    """Per feature row: explained by a thing (a row of ``fi``), by a feature so paired (its
    OSM twin, :func:`_osm_twins`), or, for a junction's, by a pole of its class by its node
    (``pole_near``, :func:`_junction_poles`)."""
    paired = np.zeros(len(feat), bool)
    paired[fi] = True
    return paired | _osm_twins(feat, paired, config) | pole_near


def _junction_poles(feat: pd.DataFrame, obj: pd.DataFrame, roads: _Roads, config: DiffConfig) -> np.ndarray:
    """Per feature row: a junction's feature (``junction`` >= 0) with an object of its class,
    seen in ``min_trips`` trips, within ``junction_radius_m`` of its junction's node. A pole
    between two junction nodes of one crossroads (a dual carriageway's, 30 m apart) is the
    nearer one's thing, and the other's signals, mapped between them too, were a removal the
    fleet had seen the pole of (Helsinki, seed 1, the simulator's objects: a pole 16 m from
    either node, seen in 42 trips)."""
    out = np.zeros(len(feat), bool)
    j = feat["junction"].to_numpy()
    rows = np.flatnonzero(j >= 0)
    seen = np.flatnonzero(obj["n_trips"].to_numpy() >= config.min_trips)
    if len(rows) == 0 or len(seen) == 0:
        return out
    node = np.c_[roads.junction_x[j[rows]], roads.junction_y[j[rows]]]
    pole = obj[["x", "y"]].to_numpy(float)[seen]
    i, _, _ = _near(_near_rows(node), feat["cls"].to_numpy()[rows], _near_rows(pole), obj["cls"].to_numpy()[seen],
                    config.junction_radius_m)
    out[rows[i]] = True
    return out


def _blind(paired: np.ndarray, weight: np.ndarray):
    """Whether the objects explain so few of the map features the fleet had in view (``paired``
    per feature, each standing for ``weight`` of them) that its absences say nothing: fewer
    than half, beyond chance (a one-sided binomial test at 5 %). The removals' calibration
    rests on most of a map being right; where the data say most of it is gone, the objects do
    not speak for the area (objects of a third of it, with the whole area's coverage: 137
    removals at precision 0.01, 82 of them at confidence >= 0.9), or the camera side failed.
    Returns None, or the share explained and the features it counts."""
    from scipy.stats import binom

    n = int(np.round(weight.sum()))
    k = int(np.round(weight[paired].sum()))
    if n == 0 or binom.cdf(k, n, 0.5) >= 0.05:
        return None
    return k / n, n


def _rows(kind, feat, fi, things, ti, distance, confidence, visible) -> pd.DataFrame:
    """Diff rows of one kind from paired (or -1: absent) feature and thing rows; drawn at the
    thing's place when there is one, else at the feature's."""
    has_f, has_t = fi >= 0, ti >= 0
    f, t = np.maximum(fi, 0), np.maximum(ti, 0)

    def pick(frame, col, idx, present, fill=None):
        if len(frame) == 0:
            return np.full(len(idx), fill, dtype=object)
        values = np.array(frame[col].take(idx).to_numpy(dtype=object), dtype=object)  # a copy: writable
        values[~present] = fill
        return values

    cls = np.where(has_t, pick(things, "class", t, has_t), pick(feat, "class", f, has_f))
    tx = things["show_x"].to_numpy()[t] if len(things) else np.zeros(len(t))  # numeric: cheap
    ty = things["show_y"].to_numpy()[t] if len(things) else np.zeros(len(t))
    fx = feat["x"].to_numpy()[f] if len(feat) else np.zeros(len(f))
    fy = feat["y"].to_numpy()[f] if len(feat) else np.zeros(len(f))
    return pd.DataFrame({
        "kind": kind, "class": cls,
        "feature_id": pick(feat, "feature_id", f, has_f), "old_value": pick(feat, "value", f, has_f),
        "object_id": pick(things, "object_id", t, has_t), "new_value": pick(things, "value", t, has_t),
        "distance_m": np.asarray(distance, float), "confidence": np.asarray(confidence, float),
        "n_trips": pick(things, "n_trips", t, has_t), "n_observations": pick(things, "n_observations", t, has_t),
        "visible_trips": np.asarray(visible, float),
        "value_share": pick(things, "value_share", t, has_t, np.nan).astype(float),
        "x": np.where(has_t, tx, fx), "y": np.where(has_t, ty, fy),
    })


# ---------------------------------------------------------------------------------------------
# the road diffs


def _undirected(net):
    """A road id per map edge: the two directions of a street share it
    (:func:`mapdiff.network.street_ids`)."""
    from mapdiff.network import street_ids

    n = net.n_edges
    return street_ids(net.edge_u[:n], net.edge_v[:n], net.edge_len[:n])


def _road_diffs(net, coverage_n, config, passes: Passes | None = None):
    """``oneway_reversed`` from the coverage (and the trips' routes, ``passes``, when given: see
    :func:`_detours`)."""
    n = net.n_edges
    ids = net.edges["edge_id"].to_numpy()
    cov = coverage_n.reindex(ids).fillna(0)
    with_t, against_t = cov["trips"].to_numpy(float), cov["trips_against"].to_numpy(float)
    with_p, against_p = cov["passes"].to_numpy(float), cov["against"].to_numpy(float)
    rows = []
    # one-way edges: those with a wrong-way twin
    oneway = net.twin_of[:n] >= 0

    def candidates(against):
        return oneway & (against >= config.min_road_trips) & (against > with_t)

    if passes is not None:
        against_t = against_t * (1.0 - _detours(net, passes, candidates(against_t)))
    busy = oneway & (with_t + against_t >= config.min_road_trips)
    # the matcher's wrong-way noise: the share of trips against on the one-ways mostly driven
    # with their direction (most one-ways are mapped right); a floor keeps it from being 0
    norm = busy & (against_t < with_t)
    eps = float(np.clip(against_t[norm].sum() / max((with_t[norm] + against_t[norm]).sum(), 1.0), 0.005, 0.2))
    prior = 0.05  # the share of one-ways a stale map has backwards: a few percent (OSM edits)
    log_lr = (against_t - with_t) * np.log((1 - eps) / eps)
    conf = 1.0 / (1.0 + (1 - prior) / prior * np.exp(-np.clip(log_lr, -50, 50)))
    for e in np.flatnonzero(candidates(against_t)):
        rows.append(_road_row("oneway_reversed", net, [e], conf[e], with_p[e], against_p[e], np.nan,
                              n_trips=int(against_t[e])))
    return rows


def _detours(net, passes: Passes, candidate: np.ndarray) -> np.ndarray:
    """Per edge row: the share of its passes against it (``passes``) that are another
    candidate's (``candidate``, per edge row: a one-way driven against) driven round a triangle.
    Two passes in a row from node P to node Q, one against a candidate, the other its edge's
    way, where the map has another candidate one-way Q -> P, are the matcher's way round for a
    car that drove that one against it, straight from P to Q: a slip road's triangle at a
    junction leaves the two ways a few metres apart, and the matcher takes either.
    (Liechtenstein, seed 0: a 17 m link beside a 25 m one-way the simulator had reversed; all
    135 of its passes against it went on along the triangle's third side: a false reversal at
    confidence 1 in both placements.)"""
    n = net.n_edges
    out = np.zeros(n)
    if candidate.sum() < 2:
        return out
    _, trip, chain, rows, against = passes
    if len(rows) < 2:
        return out
    enter, leave = _ends(net, rows, against)
    cand = pd.Series(np.flatnonzero(candidate), index=pd.MultiIndex.from_arrays(
        [net.edge_u[:n][candidate], net.edge_v[:n][candidate]]))
    cand = cand[~cand.index.duplicated()]
    a = np.arange(len(rows) - 1)
    b = a + 1
    wrong = np.where(against[a], a, b)  # the pass against its edge, of the two
    # (two passes in a row of one stretch, one of them against a candidate)
    keep = ((against[a] != against[b]) & candidate[rows[wrong]] & (trip[a] == trip[b]) & (chain[a] == chain[b])
            & (leave[a] == enter[b]))
    a, b, wrong = a[keep], b[keep], wrong[keep]
    e = rows[wrong]
    f = cand.reindex(pd.MultiIndex.from_arrays([leave[b], enter[a]])).to_numpy()
    detour = ~np.isnan(f) & (f != e)
    round_ = np.zeros(len(rows), bool)
    round_[wrong[detour]] = True
    on_candidate = against & candidate[rows]
    return (np.bincount(rows[on_candidate], weights=round_[on_candidate], minlength=n)
            / np.maximum(np.bincount(rows[on_candidate], minlength=n), 1))


def _closed_roads(net, counts: tuple, paths: tuple, config: DiffConfig, source: str, *,
                  fixes: FixEvidence | None, reversed_rows: np.ndarray) -> list:
    """``road_closed``: roads that the fleet's own trips would have taken (the map's fastest
    routes, by free-flow speed, over windows of their paths: :func:`_route_windows`) yet nobody
    drove, once the closures found explain the rest (:func:`_explained_closures`). A closed road makes
    every trip that needed it go round; an open road off everyone's way is simply empty and
    expected so. The confidence is calibrated on the map itself: among the roads expected on
    that many trips, how many are empty anyway (drivers do not all take the fastest way; see
    :func:`_calibrated`). ``fixes`` (:class:`FixEvidence`): where the trips drove roads the map
    lacks, which no route on the map explains. ``reversed_rows`` (per edge row): the one-ways
    the fleet showed reversed (``oneway_reversed``), routed the way it drives them. ``paths``:
    the matched paths' table and its :data:`Passes`."""
    road = _undirected(net)
    driven = _driven(net, road, counts, config.min_road_trips)
    frame, passes = paths
    off_map = None if fixes is None else _off_map_passes(frame, fixes, source)
    windows = _route_windows(net, passes, off_map=off_map, reversed_rows=reversed_rows)
    expected, closed, explained = _explained_closures(net, road, driven, windows, config.min_road_trips,
                                                      reversed_rows)
    judged = expected >= config.min_road_trips
    conf = np.zeros(len(expected))
    conf[judged] = _calibrated(expected[judged], closed[judged])
    rows = []
    # closures that touch are one closed stretch, one diff (the data cannot tell which is shut),
    # and so are the empty roads a closure explains that touch it: of three roads in a row that
    # nobody drove, the middle one taken as closed explains both ends as well as the two ends
    # explain it (Harrisburg: the middle one reported, the two planted closures missed)
    for stretch in _touching(net, road, np.flatnonzero(closed | explained)):
        shut = stretch[closed[stretch]]
        if len(shut) == 0:
            continue
        edges = np.flatnonzero(np.isin(road, stretch))
        best = shut[np.argmax(expected[shut])]
        rows.append(_road_row("road_closed", net, list(edges), conf[shut].max(), 0.0, 0.0, expected[best]))
    return rows


def _explained_closures(net, road: np.ndarray, driven: np.ndarray, windows: tuple, min_trips: int,
                        reversed_rows: np.ndarray):
    """Which empty roads are closed, one at a time. A closure empties more than itself: every
    road further along the routes that needed it, up to where the detours join them again. So
    the road that the most trips' fastest routes take (over ``windows``, see
    :func:`_route_windows`) and none drove is taken as closed; those routes are made again on
    the map without it, as the trips had to drive; the other roads are judged on the new
    routes, and so on while an undriven road keeps ``min_trips`` trips.

    Returns, per road, the trips expected on it (for a closure, when it was taken), whether it
    is closed, and whether it is an empty road that the closures explain (expected on
    ``min_trips`` trips before, on fewer after)."""
    from mapdiff._kernels.graph import route_legs
    from mapdiff.network import free_flow_speed_mps

    n_roads = int(road.max()) + 1
    start, end, trip = windows
    # by travel time; a one-way is routed its way, which a reversal turns round (the twin that
    # drives it backwards is then the legal edge)
    illegal = net.edge_against != reversed_rows[net.edge_base]
    seconds = np.where(illegal, np.inf, net.edge_len / free_flow_speed_mps(net.edges)[net.edge_base])
    road_all = road[net.edge_base]

    def route(which, weight):
        """The roads of each window's fastest route, as keys ``window * n_roads + road``."""
        legs, ptr, ok = route_legs(start[which], end[which], net.n_nodes, net.out_ptr, net.out_edge, net.edge_u,
                                   net.edge_v, weight)
        leg = np.repeat(np.arange(len(which)), np.diff(ptr))
        # a route that had to drive a one-way backwards (the only way to its end) is no route
        legal = ok & (np.bincount(leg, weights=illegal[legs], minlength=len(which)) == 0)
        return np.unique(which[leg][legal[leg]] * n_roads + road_all[legs][legal[leg]])

    def trips_on(keys):
        return np.bincount(np.unique(trip[keys // n_roads] * n_roads + keys % n_roads) % n_roads,
                           minlength=n_roads).astype(float)

    keys = route(np.arange(len(start)), seconds)
    expected = trips_on(keys)
    empty = ~driven & (expected >= min_trips)
    taken = np.zeros(n_roads)
    closed = np.zeros(n_roads, dtype=bool)
    while True:
        open_empty = np.flatnonzero(~driven & ~closed & (expected >= min_trips))
        if len(open_empty) == 0:
            break
        c = open_empty[np.argmax(expected[open_empty])]
        closed[c], taken[c] = True, expected[c]
        seconds = np.where(road_all == c, np.inf, seconds)
        hit = np.isin(keys // n_roads, keys[keys % n_roads == c] // n_roads)
        again = route(np.unique(keys[hit] // n_roads), seconds)
        # only the roads of the routes made again can change their count (a full recount per
        # closure grew with the square of the data: 67 of 104 s on 6 M fixes)
        touched = np.unique(np.r_[keys[hit] % n_roads, again % n_roads])
        keys = np.concatenate([keys[~hit], again])
        expected[touched] = trips_on(keys[np.isin(keys % n_roads, touched)])[touched]
    return np.where(closed, taken, expected), closed, empty & ~closed & (expected < min_trips)


#: drivers take the fastest way over a few minutes of driving, not always over a whole trip
#: (taxis stop on the way, trips go through waypoints): the paths are compared with fastest
#: routes over windows of this much free-flow driving, overlapping by half, so that a detour of
#: up to half of it lies inside one window; and over each whole stretch, for the long detours
#: (a closed valley road)
ROUTE_WINDOW_S = 240.0


def _off_map_passes(paths: pd.DataFrame, evidence: FixEvidence, source: str) -> np.ndarray:
    """Per row of ``paths``: whether its trip drove a road the map lacks (a run of
    :func:`_road_runs`) while on that edge. There the matched path is the map's stand-in for
    another road (the matcher routes along mapped roads beside it, or jumps): the drivers took
    the missing road, and the map's fastest route between its ends says nothing of what they
    would have driven."""
    from mapdiff.schema import require, time_seconds

    runs, names = evidence.runs, evidence.trip_ids
    out = np.zeros(len(paths), dtype=bool)
    if runs.empty or len(paths) == 0:
        return out
    require(paths, ["t_enter", "t_exit"], source)
    span = runs.groupby("run").agg(trip=("trip", "first"), t0=("t", "min"), t1=("t", "max"))
    span["trip_id"] = names[span["trip"].to_numpy()]
    rows = pd.DataFrame({"trip_id": paths["trip_id"].astype(str).to_numpy(), "row": np.arange(len(paths)),
                         "enter": time_seconds(paths["t_enter"], source=source, column="t_enter"),
                         "exit": time_seconds(paths["t_exit"], source=source, column="t_exit")})
    # a trip's runs do not overlap: the last run to start before a row's exit is the only one
    # that can reach into it
    hit = pd.merge_asof(rows.sort_values("exit"), span.sort_values("t0")[["trip_id", "t0", "t1"]],
                        left_on="exit", right_on="t0", by="trip_id", direction="backward")
    out[hit["row"].to_numpy()] = (hit["t1"] >= hit["enter"]).to_numpy()
    return out


#: the rows of a paths table on the map's edges, in their order (by trip, as match writes them):
#: which rows of the table they are (``known``), and per row its trip code, chain, edge row and
#: whether it was driven against the edge (:func:`_passes`)
Passes = namedtuple("Passes", ["known", "trip", "chain", "rows", "against"])


def _passes(net, paths: pd.DataFrame, source: str) -> Passes:
    """The :data:`Passes` of ``paths``, read once for every rule that follows the trips' routes."""
    from mapdiff.schema import flags, numbers, require

    require(paths, ["trip_id", "edge_id", "against"], source)
    if len(paths) == 0:
        return Passes(np.zeros(0, bool), *(np.zeros(0, np.int64),) * 3, np.zeros(0, bool))
    against = flags(paths, "against", source)
    row_of = pd.Series(np.arange(net.n_edges), index=net.edges["edge_id"].to_numpy())
    row = row_of.reindex(numbers(paths, "edge_id", source, integer=True)).to_numpy()
    known = ~np.isnan(row)
    p = paths[known]
    chain = p["chain"].to_numpy() if "chain" in p else np.zeros(len(p), np.int64)
    trip = pd.factorize(p["trip_id"].astype(str))[0]
    return Passes(known, trip, chain, row[known].astype(np.int64), against[known])


def _ends(net, rows: np.ndarray, against: np.ndarray) -> tuple:
    """The nodes each pass (edge ``rows``, driven ``against`` its way or not) enters and
    leaves."""
    enter = np.where(against, net.edge_v[rows], net.edge_u[rows]).astype(np.int64)
    leave = np.where(against, net.edge_u[rows], net.edge_v[rows]).astype(np.int64)
    return enter, leave


def _route_windows(net, passes: Passes, *, off_map: np.ndarray | None = None,
                   reversed_rows: np.ndarray | None = None) -> tuple:
    """The stretches of the matched paths whose fastest routes are compared with them: per
    stretch the map can route (an unbroken chain of edges that meet, driven their way or the
    way of a reversal in ``reversed_rows`` (per edge row), on no road the map lacks: ``off_map``,
    per row of the table the :data:`Passes` were read from), from node to node
    ``ROUTE_WINDOW_S`` of free-flow driving apart, every half window, and the whole stretch.
    Returns (start node, end node, trip) per window."""
    from mapdiff.network import free_flow_speed_mps

    none = (np.zeros(0, np.int64),) * 3
    known, trip, chain, rows, against = passes
    if len(rows) == 0:
        return none
    # a pass against a one-way (unless the fleet showed it reversed), or on a road the map
    # lacks: the map cannot route that row
    unroutable = against != (False if reversed_rows is None else reversed_rows[rows])
    if off_map is not None:
        unroutable |= off_map[known]
    enter, leave = _ends(net, rows, against)
    # only stretches the map can route are compared with its fastest routes: an unroutable row,
    # or a jump between edges that do not meet (a road the map lacks), ends one
    new = np.r_[True, (trip[1:] != trip[:-1]) | (chain[1:] != chain[:-1]) | (enter[1:] != leave[:-1])] | unroutable
    keep = ~unroutable
    trip, rows, enter, leave = trip[keep], rows[keep], enter[keep], leave[keep]
    key = np.cumsum(new)[keep]
    first = np.r_[True, key[1:] != key[:-1]]
    last = np.r_[key[1:] != key[:-1], True]
    # free-flow time driven by the end of each row, from its stretch's start
    step = net.edge_len[rows] / free_flow_speed_mps(net.edges)[rows]
    t = np.cumsum(step)
    t -= np.repeat((t - step)[first], np.diff(np.r_[np.flatnonzero(first), len(t)]))
    half = np.floor(t / (ROUTE_WINDOW_S / 2)).astype(np.int64)
    # the boundaries, in order: each stretch's start, each node where a half window ends, its end
    cut = last | np.r_[half[1:] != half[:-1], True]
    at = np.r_[np.flatnonzero(first) - 0.5, np.flatnonzero(cut)]
    order = at.argsort(kind="stable")
    b = pd.DataFrame({"stretch": np.r_[key[first], key[cut]][order], "node": np.r_[enter[first], leave[cut]][order]})
    # windows from each boundary to the one two further on, and the whole stretch (unless that
    # is its one window already: three boundaries)
    by = b.groupby("stretch")["node"]
    b["two"] = by.shift(-2)
    w = b[b["two"].notna()]
    whole = by.agg(["first", "last", "size"])
    whole = whole[(whole["size"] == 2) | (whole["size"] > 3)]
    start = np.r_[w["node"].to_numpy(np.int64), whole["first"].to_numpy(np.int64)]
    end = np.r_[w["two"].to_numpy(np.int64), whole["last"].to_numpy(np.int64)]
    stretch = np.r_[w["stretch"].to_numpy(), whole.index.to_numpy()]
    trip_of = pd.Series(trip).groupby(key).first().reindex(stretch).to_numpy()
    keep = start != end
    return start[keep], end[keep], trip_of[keep]


#: road lengths (metres) over which the share of passes that a fix confirms is measured: it
#: grows with length (a short road is crossed between two fixes), and doubles per bin
LENGTH_BINS_M = np.array([10.0, 20.0, 40.0, 80.0, 160.0, 320.0])


def _driven(net, road: np.ndarray, counts: tuple, min_trips: int) -> np.ndarray:
    """Per road, whether a car drove it. A trip whose fix confirmed it did (see
    :func:`_confirmed_trips`, at least an even chance); a pass with no such fix is the matcher
    routing between fixes, which at a junction corner or across a gap can cut through a closed
    road, counts only where fixes could not have confirmed it (its passes would have left a
    confirming fix with at most an even chance, at the rate that roads of its length get them
    in this data: sparse fixes; short roads; tunnels) or when ``min_trips`` trips made such passes
    (a bridge over another road, a road the map draws off where cars drive: a real road the
    fixes do not show)."""
    from mapdiff.network import tunnel_edges

    ids = net.edges["edge_id"].to_numpy()
    cov, seen = (c.reindex(ids).fillna(0) for c in counts)
    n_roads = road.max() + 1
    trips = np.bincount(road, weights=cov["trips"].to_numpy(float) + cov["trips_against"].to_numpy(float),
                        minlength=n_roads)
    confirmed = np.bincount(road, weights=seen["trips"].to_numpy(float) + seen["trips_against"].to_numpy(float),
                            minlength=n_roads)
    length = np.bincount(road, weights=net.edge_len[: net.n_edges], minlength=n_roads) / np.bincount(road)
    b = np.digitize(length, LENGTH_BINS_M)
    rate = (np.bincount(b, weights=confirmed, minlength=len(LENGTH_BINS_M) + 1)
            / np.maximum(np.bincount(b, weights=trips, minlength=len(LENGTH_BINS_M) + 1), 1e-9))
    # roads shorter than two junction margins are confirmed by chance fixes (the matcher gives a
    # junction's fixes to its longer roads); tunnels have no fixes
    blind = (length < 2 * END_M) | (np.bincount(road, weights=tunnel_edges(net.edges), minlength=n_roads) > 0)
    # a road was not driven when its passes, had they been driven, would more likely than not
    # have left a confirming fix (at 95 %, as first written, one unconfirmed pass of a 50-80 m
    # road, confirmed at 0.83-0.87 a pass, kept it driven: Harrisburg's closures 0.69 / 0.14
    # -> 0.83 / 0.18, Liechtenstein's 0.95 / 0.33 -> 0.96 / 0.37)
    could_confirm = ~blind & ((1.0 - np.clip(rate[b], 0.0, 1.0)) ** trips <= 0.5)
    return (trips > 0) & ~(could_confirm & (confirmed < 0.5) & (trips < min_trips))


def _touching(net, road: np.ndarray, chosen: np.ndarray) -> list:
    """The roads ``chosen`` grouped into sets that share a node, transitively."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(chosen) == 0:
        return []
    n = net.n_edges
    member = np.isin(road, chosen)
    idx = pd.Series(np.arange(len(chosen)), index=chosen)
    e_road = idx.reindex(road[member]).to_numpy()
    nodes = np.r_[net.edge_u[:n][member], net.edge_v[:n][member]]
    owner = np.r_[e_road, e_road]
    graph = coo_matrix((np.ones(len(nodes)), (owner, nodes)), shape=(len(chosen), net.n_nodes)).tocsr()
    link = (graph @ graph.T).tocoo()
    _, comp = connected_components(link, directed=False)
    return [chosen[comp == c] for c in np.unique(comp)]


def _road_row(kind, net, edges, confidence, passes, against, expected, **extra):
    from shapely import LineString

    e = edges[0]
    xs = net.vx[net.vptr[e]:net.vptr[e + 1]]
    ys = net.vy[net.vptr[e]:net.vptr[e + 1]]
    ids = net.edges["edge_id"].to_numpy()[edges]
    return {"kind": kind, "class": "road", "edge_id": int(ids[0]), "edge_ids": ",".join(str(int(i)) for i in ids),
            "confidence": float(confidence), "passes": float(passes), "against": float(against),
            "expected_passes": float(expected), "geometry_m": LineString(np.c_[xs, ys]),
            "node_from": net.edges["u"].to_numpy()[e], "node_to": net.edges["v"].to_numpy()[e], **extra}


#: the fastest a car drives in a car park or a fuel station, m/s (9 km/h): off-map runs
#: slower than this are not a road
PARK_MPS = 2.5


#: a trip supports an inferred road when the median distance of its fixes from the line is
#: within this many GPS sigmas (2.5: the median radius of a 2-D Gaussian is 1.18 sigma, and
#: a per-trip bias adds about one more)
SUPPORT_SIGMAS = 2.5


def _chance_windows(trips_per_window: np.ndarray):
    """How many windows (a cell and its neighbours) would hold a given number of distinct
    off-map trips by chance: a function of the trips. Off-map runs that are not a road
    (multipath, car parks, outliers) scatter independently, so a window's count is Poisson;
    its mean is estimated from the windows with one and two trips, and the expectation is over
    all occupied windows. A line of
    ``n`` trips is then a road with the probability that no window reaches ``n`` by chance."""
    from scipy.stats import poisson

    counts = np.asarray(trips_per_window, float)
    if len(counts) == 0:
        return lambda n: 0.0
    # Poisson: P(2) / P(1) = lam / 2; the windows with one or two trips are nearly all chance
    # (a road's windows hold many), where a mean would count the roads in
    n1, n2 = float((counts == 1).sum()), float((counts == 2).sum())
    lam = 2.0 * n2 / max(n1, 1.0)
    n_windows = len(counts)
    return lambda n: float(n_windows * poisson.sf(n - 1, max(lam, 1e-9)))


def _centre_line(part: pd.DataFrame, cell: float):
    """The centre line of off-map fixes (``x``, ``y``): the median position in bins of ``cell``
    metres along their main axis; None for a blob (a car park, a place GPS goes astray)."""
    from shapely import LineString

    xy = part[["x", "y"]].to_numpy()
    if len(xy) < 3:
        return None
    centre = xy.mean(axis=0)
    _, _, vt = np.linalg.svd(xy - centre, full_matrices=False)
    along = (xy - centre) @ vt[0]
    if along.max() - along.min() < 2 * cell:
        return None
    which = np.digitize(along, np.arange(along.min(), along.max() + cell, cell))
    line = [np.median(xy[which == b], axis=0) for b in np.unique(which)]
    return LineString(line) if len(line) >= 2 else None


def _drove_along(part: pd.DataFrame, geom, cell: float) -> np.ndarray:
    """The trips whose off-map runs drove along ``geom``. A run of two or more fixes on the line
    must get at least ``cell`` along it and go more along it than across (a run that crosses the
    line, or stands on it, as multipath at a red light does, rules its trip out), and all of a
    trip's runs must go one way (a car that drives out along a line and back in one trip visited
    a place off the map, a car park or a fuel station; a trip that drives a road does so one
    way). A run with one fix on the line (fixes every 15 s cross a 10 m cell once) tells neither."""
    import shapely

    s = shapely.line_locate_point(geom, shapely.points(part["x"].to_numpy(), part["y"].to_numpy()))
    runs = part[["trip", "run", "t", "x", "y"]].assign(s=s).sort_values(["run", "t"], kind="stable")
    g = runs.groupby("run")
    first, last, n_fixes = g.first(), g.last(), g.size().to_numpy()
    progress = (last["s"] - first["s"]).to_numpy()
    straight = np.hypot(last["x"] - first["x"], last["y"] - first["y"]).to_numpy()
    along = (np.abs(progress) >= cell) & (np.abs(progress) >= np.sqrt(0.5) * straight)  # within 45 degrees
    trip = first["trip"].to_numpy()
    told = n_fixes >= 2
    astray = np.unique(trip[told & ~along])
    ways = pd.Series(np.sign(progress[told & along])).groupby(trip[told & along]).nunique()
    both = ways.index[ways > 1].to_numpy()
    return np.setdiff1d(np.unique(trip), np.r_[astray, both])


#: a matched fix farther than this many GPS sigmas from its road is a place the map does not
#: explain (a 2-D Gaussian error goes that far once in 3,000 fixes)
FAR_SIGMAS = 4.0


def _fix_table(matched: pd.DataFrame, net, source: str, sigma_m: float):
    """The matched fixes of whole trips in trip and time order, in metres: a frame of ``row``
    (the fix's row in ``matched``), ``trip`` (a code), ``t`` (s), ``x``, ``y`` and ``far``
    (unmatched, or beyond ``FAR_SIGMAS`` of its road: a place the map does not explain), and the
    trips' ids by code."""
    from mapdiff.schema import lonlat_columns, numbers, require, time_seconds

    require(matched, ["trip_id", "t", "lon", "lat", "state", "distance_m"], source)
    m = matched.assign(_row=np.arange(len(matched))).sort_values(["trip_id", "t"], kind="stable")
    x, y = net.proj.to_metres(*lonlat_columns(m, source))
    dist = numbers(m, "distance_m", source, missing=True)
    ok = (m["state"].astype(str).to_numpy() != "unmatched") & np.isfinite(dist)
    trip, names = pd.factorize(m["trip_id"].astype(str))
    table = pd.DataFrame({"row": m["_row"].to_numpy(), "trip": trip, "t": time_seconds(m["t"], source=source),
                          "x": x, "y": y, "far": ~ok | (dist > FAR_SIGMAS * sigma_m)})
    return table, np.asarray(names)


def _road_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The far fixes (:func:`_fix_table`'s ``table``) of the runs that look like driving a road
    the map lacks: consecutive far fixes of a trip, several of them (a lone one is an outlier),
    at a speed no car park or standing car shows (twice that at a trip's end). Columns
    ``trip``, ``x``, ``y``, ``t`` and ``run`` (a number per run)."""
    trip, far = table["trip"].to_numpy(), table["far"].to_numpy()
    new_trip = np.r_[True, trip[1:] != trip[:-1]]
    run_start = far & (new_trip | ~np.r_[False, far[:-1]])
    run = np.cumsum(run_start) * far  # 0: not in a run
    end_trip = np.r_[trip[1:] != trip[:-1], True]
    df = table[["trip", "x", "y", "t"]].assign(run=run, first=new_trip, last=end_trip)[far]
    if df.empty:
        return df[["trip", "x", "y", "t", "run"]]
    g = df.groupby("run")
    stats = g.agg(n=("x", "size"), touches=("first", "any"), touches_end=("last", "any"), t0=("t", "min"),
                  t1=("t", "max"))
    # how fast the run got anywhere: the extent it covers over its duration (a path length
    # would add up GPS jitter, and a car standing in a car park would seem to drive)
    box = g.agg(x0=("x", "min"), x1=("x", "max"), y0=("y", "min"), y1=("y", "max"))
    extent = np.hypot(box["x1"] - box["x0"], box["y1"] - box["y0"])
    speed = extent / np.maximum(stats["t1"] - stats["t0"], 1e-9)
    # a run at a trip's end may be the drive into a car park off the map: only one at twice a
    # car park's pace is taken there for a road (a street the map lacks that leads to where a
    # trip starts or ends: a new estate's)
    ends = stats["touches"] | stats["touches_end"]
    good = (stats["n"] >= 3) & (speed > PARK_MPS) & (~ends | (speed > 2 * PARK_MPS))
    return df.loc[df["run"].isin(stats.index[good]), ["trip", "x", "y", "t", "run"]]


def _missing_roads(evidence: FixEvidence, net, roads: _Roads, config: DiffConfig):
    """``road_missing``: off-map runs of several trips along a common line (see the module
    docstring); the runs as :class:`FixEvidence` holds them."""
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    df, sigma = evidence.runs, evidence.sigma_m
    if df.empty:
        return []
    cell = config.road_cell_m
    cx = np.floor(df["x"].to_numpy() / cell).astype(np.int64)
    cy = np.floor(df["y"].to_numpy() / cell).astype(np.int64)
    cell_key = cx * 2**31 + cy
    trips_per_cell = pd.DataFrame({"c": cell_key, "trip": df["trip"].to_numpy()}).drop_duplicates().groupby("c").size()
    # a cell's trips include its 8 neighbours' (GPS scatter spreads one road over a few cells)
    near = {}
    cells = trips_per_cell.index.to_numpy()
    by_cell = pd.DataFrame({"c": cell_key, "trip": df["trip"].to_numpy()}).drop_duplicates()
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            near[(dx, dy)] = by_cell.assign(c=by_cell["c"] + dx * 2**31 + dy)
    spread = pd.concat(near.values()).drop_duplicates().groupby("c").size()
    chance_windows = _chance_windows(spread.to_numpy())
    strong = spread.index[spread >= config.min_road_trips].to_numpy()
    strong = np.intersect1d(strong, cells)
    if len(strong) == 0:
        return []
    # connected runs of strong cells (8-neighbours)
    index = pd.Series(np.arange(len(strong)), index=strong)
    rows, cols = [], []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            k = index.reindex(strong + dx * 2**31 + dy).to_numpy()
            ok = ~np.isnan(k.astype(float))
            rows.append(np.arange(len(strong))[ok])
            cols.append(k[ok].astype(np.int64))
    graph = coo_matrix((np.ones(sum(map(len, rows))), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(len(strong),) * 2)
    _, label = connected_components(graph, directed=False)
    pts = df.assign(c=cell_key)
    pts = pts[pts["c"].isin(strong)]
    pts["comp"] = label[index.reindex(pts["c"]).to_numpy().astype(np.int64)]
    out = []
    node_tree = None
    if len(roads.net.edges):
        from scipy.spatial import cKDTree

        n = roads.net.n_edges
        nx_, ny_ = roads.net.vx[roads.net.vptr[:n]], roads.net.vy[roads.net.vptr[:n]]
        node_tree = (cKDTree(np.c_[nx_, ny_]), roads.net.edges["u"].to_numpy())
    for _, part in pts.groupby("comp"):
        geom = _centre_line(part, cell)
        if geom is None:
            continue
        # the trips that drove that line: most of their fixes on it, within the GPS error; a
        # multipath stretch of another trip crossing it, or running beside it, is not support
        lateral = shapely.distance(shapely.points(part["x"].to_numpy(), part["y"].to_numpy()), geom)
        support = pd.Series(lateral).groupby(part["trip"].to_numpy()).median() <= SUPPORT_SIGMAS * sigma
        part = part[part["trip"].isin(support.index[support])]
        part = part[part["trip"].isin(_drove_along(part, geom, cell))]
        if part["trip"].nunique() < config.min_road_trips:
            continue
        geom = _off_map_part(_centre_line(part, cell), net, cell, OFF_MAP_SIGMAS * sigma)
        if geom is None:
            continue
        lateral = shapely.distance(shapely.points(part["x"].to_numpy(), part["y"].to_numpy()), geom)
        part = part[lateral <= SUPPORT_SIGMAS * sigma]
        n_trips = part["trip"].nunique()
        if n_trips < config.min_road_trips:
            continue
        out.append({"kind": "road_missing", "class": "road", "trips": part["trip"].unique(),
                    "n_observations": int(len(part)), "geometry_m": geom})
    out = _continued(out, (2 * FAR_SIGMAS * sigma, OFF_MAP_SIGMAS * sigma), node_tree, config.min_road_trips)
    for line in out:
        coords = shapely.get_coordinates(line["geometry_m"])
        ends = [None, None]
        if node_tree is not None:
            d, k = node_tree[0].query(np.array([coords[0], coords[-1]]))
            ends = [node_tree[1][k[i]] if d[i] <= JOIN_CELLS * cell else None for i in range(2)]
        n_trips = len(line.pop("trips"))
        line.update(confidence=float(np.exp(-chance_windows(n_trips))), n_trips=n_trips, node_from=ends[0],
                    node_to=ends[1], distance_m=float(line["geometry_m"].length))
    if node_tree is not None:
        d, _ = node_tree[0].query(df[["x", "y"]].to_numpy())
        _raise_joined(out, float(np.mean(d <= JOIN_CELLS * cell)))
    return out


#: a centre line this close to a mapped road (in GPS sigmas) cannot be told from it: at a fix
#: every 15 s, 1.5 let through lines on mapped roads that a matcher wrong between sparse fixes
#: left (Liechtenstein precision 1.00 -> 0.50; benchmarks/results/diff_sim_roads_joined.txt)
OFF_MAP_SIGMAS = 2.0


def _continued(lines: list, reach: tuple, node_tree, min_trips: int) -> list:
    """``lines`` (dicts with ``geometry_m``, ``trips`` and ``n_observations``) with those that
    continue one another joined into one road: an end of one within ``gap_m`` of an end of the
    other (``reach`` = (``gap_m``, ``near_m``)), neither turning back into itself across the gap
    (more than 120 degrees from it, or from the other's end where the gap is too short to have
    a direction: a short piece's end points anywhere on a bend or a hairpin), ``min_trips``
    trips that drove both, and no mapped node within ``near_m`` of the gap (``node_tree``: a
    KD-tree of the nodes and their ids, or None): there the road meets the map, and the map
    has the roads either side as two. A missing road's fixes within the GPS error of a mapped
    road are matched onto it, and where noisy fixes pass by the map they cut the road:
    Liechtenstein at a GPS sigma of 15 m, a 3 km road the map lacks came out as nine lines with
    gaps of 19-30 m. Closest ends first."""
    import shapely
    from scipy.spatial import cKDTree

    gap_m, near_m = reach
    back = -0.5  # cos 120 degrees
    lines = list(lines)
    while len(lines) > 1:
        coords = [shapely.get_coordinates(x["geometry_m"]) for x in lines]
        # each line's two ends: the point and the unit direction out of the line there, over
        # the last gap's length of it (a noisy centre line's last segment points anywhere)
        pts = np.array([c[k] for c in coords for k in (0, -1)])
        inner = np.array([shapely.get_coordinates(shapely.line_interpolate_point(
            x["geometry_m"], min(gap_m, x["geometry_m"].length / 2) * (1 if k == 0 else -1)))[0]
            for x in lines for k in (0, 1)])
        out = pts - inner
        out /= np.maximum(np.hypot(*out.T), 1e-9)[:, None]
        best = None
        for a, b in sorted(cKDTree(pts).query_pairs(gap_m), key=lambda ab: np.hypot(*(pts[ab[0]] - pts[ab[1]]))):
            if a // 2 == b // 2:
                continue
            gap = pts[b] - pts[a]
            g = np.hypot(*gap)
            heads = (out[a] @ gap / g >= back and -(out[b] @ gap) / g >= back) if g >= 1.0 else \
                (-(out[a] @ out[b]) >= back)
            junction = node_tree is not None and bool(node_tree[0].query_ball_point(
                pts[a] + np.linspace(0.0, 1.0, 5)[:, None] * gap, near_m, return_length=True).sum())
            if heads and not junction and \
                    len(np.intersect1d(lines[a // 2]["trips"], lines[b // 2]["trips"])) >= min_trips:
                best = (a, b)
                break
        if best is None:
            return lines
        a, b = best
        first = coords[a // 2] if a % 2 else coords[a // 2][::-1]  # ends at a
        second = coords[b // 2][::-1] if b % 2 else coords[b // 2]  # starts at b
        la, lb = lines[a // 2], lines[b // 2]
        joined = {**la, "trips": np.union1d(la["trips"], lb["trips"]),
                  "n_observations": la["n_observations"] + lb["n_observations"],
                  "geometry_m": shapely.LineString(np.r_[first, second])}
        lines = [x for k, x in enumerate(lines) if k not in (a // 2, b // 2)] + [joined]
    return lines


def _off_map_part(geom, net, cell: float, near_m: float):
    """The centre line ``geom`` from its first to its last point off the mapped roads (farther
    than ``near_m`` from each; sampled every half cell), or None when that spans less than a
    cell. The off-map runs of a trip
    that drove a road the map lacks go on while the matcher has not caught up with it, onto the
    mapped roads beyond; the line is the missing road only where the map has nothing."""
    import shapely
    from shapely.ops import substring

    from mapdiff._kernels.geometry import candidates

    if geom is None:
        return None
    s = np.linspace(0.0, geom.length, max(2, int(np.ceil(geom.length / (cell / 2))) + 1))
    xy = shapely.get_coordinates(shapely.line_interpolate_point(geom, s))
    off = candidates(xy[:, 0].copy(), xy[:, 1].copy(), near_m, 1, net.geom)[0][:, 0] < 0
    if not off.any():
        return None
    lo, hi = np.flatnonzero(off)[[0, -1]]
    if s[hi] - s[lo] < cell:
        return None
    return substring(geom, s[lo], s[hi]) if (lo > 0 or hi < len(s) - 1) else geom


#: a line's end joins the mapped node within this many road cells of it
JOIN_CELLS = 3
#: lines are pooled by their trips on a doubling scale to share the roads among them
TRIP_BINS = np.array([3, 4, 6, 10, np.inf])
#: a line whose chance bound is at least this is taken as a road when the share of roads that
#: join the map is measured
SURE_ROAD = 0.99


def _joined(line: dict) -> bool:
    return line["node_from"] is not None and line["node_to"] is not None and line["node_from"] != line["node_to"]


def _raise_joined(lines: list, near_node: float) -> None:
    """Raise the confidence of the lines that join the map at two nodes, where the lines
    themselves show that joining is a road's mark.

    The chance bound of :func:`_chance_windows` counts windows of any off-map fixes; it does
    not know that a line's trips also drove along it one way, so at three to five trips it
    calls nearly every line chance (on the simulated fleets, three-trip lines were roads in 16
    of 26). Joining the map is evidence it leaves out: a car drives onto a road the map lacks
    from a mapped road and off it onto another, while a chance line's ends lie where off-map
    fixes happen to be, near a node with the share ``near_node`` of those fixes (each end
    independently). Of the lines the bound is sure of (roads), the share ``a`` that join is
    measured; then per bin of trips, from its lines' share that join, the share of roads among
    them (a two-part mixture, shares with one success and one failure added, so that a few
    lines never make a certainty), and a joined line's probability of being a road by Bayes.
    A line keeps the larger of the two confidences; lines that do not join keep the bound."""
    if not lines:
        return
    chance = near_node**2
    sure = [_joined(x) for x in lines if x["confidence"] >= SURE_ROAD]
    a = (sum(sure) + 1.0) / (len(sure) + 2.0)
    if a <= chance:
        return  # joining tells roads from chance no better than a coin
    n = np.array([x["n_trips"] for x in lines])
    joined = np.array([_joined(x) for x in lines])
    which = np.searchsorted(TRIP_BINS, n, side="right")
    for b in np.unique(which[joined]):
        in_bin = which == b
        share = (joined[in_bin].sum() + 1.0) / (in_bin.sum() + 2.0)
        roads = float(np.clip((share - chance) / (a - chance), 0.0, 1.0))
        p = roads * a / (roads * a + (1.0 - roads) * chance)
        for i in np.flatnonzero(in_bin & joined):
            lines[i]["confidence"] = max(lines[i]["confidence"], p)


# ---------------------------------------------------------------------------------------------
# the stage


def diff(map_layers: dict, objects: pd.DataFrame | None, coverage: pd.DataFrame, config: DiffConfig | None = None,
         *, matched=None, paths: pd.DataFrame | None = None,
         video_coverage: pd.DataFrame | None = None, sources: dict | None = None) -> DiffResult:
    """Judge the map against what the fleet saw.

    Parameters
    ----------
    map_layers : ``{"edges": ..., "features": ...}`` (WGS84 GeoDataFrames; ``features`` may be
        absent: object diffs are then skipped with a warning).
    objects : located objects (``class``, ``lon``, ``lat``; ``object_id``, ``value``, ``sigma_m``,
        ``n_trips``, ``n_observations``, ``value_share`` when present); None or empty: every
        seen feature is then ``object_removed``, every unseen one ``unverified``.
    coverage : ``mapdiff coverage`` rows of the same map (``edge_id``, ``passes``, ``against``,
        ``trips``, ``trips_against``).
    config : :class:`DiffConfig`.
    matched : matched fixes (``mapdiff match -o``): enables ``road_missing`` and confirms
        the coverage by the fixes. A frame, or a source of them in batches of whole trips
        (see :func:`fix_evidence`).
    paths : matched paths (``mapdiff match --paths``): enables ``road_closed``.
    video_coverage : the coverage of the uploaded clips (``mapdiff coverage --clips``) when
        only some of the driving was filmed: object diffs count a trip as having had a feature
        in view only where its clips did (default: every pass was filmed).
    sources : file names for messages (keys ``map``, ``objects``, ``coverage``, ``matched``,
        ``paths``, ``video_coverage``).
    """

    from mapdiff.network import Network

    config = (config or DiffConfig()).validate()
    src = {"map": "map", "objects": "objects", "coverage": "coverage", "matched": "matched", "paths": "paths",
           "video_coverage": "video coverage", **(sources or {})}
    warnings = []
    net = Network.from_edges(map_layers["edges"], source=f"{src['map']} (layer 'edges')")
    roads = _roads(net)
    coverage_n = _coverage_counts(coverage, net, src["coverage"])
    fixes = None if matched is None else fix_evidence(matched, net, src["matched"])
    seen_n = coverage_n if fixes is None else _confirmed_trips(coverage_n, fixes.confirmed)
    parts, unverified = [], None
    features = map_layers.get("features")
    obj = _object_frame(objects if objects is not None else pd.DataFrame(), net.proj, src["objects"])
    if features is None:
        warnings.append(f"{src['map']}: no 'features' layer; object diffs skipped, road diffs made")
    else:
        feat = _feature_frame(features, net.proj)
        _check_overlap(obj, net, src["objects"])
        _label_codes(feat, obj)
        filmed_n = seen_n if video_coverage is None else _filmed(seen_n, video_coverage, net, src["video_coverage"])
        obj_parts, unverified, blind = _object_diffs(feat, obj, roads, filmed_n, config)
        if blind:
            warnings.append(f"{src['objects']}: the objects explain {blind[0]:.0%} of the {blind[1]:,} map features "
                            f"the fleet had in view in {config.min_visible_trips}+ trips; its absences say nothing "
                            f"and removals get confidence 0 (do the objects cover the area the coverage does? were the "
                            f"detections posed? see observe's rejects)")
        if len(obj) == 0 and any(len(p) and (p["kind"] == "object_removed").any() for p in obj_parts):
            warnings.append(f"{src['objects']}: no objects; every map feature the fleet had in view is reported "
                            f"removed (did observe pose the detections? see its rejects)")
        parts += obj_parts
    passes = None if paths is None else _passes(net, paths, src["paths"])
    road_rows = pd.DataFrame(_road_diffs(net, seen_n, config, passes))
    parts.append(road_rows)
    if paths is not None:
        reversed_rows = np.zeros(net.n_edges, dtype=bool)
        if len(road_rows):
            shown = road_rows[road_rows["confidence"] >= config.min_confidence]
            reversed_rows[np.isin(net.edges["edge_id"].to_numpy(), shown["edge_id"].to_numpy())] = True
        parts.append(pd.DataFrame(_closed_roads(net, (coverage_n, seen_n), (paths, passes), config, src["paths"],
                                                fixes=fixes, reversed_rows=reversed_rows)))
    else:
        warnings.append("no --paths: road_closed needs the trips' routes and is skipped")
    if matched is not None:
        parts.append(pd.DataFrame(_missing_roads(fixes, net, roads, config)))
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else pd.DataFrame()
    return DiffResult(_diff_frame(frame, net, config), _unverified_frame(unverified, net), warnings)


@dataclass(frozen=True)
class FixEvidence:
    """What the judgment takes from the matched fixes (:func:`fix_evidence`), gathered batch by
    batch of whole trips, so that a month of fixes is never held at once.

    Attributes
    ----------
    sigma_m : the GPS error sigma per axis (:func:`_gps_sigma`).
    confirmed : per edge id and direction (``against``), the trips the fixes confirm
        (:func:`_confirmations`).
    runs : the far fixes of the runs that look like driving a road the map lacks
        (:func:`_road_runs`): ``trip`` (a code), ``x``, ``y``, ``t``, ``run``.
    trip_ids : the trips' ids by code.
    """

    sigma_m: float
    confirmed: pd.Series
    runs: pd.DataFrame
    trip_ids: np.ndarray


class _MatchedFrame:
    """Matched fixes held in one frame, as a source of :func:`fix_evidence` (one batch)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def distances(self) -> pd.DataFrame:
        return self.frame

    def batches(self):
        yield self.frame


def fix_evidence(matched, net, source: str = "matched") -> FixEvidence:
    """The evidence of the matched fixes (``mapdiff match -o``): a frame, or any source with
    ``distances()`` (a frame of every fix's ``distance_m`` and ``state``, for the GPS error)
    and ``batches()`` (frames of whole trips, each trip in one; see
    :class:`mapdiff.jobs.stages.MatchedFile`). The same fixes give the same evidence however
    they are cut into batches."""
    from mapdiff.schema import numbers, require

    fixes = _MatchedFrame(matched) if isinstance(matched, pd.DataFrame) else matched
    d = fixes.distances()
    require(d, ["state", "distance_m"], source)
    dist = numbers(d, "distance_m", source, missing=True)
    sigma = _gps_sigma(np.where(d["state"].astype(str).to_numpy() != "unmatched", dist, np.nan))
    del d
    confirmed, runs, names = [], [], []
    n_trips = n_runs = 0
    for frame in fixes.batches():
        table, ids = _fix_table(frame, net, source, sigma)
        confirmed.append(_confirmations(frame, net, _moving(table), sigma, source))
        r = _road_runs(table)
        runs.append(r.assign(trip=r["trip"].to_numpy() + n_trips, run=r["run"].to_numpy() + n_runs))
        n_trips, n_runs = n_trips + len(ids), n_runs + int(table["far"].sum()) + 1
        names.append(ids)
    confirmed = [c for c in confirmed if len(c)]
    total = (pd.concat(confirmed).groupby(level=["edge_id", "against"]).sum() if confirmed
             else pd.Series(dtype=float))
    runs = pd.concat(runs, ignore_index=True) if runs else pd.DataFrame(columns=["trip", "x", "y", "t", "run"])
    return FixEvidence(sigma, total, runs, np.concatenate(names) if names else np.zeros(0, dtype=object))


def _gps_sigma(distance_m: np.ndarray) -> float:
    """The GPS error sigma per axis, from matched fix-to-road distances: the median radius of a
    2-D Gaussian is 1.177 sigma (robust to the far-off fixes a missing road leaves)."""
    d = distance_m[np.isfinite(distance_m)]
    return float(np.median(d) / 1.177) if len(d) else 10.0


def _confirmations(matched: pd.DataFrame, net, moving: np.ndarray, sigma_m: float, source: str) -> pd.Series:
    """Per edge id and direction (``against``), the trips of ``matched`` (whole trips) that its
    fixes confirm: a trip counts on an edge (each way) only when one of its fixes was matched
    within two GPS sigmas of it and away from its ends (``END_M``, a third of a short edge). A
    pass the matcher routed through (a detour around a road the map lacks, a guess across a
    gap) or a fix at a junction that touched the edge put no car there. With the matcher's
    ``confidence`` (the posterior that a fix is on its edge, that way), a trip counts as much
    as its surest such fix: the expected number of trips that were there. A standing car
    (``moving`` False, see :func:`_moving`) confirms nothing: waiting at a junction, its fixes
    scatter onto every edge there, either way."""
    from mapdiff.schema import flags, numbers, require

    require(matched, ["trip_id", "edge_id", "distance_m", "offset_m"], source)
    dist = numbers(matched, "distance_m", source, missing=True)
    edge_f = numbers(matched, "edge_id", source, integer=True, missing=True)
    on_edge = np.isfinite(edge_f)
    edge = np.where(on_edge, edge_f, -1).astype(np.int64)
    length = pd.Series(net.edge_len[: net.n_edges], index=net.edges["edge_id"].to_numpy()).reindex(edge).to_numpy()
    off = numbers(matched, "offset_m", source, missing=True)
    margin = np.minimum(END_M, length / 3.0)
    inside = (off >= margin) & (off <= length - margin)
    close = on_edge & np.isfinite(dist) & (dist <= 2.0 * sigma_m) & inside & moving
    against = flags(matched, "against", source)
    sure = (np.nan_to_num(numbers(matched, "confidence", source, missing=True), nan=1.0) if "confidence" in matched
            else np.ones(len(matched)))
    m = pd.DataFrame({"edge_id": edge[close], "against": against[close],
                      "trip": matched["trip_id"].astype(str).to_numpy()[close], "sure": np.clip(sure[close], 0, 1)})
    per_trip = m.groupby(["edge_id", "against", "trip"])["sure"].max()
    return per_trip.groupby(level=["edge_id", "against"]).sum()


def _confirmed_trips(coverage_n: pd.DataFrame, confirmed: pd.Series) -> pd.DataFrame:
    """The coverage's trips (each way) that the fixes confirm (``confirmed``, per edge id and
    direction: see :func:`_confirmations`), never more than the coverage's."""
    n = confirmed.unstack(fill_value=0) if len(confirmed) else pd.DataFrame()
    out = coverage_n.copy()
    for col, flag in (("trips", False), ("trips_against", True)):
        got = n[flag].reindex(out.index, fill_value=0).to_numpy() if flag in n else np.zeros(len(out))
        out[col] = np.minimum(out[col].to_numpy(), got)
    return out


def _moving(table: pd.DataFrame) -> np.ndarray:
    """Per matched fix (rows of :func:`_fix_table`'s ``table``, back in ``matched``'s order),
    whether the car moved there: the speed of a line fitted to its trip's raw fixes around it,
    the far ones left out (observe's window and ``still_mps``, as observe tells a standing
    car); True where too few fixes tell."""
    from mapdiff._kernels.observe import raw_velocity
    from mapdiff.observe import STILL_WINDOW_S, ObserveConfig

    trip, far = table["trip"].to_numpy(), table["far"].to_numpy()
    ptr = np.r_[0, np.cumsum(np.bincount(trip))].astype(np.int64) if len(trip) else np.zeros(1, np.int64)
    rx, ry = np.where(far, np.nan, table["x"].to_numpy()), np.where(far, np.nan, table["y"].to_numpy())
    vel = raw_velocity(ptr, table["t"].to_numpy(), rx, ry, STILL_WINDOW_S)
    moving = np.empty(len(table), dtype=bool)
    moving[table["row"].to_numpy()] = ~(np.hypot(vel[:, 0], vel[:, 1]) < ObserveConfig.still_mps)
    return moving


def _filmed(seen_n: pd.DataFrame, video_coverage: pd.DataFrame, net, source: str) -> pd.DataFrame:
    """The confirmed trips that were also filmed: per edge and direction, the fewer of the two
    counts (a lower bound on the trips in both)."""
    video_n = _coverage_counts(video_coverage, net, source).reindex(seen_n.index, fill_value=0)
    out = seen_n.copy()
    for c in ("trips", "trips_against"):
        out[c] = np.minimum(seen_n[c].to_numpy(), video_n[c].to_numpy())
    return out


def _coverage_counts(coverage: pd.DataFrame, net, source: str) -> pd.DataFrame:
    from mapdiff.schema import numbers, require

    require(coverage, ["edge_id", "passes"], source)
    cov = pd.DataFrame({"edge_id": numbers(coverage, "edge_id", source, integer=True)})
    for c in ("passes", "against", "trips", "trips_against"):
        cov[c] = numbers(coverage, c, source) if c in coverage else (
            numbers(coverage, "passes", source) if c == "trips" else 0.0)
    unknown = ~cov["edge_id"].isin(net.edges["edge_id"])
    if unknown.any():
        shown = ", ".join(str(v) for v in cov["edge_id"][unknown].unique()[:5])
        msg = (f"{source}: {int(unknown.sum()):,} edge ids are not in the map (e.g. {shown}); "
               f"the coverage was made on another map")
        raise InputError(msg)
    return cov.groupby("edge_id").sum()


def _check_overlap(obj, net, source):
    if len(obj) == 0:
        return
    pad = 1000.0
    inside = ((obj["x"] >= net.vx.min() - pad) & (obj["x"] <= net.vx.max() + pad)
              & (obj["y"] >= net.vy.min() - pad) & (obj["y"] <= net.vy.max() + pad))
    if not inside.any():
        lon, lat = net.proj.to_lonlat(obj["x"].to_numpy()[:1], obj["y"].to_numpy()[:1])
        minx, miny, maxx, maxy = net.bounds_lonlat()
        msg = (f"{source}: no object lies within 1 km of the map (map lon {minx:.4f}..{maxx:.4f}, "
               f"lat {miny:.4f}..{maxy:.4f}; first object at lon {lon[0]:.4f}, lat {lat[0]:.4f})")
        raise InputError(msg)


def _diff_frame(frame, net, config):
    import geopandas as gpd
    import shapely

    for c in DIFF_COLUMNS + ["x", "y", "geometry_m"]:
        if c not in frame:
            frame[c] = None
    if len(frame):
        frame = frame[frame["confidence"].astype(float) >= config.min_confidence]
    given = np.array([isinstance(g, shapely.Geometry) for g in frame["geometry_m"]], dtype=bool)
    geom_m = shapely.points(pd.to_numeric(frame["x"], errors="coerce").to_numpy(float),
                            pd.to_numeric(frame["y"], errors="coerce").to_numpy(float))
    geom_m[given] = frame["geometry_m"].to_numpy()[given]
    centre = shapely.centroid(geom_m)
    for c in ("feature_id", "object_id", "edge_id", "n_trips", "n_observations", "node_from", "node_to"):
        frame[c] = pd.array(pd.to_numeric(frame[c], errors="coerce"), dtype="Int64")
    kind_order = {k: i for i, k in enumerate(CHANGE_KINDS)}
    frame = frame.assign(_k=frame["kind"].map(kind_order), _x=shapely.get_x(centre), _y=shapely.get_y(centre),
                         geometry=geom_m)
    frame = frame.sort_values(["_k", "feature_id", "edge_id", "_x", "_y"], kind="stable", na_position="last")
    frame["diff_id"] = np.arange(len(frame), dtype=np.int64)
    frame["kind"] = frame["kind"].astype(str)
    for c in ("distance_m", "confidence", "visible_trips", "value_share", "passes", "against", "expected_passes"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    for c in ("old_value", "new_value", "edge_ids", "class"):
        frame[c] = _text_or_none(frame[c])
    gdf = gpd.GeoDataFrame(frame[DIFF_COLUMNS[:-1]].reset_index(drop=True),
                           geometry=list(frame["geometry"]), crs=net.proj.crs)
    return gdf.to_crs(4326)


def _text_or_none(values: pd.Series) -> pd.Series:
    """Each value as text, a missing one (None, NaN, NA) as None: as the output layers hold them."""
    return values.astype(object).map(lambda v: None if pd.isna(v) else str(v))


def _unverified_frame(unverified, net):
    import geopandas as gpd

    if unverified is None or len(unverified) == 0:
        return gpd.GeoDataFrame({"feature_id": pd.Series(dtype=np.int64), "class": pd.Series(dtype=object),
                                 "value": pd.Series(dtype=object), "visible_trips": pd.Series(dtype=float)},
                                geometry=gpd.GeoSeries([], crs=4326))
    g = gpd.GeoDataFrame(unverified[["feature_id", "class", "value", "visible_trips"]].reset_index(drop=True),
                         geometry=gpd.points_from_xy(unverified["x"], unverified["y"]), crs=net.proj.crs)
    g["value"] = _text_or_none(g["value"])
    # in feature order: the order merged shards (mapdiff.jobs) restore
    return g.sort_values("feature_id", kind="stable").reset_index(drop=True).to_crs(4326)
