-- The task store: one row per clip request, and every change of state it went through.
-- Portable SQL: the same text runs on SQLite and PostgreSQL. Times are UTC epoch seconds
-- (the store's clock decides leases, so workers on machines with skewed clocks agree).
CREATE TABLE tasks (
    task_id     TEXT PRIMARY KEY,
    vehicle_id  TEXT,
    trip_id     TEXT NOT NULL,
    t_start     DOUBLE PRECISION NOT NULL,
    t_end       DOUBLE PRECISION NOT NULL,
    edge_ids    TEXT NOT NULL,          -- JSON list of the directed edge ids the clip covers
    target      TEXT NOT NULL,          -- why: feature, diff, stale, user (joined with +)
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'requested', 'uploaded', 'detected', 'done', 'failed')),
    reason      TEXT,                   -- why it failed
    worker      TEXT,                   -- who holds the lease
    lease_until DOUBLE PRECISION,       -- the lease ends then (store clock)
    attempts    INTEGER NOT NULL DEFAULT 0,
    created     DOUBLE PRECISION NOT NULL,
    updated     DOUBLE PRECISION NOT NULL
);
CREATE INDEX tasks_status ON tasks (status, t_start);
CREATE TABLE task_events (
    task_id     TEXT NOT NULL REFERENCES tasks (task_id),
    at          DOUBLE PRECISION NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    worker      TEXT,
    reason      TEXT
);
CREATE INDEX task_events_task ON task_events (task_id);
