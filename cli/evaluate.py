"""``mapdiff evaluate --truth sim/ [--matched F] [--paths F] [--coverage F] [--objects F] [--diffs F]``"""

from __future__ import annotations

import click

from mapdiff_cli.options import fail, output_path_option, quiet_option


@click.command(short_help="Score a stage's output against a simulation's truth.")
@click.option("--truth", "truth_dir", required=True, metavar="DIR",
              help="The folder mapdiff simulate wrote (or its truth/ subfolder).")
@click.option("--matched", metavar="PATH", help="Matched fixes (mapdiff match -o).")
@click.option("--paths", metavar="PATH", help="Matched paths (mapdiff match --paths).")
@click.option("--coverage", metavar="PATH", help="Coverage per edge (edge_id, passes).")
@click.option("--objects", metavar="PATH", help="Located objects (mapdiff locate -o).")
@click.option("--diffs", metavar="PATH", help="Diffs (GeoPackage or GeoParquet with kind and geometry).")
@click.option("--threshold-m", type=float, default=3.0, show_default=True,
              help="Locate: an estimate within this distance of a true object of its class finds it.")
@click.option("--min-trips", type=int, default=5, show_default=True,
              help="Locate: score the objects seen in at least this many trips.")
@output_path_option(("--json", "json_path"), "Also write the scores as JSON.", kind="json")
@quiet_option
def evaluate(truth_dir, matched, paths, coverage, objects, diffs, threshold_m, min_trips, json_path, quiet):
    """Score any stage's output against the truth of a simulation and print a table."""
    if not any((matched, paths, coverage, objects, diffs)):
        raise click.UsageError("give at least one of --matched, --paths, --coverage, --objects, --diffs")
    if threshold_m <= 0:
        raise click.BadParameter(f"must be > 0; got {threshold_m}", param_hint="--threshold-m")
    if min_trips < 1:
        raise click.BadParameter(f"must be >= 1; got {min_trips}", param_hint="--min-trips")
    from mapdiff import evaluate as ev
    from mapdiff.errors import MapdiffError
    from mapdiff.io import atomic_path, read_gpkg_layer, read_table
    from mapdiff.schema import check_contract

    def read(path, contract):
        frame = read_table(path)
        check_contract(frame, contract, path)
        return frame

    try:
        truth = ev.Truth(truth_dir)
        scores = {}
        if matched or paths:
            scores["match"] = ev.score_matching(
                truth, paths=read(paths, "paths") if paths else None,
                matched=read(matched, "matched") if matched else None, source=paths or matched)
        if coverage:
            scores["coverage"] = ev.score_coverage(truth, read(coverage, "coverage"), source=coverage)
        if objects:
            scores["locate"] = ev.score_locate(truth, read(objects, "objects"), threshold_m=threshold_m,
                                               min_trips=min_trips, source=objects)
        if diffs:
            frame = read_gpkg_layer(diffs, "diffs") if str(diffs).endswith(".gpkg") else read_table(diffs)
            scores["diff"] = ev.score_diff(truth, frame, source=diffs)
        if json_path:
            with atomic_path(json_path) as tmp, open(tmp, "w") as f:
                f.write(ev.to_json(scores))
    except MapdiffError as exc:
        fail(exc)
    click.echo(ev.format_table(scores))
