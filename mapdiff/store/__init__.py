"""Stores: the task store (clip requests and their states), on SQLite by default and on
PostgreSQL in production, behind one interface (:class:`~mapdiff.store.tasks.TaskStore`).

``open_store(url)`` takes ``postgresql://user@host:port/db`` (psycopg 3), ``sqlite:///path``
or a plain file path (SQLite). An SQLite file is created and migrated on first use (it is the
embedded store: no server, no operator); a PostgreSQL store must be migrated once with
``mapdiff tasks migrate`` and is refused until it is.
"""

from __future__ import annotations

import contextlib
import os
import re

from mapdiff.errors import StoreError
from mapdiff.store.tasks import FINAL, NEXT, STATUSES, TaskStore

__all__ = ["FINAL", "NEXT", "STATUSES", "TaskStore", "default_store", "open_store"]

#: how long to wait for a server that does not answer
CONNECT_TIMEOUT_S = 10


def default_store(next_to=None) -> str:
    """The store URL when none is given: ``$MAPDIFF_STORE``; else, on AWS Batch, the database
    whose credentials the job gets as ``$MAPDIFF_DB_SECRET`` (the JSON of an RDS secret:
    username, password, host, port, dbname); else ``tasks.sqlite`` beside the file ``next_to``
    (a local output; its folder is made if needed), else in the current directory."""
    if os.environ.get("MAPDIFF_STORE"):
        return os.environ["MAPDIFF_STORE"]
    if os.environ.get("MAPDIFF_DB_SECRET"):
        return _url_of_secret(os.environ["MAPDIFF_DB_SECRET"])
    if next_to is not None:
        if "://" in str(next_to):
            msg = (f"{next_to}: the default SQLite task store must be a local file beside the output; "
                   "give --store (a postgresql:// URL or a local path)")
            raise StoreError(msg)
        folder = os.path.dirname(os.path.abspath(str(next_to)))
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, "tasks.sqlite")
    return "tasks.sqlite"


def shown(url: str) -> str:
    """The URL with any password masked, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(url))


def open_store(url: str, *, migrate: bool | None = None) -> TaskStore:
    """Open the task store at ``url``. ``migrate``: apply missing migrations (default: on for
    SQLite files, off for PostgreSQL, whose schema changes only through ``mapdiff tasks migrate``);
    with it off, a store whose schema is behind is refused (:class:`StoreError`)."""
    url = str(url)
    if url.startswith(("postgresql://", "postgres://")):
        store = _PostgresStore.connect(url)
        migrate = False if migrate is None else migrate
    elif "://" in url and not url.startswith("sqlite://"):
        msg = f"--store: expected a postgresql:// URL, sqlite:///path or a local file path; found {shown(url)!r}"
        raise StoreError(msg)
    else:
        store = _SqliteStore.connect(url)
        migrate = True if migrate is None else migrate
    try:
        if migrate:
            store.migrate()
        else:
            store.check_schema()
    except BaseException:
        store.close()
        raise
    return store


class _SqliteStore(TaskStore):
    DIALECT = "sqlite"
    NOW = "((julianday('now') - 2440587.5) * 86400.0)"

    @classmethod
    def connect(cls, url: str) -> _SqliteStore:
        import sqlite3

        path = url.removeprefix("sqlite:///")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            msg = f"task store {path}: folder {folder} does not exist"
            raise StoreError(msg)
        try:
            # autocommit mode; writes open their own immediate transactions
            conn = sqlite3.connect(path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            msg = f"task store {path}: cannot open as SQLite ({exc})"
            raise StoreError(msg) from None
        return cls(conn, path)

    @contextlib.contextmanager
    def _write(self):
        # BEGIN IMMEDIATE takes the write lock at once: two claims never read the same free task
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def _tables(self):
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class _PostgresStore(TaskStore):
    DIALECT = "postgresql"
    NOW = "extract(epoch from clock_timestamp())::double precision"
    # READ COMMITTED: without the row lock two transitions of one task could both pass the check
    LOCK = " FOR UPDATE"
    # concurrent claims each take different free rows, without waiting for each other
    SKIP = " FOR UPDATE SKIP LOCKED"

    @classmethod
    def connect(cls, url: str) -> _PostgresStore:
        try:
            import psycopg
        except ImportError:
            msg = "a postgresql:// task store needs psycopg 3: pip install 'psycopg[binary]'"
            raise StoreError(msg) from None
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            msg = f"task store {shown(url)}: cannot connect ({first})"
            raise StoreError(msg) from None
        return cls(conn, shown(url))

    def _sql(self, query):
        return query.replace("?", "%s")

    @contextlib.contextmanager
    def _write(self):
        with self.conn.transaction(), self.conn.cursor() as cur:
            yield cur

    def _transition(self, task_id, status, worker, reason, event_reason):
        # one round trip instead of five: the checks go into the WHERE clause, and the event
        # row comes from the update's old state; a refusal is explained by the caller
        lease = ("worker = %s AND lease_until > {now}" if worker is not None else
                 "(lease_until IS NULL OR lease_until <= {now})").format(now=self.NOW)
        before = [s for s in STATUSES if status in NEXT[s]]
        query = (f"WITH old AS (SELECT task_id, status AS from_status FROM tasks WHERE task_id = %s AND "
                 f"status = ANY(%s) AND {lease} FOR UPDATE), "
                 f"upd AS (UPDATE tasks t SET status = %s, reason = %s, worker = NULL, lease_until = NULL, "
                 f"updated = {self.NOW} FROM old WHERE t.task_id = old.task_id RETURNING old.from_status) "
                 f"INSERT INTO task_events (task_id, at, from_status, to_status, worker, reason) "
                 f"SELECT %s, {self.NOW}, from_status, %s, %s, %s FROM upd")
        args = (task_id, before, *([worker] if worker is not None else []), status, reason, task_id, status, worker,
                event_reason)
        return self.conn.execute(query, args).rowcount == 1

    def _tables(self):
        rows = self.conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
        return {r[0] for r in rows}


def _url_of_secret(text: str) -> str:
    """A postgresql:// URL from the JSON of an RDS secret."""
    import json
    from urllib.parse import quote

    try:
        secret = json.loads(text)
        user, password, host = secret["username"], secret["password"], secret["host"]
    except (ValueError, KeyError, TypeError):
        msg = "$MAPDIFF_DB_SECRET: expected the JSON of an RDS secret (username, password, host, port, dbname)"
        raise StoreError(msg) from None
    port, dbname = secret.get("port", 5432), secret.get("dbname", "mapdiff")
    return f"postgresql://{quote(str(user))}:{quote(str(password), safe='')}@{host}:{port}/{dbname}"
