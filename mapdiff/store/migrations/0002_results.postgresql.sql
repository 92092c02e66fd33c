-- The results store (PostgreSQL with PostGIS only; the embedded default stays files): matched
-- points, located objects and diffs, each row labelled with the run and the shard that wrote
-- it, so that a rerun of a shard replaces exactly its own rows (mapdiff.store.results).
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE matched_points (
    run_id      TEXT NOT NULL,
    shard       INTEGER NOT NULL,
    trip_id     TEXT NOT NULL,
    t           TIMESTAMPTZ NOT NULL,
    lon         DOUBLE PRECISION,
    lat         DOUBLE PRECISION,
    edge_id     BIGINT,
    offset_m    DOUBLE PRECISION,
    distance_m  DOUBLE PRECISION,
    state       TEXT NOT NULL,
    confidence  DOUBLE PRECISION,
    geom        geometry(Point, 4326)   -- the matched point (NULL where unmatched)
);
CREATE INDEX matched_points_part ON matched_points (run_id, shard);
CREATE INDEX matched_points_geom ON matched_points USING GIST (geom);
CREATE TABLE objects (
    run_id          TEXT NOT NULL,
    shard           INTEGER NOT NULL,
    object_id       BIGINT NOT NULL,
    class           TEXT NOT NULL,
    value           TEXT,
    sigma_m         DOUBLE PRECISION,
    n_observations  BIGINT,
    n_trips         BIGINT,
    t_first         TIMESTAMPTZ,
    t_last          TIMESTAMPTZ,
    score           DOUBLE PRECISION,
    weak            BOOLEAN,
    geom            geometry(Point, 4326) NOT NULL
);
CREATE INDEX objects_part ON objects (run_id, shard);
CREATE INDEX objects_geom ON objects USING GIST (geom);
CREATE TABLE diffs (
    run_id      TEXT NOT NULL,
    shard       INTEGER NOT NULL,
    diff_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    class       TEXT,
    feature_id  TEXT,
    edge_ids    TEXT,
    old_value   TEXT,
    object_id   BIGINT,
    new_value   TEXT,
    distance_m  DOUBLE PRECISION,
    confidence  DOUBLE PRECISION,
    geom        geometry(Geometry, 4326)
);
CREATE INDEX diffs_part ON diffs (run_id, shard);
CREATE INDEX diffs_geom ON diffs USING GIST (geom);
