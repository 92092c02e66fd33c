"""``mapdiff coverage paths.parquet [--since T] [--until T] [--clips requests.parquet] -o coverage.parquet``"""

from __future__ import annotations

import click

from mapdiff_cli.options import (
    Progress,
    compiling_notice,
    fail,
    info,
    output_option,
    part_label,
    quiet_option,
    shard_option,
    timestamp_option,
)


@click.command(short_help="Count which roads were driven, which way, by how many trips and vehicles.")
@click.argument("paths", metavar="PATHS")
@timestamp_option("--since", "Count the trips that start at or after this UTC time (e.g. 2026-01-05T00:00).")
@timestamp_option("--until", "... and before this UTC time.")
@click.option("--clips", "clips_paths", metavar="PATH", multiple=True,
              help="Clip requests (mapdiff plan -o; repeatable): count only the passes inside the clips "
                   "(video coverage).")
@output_option("Coverage (Parquet): one row per driven directed edge.")
@shard_option("trips split by a stable hash of trip_id")
@quiet_option
def coverage(paths, since, until, clips_paths, output, shard, run_id, quiet):
    """Per directed edge of the matched paths (mapdiff match --paths): passes with and against its
    direction, distinct trips each way, distinct vehicles, first and last time. A trip belongs to
    the window it starts in, so coverages of disjoint windows merge exactly (mapdiff merge coverage)."""
    from mapdiff.coverage import coverage_file
    from mapdiff.errors import MapdiffError
    from mapdiff.io import write_table
    from mapdiff.jobs.shards import batch_owner

    if since is not None and until is not None and not since < until:
        raise click.BadParameter(f"must be after --since ({since}); got {until}", param_hint="--until")
    try:
        clips = None
        if clips_paths:
            from mapdiff.clips import read_clip_files

            clips = read_clip_files(clips_paths)
        compiling_notice("coverage", quiet=quiet)
        progress = Progress(None, "path rows", quiet=quiet)
        cov = coverage_file(paths, since=since, until=until, clips=clips, progress=progress,
                            where=batch_owner(shard) if shard else None)
        progress.finish()
        write_table(cov, output, metadata=part_label("coverage", shard, run_id))
    except MapdiffError as exc:
        fail(exc)
    info(f"{len(cov):,} edges driven: {int(cov['passes'].sum()):,} passes, "
         f"{int(cov['against'].sum()):,} against a one-way", quiet=quiet)
