"""The task store: clip requests and the states they go through, on SQLite or PostgreSQL.

A task is one clip request (``mapdiff plan``). Its ``status`` moves along

    pending -> requested -> uploaded -> detected -> done

or to ``failed`` (with a reason) from any state before ``done``; a failed task can be sent back
to ``pending`` to be tried again. Any other change is refused with :class:`TaskError`.

Workers take tasks with :meth:`TaskStore.claim`: a claimed task carries the worker's name and a
lease that ends ``lease_s`` seconds later, on the store's clock. While the lease lasts no one
else can claim the task or change its state; the holder changes it once with :meth:`TaskStore.set`
(which releases the lease). A worker that dies simply lets its lease run out and the task is
claimed again; a worker that comes back after its lease ran out is refused, even if no one
else claimed the task meanwhile (its work may already be done twice otherwise).

Both backends run the same SQL (``?`` placeholders, rewritten for psycopg) except where the
databases differ: the clock, row locks (``FOR UPDATE``, and ``SKIP LOCKED`` in a claim, on
PostgreSQL; SQLite's single writer makes them needless), how a transaction starts, and a change of
state, which PostgreSQL does in one statement (the throughput a fleet's workers need).
"""

from __future__ import annotations

import contextlib
import json
import re
from importlib import resources

import numpy as np
import pandas as pd

from mapdiff.errors import StoreError, TaskError
from mapdiff.schema import timestamps

STATUSES = ("pending", "requested", "uploaded", "detected", "done", "failed")
#: the states a task can move to from each state
NEXT = {
    "pending": ("requested", "failed"),
    "requested": ("uploaded", "failed"),
    "uploaded": ("detected", "failed"),
    "detected": ("done", "failed"),
    "done": (),
    "failed": ("pending",),
}
#: states that no worker claims (nothing more to do)
FINAL = ("done", "failed")
TASK_COLUMNS = ["task_id", "vehicle_id", "trip_id", "t_start", "t_end", "edge_ids", "target", "status", "reason",
                "worker", "lease_until", "attempts", "created", "updated"]
_TIME_COLUMNS = ("t_start", "t_end", "lease_until", "created", "updated")


def migrations(dialect: str) -> list[tuple[str, str]]:
    """The schema migrations of a ``dialect`` ("sqlite", "postgresql") in order: (version, SQL
    text), from the ``migrations`` folder: ``NNNN_name.sql`` runs on both, ``NNNN_name.DIALECT.sql``
    on that one only (the results store needs PostGIS)."""
    folder = resources.files("mapdiff.store") / "migrations"
    files = sorted(p for p in folder.iterdir()
                   if (p.name.endswith(".sql") and p.name.count(".") == 1) or p.name.endswith(f".{dialect}.sql"))
    return [(p.name.split("_", 1)[0], p.read_text()) for p in files]


def _statements(sql: str) -> list[str]:
    """SQL text to single statements (no semicolons inside the migrations' statements)."""
    text = re.sub(r"--[^\n]*", "", sql)
    return [s.strip() for s in text.split(";") if s.strip()]


class TaskStore:
    """The interface both backends share; get one with :func:`mapdiff.store.open_store`."""

    #: which migrations apply (see :func:`migrations`)
    DIALECT = ""
    #: SQL for "now" in epoch seconds on the store's clock
    NOW = ""
    #: appended to a SELECT whose rows the transaction goes on to change
    LOCK = ""
    #: appended to the SELECT of free tasks in a claim
    SKIP = ""
    url = ""

    def __init__(self, conn, url: str):
        self.conn = conn
        self.url = url

    # -- backend hooks

    def _sql(self, query: str) -> str:
        return query

    @contextlib.contextmanager
    def _write(self):
        """A transaction that writes; yields a cursor."""
        raise NotImplementedError

    def _tables(self) -> set[str]:
        raise NotImplementedError

    # -- schema

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def applied(self) -> list[str]:
        """The migration versions applied to this store."""
        if "schema_migrations" not in self._tables():
            return []
        return [r[0] for r in self.conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]

    def migrate(self) -> list[str]:
        """Apply the migrations this store lacks, each in its own transaction; returns their versions."""
        done = []
        with self._write() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, "
                        "applied DOUBLE PRECISION NOT NULL)")
        have = set(self.applied())
        for version, sql in migrations(self.DIALECT):
            if version in have:
                continue
            with self._write() as cur:
                for statement in _statements(sql):
                    cur.execute(statement)
                cur.execute(self._sql(f"INSERT INTO schema_migrations (version, applied) VALUES (?, {self.NOW})"),
                            (version,))
            done.append(version)
        return done

    def check_schema(self) -> None:
        """Raise :class:`StoreError` unless every migration is applied."""
        missing = [v for v, _ in migrations(self.DIALECT) if v not in set(self.applied())]
        if missing:
            msg = (f"task store {self.url}: schema not migrated (missing {', '.join(missing)}); "
                   f"run `mapdiff tasks migrate --store {self.url}`")
            raise StoreError(msg)

    # -- tasks

    def add(self, requests: pd.DataFrame) -> int:
        """Insert the requests (the plan's rows with a ``task_id``) as ``pending`` tasks; a task
        id already in the store is left as it is. Returns how many were new."""
        rows = requests[requests["task_id"].notna()]
        if rows.empty:
            return 0
        t0 = _seconds(rows["t_start"])
        t1 = _seconds(rows["t_end"])
        vehicle = rows["vehicle_id"].astype(object).where(rows["vehicle_id"].notna(), None)
        values = list(zip(rows["task_id"].astype(str), (None if v is None else str(v) for v in vehicle),
                          rows["trip_id"].astype(str), t0.tolist(), t1.tolist(),
                          (json.dumps([int(e) for e in ids]) for ids in rows["edge_ids"]),
                          rows["target"].astype(str), strict=True))
        with self._write() as cur:
            cur.executemany(self._sql(
                "INSERT INTO tasks (task_id, vehicle_id, trip_id, t_start, t_end, edge_ids, target, status, "
                f"created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', {self.NOW}, {self.NOW}) "
                "ON CONFLICT (task_id) DO NOTHING"), values)
            # both drivers sum the rows each insert wrote (a conflict writes none)
            return int(cur.rowcount)

    def list(self, *, status: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """The tasks (in a given status), oldest clip first, as a frame with UTC timestamps."""
        if status is not None:
            _check_status(status)
        query = f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks"
        args: tuple = ()
        if status is not None:
            query, args = query + " WHERE status = ?", (status,)
        query += " ORDER BY t_start, task_id"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        rows = self.conn.execute(self._sql(query), args).fetchall()
        return _frame(rows)

    def get(self, task_id: str) -> dict:
        """One task as a dict, with its history (``events``: oldest first)."""
        row = self.conn.execute(self._sql(f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks WHERE task_id = ?"),
                                (str(task_id),)).fetchone()
        if row is None:
            msg = f"task store {self.url}: no task {task_id!r}"
            raise TaskError(msg)
        task = _task(row)
        events = self.conn.execute(self._sql(
            "SELECT at, from_status, to_status, worker, reason FROM task_events WHERE task_id = ? ORDER BY at"),
            (str(task_id),)).fetchall()
        task["events"] = [dict(zip(("at", "from_status", "to_status", "worker", "reason"), e, strict=True))
                          for e in events]
        return task

    def counts(self) -> dict:
        """Tasks per status."""
        rows = self.conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall()
        return {s: int(n) for s, n in rows}

    def set(self, task_id: str, status: str, *, worker: str | None = None, reason: str | None = None) -> None:
        """Move a task to ``status``. Refused (:class:`TaskError`) from a state that does not
        lead there, without a reason for ``failed``, and while someone else's lease lasts; a
        ``worker`` must hold a live lease on it. The lease is released."""
        _check_status(status)
        if status == "failed" and not reason:
            msg = f"task {task_id}: a failed task needs a reason"
            raise TaskError(msg)
        if not self._transition(str(task_id), status, worker, reason if status == "failed" else None, reason):
            row = self.conn.execute(self._sql(f"SELECT status, worker, lease_until, {self.NOW} FROM tasks "
                                              "WHERE task_id = ?"), (str(task_id),)).fetchone()
            msg = _refusal(task_id, row, status, worker, self.url) or (
                f"task {task_id}: changed by someone else meanwhile; not changed")
            raise TaskError(msg)

    def _transition(self, task_id, status, worker, reason, event_reason) -> bool:
        """Make the change if it is allowed; False (nothing changed) when it is not."""
        with self._write() as cur:
            row = cur.execute(self._sql(f"SELECT status, worker, lease_until, {self.NOW} FROM tasks WHERE task_id = ?"
                                        f"{self.LOCK}"), (task_id,)).fetchone()
            if _refusal(task_id, row, status, worker, self.url):
                return False
            cur.execute(self._sql(f"UPDATE tasks SET status = ?, reason = ?, worker = NULL, lease_until = NULL, "
                                  f"updated = {self.NOW} WHERE task_id = ?"), (status, reason, task_id))
            cur.execute(
                self._sql(
                    f"INSERT INTO task_events (task_id, at, from_status, to_status, worker, reason) "
                    f"VALUES (?, {self.NOW}, ?, ?, ?, ?)"
                ),
                (task_id, row[0], status, worker, event_reason),
            )
        return True

    def set_many(self, task_ids, status: str, *, expect: str) -> int:
        """Move every task of ``task_ids`` that is in state ``expect`` and not leased to ``status``
        in one transaction (the simulated upload marks its clips this way). Returns how many moved."""
        _check_status(status)
        if status not in NEXT[_check_status(expect)]:
            msg = f"tasks cannot go from {expect} to {status}"
            raise TaskError(msg)
        ids = [str(t) for t in task_ids]
        moved = 0
        with self._write() as cur:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = ", ".join("?" * len(chunk))
                free = cur.execute(self._sql(
                    f"SELECT task_id FROM tasks WHERE task_id IN ({marks}) AND status = ? AND "
                    f"(lease_until IS NULL OR lease_until <= {self.NOW}){self.LOCK}"), (*chunk, expect)).fetchall()
                free = [r[0] for r in free]
                if not free:
                    continue
                marks = ", ".join("?" * len(free))
                cur.execute(self._sql(f"UPDATE tasks SET status = ?, updated = {self.NOW} WHERE task_id IN ({marks})"),
                            (status, *free))
                cur.executemany(self._sql(f"INSERT INTO task_events (task_id, at, from_status, to_status) "
                                          f"VALUES (?, {self.NOW}, ?, ?)"), [(t, expect, status) for t in free])
                moved += len(free)
        return moved

    def claim(self, *, worker: str, statuses=None, lease_s: float = 300.0, limit: int = 1) -> list[dict]:
        """Lease up to ``limit`` tasks in one of ``statuses`` (default: every state a worker
        acts on) that no one holds, oldest clip first. Returns the claimed tasks (dicts; a
        worker's loop should not pay for a frame per claim)."""
        statuses = tuple(statuses) if statuses else tuple(s for s in STATUSES if s not in FINAL)
        for s in statuses:
            _check_status(s)
        if not (np.isfinite(lease_s) and lease_s > 0):
            msg = f"lease_s must be > 0 seconds; found {lease_s!r}"
            raise TaskError(msg)
        where, args = self._claimable(statuses)
        # one statement: pick the free rows (skipping rows other claims hold) and lease them
        query = self._sql(
            f"UPDATE tasks SET worker = ?, lease_until = {self.NOW} + ?, attempts = attempts + 1, "
            f"updated = {self.NOW} WHERE task_id IN (SELECT task_id FROM tasks WHERE {where} "
            f"ORDER BY t_start, task_id LIMIT {int(limit)}{self.SKIP}) RETURNING {', '.join(TASK_COLUMNS)}"
        )
        # a single statement is atomic on its own (SQLite takes the write lock for it)
        rows = self.conn.execute(query, (worker, float(lease_s), *args)).fetchall()
        return sorted((_task(r) for r in rows), key=lambda t: (t["t_start"], t["task_id"]))

    def _claimable(self, statuses) -> tuple[str, tuple]:
        """The WHERE clause of tasks a worker may claim, and its arguments."""
        marks = ", ".join("?" * len(statuses))
        return (f"status IN ({marks}) AND (lease_until IS NULL OR lease_until <= {self.NOW})", tuple(statuses))

    def video_seen(self) -> pd.DataFrame:
        """Per directed edge, the end of the latest clip that reached the fleet's video
        (tasks uploaded or further): ``edge_id``, ``t_last`` (UTC)."""
        rows = self.conn.execute("SELECT edge_ids, t_end FROM tasks WHERE status IN ('uploaded', 'detected', "
                                 "'done')").fetchall()
        edges, times = [], []
        for ids, t_end in rows:
            ids = json.loads(ids)
            edges.extend(ids)
            times.extend([t_end] * len(ids))
        frame = pd.DataFrame({"edge_id": np.asarray(edges, dtype=np.int64), "t_last": np.asarray(times, dtype=float)})
        frame = frame.groupby("edge_id", as_index=False)["t_last"].max()
        frame["t_last"] = timestamps(frame["t_last"])
        return frame


def _refusal(task_id, row, status, worker, url) -> str | None:
    """Why the change of a task (``row``: status, worker, lease end, the store's now) to
    ``status`` by ``worker`` (None: an operator) is refused; None if it is not."""
    if row is None:
        return f"task store {url}: no task {task_id!r}"
    current, holder, until, now = row
    if status not in NEXT[current]:
        allowed = ", ".join(NEXT[current]) or "nothing (it is final)"
        return f"task {task_id}: cannot go from {current} to {status}; from {current} it can go to {allowed}"
    live = until is not None and until > now
    if worker is not None and holder != worker:
        return (f"task {task_id}: worker {worker!r} holds no lease on it "
                f"({'held by ' + repr(holder) if live else 'not leased'}); claim it first")
    if worker is not None and not live:
        return f"task {task_id}: the lease of worker {worker!r} ran out {now - until:.1f} s ago; not changed"
    if worker is None and live:
        return f"task {task_id}: leased by worker {holder!r} for {until - now:.1f} s more; not changed"
    return None


def _check_status(status: str) -> str:
    if status not in STATUSES:
        msg = f"status must be one of {', '.join(STATUSES)}; found {status!r}"
        raise TaskError(msg)
    return status


def _seconds(values: pd.Series) -> np.ndarray:
    from mapdiff.schema import time_seconds

    return time_seconds(values, source="requests", column=str(values.name))


def _task(row) -> dict:
    """A task row as a dict: UTC timestamps (to the millisecond), edge ids as a list."""
    task = dict(zip(TASK_COLUMNS, row, strict=True))
    for c in _TIME_COLUMNS:
        task[c] = None if task[c] is None else timestamps([task[c]])[0]
    task["edge_ids"] = json.loads(task["edge_ids"])
    task["attempts"] = int(task["attempts"])
    return task


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame([_task(r) for r in rows], columns=TASK_COLUMNS)
