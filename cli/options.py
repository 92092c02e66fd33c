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
    """Turn a MapdiffError into one line on stderr and exit status 1."""
    click.echo(f"mapdiff: error: {exc}", err=True)
    sys.exit(1)
