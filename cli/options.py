"""Options shared by every subcommand, defined once."""

from __future__ import annotations

import sys

import click

quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")


def _timestamp(ctx, param, value):
    if value is None:
        return None
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise click.BadParameter(f"expected a UTC time such as 2026-01-05T08:00; got {value!r}",
                                 param_hint=f"--{param.name}") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def timestamp_option(name: str, help_text: str):
    """A UTC time option (ISO 8601; naive times are UTC)."""
    return click.option(name, callback=_timestamp, metavar="TIME", help=help_text)


def store_option(help_text: str = "Task store: a postgresql:// URL or an SQLite file [$MAPDIFF_STORE, else tasks.sqlite]."):
    return click.option("--store", "store_url", metavar="URL", help=help_text)


def _shard(ctx, param, value):
    if value is None:
        return None
    from mapdiff.errors import ConfigError
    from mapdiff.jobs.shards import Shard

    try:
        return Shard.parse(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--shard") from None


def shard_option(owned: str):
    """``--shard I/N`` (what a shard owns: ``owned``) and ``--run-id``."""
    def decorate(f):
        f = click.option("--run-id", metavar="ID", envvar="MAPDIFF_RUN_ID",
                         help="The run the shard belongs to, written into its output for mapdiff merge "
                              "[$MAPDIFF_RUN_ID, else derived from the inputs and options].")(f)
        return click.option("--shard", callback=_shard, metavar="I/N",
                            help=f"Run shard I of N only (0-based; {owned}); mapdiff merge joins the parts.")(f)
    return decorate


def run_of(stage: str, run_id, *, outputs=("output",)) -> str:
    """The run's id: given, or derived from the command's other parameters and its inputs."""
    if run_id is not None:
        return run_id
    from mapdiff.jobs.parts import run_id as derived

    params = click.get_current_context().params
    skip = {"shard", "run_id", "quiet", "store_url", *outputs}
    return derived(stage, {k: v for k, v in params.items() if k not in skip})


def part_label(stage: str, shard, run_id, *, outputs=("output",)) -> dict | None:
    """The metadata of a shard's output (None for an unsharded run): the stage, the run id
    and ``I/N``."""
    if shard is None:
        return None
    from mapdiff.jobs.parts import label

    return label(stage, run_of(stage, run_id, outputs=outputs), shard)


results_store_option = click.option(
    "--store", "store_url", metavar="URL",
    help="Also write the rows into the results store, a postgresql:// database with PostGIS (migrated by "
         "mapdiff tasks migrate); a rerun replaces its run's and shard's rows.")


def store_results(url, stage: str, frame, shard, run_id, *, outputs=("output",)) -> None:
    """With ``--store``: the rows of this run and shard into the results store."""
    if url is None:
        return
    from mapdiff.store.results import write_results

    write_results(url, stage, frame, run_id=run_of(stage, run_id, outputs=outputs), shard=shard.index if shard else 0)


def output_option(help_text: str = "Output file (local path or s3:// URI)."):
    return click.option("-o", "--output", "output", required=True, metavar="PATH", help=help_text)


class Progress:
    """Counts on stderr, redrawn in place after each batch; silent with ``-q``. Call
    :meth:`finish` at the end to close the line. ``total`` may be None (counts only)."""

    def __init__(self, total, label: str, *, quiet: bool):
        self.total = total
        self.done = 0
        self.label = label
        self.quiet = quiet

    def __call__(self, n: int) -> None:
        self.done += n
        if self.quiet:
            return
        of = f"/{self.total:,} ({100.0 * self.done / self.total:.0f}%)" if self.total else ""
        click.echo(f"\r{self.label}: {self.done:,}{of}", err=True, nl=False)

    def finish(self) -> None:
        if not self.quiet and self.done:
            click.echo("", err=True)


def build_config(config_cls, **options):
    """``config_cls`` from the options given (None: its default), validated; a ConfigError
    becomes a bad parameter named after the field it names (``reach_m`` -> ``--reach-m``)."""
    from mapdiff.errors import ConfigError

    try:
        return config_cls(**{k: v for k, v in options.items() if v is not None}).validate()
    except ConfigError as exc:
        name = str(exc).split(" ", 1)[0]
        raise click.BadParameter(str(exc), param_hint=f"--{name.replace('_', '-')}") from None


def info(message: str, *, quiet: bool) -> None:
    """One line on stderr unless quiet."""
    if not quiet:
        click.echo(message, err=True)


def fail(exc: Exception) -> None:
    """Turn a MapdiffError into one line on stderr and exit status 1, or EXIT_TRANSIENT (75)
    for a failure a retry may not meet (see mapdiff.errors.TransientError)."""
    from mapdiff.errors import EXIT_TRANSIENT, TransientError

    click.echo(f"mapdiff: error: {exc}", err=True)
    sys.exit(EXIT_TRANSIENT if isinstance(exc, TransientError) else 1)
