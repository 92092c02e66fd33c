"""``mapdiff tasks list|show|set|claim|migrate [--store URL]``: the task store from the shell."""

from __future__ import annotations

import click

from mapdiff.store.tasks import STATUSES
from mapdiff_cli.options import fail, store_option


def _open(store_url, *, migrate=None):
    from mapdiff.store import default_store, open_store

    return open_store(store_url or default_store(), migrate=migrate)


def _guarded(fn):
    """Run ``fn``; a MapdiffError becomes one line on stderr and exit status 1."""
    from mapdiff.errors import MapdiffError

    try:
        return fn()
    except MapdiffError as exc:
        fail(exc)


def _print(frame, as_json):
    if as_json:
        click.echo(frame.to_json(orient="records", date_format="iso", lines=True), nl=False)
        return
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 40):
        shown = frame[["task_id", "status", "vehicle_id", "trip_id", "t_start", "t_end", "target", "worker",
                       "lease_until", "attempts"]]
        click.echo(shown.to_string(index=False) if len(frame) else "(no tasks)")


@click.group(short_help="The task store: list, show, set, claim, migrate.")
def tasks():
    """Clip requests as tasks: pending -> requested -> uploaded -> detected -> done, or failed
    (with a reason) on the way; a failed task can go back to pending."""


@tasks.command("migrate")
@store_option()
def migrate(store_url):
    """Apply the schema migrations the store lacks (the only way its schema changes)."""
    def run():
        with _open(store_url, migrate=True) as store:
            return store.url, store.applied()

    url, have = _guarded(run)
    click.echo(f"{url}: schema at {have[-1] if have else 'none'} ({len(have)} migration(s) applied)")


@tasks.command("list")
@store_option()
@click.option("--status", type=click.Choice(STATUSES), help="Only tasks in this state.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (oldest clips first).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_(store_url, status, limit, as_json):
    """The tasks, oldest clip first, and how many are in each state (on stderr)."""
    def run():
        with _open(store_url) as store:
            return store.list(status=status, limit=limit), store.counts()

    frame, counts = _guarded(run)
    _print(frame, as_json)
    click.echo(", ".join(f"{counts.get(s, 0):,} {s}" for s in STATUSES), err=True)


@tasks.command("show")
@click.argument("task_id")
@store_option()
def show(task_id, store_url):
    """One task with every change of state it went through."""
    import json

    def run():
        with _open(store_url) as store:
            return store.get(task_id)

    task = _guarded(run)
    click.echo(json.dumps(task, default=str, indent=2))


@tasks.command("set")
@click.argument("task_id")
@click.argument("status", type=click.Choice(STATUSES))
@store_option()
@click.option("--reason", help="Why it failed (required for failed).")
@click.option("--worker", help="The worker holding the task's lease (from claim).")
def set_(task_id, status, store_url, reason, worker):
    """Move TASK_ID to STATUS (refused from a state that does not lead there)."""
    def run():
        with _open(store_url) as store:
            store.set(task_id, status, worker=worker, reason=reason)

    _guarded(run)


@tasks.command("claim")
@store_option()
@click.option("--worker", required=True, help="Who claims: the name the lease is held under.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES),
              show_default="every state but done and failed", help="Claim tasks in this state (repeatable).")
@click.option("--lease-s", type=click.FloatRange(min=0, min_open=True), default=300.0, show_default=True,
              help="The lease lasts this long; then the task can be claimed again.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=1, show_default=True, help="Tasks to claim.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def claim(store_url, worker, statuses, lease_s, limit, as_json):
    """Lease tasks no one holds (oldest clip first) and print them; nothing to claim exits 0
    with an empty list."""
    import pandas as pd

    from mapdiff.store.tasks import TASK_COLUMNS

    def run():
        with _open(store_url) as store:
            return store.claim(worker=worker, statuses=statuses or None, lease_s=lease_s, limit=limit)

    _print(pd.DataFrame(_guarded(run), columns=TASK_COLUMNS), as_json)
