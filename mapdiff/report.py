"""The report (the ``report`` stage): one self-contained HTML page of the diffs, and a PNG.

The page needs no network: the road network drawn from the map is the background (no tile
server), Leaflet 1.9.4 (BSD-2-Clause, ``report_assets/LEAFLET-LICENSE``; from the npm registry)
and the page's own script are inlined, and the data travel as one JSON block. Diffs are drawn
on a canvas and the table is paginated, so 50,000 diffs stay responsive. Values from the data
are put into the page as text (``textContent``), never as HTML, and the JSON block is escaped
so that no value can close its ``<script>`` element.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd

from mapdiff.errors import InputError
from mapdiff.schema import CHANGE_KINDS

#: fields of a diff shown in the table and the evidence panel
FIELDS = ["diff_id", "kind", "class", "feature_id", "edge_ids", "old_value", "object_id", "new_value",
          "distance_m", "confidence", "n_trips", "n_observations", "visible_trips", "value_share", "passes",
          "against", "expected_passes", "node_from", "node_to"]
#: rays drawn per observed object in the evidence view (a busy object has thousands)
MAX_RAYS = 200
#: a ray without a range is drawn this long (metres)
RAY_M = 30.0
ATTRIBUTION = "Map data \u00a9 OpenStreetMap contributors (ODbL)"


def _asset(name: str) -> str:
    return resources.files("mapdiff").joinpath("report_assets", name).read_text(encoding="utf-8")


def _latlon(coords: np.ndarray, digits: int = 6) -> list:
    return np.round(coords[:, ::-1], digits).tolist()


def _json_for_script(value) -> str:
    """JSON that is safe inside a <script> element: no '<', '>', '&' or line separators that
    could end the element or confuse a parser."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _clean(v):
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (float, np.floating)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    return v if isinstance(v, (int, str)) else str(v)


def _diff_records(diffs) -> list:
    import shapely

    geom = diffs.geometry.to_crs(4326).values
    records = []
    cols = [c for c in FIELDS if c in diffs.columns]
    values = {c: diffs[c].astype(object).to_numpy() for c in cols}
    for k, g in enumerate(geom):
        rec = {c: _clean(values[c][k]) for c in cols}
        for c in FIELDS:
            rec.setdefault(c, None)
        rec["confidence"] = rec["confidence"] if rec["confidence"] is not None else 0.0
        if g is None or g.is_empty:
            continue
        if g.geom_type == "Point":
            rec["geometry"] = {"type": "Point", "coordinates": [round(g.y, 7), round(g.x, 7)]}
        else:
            line = g if g.geom_type == "LineString" else shapely.line_merge(g)
            coords = shapely.get_coordinates(line)
            rec["geometry"] = {"type": "LineString", "coordinates": _latlon(coords)}
        records.append(rec)
    return records


def _roads(edges) -> list:
    import shapely

    geom = edges.geometry.to_crs(4326)
    # the two directions of a street are one line on the page
    key = pd.Series([g.wkb if g is not None else b"" for g in shapely.normalize(geom.values)])
    geom = geom[~key.duplicated().to_numpy()]
    simple = shapely.simplify(geom.values, 2e-6)  # about 0.2 m: invisible, but fewer vertices
    coords, index = shapely.get_coordinates(simple, return_index=True)
    cuts = np.flatnonzero(np.diff(index)) + 1
    return [_latlon(part) for part in np.split(coords, cuts) if len(part) >= 2]


def _rays(observations, object_ids) -> dict:
    """Per observed object of a diff, up to MAX_RAYS observation rays as [lat, lon] pairs."""
    from mapdiff.projection import LocalProjection
    from mapdiff.schema import require

    if observations is None or not len(object_ids):
        return {}
    require(observations, ["object_id", "lon", "lat", "bearing_deg"], "observations")
    obs = observations[observations["object_id"].isin(object_ids)]
    if obs.empty:
        return {}
    obs = obs.groupby("object_id", group_keys=False).head(MAX_RAYS)
    lon, lat = obs["lon"].to_numpy(float), obs["lat"].to_numpy(float)
    proj = LocalProjection.around(float(lon.mean()), float(lat.mean()))
    x, y = proj.to_metres(lon, lat)
    rng = obs["range_m"].to_numpy(float) if "range_m" in obs else np.full(len(obs), np.nan)
    rng = np.where(np.isfinite(rng), rng, RAY_M)
    b = np.radians(obs["bearing_deg"].to_numpy(float))
    ex, ey = proj.to_lonlat(x + rng * np.sin(b), y + rng * np.cos(b))
    out = {}
    for oid, a0, a1, b0, b1 in zip(obs["object_id"].to_numpy(), lat, lon, ey, ex):
        out.setdefault(str(int(oid)), []).append([[round(a0, 7), round(a1, 7)], [round(b0, 7), round(b1, 7)]])
    return out


def render(diffs, edges, *, observations=None, title: str = "mapdiff report") -> str:
    """The report page as HTML text.

    Parameters
    ----------
    diffs : the ``diffs`` layer of ``mapdiff diff`` (GeoDataFrame).
    edges : the map's ``edges`` layer (GeoDataFrame), drawn as the background.
    observations : optional observations with the ``object_id`` locate gave each
        (``mapdiff locate --labels``): the rays of a selected diff's object are drawn.
    title : the page title (shown as text).
    """
    if "kind" not in diffs.columns:
        msg = f"diffs: missing column 'kind'; found columns {list(diffs.columns)}"
        raise InputError(msg)
    records = _diff_records(diffs)
    roads = _roads(edges)
    bounds = None
    if len(edges):
        minx, miny, maxx, maxy = edges.geometry.to_crs(4326).total_bounds
        bounds = [[float(miny), float(minx)], [float(maxy), float(maxx)]]
    ids = [r["object_id"] for r in records if r.get("object_id") is not None]
    data = {"diffs": records, "roads": roads, "bounds": bounds, "rays": _rays(observations, ids),
            "attribution": ATTRIBUTION}
    page = _asset("report.html")
    for key, value in (("{{TITLE}}", _html_text(title)), ("{{LEAFLET_CSS}}", _asset("leaflet.css")),
                       ("{{LEAFLET_JS}}", _asset("leaflet.js")), ("{{REPORT_JS}}", _asset("report.js")),
                       ("{{DATA}}", _json_for_script(data))):
        page = page.replace(key, value)
    return page


def _html_text(text: str) -> str:
    import html

    return html.escape(str(text), quote=True)


def overview_png(diffs, edges, path, *, title: str = "mapdiff") -> None:
    """A static overview image (matplotlib): roads in grey, diffs coloured by kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mapdiff.io import atomic_path

    colors = {"object_added": "#1a9850", "object_removed": "#d73027", "object_moved": "#7b3294",
              "value_changed": "#fdae61", "road_missing": "#2166ac", "oneway_reversed": "#e08214",
              "road_closed": "#4d4d4d"}
    fig, ax = plt.subplots(figsize=(10, 10), dpi=100)
    edges.to_crs(3857).plot(ax=ax, color="#b0b0b0", linewidth=0.6)
    d = diffs.to_crs(3857)
    for kind in CHANGE_KINDS:
        part = d[d["kind"] == kind]
        if len(part):
            part.plot(ax=ax, color=colors[kind], markersize=18, linewidth=2.5, label=f"{kind} ({len(part)})")
    ax.set_axis_off()
    ax.set_title(f"{title}: {len(diffs):,} diffs")
    if len(diffs):
        ax.legend(loc="lower left", fontsize=8)
    fig.text(0.01, 0.01, ATTRIBUTION, fontsize=7, color="#555555")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
