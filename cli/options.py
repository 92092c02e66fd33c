"""Options shared by every subcommand, defined once."""

from __future__ import annotations

import sys

import click

quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")


def output_option(help_text: str = "Output file (local path or s3:// URI)."):
    return click.option("-o", "--output", "output", required=True, metavar="PATH", help=help_text)


class Progress:
    """Counts on stderr, redrawn in place after each batch; silent with ``-q``."""

    def __init__(self, total: int, label: str, *, quiet: bool):
        self.total = total
        self.done = 0
        self.label = label
        self.quiet = quiet

    def __call__(self, n: int) -> None:
        self.done += n
        if not self.quiet:
            pct = 100.0 * self.done / self.total if self.total else 100.0
            click.echo(f"\r{self.label}: {self.done:,}/{self.total:,} ({pct:.0f}%)", err=True, nl=False)
            if self.done >= self.total:
                click.echo("", err=True)


def info(message: str, *, quiet: bool) -> None:
    """One line on stderr unless quiet."""
    if not quiet:
        click.echo(message, err=True)


def fail(exc: Exception) -> None:
    """Turn a MapdiffError into one line on stderr and exit status 1."""
    click.echo(f"mapdiff: error: {exc}", err=True)
    sys.exit(1)
