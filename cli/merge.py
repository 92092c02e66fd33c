"""``mapdiff merge STAGE PARTS... -o OUT``"""

from __future__ import annotations

import click
from mapdiff_cli.options import fail, info, output_option, quiet_option

STAGES = ("coverage",)


@click.command(short_help="Merge the outputs of disjoint windows or shards of one stage.")
@click.argument("stage", type=click.Choice(STAGES))
@click.argument("parts", nargs=-1, required=True, metavar="PARTS...")
@output_option("The merged output.")
@quiet_option
def merge(stage, parts, output, quiet):
    """Merge coverages of disjoint trips (time windows, shards): counts add, vehicles unite,
    first and last times take the min and max; the result equals the coverage of the union."""
    from mapdiff.coverage import merge_coverage
    from mapdiff.errors import MapdiffError
    from mapdiff.io import read_table, write_table

    try:
        merged = merge_coverage([read_table(p) for p in parts])
        write_table(merged, output)
    except MapdiffError as exc:
        fail(exc)
    info(f"merged {len(parts)} {stage} parts: {len(merged):,} rows", quiet=quiet)
