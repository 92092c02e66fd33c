"""The task store: one suite, run on SQLite and on a real PostgreSQL (``store_url``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from mapdiff.errors import StoreError, TaskError
from mapdiff.store import NEXT, open_store


def _requests(n: int, *, first: int = 0) -> pd.DataFrame:
    t0 = pd.Timestamp("2026-01-05T08:00", tz="UTC")
    return pd.DataFrame({
        "task_id": [f"task{i:04d}" for i in range(first, first + n)],
        "vehicle_id": [f"v{i % 3}" for i in range(first, first + n)],
        "trip_id": [f"trip{i}" for i in range(first, first + n)],
        "t_start": [t0 + pd.Timedelta(seconds=10 * i) for i in range(first, first + n)],
        "t_end": [t0 + pd.Timedelta(seconds=10 * i + 8) for i in range(first, first + n)],
        "edge_ids": [[i, i + 1] for i in range(first, first + n)],
        "target": ["feature"] * n,
    })


@pytest.fixture()
def store(store_url):
    with open_store(store_url, migrate=True) as s:
        yield s


def test_migrate_applies_each_migration_once(store_url):
    with open_store(store_url, migrate=True) as s:
        # the results tables (0002) need PostGIS: PostgreSQL only
        assert s.applied() == (["0001", "0002"] if s.DIALECT == "postgresql" else ["0001"])
        assert s.migrate() == []  # nothing left to apply


@pytest.mark.parametrize("store_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True)
def test_postgresql_store_is_refused_until_migrated(store_url):
    # (an SQLite file migrates itself: it has no operator)
    with pytest.raises(StoreError, match="mapdiff tasks migrate"):
        open_store(store_url)
    with open_store(store_url, migrate=True):
        pass
    with open_store(store_url) as s:  # migrated: opens
        assert s.counts() == {}


def test_add_is_idempotent_and_lists_in_clip_order(store):
    assert store.add(_requests(3)) == 3
    assert store.add(_requests(4)) == 1  # three were there already
    tasks = store.list()
    assert list(tasks["task_id"]) == ["task0000", "task0001", "task0002", "task0003"]
    assert tasks["edge_ids"].iloc[1] == [1, 2]
    assert tasks["t_start"].iloc[1] == pd.Timestamp("2026-01-05T08:00:10", tz="UTC")
    assert set(tasks["status"]) == {"pending"}
    assert store.counts() == {"pending": 4}


def test_a_task_walks_its_states_and_keeps_its_history(store):
    store.add(_requests(1))
    for status in ("requested", "uploaded", "detected", "done"):
        store.set("task0000", status)
    task = store.get("task0000")
    assert task["status"] == "done"
    assert [(e["from_status"], e["to_status"]) for e in task["events"]] == [
        ("pending", "requested"), ("requested", "uploaded"), ("uploaded", "detected"), ("detected", "done")]


@pytest.mark.parametrize(("walk", "to", "message"), [
    ([], "uploaded", "cannot go from pending to uploaded; from pending it can go to requested, failed"),
    (["requested", "uploaded", "detected", "done"], "failed", "from done it can go to nothing"),
    (["requested", "uploaded", "detected", "done"], "done", "cannot go from done to done"),
    ([], "finished", "status must be one of"),
])
def test_a_transition_from_the_wrong_state_is_refused(store, walk, to, message):
    store.add(_requests(1))
    for status in walk:
        store.set("task0000", status)
    with pytest.raises(TaskError, match=message):
        store.set("task0000", to, reason="x")
    assert store.get("task0000")["status"] == (walk[-1] if walk else "pending")


def test_failed_needs_a_reason_and_can_be_retried(store):
    store.add(_requests(1))
    with pytest.raises(TaskError, match="needs a reason"):
        store.set("task0000", "failed")
    store.set("task0000", "failed", reason="car never came online")
    assert store.get("task0000")["reason"] == "car never came online"
    store.set("task0000", "pending")
    assert store.get("task0000")["reason"] is None


def test_a_task_that_does_not_exist_is_named(store):
    with pytest.raises(TaskError, match="no task 'nope'"):
        store.get("nope")
    with pytest.raises(TaskError, match="no task 'nope'"):
        store.set("nope", "requested")


def test_claims_never_share_a_task_and_respect_the_state(store):
    store.add(_requests(5))
    store.set("task0000", "requested")
    a = store.claim(worker="a", statuses=["pending"], limit=2)
    b = store.claim(worker="b", statuses=["pending"], limit=5)
    assert [t["task_id"] for t in a] == ["task0001", "task0002"]  # task0000 is not pending
    assert [t["task_id"] for t in b] == ["task0003", "task0004"]
    assert store.claim(worker="c", statuses=["pending"]) == []
    assert {t["worker"] for t in a} == {"a"} and all(t["attempts"] == 1 for t in a)
    assert a[0]["lease_until"] > a[0]["updated"] and a[0]["edge_ids"] == [1, 2]


def test_the_lease_holder_alone_changes_a_leased_task(store):
    store.add(_requests(1))
    store.claim(worker="a", lease_s=60)
    with pytest.raises(TaskError, match="holds no lease"):
        store.set("task0000", "requested", worker="b")
    with pytest.raises(TaskError, match="leased by worker 'a'"):
        store.set("task0000", "requested")
    store.set("task0000", "requested", worker="a")
    task = store.get("task0000")
    assert task["status"] == "requested" and task["worker"] is None  # the change released the lease


def test_a_lost_lease_is_claimed_again_and_its_old_holder_refused(store):
    store.add(_requests(1))
    store.claim(worker="a", lease_s=0.3)
    assert store.claim(worker="b") == []  # a's lease lasts
    time.sleep(0.5)
    with pytest.raises(TaskError, match="ran out"):  # expired, even before anyone else claims it
        store.set("task0000", "requested", worker="a")
    again = store.claim(worker="b", lease_s=60)
    assert [t["task_id"] for t in again] == ["task0000"] and again[0]["attempts"] == 2
    with pytest.raises(TaskError, match="holds no lease"):
        store.set("task0000", "requested", worker="a")
    store.set("task0000", "requested", worker="b")


def test_set_many_moves_only_free_tasks_in_the_expected_state(store):
    store.add(_requests(4))
    store.set("task0003", "requested")
    store.claim(worker="a", statuses=["pending"], limit=1)  # task0000 leased
    moved = store.set_many(["task0000", "task0001", "task0002", "task0003", "missing"], "requested",
                           expect="pending")
    assert moved == 2
    assert store.list().set_index("task_id")["status"].to_dict() == {
        "task0000": "pending", "task0001": "requested", "task0002": "requested", "task0003": "requested"}
    with pytest.raises(TaskError, match="cannot go from pending to done"):
        store.set_many(["task0001"], "done", expect="pending")


def test_video_seen_takes_the_latest_uploaded_clip_per_edge(store):
    store.add(_requests(3))
    for task in ("task0000", "task0001"):
        store.set(task, "requested")
        store.set(task, "uploaded")
    seen = store.video_seen().set_index("edge_id")["t_last"]
    # task0002 (edges 2, 3) is pending: not seen; edge 1 is in both uploaded clips
    assert sorted(seen.index) == [0, 1, 2]
    assert seen[1] == pd.Timestamp("2026-01-05T08:00:18", tz="UTC")


def test_an_unreachable_server_is_one_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket closes
    t = time.perf_counter()
    with pytest.raises(StoreError, match=rf"task store postgresql://u:\*\*\*@127.0.0.1:{port}/db: cannot connect"):
        open_store(f"postgresql://u:secret@127.0.0.1:{port}/db")
    assert time.perf_counter() - t < 15


def test_a_url_of_another_kind_is_refused():
    with pytest.raises(StoreError, match="expected a postgresql:// URL"):
        open_store("mysql://host/db")


WORKER = textwrap.dedent("""
    import sys
    from mapdiff.errors import TaskError
    from mapdiff.store import NEXT, open_store

    url, name = sys.argv[1], sys.argv[2]
    with open_store(url) as store:
        while True:
            got = store.claim(worker=name, lease_s=1.0)
            if not got:
                if sum(n for s, n in store.counts().items() if s != "done") == 0:
                    break
                continue
            task = got[0]
            try:
                store.set(task["task_id"], NEXT[task["status"]][0], worker=name)
            except TaskError:
                pass  # the lease ran out under load: someone else will finish it
""")


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
                         indirect=True)
def test_eight_workers_killed_at_random_finish_every_task_exactly_once(store_url, tmp_path):
    n_tasks = 150
    with open_store(store_url, migrate=True) as store:
        store.add(_requests(n_tasks))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(0)

    def spawn(i):
        return subprocess.Popen([sys.executable, str(script), store_url, f"w{i}"], env=env,
                                stderr=subprocess.PIPE)

    workers = [spawn(i) for i in range(8)]
    spawned, killed = 8, 0
    deadline = time.monotonic() + 120
    while killed < 12 and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.1, 0.4))
        victim = rng.randrange(8)
        if workers[victim].poll() is None:
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            killed += 1
        workers[victim] = spawn(spawned)
        spawned += 1
    for w in workers:
        try:
            w.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
        assert w.returncode in (0, -signal.SIGKILL), w.stderr.read().decode()
    assert killed >= 6  # the kills happened while there was work
    with open_store(store_url) as store:
        assert store.counts() == {"done": n_tasks}
        events = store.conn.execute("SELECT task_id, from_status, to_status FROM task_events").fetchall()
    events = pd.DataFrame(events, columns=["task_id", "from", "to"])
    done = events[events["to"] == "done"].groupby("task_id").size()
    assert len(done) == n_tasks and (done == 1).all()  # none lost, none done twice
    # every task went through each state exactly once, in order
    steps = events.groupby("task_id").size()
    assert (steps == 4).all()
    assert set(zip(events["from"], events["to"], strict=True)) == {(s, NEXT[s][0]) for s in
                                                                    ("pending", "requested", "uploaded", "detected")}


def test_a_batch_job_finds_its_database_in_the_secret(monkeypatch):
    from mapdiff.errors import StoreError
    from mapdiff.store import default_store

    monkeypatch.delenv("MAPDIFF_STORE", raising=False)
    monkeypatch.setenv("MAPDIFF_DB_SECRET", '{"username": "mapdiff", "password": "p@ss/word", "host": "db.local", '
                                            '"port": 5432, "dbname": "mapdiff", "engine": "postgres"}')
    assert default_store("s3://bucket/requests.parquet") == "postgresql://mapdiff:p%40ss%2Fword@db.local:5432/mapdiff"
    monkeypatch.setenv("MAPDIFF_DB_SECRET", "not json")
    with pytest.raises(StoreError, match="MAPDIFF_DB_SECRET"):
        default_store()
