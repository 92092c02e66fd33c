"""Build a map GeoPackage from an OpenStreetMap extract (the ``network`` stage).

pyosmium reads any OSM file (.osm, .osm.bz2, .osm.pbf) without network access; the drivable
ways and their nodes are handed to osmnx as OSM XML, so the ``nodes`` and ``edges`` layers are
exactly osmnx's (simplified, directed, with u, v, key, osmid, highway, oneway, maxspeed,
length). Point map objects become the ``features`` layer.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from mapdiff.errors import InputError

OSM_SUFFIXES = (".osm", ".osm.bz2", ".osm.gz", ".osm.pbf", ".pbf", ".xml")

# osmnx's "drive" network: public drivable streets, no service roads (values matched exactly)
EXCLUDED_HIGHWAY = frozenset(
    [
        "abandoned",
        "bridleway",
        "bus_guideway",
        "construction",
        "corridor",
        "cycleway",
        "elevator",
        "escalator",
        "footway",
        "no",
        "path",
        "pedestrian",
        "planned",
        "platform",
        "proposed",
        "raceway",
        "razed",
        "rest_area",
        "service",
        "services",
        "steps",
        "track",
    ]
)
EXCLUDED_SERVICE = frozenset(["alley", "driveway", "emergency_access", "parking", "parking_aisle", "private"])

# sign codes whose [NN] argument is a speed limit: Vienna-convention national codes
SPEED_LIMIT_CODES = frozenset(
    [
        "maxspeed",
        "FI:361",
        "FI:C32",
        "DE:274",
        "AT:52.10",
        "CH:2.30",
        "SE:C31",
        "NO:362",
        "DK:C55",
        "PL:B-33",
        "CZ:B20a",
        "NL:A1",
        "FR:B14",
        "IT:50",
        "ES:R-301",
        "GB:670",
        "RU:3.24",
        "BE:C43",
    ]
)
_SIGN_ARG = re.compile(r"^\s*([^\[\]]+?)\s*(?:\[([^\]]*)\])?\s*$")

FEATURE_COLUMNS = ["feature_id", "osmid", "class", "value", "tags", "geometry"]


def is_drivable(tags) -> bool:
    """Whether a way with these tags belongs to osmnx's ``drive`` network."""
    hw = tags.get("highway")
    if hw is None or hw in EXCLUDED_HIGHWAY or tags.get("area") == "yes":
        return False
    if tags.get("access") == "private" or tags.get("motor_vehicle") == "no" or tags.get("motorcar") == "no":
        return False
    return tags.get("service") not in EXCLUDED_SERVICE


def _sign_parts(sign: str) -> list[str]:
    """The signs of a ``traffic_sign`` value: split at ``;`` and ``,`` outside brackets (a
    sign's own argument may hold a comma: ``FI:344[2,5 t]`` is one sign, a 2.5 t limit)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(sign):
        depth += (ch == "[") - (ch == "]")
        if ch in ";," and depth <= 0:
            parts.append(sign[start:i])
            start = i + 1
    parts.append(sign[start:])
    return parts


def classify_node(tags: dict) -> list[tuple[str, str | None]]:
    """Normalised (class, value) pairs for a node's tags; empty for a node that is no map object.

    A ``traffic_sign`` holding several signs (``;`` or ``,`` separated) gives one pair per sign;
    a speed-limit sign (``DE:274[50]``, ``maxspeed`` with a ``maxspeed`` tag) gives
    ``("speed_limit", "50")``.
    """
    out = []
    hw = tags.get("highway")
    if hw in ("traffic_signals", "stop", "give_way"):
        out.append((hw, None))
    if hw == "crossing" or (tags.get("crossing") and hw != "traffic_signals"):
        out.append(("crossing", tags.get("crossing")))
    sign = tags.get("traffic_sign")
    if sign and sign not in ("none", "no"):
        # a country prefix applies to the codes after it: "FI:231;141" -> FI:231, FI:141
        prefix = ""
        for part in _sign_parts(sign):
            part = part.strip()
            if not part:
                continue
            if ":" in part:
                prefix = part.split(":", 1)[0] + ":"
            elif prefix:
                part = prefix + part
            m = _SIGN_ARG.match(part)
            code, arg = (m.group(1), m.group(2)) if m else (part, None)
            if code in SPEED_LIMIT_CODES:
                limit = arg or tags.get("maxspeed")
                out.append(("speed_limit", limit))
            else:
                out.append(("traffic_sign", part))
    return out


def _check_input(path) -> None:
    from mapdiff.io import check_exists

    check_exists(path)
    if not str(path).lower().endswith(OSM_SUFFIXES):
        msg = f"{path}: expected an OpenStreetMap file ({', '.join(OSM_SUFFIXES)}); found suffix {Path(path).suffix!r}"
        raise InputError(msg)


def _longest_located_run(way_nodes, coords) -> list[int]:
    """The longest run of consecutive way nodes present in the file (extracts clip ways)."""
    best: list[int] = []
    run: list[int] = []
    for n in way_nodes:
        if n.location.valid():
            coords[n.ref] = (n.location.lon, n.location.lat)
            run.append(n.ref)
        else:
            if len(run) > len(best):
                best = run
            run = []
    return run if len(run) > len(best) else best


def _write_osm_xml(path, ways, coords, node_tags) -> None:
    """Write the kept ways and their nodes as OSM XML, the input osmnx reads offline."""
    from xml.sax.saxutils import quoteattr

    def tag_lines(tags):
        return "".join(f"<tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items())

    used = sorted({n for _, _, refs in ways for n in refs})
    with open(path, "w", encoding="utf-8") as f:
        f.write("<?xml version='1.0' encoding='UTF-8'?>\n<osm version=\"0.6\">\n")
        for n in used:
            lon, lat = coords[n]
            f.write(f'<node id="{n}" lat="{lat:.7f}" lon="{lon:.7f}">{tag_lines(node_tags.get(n, {}))}</node>\n')
        for wid, tags, refs in ways:
            nds = "".join(f'<nd ref="{r}"/>' for r in refs)
            f.write(f'<way id="{wid}">{nds}{tag_lines(tags)}</way>\n')
        f.write("</osm>\n")


def read_osm(path, *, progress=None):
    """Read an OSM extract into (nodes, edges, features) GeoDataFrames in WGS84.

    ``edges`` carries a stable int64 ``edge_id`` (the row number after sorting by u, v, key).
    """
    import geopandas as gpd
    import osmium
    import osmnx as ox

    from mapdiff.io import local_copy

    _check_input(path)
    name = Path(str(path)).name
    say = progress or (lambda msg: None)
    ways = []  # (way id, tags, [node ids]) of drivable ways
    coords: dict[int, tuple[float, float]] = {}
    node_tags: dict[int, dict] = {}
    feats = []
    with local_copy(path) as local:
        try:
            processor = osmium.FileProcessor(local, osmium.osm.NODE | osmium.osm.WAY).with_locations()
            for obj in processor:
                if obj.is_node():
                    if len(obj.tags) and obj.location.valid():
                        tags = dict(obj.tags)
                        node_tags[obj.id] = tags
                        for i, (cls, value) in enumerate(classify_node(tags)):
                            feats.append((obj.id, i, cls, value, json.dumps(tags, sort_keys=True),
                                          obj.location.lon, obj.location.lat))
                elif is_drivable(obj.tags):
                    run = _longest_located_run(obj.nodes, coords)
                    if len(run) >= 2:
                        ways.append((obj.id, dict(obj.tags), run))
        except RuntimeError as exc:
            msg = f"{path}: cannot read as OpenStreetMap data ({exc})"
            raise InputError(msg) from None
    if not ways:
        msg = f"{path}: no drivable highway ways found"
        raise InputError(msg)
    say(f"{name}: {len(ways):,} drivable ways")
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "drive.osm")
        _write_osm_xml(xml, ways, coords, node_tags)
        G = ox.graph_from_xml(xml, bidirectional=False, simplify=True, retain_all=True)
    nodes, edges = ox.graph_to_gdfs(G)
    nodes = nodes.reset_index()
    edges = edges.reset_index().sort_values(["u", "v", "key"], kind="stable").reset_index(drop=True)
    edges.insert(0, "edge_id", np.arange(len(edges), dtype=np.int64))
    for col in ("osmid", "highway", "oneway", "maxspeed", "length"):
        if col not in edges.columns:  # osmnx only adds a tag's column when some way has it
            edges[col] = None
    for frame in (nodes, edges):
        for col in frame.columns:
            if col != "geometry" and frame[col].dtype == object:
                # osmnx keeps merged attributes as lists; GeoPackage wants scalars (as osmnx saves
                # them). The lists come from sets, in an order that changes with Python's hash
                # seed: sorted, the same extract gives the same map (and the same class speeds)
                frame[col] = frame[col].map(lambda v: str(sorted(v, key=str)) if isinstance(v, list) else v)
    table = pd.DataFrame(feats, columns=["osmid", "part", "class", "value", "tags", "lon", "lat"])
    table = table.sort_values(["osmid", "part"], kind="stable").reset_index(drop=True)
    table["feature_id"] = np.arange(len(table), dtype=np.int64)
    features = gpd.GeoDataFrame(table, geometry=gpd.points_from_xy(table["lon"], table["lat"]), crs="EPSG:4326")
    features = features[FEATURE_COLUMNS]
    say(f"{name}: {len(edges):,} edges, {len(nodes):,} nodes, {len(features):,} features")
    return nodes, edges, features


def build_map(input_path, output, *, progress=None) -> dict:
    """Read an OSM extract and write the map GeoPackage (layers nodes, edges, features)."""
    from mapdiff.io import write_gpkg

    nodes, edges, features = read_osm(input_path, progress=progress)
    layers = {"nodes": nodes, "edges": edges, "features": features}
    write_gpkg(layers, output)
    return layers
