"""``mapdiff report diffs.gpkg --map roads.gpkg -o report.html [--png overview.png]``"""

from __future__ import annotations

import click

from mapdiff_cli.options import fail, info, output_option, output_path_option, quiet_option


@click.command(short_help="Write the diffs as one self-contained HTML page (and a PNG overview).")
@click.argument("diffs_path", metavar="DIFFS")
@click.option("--map", "map_path", required=True, metavar="GPKG", help="The map the diffs were made on.")
@output_option("The report (HTML, one file, opens with no network).", kind="html")
@output_path_option(("--png", "png_path"), "Also write a static overview image (PNG).", kind="png")
@click.option("--observations", "obs_path", metavar="PATH",
              help="Observations with their object_id (mapdiff locate --labels): draws a diff's rays.")
@click.option("--title", default="mapdiff report", show_default=True, help="The page title.")
@quiet_option
def report(diffs_path, map_path, output, png_path, obs_path, title, quiet):
    """A map of every diff coloured by kind over the road network, a filterable table (kind,
    class, confidence) and, for a selected diff, its evidence."""
    from mapdiff.errors import MapdiffError
    from mapdiff.io import atomic_path, read_gpkg_layer, read_table, together
    from mapdiff.report import overview_png, render

    try:
        diffs = read_gpkg_layer(diffs_path, "diffs")
        edges = read_gpkg_layer(map_path, "edges")
        observations = read_table(obs_path) if obs_path else None
        page = render(diffs, edges, observations=observations, title=title)
        with together():
            with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8") as f:
                f.write(page)
            if png_path:
                overview_png(diffs, edges, png_path, title=title)
    except MapdiffError as exc:
        fail(exc)
    info(f"wrote {output}: {len(diffs):,} diffs" + (f"; {png_path}" if png_path else ""), quiet=quiet)
