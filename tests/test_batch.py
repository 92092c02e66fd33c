"""``mapdiff job``: the shard from Batch's variables, parts under deterministic keys, the local
array runner, exit codes, and a worker killed mid-write."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mapdiff.errors import InputError
from mapdiff.jobs.batch import job_args, shard_from_env
from mapdiff.jobs.shards import Shard
from mapdiff_cli.main import cli


def mapdiff(*args, env=None, **kw):
    """``mapdiff ARGS`` in a process of its own, as Batch runs the container."""
    return subprocess.run([sys.executable, "-m", "mapdiff_cli.main", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kw)


@pytest.fixture(scope="module")
def paths_file(sim_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    res = CliRunner().invoke(
        cli,
        [
            "match",
            str(Path(sim_dir) / "traces.parquet"),
            "--map",
            str(Path(sim_dir) / "map.gpkg"),
            "-o",
            str(out / "matched.parquet"),
            "--paths",
            str(out / "paths.parquet"),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    return out / "paths.parquet"


@pytest.mark.parametrize(("env", "want"), [
    ({}, Shard(0, 1)),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "4", "AWS_BATCH_JOB_ARRAY_SIZE": "7"}, Shard(4, 7)),
])
def test_the_shard_comes_from_batchs_variables(env, want):
    assert shard_from_env(env) == want


@pytest.mark.parametrize(("env", "message"), [
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "7", "AWS_BATCH_JOB_ARRAY_SIZE": "7"}, "outside 0..6"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "1"}, "AWS_BATCH_JOB_ARRAY_SIZE is not"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "x", "AWS_BATCH_JOB_ARRAY_SIZE": "2"}, "whole numbers"),
])
def test_bad_batch_variables_are_named(env, message):
    with pytest.raises(InputError, match=message):
        shard_from_env(env)


def test_each_output_becomes_the_parts_key_under_its_prefix():
    args = job_args("match", ["t.parquet", "--map", "m.gpkg", "-o", "s3://b/run/matched/", "--paths=out/p"],
                    Shard(2, 5))
    assert args == ["t.parquet", "--map", "m.gpkg", "-o", "s3://b/run/matched/part-00002-of-00005.parquet",
                    "--paths=out/p/part-00002-of-00005.parquet", "--shard", "2/5"]
    with pytest.raises(InputError, match="--shard is set by the job"):
        job_args("match", ["t.parquet", "-o", "x", "--shard", "0/2"], Shard(0, 2))
    with pytest.raises(InputError, match="no -o PREFIX"):
        job_args("coverage", ["p.parquet"], Shard(0, 2))


def test_a_local_array_gives_the_unsharded_coverage(paths_file, tmp_path):
    res = mapdiff("job", "coverage", paths_file, "-o", tmp_path / "parts", "--local-array", 3, "--workers", 2)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [
        f"part-0000{i}-of-00003.parquet" for i in range(3)
    ]
    assert mapdiff("merge", "coverage", tmp_path / "parts", "-o", tmp_path / "merged.parquet").returncode == 0
    assert mapdiff("coverage", paths_file, "-o", tmp_path / "whole.parquet").returncode == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "merged.parquet"), pd.read_parquet(tmp_path / "whole.parquet")
    )


def test_args_from_the_environment_and_bad_input_exits_1(paths_file, tmp_path):
    env = {"MAPDIFF_ARGS": f"{paths_file} -o {tmp_path / 'parts'} -q", "AWS_BATCH_JOB_ARRAY_INDEX": "1",
           "AWS_BATCH_JOB_ARRAY_SIZE": "2"}
    res = mapdiff("job", "coverage", env=env)
    assert res.returncode == 0, res.stderr
    assert [p.name for p in (tmp_path / "parts").iterdir()] == ["part-00001-of-00002.parquet"]
    res = mapdiff("job", "coverage", tmp_path / "nothing.parquet", "-o", tmp_path / "x", env=env)
    assert res.returncode == 1 and res.stderr.strip().endswith("nothing.parquet: file not found")
    res = mapdiff("job", "coverage", tmp_path / "parts", "-o", tmp_path / "x", env=env)  # a folder: not retried
    assert res.returncode == 1 and "parts: expected a file; found a folder" in res.stderr
    res = mapdiff("job", "coverage", paths_file, "-o", tmp_path / "x", "--local-array", 2, "--attempts", 3,
                  "--since", "nonsense")
    assert res.returncode == 1 and "2 of 2 shards failed: 0 (exit 2), 1 (exit 2)" in res.stderr  # not retried


def test_a_worker_killed_mid_write_leaves_no_part_and_its_rerun_gives_the_same_bytes(sim_dir, tmp_path):
    sim = Path(sim_dir)
    args = ["job", "match", sim / "traces.parquet", "--map", sim / "map.gpkg", "-o", tmp_path / "m", "-q"]
    env = {"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "1"}
    part = tmp_path / "m" / "part-00000-of-00001.parquet"
    assert mapdiff(*args, env=env).returncode == 0
    clean = part.read_bytes()
    part.unlink()
    caught = 0
    for _ in range(6):  # a write lasts milliseconds: try until the kill lands in some
        proc = subprocess.Popen([sys.executable, "-m", "mapdiff_cli.main", *map(str, args)],
                                env={**os.environ, **env})
        while proc.poll() is None:
            folder = tmp_path / "m"
            if folder.exists() and any(p.name.startswith(".") for p in folder.iterdir()):
                proc.send_signal(signal.SIGKILL)  # the temporary file is being written
                caught += 1
                break
            if part.exists():  # a reader that sees the part sees all of it
                assert pq.read_metadata(part).num_rows > 0
            time.sleep(0.0005)
        proc.wait()
        if part.exists():
            assert part.read_bytes() == clean  # the rename came first: the part is whole
            part.unlink()
        if caught >= 2:
            break
    assert caught >= 1
    assert not part.exists()
    assert mapdiff(*args, env=env).returncode == 0  # the retried attempt
    assert part.read_bytes() == clean
    merged = mapdiff("merge", "match", tmp_path / "m", "-o", tmp_path / "merged.parquet")
    assert merged.returncode == 0, merged.stderr  # the killed attempt's temporary file is no part


def test_single_job_stages_pass_their_arguments_and_refuse_an_array():
    from mapdiff.errors import InputError
    from mapdiff.jobs.batch import job_args
    from mapdiff.jobs.shards import Shard

    args = ["match", "s3://b/run/matched/", "-o", "s3://b/run/matched.parquet"]
    assert job_args("merge", args, Shard()) == args
    with pytest.raises(InputError, match="runs as a single job; found an array of 4"):
        job_args("merge", args, Shard(0, 4))


def test_the_migrations_run_as_a_job(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mapdiff_cli.main import cli

    monkeypatch.setenv("MAPDIFF_STORE", str(tmp_path / "tasks.sqlite"))
    result = CliRunner().invoke(cli, ["job", "tasks", "migrate"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tasks.sqlite").stat().st_size > 0
