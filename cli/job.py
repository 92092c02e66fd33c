"""``mapdiff job STAGE ARGS... [--local-array N [--workers W] [--attempts K]]``"""

from __future__ import annotations

import click

from mapdiff_cli.options import fail

#: mapdiff.jobs.batch.STAGE_JOBS, written out so that --help needs no import of the library
STAGES = ("coverage", "diff", "locate", "match", "merge", "observe", "plan", "report", "simulate", "tasks",
          "upload")


def _positive(ctx, param, value):
    if value is not None and value < 1:
        raise click.BadParameter(f"must be >= 1; got {value}", param_hint=f"--{param.name.replace('_', '-')}")
    return value


@click.command(short_help="Run one shard of a stage as an AWS Batch array child (or a whole array here).",
               context_settings={"ignore_unknown_options": True})
@click.argument("stage", type=click.Choice(STAGES))
@click.option("--local-array", type=int, callback=_positive, metavar="N",
              help="Run the whole array job here: N processes, each with the variables Batch sets.")
@click.option("--workers", type=int, default=1, show_default=True, callback=_positive,
              help="With --local-array: processes at a time.")
@click.option("--attempts", type=int, default=1, show_default=True, callback=_positive,
              help="With --local-array: start a shard that failed transiently (exit 75) up to this many times.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="ARGS...")
def job(stage, local_array, workers, attempts, args):
    """Run shard I of N of STAGE with its arguments ARGS (else $MAPDIFF_ARGS), I and N from
    AWS_BATCH_JOB_ARRAY_INDEX and AWS_BATCH_JOB_ARRAY_SIZE (a single job without them). Each
    output option names a prefix (a folder or an s3:// key prefix); the shard writes
    PREFIX/part-0000I-of-0000N.parquet there, atomically and the same on every attempt, for
    mapdiff merge. plan, upload, report and merge run as single jobs with ARGS as given. Exit 75
    is a transient failure (retry it); 1 and 2 are not."""
    import sys

    from mapdiff.errors import MapdiffError
    from mapdiff.jobs.batch import job_args, run_local_array, shard_from_env, stage_args
    from mapdiff_cli.main import cli

    try:
        args = stage_args(args)
        if local_array is not None:
            quiet = "-q" in args or "--quiet" in args
            sys.exit(run_local_array(stage, args, size=local_array, workers=workers, attempts=attempts, quiet=quiet,
                                     echo=lambda m: click.echo(m, err=True)))
        command = [stage, *job_args(stage, args, shard_from_env())]
    except MapdiffError as exc:
        fail(exc)
    cli.main(args=command, prog_name="mapdiff")
