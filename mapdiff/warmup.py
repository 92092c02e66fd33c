"""A made-up town small enough to run every stage on in seconds: ``mapdiff warmup`` runs the
pipeline on it once so that numba compiles and caches every kernel (a container image can bake
the cache in; a first real run then starts at once)."""

from __future__ import annotations

import math

#: the town: a grid of streets, nodes this far apart, around this point (central Helsinki)
GRID = 5
SPACING_M = 150.0
ORIGIN = (24.94, 60.17)
#: map objects on some junctions (node number -> OSM tags), so detections, objects and diffs appear
OBJECTS = {6: {"highway": "traffic_signals"}, 8: {"highway": "stop"}, 12: {"highway": "give_way"},
           16: {"highway": "crossing", "crossing": "zebra"}, 18: {"highway": "traffic_signals"}}


def town_osm(path) -> None:
    """Write the town as an OSM XML file: GRID x GRID junctions, every row and column a
    residential street (the second row one-way), some junctions with signals, signs and a
    crossing."""
    lon0, lat0 = ORIGIN
    dlat = SPACING_M / 111_320.0
    dlon = SPACING_M / (111_320.0 * math.cos(math.radians(lat0)))
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="mapdiff warmup">']
    for i in range(GRID):
        for j in range(GRID):
            n = i * GRID + j + 1
            tags = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in OBJECTS.get(n, {}).items())
            lines.append(
                f'<node id="{n}" version="1" lat="{lat0 + j * dlat:.7f}" lon="{lon0 + i * dlon:.7f}">{tags}</node>'
            )
    way = 1000
    for k in range(GRID):
        for nodes, oneway in (
            ([i * GRID + k + 1 for i in range(GRID)], k == 1),
            ([k * GRID + j + 1 for j in range(GRID)], False),
        ):
            refs = "".join(f'<nd ref="{n}"/>' for n in nodes)
            tags = '<tag k="highway" v="residential"/><tag k="maxspeed" v="30"/>'
            tags += '<tag k="oneway" v="yes"/>' if oneway else ""
            lines.append(f'<way id="{way}" version="1">{refs}{tags}</way>')
            way += 1
    lines.append("</osm>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
