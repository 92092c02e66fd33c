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


def store_option(
    help_text: str = "Task store: a postgresql:// URL or an SQLite file [$MAPDIFF_STORE, else tasks.sqlite].",
):
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


REPLACES_HELP = "An output already there is replaced, atomically; a folder or a file of another kind is refused."
_METAVARS = {"parquet": "PARQUET", "gpkg": "GPKG", "json": "JSON", "html": "HTML", "png": "PNG", "folder": "DIR"}


def _output_check(kind: str, marker: str | None):
    def check(ctx, param, value):
        if value is None:
            return None
        from mapdiff.errors import MapdiffError
        from mapdiff.io import check_output

        try:
            check_output(value, kind, marker=marker)
        except MapdiffError as exc:
            fail(exc)
        return value
    return check


def output_option(help_text: str, *, kind: str = "parquet", marker: str | None = None):
    """``-o/--output``, checked before any work (see :func:`mapdiff.io.check_output`)."""
    return output_path_option(("-o", "--output", "output"), help_text, kind=kind, marker=marker, required=True)


def output_path_option(decls, help_text: str, *, kind: str = "parquet", marker: str | None = None,
                       required: bool = False):
    """An output path option (local or ``s3://``) of ``kind``, checked before any work."""
    return click.option(*decls, required=required, metavar=_METAVARS[kind], callback=_output_check(kind, marker),
                        help=f"{help_text} Local or s3://. {REPLACES_HELP}")


def _terminal() -> bool:
    return sys.stderr.isatty()


class Progress:
    """A progress bar on stderr (tqdm) while a stage works through its batches, when stderr is a
    terminal; nothing when it is not (a log gets the stage's one summary line) or with ``-q``.
    Call it with the count of each batch done; :meth:`finish` closes the bar. ``total`` may be
    None (counts only)."""

    def __init__(self, total, label: str, *, quiet: bool):
        self.total = total
        self.done = 0
        self.bar = None
        if not quiet and _terminal():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="", leave=False, file=sys.stderr,
                            dynamic_ncols=True)

    def __call__(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def step(message: str, *, quiet: bool) -> None:
    """A step of a long stage on stderr, shown on a terminal only (see :class:`Progress`)."""
    if not quiet and _terminal():
        click.echo(message, err=True)


def compiling_notice(*modules: str, quiet: bool) -> None:
    """Say so on a terminal when the kernels of ``modules`` (in mapdiff._kernels) are not compiled
    yet: the first run of a version compiles them for 10 to 30 s."""
    if quiet or not _terminal():
        return
    from mapdiff._kernels import compiled

    if not all(compiled(m) for m in modules):
        click.echo("compiling kernels (once per version; mapdiff warmup does it ahead)...", err=True)


def show_config_defaults(*config_classes):
    """Decorate a command (put it above ``@click.command``): every option named after a field of
    one of ``config_classes`` that has no default of its own (None: the config's, so that a preset
    such as ``match --fast`` can set it) shows the config's default in ``--help``, read off the
    class, so the help cannot drift from the code."""
    import dataclasses

    def decorate(command):
        defaults = {}
        for cls in config_classes:
            defaults.update({f.name: f.default for f in dataclasses.fields(cls)
                             if f.default is not dataclasses.MISSING})
        for param in command.params:
            # an option without a default of its own (None, or click's unset marker) takes the config's
            own = param.default is not None and type(param.default).__name__ != "Sentinel"
            if isinstance(param, click.Option) and not own and not param.show_default and param.name in defaults:
                # as click shows a default (its show_default puts a text one in parentheses)
                param.help = f"{param.help}  [default: {_shown(defaults[param.name])}]"
        return command
    return decorate


def _shown(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:.0f}"
    if isinstance(value, tuple):
        return ", ".join(_shown(v) for v in value)
    return str(value)


def build_config(config_cls, **options):
    """``config_cls`` from the options given (None: its default), validated; a ConfigError
    becomes a bad parameter named after the field it names (``reach_m`` -> ``--reach-m``)."""
    from mapdiff.errors import ConfigError

    try:
        return config_cls(**{k: v for k, v in options.items() if v is not None}).validate()
    except ConfigError as exc:
        hint = f"--{exc.field.replace('_', '-')}" if exc.field else None
        raise click.BadParameter(str(exc), param_hint=hint) from None


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
