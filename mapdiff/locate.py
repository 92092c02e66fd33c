"""Many observations to one estimated position per object (the ``locate`` stage).

1. Association: observations with a range, the most precise first, join the nearest object of
   their class whose position fits their bearing and range within ``gate_sigma`` sigmas (with
   ``floor_m`` added for the object's own uncertainty, and within ``reach_m`` metres), or start a new one. Bearing-only observations only join objects (they
   never start one), so rays from different objects cannot make ghost objects where they cross.
2. Estimation: each object's position is the robust weighted least-squares fit of its
   observations' bearings (across the ray) and ranges (along it), Huber down-weighting beyond
   ``huber_k`` sigmas; the observations of one trip share that trip's pose error, so a trip
   weighs as one however many frames it saw.
3. Refinement: objects of one class closer than ``merge_m`` merge (the one most trips saw
   stays), every observation is re-assigned to the best object, objects are re-fit, and
   objects left without observations vanish (``rounds`` times).
4. Class confusions: an object with fewer than ``confusion_ratio`` times the observations of
   an object of another class within ``merge_m`` is the detector's class confusion, not an
   object; its observations fit no object.
5. Values are voted: each trip votes its most frequent value, the object takes the most voted
   value and reports the vote (``value_share``, ``value_votes``); where two values each win at
   least ``split_share`` of the trips (two signs on one post), the object splits in two.

``sigma_m`` is the per-axis standard deviation from the fit's covariance, scaled up by the
residual scatter when that is larger than the observations' sigmas say. Objects seen by one
trip only are kept and marked ``weak``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mapdiff.errors import ConfigError, InputError

OBJECT_COLUMNS = ["object_id", "class", "value", "value_share", "value_votes", "lon", "lat", "sigma_m",
                  "n_observations", "n_trips", "t_first", "t_last", "score", "weak"]


@dataclass(frozen=True)
class LocateConfig:
    """Locate parameters (see the module docstring)."""

    reach_m: float = 15.0
    max_ray_m: float = 80.0
    gate_sigma: float = 3.0
    floor_m: float = 1.5
    merge_m: float = 2.0
    confusion_ratio: float = 0.2
    huber_k: float = 2.0
    rounds: int = 3
    split_share: float = 0.3
    cell_m: float = 5.0

    def validate(self) -> "LocateConfig":
        for name in ("reach_m", "max_ray_m", "gate_sigma", "huber_k", "cell_m", "floor_m", "merge_m"):
            if not getattr(self, name) > 0:
                msg = f"{name} must be > 0; found {getattr(self, name)}"
                raise ConfigError(msg)
        if int(self.rounds) != self.rounds or self.rounds < 1:
            msg = f"rounds must be a whole number >= 1; found {self.rounds}"
            raise ConfigError(msg)
        if not 0 < self.split_share <= 1:
            msg = f"split_share must be in (0, 1]; found {self.split_share}"
            raise ConfigError(msg)
        return self


def _float(df, col, source):
    v = df[col]
    if not pd.api.types.is_numeric_dtype(v) or pd.api.types.is_bool_dtype(v):
        msg = f"{source}: column {col!r} must be numeric; found dtype {v.dtype}"
        raise InputError(msg)
    return v.to_numpy(dtype=np.float64, na_value=np.nan)


def _bad(mask, what, col, values, source):
    if mask.any():
        row = int(np.flatnonzero(mask)[0])
        msg = f"{source}: column {col!r} must be {what}; found {values[row]!r} at row {row} ({int(mask.sum()):,} rows)"
        raise InputError(msg)


def validate_observations(obs: pd.DataFrame, source: str = "observations"):
    """Check the observations contract; returns the float arrays (lon, lat, bearing, its sigma,
    range, its sigma) and the times in seconds."""
    from mapdiff.schema import _require, lonlat_columns, time_seconds

    if len(obs) == 0:
        msg = f"{source}: no observations"
        raise InputError(msg)
    _require(obs, ["trip_id", "t", "class", "bearing_deg", "bearing_sigma_deg"], source)
    lon, lat = lonlat_columns(obs, source)
    t = time_seconds(obs["t"], source=source)
    bearing = _float(obs, "bearing_deg", source)
    _bad(~((bearing >= 0) & (bearing < 360)), "in [0, 360) degrees", "bearing_deg", bearing, source)
    sb = _float(obs, "bearing_sigma_deg", source)
    _bad(~(sb > 0), "> 0 degrees", "bearing_sigma_deg", sb, source)
    if "range_m" in obs:
        r = _float(obs, "range_m", source)
        _bad(r < 0, ">= 0 metres or null", "range_m", r, source)
        if "range_sigma_m" not in obs:
            msg = f"{source}: column 'range_m' needs a 'range_sigma_m' column; found {list(obs.columns)}"
            raise InputError(msg)
        sr = _float(obs, "range_sigma_m", source)
        _bad(np.isfinite(r) & ~(sr > 0), "> 0 metres where range_m is given", "range_sigma_m", sr, source)
        _bad(np.isinf(r), "finite or null", "range_m", r, source)
    else:
        r = np.full(len(obs), np.nan)
        sr = np.full(len(obs), np.nan)
    if obs["class"].isna().any():
        msg = f"{source}: column 'class' has {int(obs['class'].isna().sum()):,} missing values"
        raise InputError(msg)
    return lon, lat, bearing, sb, r, sr, t


def locate(observations: pd.DataFrame, config: LocateConfig | None = None, *, source="observations"):
    """Estimate one position per object from ``observations`` (the DESIGN contract).

    Returns (objects, labels): ``objects`` in ``OBJECT_COLUMNS``; ``labels`` gives each
    observation's object_id (-1: it fitted no object).
    """
    from mapdiff._kernels.locate import reassign, seed_centres, solve
    from mapdiff.projection import LocalProjection

    config = (config or LocateConfig()).validate()
    lon, lat, bearing, sb_deg, r, sr, t = validate_observations(observations, source)
    proj = LocalProjection.around(float(np.median(lon)), float(np.median(lat)))
    ox, oy = proj.to_metres(lon, lat)
    # centre the metres: the kernels' hashing and sums like small numbers
    x0, y0 = float(np.median(ox)), float(np.median(oy))
    ox, oy = ox - x0, oy - y0
    b = np.radians(bearing)
    sb = np.radians(sb_deg)
    cls_codes, classes = pd.factorize(observations["class"].astype(str), sort=True)
    cls_codes = cls_codes.astype(np.int64)
    trip, _ = pd.factorize(observations["trip_id"].astype(str))
    trip = trip.astype(np.int64)
    gate2 = config.gate_sigma**2
    spread = np.where(np.isnan(r), np.inf, np.hypot(sr, r * sb))
    order = np.argsort(spread, kind="stable").astype(np.int64)
    labels, cx, cy, ccls = seed_centres(order, cls_codes, ox, oy, b, sb, r, sr, config.cell_m, config.reach_m,
                                        config.max_ray_m, gate2, config.floor_m)
    for _ in range(config.rounds):
        x, y, *_rest, n_trips = solve(labels, len(cx), cx, cy, ox, oy, b, sb, r, sr, trip, config.huber_k, 3)
        alive = _merge_close(x, y, ccls, n_trips, config.merge_m)
        labels = reassign(cls_codes, ox, oy, b, sb, r, sr, x, y, ccls, alive, config.cell_m, config.reach_m,
                          config.max_ray_m, gate2, config.floor_m)
        cx, cy = x, y
    labels, ccls, cx, cy = _split_values(observations, labels, trip, ccls, cx, cy, config.split_share)
    x, y, sxx, sxy, syy, red, n_trips = solve(labels, len(cx), cx, cy, ox, oy, b, sb, r, sr, trip, config.huber_k, 3)
    # a few detections of a well-seen object get another class from the detector: where a much
    # smaller object of another class sits on it, its observations are those confusions
    n_obs = np.bincount(labels[labels >= 0], minlength=len(x))
    confused = _confusions(x, y, n_obs, n_trips, config.merge_m, config.confusion_ratio)
    if len(x):
        labels = np.where((labels >= 0) & confused[np.maximum(labels, 0)], -1, labels)
    n_trips = np.where(confused, 0, n_trips)
    return _objects(observations, labels, trip, t, classes, ccls, x + x0, y + y0, sxx, syy, red, n_trips, proj)


def _merge_close(x, y, ccls, n_trips, merge_m):
    """Live objects after merging: of objects of one class closer than ``merge_m``, the one
    seen by most trips stays (the others' observations re-assign to it)."""
    from scipy.spatial import cKDTree

    alive = n_trips > 0
    live = np.flatnonzero(alive)
    if len(live) < 2:
        return alive
    # classes apart: a large offset per class keeps them out of each other's reach
    tree = cKDTree(np.c_[x[live], y[live] + ccls[live] * 1e7])
    pairs = tree.query_pairs(merge_m, output_type="ndarray")
    for a, c in pairs[np.argsort(-np.maximum(n_trips[live[pairs[:, 0]]], n_trips[live[pairs[:, 1]]]), kind="stable")]:
        i, j = live[a], live[c]
        if alive[i] and alive[j]:
            alive[j if n_trips[i] >= n_trips[j] else i] = False
    return alive


def _confusions(x, y, n_obs, n_trips, merge_m, ratio):
    """Objects within ``merge_m`` of an object (of any class) with more than 1/``ratio`` times
    their observations."""
    from scipy.spatial import cKDTree

    out = np.zeros(len(x), dtype=bool)
    live = np.flatnonzero(n_trips > 0)
    if len(live) < 2:
        return out
    pairs = cKDTree(np.c_[x[live], y[live]]).query_pairs(merge_m, output_type="ndarray")
    for a, c in pairs:
        i, j = live[a], live[c]
        if n_obs[i] < ratio * n_obs[j]:
            out[i] = True
        elif n_obs[j] < ratio * n_obs[i]:
            out[j] = True
    return out


def _trip_votes(observations, labels, trip):
    """Per (object, value): how many trips voted for it (a trip votes its most frequent value)."""
    has = labels >= 0
    if "value" not in observations:
        return pd.DataFrame(columns=["label", "value", "trips"])
    v = pd.DataFrame({"label": labels[has], "trip": trip[has],
                      "value": observations["value"].astype(object).where(observations["value"].notna(), None)
                      .to_numpy()[has]})
    v = v[v["value"].notna()]
    v["value"] = v["value"].astype(str)
    per = v.groupby(["label", "trip", "value"], sort=True).size().rename("n").reset_index()
    per = per.sort_values(["label", "trip", "n", "value"], ascending=[True, True, False, True], kind="stable")
    per = per.drop_duplicates(["label", "trip"])
    return per.groupby(["label", "value"], sort=True).size().rename("trips").reset_index()


def _split_values(observations, labels, trip, ccls, cx, cy, split_share):
    """Split objects whose trips clearly vote for two or more values into one object per
    value (the observations with other values stay with the winner)."""
    votes = _trip_votes(observations, labels, trip)
    if votes.empty:
        return labels, ccls, cx, cy
    total = votes.groupby("label")["trips"].transform("sum")
    strong = votes[(votes["trips"] / total >= split_share) & (votes["trips"] >= 2)]
    multi = strong[strong.duplicated("label", keep=False)].sort_values(["label", "trips"], ascending=[True, False])
    if multi.empty:
        return labels, ccls, cx, cy
    labels = labels.copy()
    value = observations["value"].astype(str).to_numpy()
    new_x, new_y, new_c = [cx], [cy], [ccls]
    n = len(cx)
    for k, part in multi.groupby("label", sort=True):
        for val in part["value"].to_numpy()[1:]:  # the most voted value keeps the object
            members = (labels == k) & (value == val)
            labels[members] = n
            new_x.append([cx[k]])
            new_y.append([cy[k]])
            new_c.append([ccls[k]])
            n += 1
    return labels, np.concatenate(new_c).astype(np.int64), np.concatenate(new_x), np.concatenate(new_y)


def _objects(observations, labels, trip, t, classes, ccls, x, y, sxx, syy, red, n_trips, proj):
    has = labels >= 0
    live = np.flatnonzero(n_trips > 0)
    if len(live) == 0:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in OBJECT_COLUMNS})
        return empty, np.full(len(labels), -1, dtype=np.int64)
    n_obs = np.bincount(labels[has], minlength=len(x))
    grp = pd.DataFrame({"label": labels[has], "t": t[has],
                        "score": observations["score"].to_numpy(float)[has] if "score" in observations else 1.0})
    agg = grp.groupby("label").agg(t_first=("t", "min"), t_last=("t", "max"), score=("score", "mean"))
    agg = agg.reindex(live)
    votes = _trip_votes(observations, labels, trip)
    value = pd.Series([None] * len(x), dtype=object)
    share = np.full(len(x), np.nan)
    summary = pd.Series([None] * len(x), dtype=object)
    if not votes.empty:
        votes = votes.sort_values(["label", "trips", "value"], ascending=[True, False, True], kind="stable")
        total = votes.groupby("label")["trips"].sum()
        top = votes.drop_duplicates("label").set_index("label")
        value.iloc[top.index.to_numpy()] = top["value"].to_numpy()
        share[top.index.to_numpy()] = (top["trips"] / total.reindex(top.index)).to_numpy()
        text = votes.assign(s=votes["value"] + ":" + votes["trips"].astype(str)).groupby("label")["s"].agg(";".join)
        summary.iloc[text.index.to_numpy()] = text.to_numpy()
    lon, lat = proj.to_lonlat(x[live], y[live])
    sigma = np.sqrt(0.5 * (sxx[live] + syy[live]) * np.maximum(red[live], 1.0))
    trips_live = n_trips[live]
    t_first = pd.to_datetime(np.round(agg["t_first"].to_numpy() * 1e3).astype(np.int64), unit="ms", utc=True)
    t_last = pd.to_datetime(np.round(agg["t_last"].to_numpy() * 1e3).astype(np.int64), unit="ms", utc=True)
    objects = pd.DataFrame({
        "object_id": np.arange(len(live), dtype=np.int64),
        "class": np.asarray(classes, dtype=object)[ccls[live]],
        "value": value.to_numpy()[live], "value_share": share[live], "value_votes": summary.to_numpy()[live],
        "lon": lon, "lat": lat, "sigma_m": sigma,
        "n_observations": n_obs[live].astype(np.int64), "n_trips": trips_live.astype(np.int64),
        "t_first": t_first, "t_last": t_last,
        # the detector's confidence, discounted when few trips agree
        "score": agg["score"].to_numpy() * (1.0 - np.exp(-trips_live / 2.0)),
        "weak": trips_live < 2,
    })
    remap = np.full(len(x) + 1, -1, dtype=np.int64)
    remap[live] = np.arange(len(live))
    out_labels = np.where(has, remap[np.where(has, labels, len(x))], -1)
    return objects, out_labels
