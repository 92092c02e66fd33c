"""I/O on remote URLs (fsspec; ``memory://`` stands in for ``s3://``) and atomic writes."""

import fsspec
import numpy as np
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

    from mapdiff.io import table_writer

    calls = []
    real = pq.ParquetWriter.write_table

    def full_on_the_second_batch(self, table, *args, **kwargs):
        calls.append(len(table))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_on_the_second_batch)
    target = tmp_path / "out.parquet"
    with pytest.raises(TransientError, match=r"out.parquet: cannot write \(No space left on device\)"):
        write_table(pd.DataFrame({"a": [1]}), target)  # one batch: written
        with table_writer(target) as out:  # the first batch is on disk when the second fails
            out.write(pd.DataFrame({"a": [2]}))
            out.write(pd.DataFrame({"a": [3]}))
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]  # no temporary file left
    assert pd.read_parquet(target)["a"].tolist() == [1]  # the earlier output stands


def test_a_table_written_in_batches_reads_as_one(tmp_path):
    from mapdiff.io import read_table, table_writer

    target = tmp_path / "out.parquet"
    batches = [pd.DataFrame({"trip_id": pd.Categorical(["a"] * 2), "value": [None, None], "lon": [24.9, 24.91],
                             "lat": [60.1, 60.2]}),
               pd.DataFrame({"trip_id": pd.Categorical([f"t{i}" for i in range(300)]),  # > 127 categories
                             "value": ["x"] * 300, "lon": [25.0] * 300, "lat": [60.3] * 300})]
    with table_writer(target) as out:
        for b in batches:
            out.write(b)
    back = read_table(target)
    assert len(back) == 302 and back["value"].isna().sum() == 2 and (back["value"][2:] == "x").all()
    assert back["trip_id"].astype(str).tolist() == ["a", "a"] + [f"t{i}" for i in range(300)]
    import geopandas as gpd

    assert gpd.read_parquet(target).crs.to_epsg() == 4326


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


def test_points_are_written_as_geopandas_writes_them(tmp_path):
    """The point geometry and its covering box are made from the numbers (no shapely object per
    row); the reference is geopandas writing the same points, a missing one included."""
    import geopandas as gpd
    import numpy as np
    import shapely

    df = pd.DataFrame({"trip_id": ["a", "b", "c"], "lon": [24.95, np.nan, -122.27], "lat": [60.17, 60.2, 37.8],
                       "x": [1.0, 2.0, 3.0]})
    write_table(df, tmp_path / "ours.parquet")
    points = shapely.points(df["lon"], df["lat"])
    points[1] = None
    gpd.GeoDataFrame(df, geometry=points, crs="EPSG:4326").to_parquet(tmp_path / "ref.parquet", index=False,
                                                                      write_covering_bbox=True)
    for read in (gpd.read_parquet, pd.read_parquet):
        pd.testing.assert_frame_equal(read(tmp_path / "ours.parquet"), read(tmp_path / "ref.parquet"))
    ours = gpd.read_parquet(tmp_path / "ours.parquet")
    assert ours.crs.to_epsg() == 4326 and ours.geometry.iloc[1] is None
    assert ours.geometry.iloc[2].equals(shapely.Point(-122.27, 37.8))


def test_a_few_columns_of_a_geoparquet_file_read_without_its_geometry(tmp_path):
    # a stage that needs two columns of a big GeoParquet file reads those alone: a plain frame
    # (read with its geometry, or with lon and lat, the file is a GeoDataFrame as before)
    import geopandas as gpd

    df = pd.DataFrame({"trip_id": ["a", "b"], "lon": [24.95, 24.96], "lat": [60.17, 60.18], "d": [1.0, 2.0]})
    write_table(df, tmp_path / "f.parquet")
    few = read_table(tmp_path / "f.parquet", columns=["trip_id", "d"])
    assert not isinstance(few, gpd.GeoDataFrame)
    pd.testing.assert_frame_equal(few, df[["trip_id", "d"]])
    assert isinstance(read_table(tmp_path / "f.parquet", columns=["d", "geometry"]), gpd.GeoDataFrame)


def test_a_pass_in_batches_holds_one_batch_not_the_file(tmp_path):
    """Reading a file batch by batch through ``open_parquet`` holds about one batch in Arrow's
    memory, not the file: pyarrow's default pre-buffering read ahead and kept what it read until
    the file closed (14 GB over a month's detections; here the whole file from the first batch)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mapdiff.io import open_parquet

    rng = np.random.default_rng(0)
    n, path = 50_000, tmp_path / "big.parquet"
    with pq.ParquetWriter(path, pa.schema([("trip_id", pa.string()), ("x", pa.float64())])) as w:
        for k in range(30):
            w.write_table(pa.table({"trip_id": [f"trip-{k}-{i // 500}" for i in range(n)], "x": rng.normal(size=n)}))
    held = []
    with open_parquet(path) as pf:
        for batch in pf.iter_batches(batch_size=n):
            held.append(pa.total_allocated_bytes())
            del batch
    assert max(held) < 0.5 * path.stat().st_size  # (a batch is a thirtieth of the file)


def test_read_rows_reads_a_run_of_rows_across_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mapdiff.io import read_rows

    frame = pd.DataFrame({"a": np.arange(35), "b": [f"r{i}" for i in range(35)]})
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=10)
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    for start, stop in [(0, 35), (3, 27), (10, 20), (19, 21), (34, 35), (12, 12)]:
        got = read_rows(path, start, stop)
        pd.testing.assert_frame_equal(got, frame.iloc[start:stop].reset_index(drop=True))
    assert list(read_rows(path, 5, 8, columns=["b", "missing"]).columns) == ["b"]


def test_read_runs_reads_each_row_group_once(tmp_path, monkeypatch):
    """Runs of rows, several in one row group and one across two, come one after another; each
    row group they touch is read once, the others not at all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mapdiff.io import read_runs

    frame = pd.DataFrame({"a": np.arange(45), "b": [f"r{i}" for i in range(45)]})
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=10)
    read, groups = pq.ParquetFile.read_row_groups, []

    def counted(self, row_groups, *args, **kwargs):
        groups.extend(row_groups)
        return read(self, row_groups, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", counted)
    runs = [(1, 3), (5, 7), (18, 23), (24, 25), (44, 45)]
    got = read_runs(path, runs)
    pd.testing.assert_frame_equal(got, pd.concat([frame.iloc[a:b] for a, b in runs], ignore_index=True))
    assert groups == [0, 1, 2, 4]
