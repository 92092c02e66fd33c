"""Every stage on ``s3://``, against a real S3-compatible server the tests start (SeaweedFS,
which checks signatures and, like AWS, creates no bucket on a write): a whole pipeline, wrong
credentials, a missing bucket, and the server stopped mid-run."""

import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import s3fs
from click.testing import CliRunner

from mapdiff_cli.main import cli

from .conftest import FIXTURES


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def test_the_whole_pipeline_reads_and_writes_s3(s3, tmp_path):
    fs = s3fs.S3FileSystem()
    fs.put_file(str(FIXTURES / "helsinki.osm.pbf"), f"{s3}/in/helsinki.osm.pbf")
    run("network", f"{s3}/in/helsinki.osm.pbf", "-o", f"{s3}/roads.gpkg", "-q")
    run("simulate", "--map", f"{s3}/roads.gpkg", "-o", f"{s3}/sim", "--vehicles", 3, "--seed", 1, "-q")
    sim, out = f"{s3}/sim", f"{s3}/out"
    run("match", f"{sim}/traces.parquet", "--map", f"{sim}/map.gpkg", "-o", f"{out}/matched.parquet",
        "--paths", f"{out}/paths.parquet", "-q")
    run("coverage", f"{out}/paths.parquet", "-o", f"{out}/coverage.parquet", "-q")
    run("observe", f"{sim}/detections.parquet", "--matched", f"{out}/matched.parquet", "--camera", f"{sim}/camera.json",
        "--map", f"{sim}/map.gpkg", "-o", f"{out}/observations.parquet", "-q")
    run("locate", f"{out}/observations.parquet", "-o", f"{out}/objects.parquet", "-q")
    run("diff", "--map", f"{sim}/map.gpkg", "--objects", f"{out}/objects.parquet", "--coverage",
        f"{out}/coverage.parquet", "--matched", f"{out}/matched.parquet", "-o", f"{out}/diffs.gpkg", "-q")
    run("report", f"{out}/diffs.gpkg", "--map", f"{sim}/map.gpkg", "-o", f"{out}/report.html")
    run("evaluate", "--truth", f"{sim}/truth", "--diffs", f"{out}/diffs.gpkg", "--objects", f"{out}/objects.parquet")
    names = {p.rsplit("/", 1)[-1] for p in fs.ls(out)}
    assert names == {"matched.parquet", "paths.parquet", "coverage.parquet", "observations.parquet", "objects.parquet",
                     "diffs.gpkg", "report.html"}
    # the same stage on local files gives the same rows
    fs.get(f"{out}/paths.parquet", str(tmp_path / "paths.parquet"))
    run("coverage", tmp_path / "paths.parquet", "-o", tmp_path / "coverage.parquet", "-q")
    with fs.open(f"{out}/coverage.parquet", "rb") as f:
        pd.testing.assert_frame_equal(pd.read_parquet(f), pd.read_parquet(tmp_path / "coverage.parquet"))


@pytest.fixture()
def paths_on_s3(s3, grid_gpkg, tmp_path):
    from fixtures.grid import drive

    drive([0, 10, 20, 21], noise_m=2, seed=1).to_parquet(tmp_path / "traces.parquet")
    run("match", tmp_path / "traces.parquet", "--map", grid_gpkg, "-o", tmp_path / "m.parquet",
        "--paths", f"{s3}/paths.parquet", "-q")
    return f"{s3}/paths.parquet"


def test_wrong_credentials_are_one_line_and_write_nothing(s3, paths_on_s3, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    s3fs.S3FileSystem.clear_instance_cache()
    result = run("coverage", paths_on_s3, "-o", f"{s3}/coverage.parquet", "-q", code=1)
    assert result.output.count("\n") == 1
    # the output is checked first, before any work
    assert "coverage.parquet: access denied" in result.output and "check the credentials" in result.output


def test_a_missing_bucket_is_named(s3, paths_on_s3):
    result = run("coverage", paths_on_s3, "-o", "s3://no-such-bucket/coverage.parquet", "-q", code=1)
    assert (
        result.output.strip()
        == "mapdiff: error: s3://no-such-bucket/coverage.parquet: bucket 'no-such-bucket' not found"
    )
    result = run("coverage", "s3://no-such-bucket/paths.parquet", "-o", f"{s3}/c.parquet", code=1)
    assert "s3://no-such-bucket/paths.parquet: file not found" in result.output
    assert s3fs.S3FileSystem().ls(s3.removeprefix("s3://")) == [f"{s3.removeprefix('s3://')}/paths.parquet"]


def test_the_server_stopped_mid_run_is_transient_and_the_retry_completes(tmp_path, sim_dir):
    """Its own server, stopped when ``mapdiff match`` has read its inputs and matched, the moment
    it starts to write: exit 75 (Batch retries), nothing written; started again on the same data,
    the retry completes."""
    from fixtures.s3 import S3Server, StopOnWrite

    server = S3Server(root=str(tmp_path / "weed")).start()
    proxy = StopOnWrite(server)
    try:
        server.make_bucket("run")

        def client():  # the server's endpoint now (a restart may have to pick new ports)
            env = server.env()
            return s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                                     endpoint_url=server.endpoint, skip_instance_cache=True)

        fs = client()
        for name in ("traces.parquet", "map.gpkg"):
            fs.put_file(str(sim_dir / name), f"run/in/{name}")
        cmd = [sys.executable, "-m", "mapdiff_cli.main", "match", "s3://run/in/traces.parquet", "--map",
               "s3://run/in/map.gpkg", "-o", "s3://run/out/matched.parquet", "-q"]
        first = subprocess.run(cmd, env={**os.environ, **server.env(), "AWS_ENDPOINT_URL": proxy.endpoint},
                               capture_output=True, text=True)
        assert proxy.down.wait(30), first.stderr
        assert first.returncode == 75, first.stderr
        assert first.stderr.startswith("mapdiff: error: s3://run/out/matched.parquet: cannot write (")
        assert first.stderr.count("\n") == 1
        server.start()
        fs = client()
        assert not fs.exists("run/out/matched.parquet")
        # the endpoint answers before the volumes are loaded ("internal error, please try again"
        # for a moment): Batch's back-off between attempts waits that out, so the test does too
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                fs.invalidate_cache()
                fs.cat_file("run/in/traces.parquet", start=0, end=4)
                break
            except OSError:
                time.sleep(0.5)
        retry = subprocess.run(cmd, env={**os.environ, **server.env()}, capture_output=True, text=True)
        assert retry.returncode == 0, retry.stderr
        assert fs.exists("run/out/matched.parquet")
    finally:
        proxy.close()
        server.stop()


def test_no_credentials_at_all_is_one_line_before_any_work(s3, paths_on_s3, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    s3fs.S3FileSystem.clear_instance_cache()
    for args in (["coverage", paths_on_s3, "-o", tmp_path / "c.parquet"],
                 ["coverage", tmp_path / "missing.parquet", "-o", f"{s3}/c.parquet"]):
        result = run(*args, code=1)
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
        assert "no usable AWS credentials" in result.output and "AWS_ACCESS_KEY_ID" in result.output
