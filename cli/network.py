"""``mapdiff network INPUT -o roads.gpkg``"""

from __future__ import annotations

import click

from mapdiff_cli.options import fail, info, output_option, quiet_option, step


@click.command(short_help="Build a map GeoPackage from an OpenStreetMap extract.")
@click.argument("input_path", metavar="INPUT")
@output_option("Output GeoPackage (layers nodes, edges, features).", kind="gpkg")
@quiet_option
def network(input_path, output, quiet):
    """Read an OpenStreetMap extract (.osm, .osm.bz2, .osm.pbf), keep the drivable network and the
    point map features, and write them as a GeoPackage with the layers nodes, edges and features."""
    from mapdiff.errors import MapdiffError
    from mapdiff.osm import build_map

    try:
        layers = build_map(input_path, output, progress=lambda m: step(m, quiet=quiet))
    except MapdiffError as exc:
        fail(exc)
    info(
        f"wrote {output}: {len(layers['nodes']):,} nodes, {len(layers['edges']):,} edges, "
        f"{len(layers['features']):,} features",
        quiet=quiet,
    )
