"""``mapdiff merge STAGE PARTS... -o OUT``"""

from __future__ import annotations

import click
from mapdiff_cli.options import fail, info, output_option, quiet_option

#: mapdiff.jobs.parts.STAGES, written out so that --help needs no import of the library
STAGES = ("match", "paths", "observe", "locate", "coverage")


@click.command(short_help="Merge the outputs of the shards of one run (or coverages of disjoint windows).")
@click.argument("stage", type=click.Choice(STAGES))
@click.argument("parts", nargs=-1, required=True, metavar="PARTS...")
@output_option("The merged output.")
@quiet_option
def merge(stage, parts, output, quiet):
    """Join the shard outputs PARTS (files, or folders of part-* files) of one run of STAGE into
    what one unsharded run writes. Parts of different runs, a part given twice and a missing
    part are refused. Coverages add up (counts add, vehicles unite, first and last times take the
    min and max), so coverages of disjoint time windows merge too; the other stages' rows are
    concatenated in the unsharded order."""
    from mapdiff.errors import MapdiffError
    from mapdiff.io import write_table
    from mapdiff.jobs.parts import merge as run

    try:
        merged = run(stage, parts)
        write_table(merged, output)
    except MapdiffError as exc:
        fail(exc)
    info(f"merged {stage}: {len(merged):,} rows", quiet=quiet)
