"""The results store on a real PostgreSQL with PostGIS: matched points, objects and diffs in
tables with GiST indexes; a rerun of a shard replaces its rows; a server that goes down
mid-write keeps nothing of the write and the retry completes."""

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mapdiff_cli.main import cli

pytestmark = pytest.mark.postgresql

ROOT = Path(__file__).resolve().parents[1]


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture()
def db(postgres_cluster, request):
    url = postgres_cluster.create_database(f"r_{abs(hash(request.node.nodeid)) % 10**9}")
    run("tasks", "migrate", "--store", url)
    return url


def query(url, sql, args=()):
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql, args or None).fetchall()


def test_stage_rows_land_in_spatial_tables_and_a_rerun_replaces_them(db, sim_dir, tmp_path):
    sim = Path(sim_dir)
    match = ["match", sim / "traces.parquet", "--map", sim / "map.gpkg", "-o", tmp_path / "m.parquet", "--store", db,
             "-q"]
    run(*match)
    run(*match)  # the same run again: its rows are replaced, not added
    matched = pd.read_parquet(tmp_path / "m.parquet")
    assert query(db, "SELECT count(*) FROM matched_points") == [(len(matched),)]
    with_point = int(matched["matched_lon"].notna().sum())
    assert query(db, "SELECT count(geom) FROM matched_points") == [(with_point,)]
    # the shards of another run: two parts, together the whole; a rerun of one keeps the count
    for i in (0, 1, 0):
        run("match", sim / "traces.parquet", "--map", sim / "map.gpkg", "-o", tmp_path / f"s{i}.parquet", "--shard",
            f"{i}/2", "--run-id", "sharded", "--store", db, "-q")
    assert query(db, "SELECT count(*) FROM matched_points WHERE run_id = 'sharded'") == [(len(matched),)]
    assert query(db, "SELECT count(DISTINCT shard) FROM matched_points WHERE run_id = 'sharded'") == [(2,)]
    # a spatial question the GiST index answers: points within 50 m of the first matched point
    lon, lat = matched.loc[matched["matched_lon"].notna(), ["matched_lon", "matched_lat"]].iloc[0]
    near = query(db, "SELECT count(*) FROM matched_points WHERE run_id = 'sharded' AND ST_DWithin(geom::geography, "
                     "ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, 50)", (float(lon), float(lat)))[0][0]
    assert near >= 1
    indexes = {r[0] for r in query(db, "SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING gist%'")}
    assert {"matched_points_geom", "objects_geom", "diffs_geom"} <= indexes


def test_objects_and_diffs_are_stored(db, sim_dir, tmp_path):
    sim = Path(sim_dir)
    run("match", sim / "traces.parquet", "--map", sim / "map.gpkg", "-o", tmp_path / "m.parquet", "--paths",
        tmp_path / "p.parquet", "-q")
    run("coverage", tmp_path / "p.parquet", "-o", tmp_path / "c.parquet", "-q")
    run("observe", sim / "detections.parquet", "--matched", tmp_path / "m.parquet", "--camera", sim / "camera.json",
        "--map", sim / "map.gpkg", "-o", tmp_path / "o.parquet", "-q")
    run("locate", tmp_path / "o.parquet", "-o", tmp_path / "objects.parquet", "--store", db, "-q")
    run("diff", "--map", sim / "map.gpkg", "--objects", tmp_path / "objects.parquet", "--coverage",
        tmp_path / "c.parquet", "-o", tmp_path / "d.gpkg", "--store", db, "-q")
    objects = pd.read_parquet(tmp_path / "objects.parquet")
    stored = pd.DataFrame(query(db, "SELECT object_id, ST_X(geom), ST_Y(geom) FROM objects ORDER BY object_id"),
                          columns=["object_id", "lon", "lat"])
    pd.testing.assert_frame_equal(stored, objects[["object_id", "lon", "lat"]].reset_index(drop=True),
                                  check_dtype=False)
    import geopandas as gpd

    diffs = gpd.read_file(tmp_path / "d.gpkg", layer="diffs")
    assert query(db, "SELECT kind, count(*) FROM diffs GROUP BY kind ORDER BY kind") == sorted(
        diffs["kind"].value_counts().items())


def test_results_need_postgresql(tmp_path, sim_dir):
    sim = Path(sim_dir)
    result = run("match", sim / "traces.parquet", "--map", sim / "map.gpkg", "-o", tmp_path / "m.parquet", "--store",
                 tmp_path / "tasks.sqlite", "-q", code=1)
    assert "results are written to PostgreSQL/PostGIS only" in result.output


def test_a_server_down_mid_write_keeps_nothing_and_the_retry_completes(tmp_path):
    """Its own cluster, stopped (as a crash) while a shard's 400,000 rows stream in: exit 75, the
    rows of the earlier attempt stay whole; started again, the retry replaces them."""
    from fixtures.postgres import Cluster

    from .conftest import skip_without_postgis

    skip_without_postgis()
    cluster = Cluster().start()
    try:
        url = cluster.create_database("crash")
        run("tasks", "migrate", "--store", url)
        n = 400_000
        frame = pd.DataFrame({"trip_id": [f"t{i // 1000}" for i in range(n)],
                              "t": pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(range(n), unit="s"),
                              "lon": 24.9, "lat": 60.17, "edge_id": 1, "offset_m": 1.0, "matched_lon": 24.9,
                              "matched_lat": 60.17, "distance_m": 1.0, "state": "matched", "confidence": 0.9})
        frame.to_parquet(tmp_path / "rows.parquet")
        frame.iloc[:10].to_parquet(tmp_path / "few.parquet")
        write = ("import sys, pandas as pd; from mapdiff.errors import MapdiffError; "
                 "from mapdiff.store.results import write_results\n"
                 "try: write_results(sys.argv[1], 'match', pd.read_parquet(sys.argv[2]), run_id='r', shard=3)\n"
                 "except MapdiffError as e: print(e, file=sys.stderr); sys.exit(getattr(e, 'exit_code', 75))\n")
        ok = subprocess.run([sys.executable, "-c", write, url, tmp_path / "few.parquet"], cwd=ROOT,
                            capture_output=True, text=True)
        assert ok.returncode == 0, ok.stderr
        proc = subprocess.Popen([sys.executable, "-c", write, url, tmp_path / "rows.parquet"], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for the COPY to be under way
            if query(url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY matched_points%%'")[0][0]:
                break
            time.sleep(0.01)
        cluster.stop(keep_data=True)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 75, err
        assert "lost while writing matched_points" in err and "nothing of this shard was kept" in err
        cluster.start()
        assert query(url, "SELECT count(*) FROM matched_points WHERE run_id = 'r' AND shard = 3") == [(10,)]
        retry = subprocess.run([sys.executable, "-c", write, url, tmp_path / "rows.parquet"], cwd=ROOT,
                               capture_output=True, text=True)
        assert retry.returncode == 0, retry.stderr
        assert query(url, "SELECT count(*) FROM matched_points WHERE run_id = 'r' AND shard = 3") == [(n,)]
    finally:
        cluster.stop()
