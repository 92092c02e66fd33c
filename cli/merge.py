"""``mapdiff merge STAGE PARTS... -o OUT``"""

from __future__ import annotations

import click

from mapdiff_cli.options import REPLACES_HELP, fail, info, quiet_option

#: mapdiff.jobs.parts.STAGES, written out so that --help needs no import of the library
STAGES = ("match", "paths", "observe", "locate", "coverage", "simulate", "diff")


@click.command(short_help="Merge the outputs of the shards of one run (or coverages of disjoint windows).")
@click.argument("stage", type=click.Choice(STAGES))
@click.argument("parts", nargs=-1, required=True, metavar="PARTS...")
@click.option("-o", "--output", required=True, metavar="PATH",
              help="The merged output (a folder for simulate, a GeoPackage for diff, else Parquet). Local or "
                   f"s3://. {REPLACES_HELP}")
@quiet_option
def merge(stage, parts, output, quiet):
    """Join the shard outputs PARTS (files, or folders of part-* files) of one run of STAGE into
    what one unsharded run writes. Parts of different runs, a part given twice and a missing
    part are refused. Coverages add up (counts add, vehicles unite, first and last times take the
    min and max), so coverages of disjoint time windows merge too; the other stages' rows are
    concatenated in the unsharded order, a batch of each part at a time. Simulation folders merge
    into one folder: the world's files once, the vehicles' tables joined."""
    from mapdiff.errors import MapdiffError
    from mapdiff.io import check_output
    from mapdiff.jobs.parts import merge as run
    from mapdiff.jobs.parts import merge_diffs, merge_simulation

    try:
        check_output(output, {"diff": "gpkg", "simulate": "folder"}.get(stage, "parquet"), marker="truth/meta.json")
        if stage == "diff":
            info(f"merged diff: {merge_diffs(parts, output):,} diffs", quiet=quiet)
            return
        if stage == "simulate":
            meta = merge_simulation(parts, output)
            info(f"merged simulate: {meta['counts']['trips']:,} trips, {meta['counts']['fixes']:,} fixes", quiet=quiet)
            return
        n_rows = run(stage, parts, output)
    except MapdiffError as exc:
        fail(exc)
    info(f"merged {stage}: {n_rows:,} rows", quiet=quiet)
