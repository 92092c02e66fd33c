"""I/O on remote URLs (fsspec; ``memory://`` stands in for ``s3://``) and atomic writes."""

import fsspec
import pandas as pd
import pytest

from fixtures.grid import drive
from mapdiff.errors import InputError, TransientError
from mapdiff.io import read_gpkg_layer, read_table, write_table


def test_parquet_round_trip_on_a_remote_url():
    df = drive([0, 10], noise_m=1, seed=1)
    write_table(df, "memory://bucket/traces.parquet")
    back = read_table("memory://bucket/traces.parquet")
    pd.testing.assert_frame_equal(back, df)


def test_gpkg_layer_from_a_remote_url(grid_gpkg):
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/roads.gpkg", grid_gpkg.read_bytes())
    edges = read_gpkg_layer("memory://bucket/roads.gpkg", "edges")
    assert len(edges) > 0 and edges.crs is not None


def test_missing_remote_file_is_named():
    with pytest.raises(InputError, match="memory://bucket/nothing.parquet: file not found"):
        read_table("memory://bucket/nothing.parquet")


def test_a_full_disk_is_one_clear_error_and_leaves_no_file(tmp_path, monkeypatch):
    import errno

    import pyarrow.parquet as pq

    def half_then_full(table, where, **kwargs):
        with open(where, "wb") as f:
            f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", half_then_full)
    target = tmp_path / "out.parquet"
    with pytest.raises(TransientError, match=r"out.parquet: cannot write \(No space left on device\)"):
        write_table(pd.DataFrame({"a": [1]}), target)
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_appears_whole_or_not_at_all(tmp_path):
    from pathlib import Path

    from mapdiff.io import atomic_dir

    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (Path(tmp) / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (Path(tmp) / "a.txt").write_text("half")
        raise RuntimeError("failed halfway")
    assert (out / "a.txt").read_text() == "first"  # the old folder stands; nothing half-written
    with atomic_dir(out) as tmp:
        (Path(tmp) / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]  # replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
