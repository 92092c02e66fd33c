"""Scores of stage outputs against ground truth (the ``evaluate`` stage), written once and shared
by the CLI, the tests and the benchmarks.

Each ``score_*`` function takes a stage's output frame and a :class:`Truth` (a simulation's
truth folder) and returns a flat dict of metrics. Ids in the output that the simulation does
not know (trips, edges, features) are an error naming them: the files do not belong together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from mapdiff.errors import InputError
from mapdiff.schema import require

#: a fix this close to a node counts as on either edge of the node
NODE_TOLERANCE_M = 2.0


@dataclass(frozen=True)
class RouteScore:
    """Length-weighted comparison of a matched edge set with the true one.

    ``mismatch`` is Newson & Krumm's route mismatch fraction: (length wrongly added + length
    wrongly left out) / true length; ``accuracy`` is 1 - mismatch (can go below 0).
    """

    precision: float
    recall: float
    mismatch: float
    true_m: float
    matched_m: float

    @property
    def accuracy(self) -> float:
        return 1.0 - self.mismatch


def route_score(true_edges, matched_edges, edge_length) -> RouteScore:
    """Compare two edge sets (directed edge ids, repeats ignored), weighted by ``edge_length``.

    ``edge_length`` maps an edge id to its length: an array indexed by id or a mapping.
    """
    truth = {int(e) for e in true_edges}
    found = {int(e) for e in matched_edges}
    length = edge_length.__getitem__
    t_len = float(sum(length(e) for e in truth))
    m_len = float(sum(length(e) for e in found))
    both = float(sum(length(e) for e in truth & found))
    missed = t_len - both
    added = m_len - both
    precision = both / m_len if m_len > 0 else (1.0 if t_len == 0 else 0.0)
    recall = both / t_len if t_len > 0 else 1.0
    mismatch = (missed + added) / t_len if t_len > 0 else (0.0 if m_len == 0 else np.inf)
    return RouteScore(precision, recall, mismatch, t_len, m_len)


def match_scores(paths, truth, edge_length) -> pd.DataFrame:
    """Per-trip :func:`route_score` of matched ``paths`` against ``truth`` (both with
    ``trip_id`` and ``edge_id`` columns); ``edge_length`` maps edge_id to metres.

    Returns one row per true trip: precision, recall, mismatch, accuracy, true and matched metres.
    """
    found = {trip: part["edge_id"].dropna().to_numpy() for trip, part in paths.groupby("trip_id", observed=True)}
    rows = []
    for trip, part in truth.groupby("trip_id", sort=True, observed=True):
        s = route_score(part["edge_id"].to_numpy(), found.get(trip, []), edge_length)
        rows.append({"trip_id": trip, "precision": s.precision, "recall": s.recall, "mismatch": s.mismatch,
                     "accuracy": s.accuracy, "true_m": s.true_m, "matched_m": s.matched_m})
    return pd.DataFrame(rows)


class Truth:
    """A simulation's truth folder (``sim/truth`` or ``sim``), read lazily table by table."""

    def __init__(self, folder):
        from mapdiff.io import check_exists

        folder = str(folder).rstrip("/")
        try:
            check_exists(f"{folder}/truth/meta.json")
            folder = f"{folder}/truth"
        except InputError:
            pass
        try:
            check_exists(f"{folder}/meta.json")
        except InputError:
            msg = f"{folder}: not a simulation's truth folder (no meta.json); give the folder mapdiff simulate wrote"
            raise InputError(msg) from None
        self.folder = folder

    def _read(self, name):
        from mapdiff.io import read_table

        return read_table(f"{self.folder}/{name}.parquet")

    @cached_property
    def routes(self) -> pd.DataFrame:
        return self._read("routes")

    @cached_property
    def objects(self) -> pd.DataFrame:
        return self._read("objects")

    @cached_property
    def detections(self) -> pd.DataFrame:
        """Which true object each detection is of (``detection_id``, ``object_id``)."""
        return self._read("detections")

    @cached_property
    def changes(self) -> pd.DataFrame:
        return self._read("changes")

    @cached_property
    def edges(self) -> pd.DataFrame:
        return self._read("edges")

    @cached_property
    def fixes(self) -> pd.DataFrame:
        return self._read("fixes")

    @cached_property
    def meta(self) -> dict:
        """The simulation's config, camera and counts (meta.json)."""
        from mapdiff.io import read_json

        return read_json(f"{self.folder}/meta.json")

    @cached_property
    def map_edges(self):
        """The edges of the stale map the simulation wrote beside its truth folder."""
        from mapdiff.io import read_gpkg_layer

        return read_gpkg_layer(f"{self.folder.rsplit('/', 1)[0]}/map.gpkg", "edges")

    @cached_property
    def edge_length(self) -> pd.Series:
        return self.edges.set_index("edge_id")["length_m"]


def _known(values, known, what: str, source: str) -> None:
    """Raise naming the first ids of ``values`` that are not in ``known``."""
    values = pd.unique(pd.Series(values).dropna())
    unknown = values[~pd.Series(values).isin(pd.Series(known)).to_numpy()]
    if len(unknown):
        shown = ", ".join(str(v) for v in unknown[:5])
        msg = (f"{source}: {len(unknown):,} {what} not in this simulation (e.g. {shown}); "
               f"the file and the truth folder do not belong to the same simulation")
        raise InputError(msg)


def score_matching(truth: Truth, *, paths=None, matched=None, source="matched") -> dict:
    """Edge precision and recall by length, and Newson & Krumm's mismatch fraction, over all
    true trips; with ``matched`` also the share of fixes matched to the edge the car was on.

    The driven edges come from ``paths`` when given, else from the matched fixes' edge ids,
    which miss the short edges driven between two fixes: the scores differ, and ``edges_from``
    says which source they came from.
    """
    drive = paths if paths is not None else matched
    require(drive, ["trip_id", "edge_id"], source)
    routes = truth.routes
    _known(drive["trip_id"].astype(str), routes["trip_id"].astype(str), "trip ids", source)
    _known(drive["edge_id"], truth.edges["edge_id"], "edge ids", source)
    drive = drive.assign(trip_id=drive["trip_id"].astype(str))
    true = routes.assign(trip_id=routes["trip_id"].astype(str))
    per_trip = match_scores(drive, true, truth.edge_length)
    out = {
        "edges_from": "paths" if paths is not None else "matched",
        "trips": len(per_trip),
        "edge_precision": float(
            (per_trip["precision"] * per_trip["matched_m"]).sum() / max(per_trip["matched_m"].sum(), 1e-9)
        ),
        "edge_recall": float((per_trip["recall"] * per_trip["true_m"]).sum() / max(per_trip["true_m"].sum(), 1e-9)),
        "mismatch_mean": float(per_trip["mismatch"].mean()),
        "mismatch_median": float(per_trip["mismatch"].median()),
    }
    if matched is not None:
        require(matched, ["trip_id", "t", "edge_id"], source)
        fixes = truth.fixes
        key = ["trip_id", "t"]
        cols = key + ["edge_id"] + (["confidence"] if "confidence" in matched.columns else [])
        m = matched[cols].assign(trip_id=matched["trip_id"].astype(str))
        f = fixes[key + ["edge_id"]].assign(trip_id=fixes["trip_id"].astype(str))
        f["offset_m"] = fixes["offset_m"].to_numpy()
        both = f.merge(m, on=key, how="inner", suffixes=("_true", ""))
        on_road = both["edge_id_true"].notna()
        hit = (both["edge_id"] == both["edge_id_true"]).fillna(False).to_numpy() & on_road.to_numpy()
        # a car standing at a node is as much on the next edge as on the last one
        e = truth.edges.set_index("edge_id")
        t_id = both["edge_id_true"].fillna(-1).astype(np.int64)
        m_id = both["edge_id"].fillna(-1).astype(np.int64)
        known = t_id.isin(e.index) & m_id.isin(e.index)
        tu, tv, tl = (e[c].reindex(t_id).to_numpy() for c in ("u", "v", "length_m"))
        mu, mv = (e[c].reindex(m_id).to_numpy() for c in ("u", "v"))
        off = both["offset_m"].to_numpy()
        at_node = ((off >= tl - NODE_TOLERANCE_M) & (mu == tv)) | ((off <= NODE_TOLERANCE_M) & (mv == tu))
        hit |= known.to_numpy() & at_node
        out["fixes_on_true_edge"] = float(hit.sum() / max(on_road.sum(), 1))
        if "confidence" in both.columns:
            conf = pd.to_numeric(both["confidence"], errors="coerce").to_numpy(float)
            rated = both["edge_id"].notna().to_numpy() & np.isfinite(conf)
            out["by_confidence"] = reliability_table(conf[rated], hit[rated])
    return out


#: the confidence bins of :func:`reliability_table`
RELIABILITY_BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


def reliability_table(confidence, hits) -> dict:
    """How often a matched fix is on the true edge (``hits``), per bin of its confidence, and
    for all fixes at or above 0.9: a calibrated confidence c is right a share c of the time.
    Keyed by bin, as text."""
    table = {}
    edges = RELIABILITY_BINS
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        at = (confidence >= lo) & ((confidence < hi) if k < len(edges) - 2 else (confidence <= hi))
        table[f"{lo:.2f}-{hi:.2f}"] = {"fixes": int(at.sum()),
                                       "on_true_edge": float(hits[at].mean()) if at.any() else float("nan")}
    at = confidence >= 0.9
    table[">=0.90"] = {"fixes": int(at.sum()), "on_true_edge": float(hits[at].mean()) if at.any() else float("nan")}
    return table


def score_coverage(truth: Truth, coverage, *, source="coverage") -> dict:
    """Passes per edge against the true routes: which driven edges the coverage found, and how
    close its pass counts are. Passes either way count (``passes`` + ``against`` when the file
    has both), and rows of one edge_id are summed."""
    require(coverage, ["edge_id", "passes"], source)
    _known(coverage["edge_id"], truth.edges["edge_id"], "edge ids", source)
    either = coverage["passes"] + (coverage.get("against", 0))
    est = either.groupby(coverage["edge_id"]).sum()
    true = truth.routes.groupby("edge_id").size()
    ids = true.index.union(est.index)
    est = est.reindex(ids, fill_value=0).astype(float)
    true = true.reindex(ids, fill_value=0).astype(float)
    driven, found = true > 0, est > 0
    return {
        "edges_driven": int(driven.sum()),
        "edge_recall": float((driven & found).sum() / max(driven.sum(), 1)),
        "edge_precision": float((driven & found).sum() / max(found.sum(), 1)),
        "passes_mae": float((est - true).abs()[driven | found].mean()) if (driven | found).any() else 0.0,
        "passes_exact": float((est == true)[driven].mean()) if driven.any() else 1.0,
        "passes_total_ratio": float(est.sum() / max(true.sum(), 1)),
    }


def _greedy_pairs(dist: np.ndarray, pairs_a: np.ndarray, pairs_b: np.ndarray):
    """One-to-one pairs, nearest first: keep a candidate pair when neither side is taken."""
    order = np.argsort(dist, kind="stable")
    used_a, used_b, keep = set(), set(), []
    for k in order:
        a, b = int(pairs_a[k]), int(pairs_b[k])
        if a not in used_a and b not in used_b:
            used_a.add(a)
            used_b.add(b)
            keep.append(k)
    return np.asarray(keep, dtype=np.int64)


def match_points(ax, ay, a_group, bx, by, b_group, max_m):
    """Pair points of set a and set b of the same group within ``max_m`` metres, one to one,
    nearest first. Returns (index in a, index in b, distance)."""
    from scipy.spatial import cKDTree

    ia, ib, dd = [], [], []
    for g in np.intersect1d(np.unique(a_group), np.unique(b_group)):
        sa = np.flatnonzero(a_group == g)
        sb = np.flatnonzero(b_group == g)
        tree = cKDTree(np.c_[bx[sb], by[sb]])
        near = tree.query_ball_point(np.c_[ax[sa], ay[sa]], r=max_m)
        for i, js in zip(sa, near):
            for j in js:
                ia.append(i)
                ib.append(sb[j])
                dd.append(np.hypot(ax[i] - bx[sb[j]], ay[i] - by[sb[j]]))
    ia, ib, dd = np.asarray(ia, np.int64), np.asarray(ib, np.int64), np.asarray(dd, float)
    keep = _greedy_pairs(dd, ia, ib)
    return ia[keep], ib[keep], dd[keep]


def _metres(truth: Truth, lon, lat):
    from mapdiff.projection import LocalProjection

    objs = truth.objects
    if len(lon) == 0:  # (nothing to place, and maybe nothing to centre on: a world without objects)
        return np.zeros(0), np.zeros(0)
    ref = (
        (float(objs["lon"].mean()), float(objs["lat"].mean()))
        if len(objs)
        else (float(np.mean(lon)), float(np.mean(lat)))
    )
    return LocalProjection.around(*ref).to_metres(lon, lat)


#: the radius, in sigmas, of the circle that holds 95 % of a 2-D normal error: sqrt(chi2_2(0.95))
CHI2_95_2D_RADIUS = 2.4477


def score_locate(truth: Truth, objects, *, threshold_m=3.0, min_trips=5, source="objects") -> dict:
    """Recall and precision of estimated objects within ``threshold_m`` of a true object of the
    same class (pairs one to one, nearest first), the position error of the pairs, and how
    often the pair's true position lies in the 95 % circle of the estimate's ``sigma_m``
    (``sigma_coverage_95``; honest sigmas give 0.95).

    Recall counts the true objects seen in at least ``min_trips`` trips; precision counts the
    estimates with ``n_trips >= min_trips`` (all estimates when there is no ``n_trips``). The
    ``*_all`` metrics count everything.
    """
    require(objects, ["class", "lon", "lat"], source)
    true = truth.objects
    tx, ty = _metres(truth, true["lon"].to_numpy(), true["lat"].to_numpy())
    ex, ey = _metres(truth, objects["lon"].to_numpy(float), objects["lat"].to_numpy(float))
    t_cls = true["class"].astype(str).to_numpy()
    e_cls = objects["class"].astype(str).to_numpy()
    it, ie, d = match_points(tx, ty, t_cls, ex, ey, e_cls, threshold_m)
    eligible = true["n_trips_seen"].to_numpy() >= min_trips
    strong = (objects["n_trips"].to_numpy() >= min_trips) if "n_trips" in objects else np.ones(len(objects), bool)
    t_hit = np.zeros(len(true), bool)
    t_hit[it] = True
    e_hit = np.zeros(len(objects), bool)
    e_hit[ie] = True
    pair_ok = eligible[it]
    out = {
        "true_objects": int(eligible.sum()),
        "estimates": int(strong.sum()),
        "recall": float(t_hit[eligible].mean()) if eligible.any() else float("nan"),
        "precision": float(e_hit[strong].mean()) if strong.any() else float("nan"),
        "median_error_m": float(np.median(d[pair_ok])) if pair_ok.any() else float("nan"),
        "p90_error_m": float(np.percentile(d[pair_ok], 90)) if pair_ok.any() else float("nan"),
        "recall_all": float(t_hit[true["n_trips_seen"].to_numpy() > 0].mean()) if (true["n_trips_seen"] > 0).any()
        else float("nan"),
        "precision_all": float(e_hit.mean()) if len(objects) else float("nan"),
    }
    if "sigma_m" in objects:
        # honest sigmas: the 95 % circle of a per-axis sigma (radius sqrt(chi2_2(0.95)) sigma)
        # holds the true position in 95 % of the pairs
        sigma = objects["sigma_m"].to_numpy(float)[ie][pair_ok]
        out["sigma_coverage_95"] = float(np.mean(d[pair_ok] <= CHI2_95_2D_RADIUS * sigma)) if pair_ok.any() \
            else float("nan")
    if "value" in objects and len(it):
        tv = true["value"].astype(object).to_numpy()[it]
        ev = objects["value"].astype(object).to_numpy()[ie]
        valued = pd.notna(tv)
        same = np.array([str(a) == str(b) for a, b in zip(tv[valued], ev[valued])])
        out["value_accuracy"] = float(same.mean()) if len(same) else float("nan")
    return out


def observable_changes(truth: Truth, *, min_trips: int = 3) -> np.ndarray:
    """Which planted changes the fleet could have seen, in at least ``min_trips`` trips of the
    simulation's truth: an object change whose true object was in a camera's view (detected;
    for a removed object, whose map place was in view from the edges the trips drove, by the
    camera's range and field of view in meta.json); a missing or reversed road driven; a
    closed road passed (a trip through one of its end nodes)."""
    from mapdiff.diff import visible_from
    from mapdiff.network import Network

    ch = truth.changes
    routes = truth.routes
    objects = truth.objects
    # a feature stands in the world as one or more objects (poles); seen when any of them was
    seen = objects.groupby(objects["feature_id"] if "feature_id" in objects else objects["object_id"])[
        "n_trips_seen"].max()
    out = np.zeros(len(ch), dtype=bool)
    kinds = ch["kind"].astype(str).to_numpy()
    with_object = ch["object_id"].notna().to_numpy()
    ids = ch["object_id"].to_numpy()
    out[with_object] = seen.reindex(ids[with_object].astype(np.int64)).fillna(0).to_numpy() >= min_trips
    removed = np.flatnonzero(kinds == "object_removed")
    if len(removed):
        range_m = float(truth.meta.get("config", {}).get("max_range_m", 50.0))
        hfov = float(truth.meta.get("camera", {}).get("hfov_deg", 90.0))
        net = Network.from_edges(truth.map_edges, source="map.gpkg")
        pts = ch.geometry.iloc[removed].to_crs(4326)
        x, y = net.proj.to_metres(pts.x.to_numpy(), pts.y.to_numpy())
        p, edge_ids, _against = visible_from(x, y, net, range_m=range_m, hfov_deg=hfov)
        pairs = pd.DataFrame({"p": p, "edge_id": edge_ids}).merge(routes[["edge_id", "trip_id"]], on="edge_id")
        n = pairs.drop_duplicates(["p", "trip_id"]).groupby("p").size()
        out[removed] = n.reindex(np.arange(len(removed)), fill_value=0).to_numpy() >= min_trips
    edges = truth.edges.set_index("edge_id")
    for k in np.flatnonzero(np.isin(kinds, ["road_missing", "oneway_reversed", "road_closed"])):
        e_ids = [int(e) for e in ch["edge_ids"].iloc[k]]
        if kinds[k] == "road_closed":
            nodes = set(edges.loc[e_ids, "u"]) | set(edges.loc[e_ids, "v"])
            near = edges.index[edges["u"].isin(nodes) | edges["v"].isin(nodes)]
            n = routes.loc[routes["edge_id"].isin(near), "trip_id"].nunique()
        else:
            n = routes.loc[routes["edge_id"].isin(e_ids), "trip_id"].nunique()
        out[k] = n >= min_trips
    return out


def score_diff(truth: Truth, diffs, *, object_m=10.0, road_m=20.0, min_trips=3, source="diffs") -> dict:
    """Precision and recall per diff kind against the planted changes.

    A reported diff finds a planted change of the same kind when they name the same map
    feature (``feature_id``), or share an edge id (``edge_id`` or ``edge_ids``), or, failing
    ids, lie within ``object_m`` (object kinds) or ``road_m`` (road kinds) of each other; pairs
    are one to one, nearest first. ``recall`` counts the changes the fleet could have seen in
    ``min_trips`` trips (:func:`observable_changes`), ``recall_all`` every planted change;
    ``precision`` counts every reported diff.
    """
    import shapely

    require(diffs, ["kind", "geometry"], source)
    changes = truth.changes
    if "feature_id" in diffs:
        objects = truth.objects
        # (a pole stands for every feature OSM mapped on its spot)
        features = objects["feature_ids"].explode() if "feature_ids" in objects else \
            objects["feature_id"] if "feature_id" in objects else objects["object_id"]
        _known(diffs["feature_id"], pd.concat([changes["feature_id"].dropna(), features]), "feature ids", source)
    if "edge_id" in diffs:
        _known(diffs["edge_id"], truth.edges["edge_id"], "edge ids", source)
    crs = changes.crs
    d_geom = diffs.to_crs(crs).geometry.values if getattr(diffs, "crs", None) is not None else diffs.geometry.values
    from mapdiff.projection import LocalProjection

    c = changes.geometry.representative_point()
    proj = LocalProjection.around(float(c.x.mean()), float(c.y.mean())) if len(c) else LocalProjection("EPSG:3857")
    c_m = changes.geometry.to_crs(proj.crs).values
    import geopandas as gpd

    d_m = gpd.GeoSeries(d_geom, crs=crs).to_crs(proj.crs).values

    def edge_set(row, cols):
        ids = set()
        for col in cols:
            if col in row and row[col] is not None:
                v = row[col]
                if isinstance(v, str):  # a GeoPackage keeps a list of ids as "1,2,3"
                    v = [x for x in v.split(",") if x.strip()]
                vals = v if isinstance(v, (list, tuple, np.ndarray)) else [v]
                ids.update(int(x) for x in vals if pd.notna(x))
        return ids

    observable = observable_changes(truth, min_trips=min_trips)
    out = {}
    hits = np.zeros(len(diffs), bool)  # per reported diff: it found a planted change
    found_any = np.zeros(len(changes), bool)
    for kind in changes["kind"].cat.categories if hasattr(changes["kind"], "cat") else sorted(changes["kind"].unique()):
        ci = np.flatnonzero((changes["kind"] == kind).to_numpy())
        di = np.flatnonzero((diffs["kind"].astype(str) == kind).to_numpy())
        road = not kind.startswith(("object", "value"))
        ia, ib, dd = [], [], []
        for a in ci:
            crow = changes.iloc[a]
            c_edges = edge_set(crow, ["edge_ids"])
            for b in di:
                drow = diffs.iloc[b]
                if "feature_id" in diffs and pd.notna(crow["feature_id"]) and pd.notna(drow.get("feature_id")):
                    ok = int(crow["feature_id"]) == int(drow["feature_id"])
                    dist = 0.0
                elif road and c_edges and edge_set(drow, ["edge_id", "edge_ids"]):
                    ok = bool(c_edges & edge_set(drow, ["edge_id", "edge_ids"]))
                    dist = 0.0
                else:
                    dist = float(shapely.distance(c_m[a], d_m[b]))
                    ok = dist <= (road_m if road else object_m)
                if ok:
                    ia.append(a)
                    ib.append(b)
                    dd.append(dist)
        keep = _greedy_pairs(np.asarray(dd, float), np.asarray(ia), np.asarray(ib))
        n_pairs = len(keep)
        found = np.zeros(len(changes), bool)
        found[np.asarray(ia, np.int64)[keep]] = True
        found_any |= found
        hits[np.asarray(ib, np.int64)[keep]] = True
        seen = observable[ci]
        out[kind] = {"planted": len(ci), "observable": int(seen.sum()), "reported": len(di),
                     "precision": n_pairs / len(di) if len(di) else float("nan"),
                     "recall": float(found[ci][seen].mean()) if seen.any() else float("nan"),
                     "recall_all": n_pairs / len(ci) if len(ci) else float("nan")}
    if "confidence" in diffs:
        out["by_confidence"] = confidence_table(diffs["confidence"].to_numpy(float), hits, len(changes))
    return out


#: the confidence thresholds of :func:`confidence_table`
CONFIDENCE_STEPS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def confidence_table(confidence, hits, n_planted: int) -> dict:
    """Precision of the diffs at or above each confidence threshold, and the share of all
    planted changes they find (each diff finds at most one change, see :func:`score_diff`).
    Keyed by threshold, as text."""
    table = {}
    for c in CONFIDENCE_STEPS:
        at = confidence >= c
        table[f">={c:.2f}"] = {"diffs": int(at.sum()),
                               "precision": float(hits[at].mean()) if at.any() else float("nan"),
                               "found_share": float(hits[at].sum() / max(n_planted, 1))}
    return table


def format_table(scores: dict) -> str:
    """The scores as an aligned text table: stage, metric, value."""
    rows = []

    def walk(stage, name, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(stage, f"{name} {k}".strip(), v)
        else:
            rows.append((stage, name, value))

    for stage, metrics in scores.items():
        walk(stage, "", metrics)
    width = [max(len(str(r[i])) for r in rows + [("stage", "metric", "")]) for i in range(2)]

    def fmt(v):
        if isinstance(v, float):
            return "nan" if np.isnan(v) else f"{v:.4f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    lines = [f"{'stage':<{width[0]}}  {'metric':<{width[1]}}  value"]
    lines += [f"{s:<{width[0]}}  {m:<{width[1]}}  {fmt(v)}" for s, m, v in rows]
    return "\n".join(lines)


def to_json(scores: dict) -> str:
    """The scores as JSON (NaN, an undefined score, as null)."""

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, float) and not np.isfinite(v):
            return None
        return v

    return json.dumps(clean(scores), indent=2, sort_keys=True) + "\n"
