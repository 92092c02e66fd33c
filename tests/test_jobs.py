"""Stages as shards: the law (the N shards' outputs merged are exactly one unsharded run's rows,
for N in 1, 2, 3, 7, on a simulated fleet), the labels that keep runs apart, and bad input."""

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mapdiff.errors import InputError
from mapdiff.jobs.shards import Shard, hash_shard
from mapdiff_cli.main import cli

NS = (1, 2, 3, 7)


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def whole(sim_dir, tmp_path_factory):
    """One unsharded run of match, coverage and observe on the simulated fleet."""
    sim, out = Path(sim_dir), tmp_path_factory.mktemp("whole")
    run("match", sim / "traces.parquet", "--map", sim / "map.gpkg", "-o", out / "matched.parquet",
        "--paths", out / "paths.parquet", "-q")
    run("coverage", out / "paths.parquet", "-o", out / "coverage.parquet", "-q")
    run("observe", sim / "detections.parquet", "--matched", out / "matched.parquet", "--camera", sim / "camera.json",
        "--map", sim / "map.gpkg", "-o", out / "observations.parquet", "-q")
    return out


def _sharded(stage_args, n, folder):
    """Run every shard of ``n``; each writes ``folder/<output>/part-...``. Returns the folder."""
    for i in range(n):
        args = [a(Shard(i, n)) if callable(a) else a for a in stage_args]
        run(*args, "--shard", f"{i}/{n}", "-q")
    return folder


def _merged(stage, folder, tmp_path):
    out = tmp_path / f"merged-{stage}.parquet"
    run("merge", stage, folder, "-o", out, "-q")
    return pd.read_parquet(out)


@pytest.mark.parametrize("n", NS)
def test_match_shards_merge_into_the_whole_run(sim_dir, whole, n, tmp_path):
    sim = Path(sim_dir)
    (tmp_path / "m").mkdir()
    (tmp_path / "p").mkdir()
    _sharded(["match", sim / "traces.parquet", "--map", sim / "map.gpkg",
              "-o", lambda s: tmp_path / "m" / f"{s.name}.parquet",
              "--paths", lambda s: tmp_path / "p" / f"{s.name}.parquet"], n, tmp_path)
    pd.testing.assert_frame_equal(
        _merged("match", tmp_path / "m", tmp_path), pd.read_parquet(whole / "matched.parquet")
    )
    pd.testing.assert_frame_equal(_merged("paths", tmp_path / "p", tmp_path), pd.read_parquet(whole / "paths.parquet"))


TILES = ("--tile-m", 400, "--halo-m", 150)  # small tiles: the fixture's city spans dozens


@pytest.fixture(scope="module")
def whole_objects(whole):
    run("locate", whole / "observations.parquet", "-o", whole / "objects.parquet", *TILES, "-q")
    return pd.read_parquet(whole / "objects.parquet")


@pytest.mark.parametrize("n", NS)
def test_locate_shards_merge_into_the_whole_run(whole, whole_objects, n, tmp_path):
    _sharded(["locate", whole / "observations.parquet", *TILES, "-o", lambda s: tmp_path / "l" / f"{s.name}.parquet"],
             n, tmp_path)
    pd.testing.assert_frame_equal(_merged("locate", tmp_path / "l", tmp_path), whole_objects)


def test_a_locate_shard_that_owns_no_tile_writes_no_objects(whole, tmp_path):
    """One tile (the fixture's city in 100 km) and 3 shards: two shards own nothing and write an
    empty objects file (they crashed with a traceback: a writer closed before any batch); the
    merge is the whole run."""
    from mapdiff.locate import OBJECT_COLUMNS

    one_tile = ("--tile-m", 100_000)
    run("locate", whole / "observations.parquet", *one_tile, "-o", tmp_path / "whole.parquet", "-q")
    _sharded(["locate", whole / "observations.parquet", *one_tile,
              "-o", lambda s: tmp_path / "l" / f"{s.name}.parquet"], 3, tmp_path)
    sizes = sorted(len(pd.read_parquet(f)) for f in (tmp_path / "l").iterdir())
    whole_run = pd.read_parquet(tmp_path / "whole.parquet")
    assert sizes == [0, 0, len(whole_run)] and len(whole_run) > 0
    empty = next(f for f in (tmp_path / "l").iterdir() if len(pd.read_parquet(f)) == 0)
    assert set(OBJECT_COLUMNS) <= set(pd.read_parquet(empty).columns)
    pd.testing.assert_frame_equal(_merged("locate", tmp_path / "l", tmp_path), whole_run)


@pytest.fixture(scope="module")
def diff_args(sim_dir, whole, whole_objects):
    sim = Path(sim_dir)
    return ["diff", "--map", sim / "map.gpkg", "--objects", whole / "objects.parquet", "--coverage",
            whole / "coverage.parquet", "--matched", whole / "matched.parquet", "--paths", whole / "paths.parquet"]


@pytest.mark.parametrize("n", NS)
def test_diff_shards_merge_into_the_whole_run(diff_args, n, tmp_path):
    import geopandas as gpd

    run(*diff_args, "-o", tmp_path / "whole.gpkg", "-q")
    _sharded([*diff_args, "--tile-m", 400, "-o", lambda s: tmp_path / "d" / f"{s.name}.gpkg"], n, tmp_path)
    run("merge", "diff", tmp_path / "d", "-o", tmp_path / "merged.gpkg", "-q")
    for layer in ("diffs", "unverified"):
        whole = gpd.read_file(tmp_path / "whole.gpkg", layer=layer)
        assert len(whole) > 0
        pd.testing.assert_frame_equal(gpd.read_file(tmp_path / "merged.gpkg", layer=layer), whole)
    if n > 1:  # each shard keeps a part
        assert all(len(gpd.read_file(f, layer="diffs")) < len(gpd.read_file(tmp_path / "whole.gpkg", layer="diffs"))
                   for f in (tmp_path / "d").iterdir())


def test_an_unsharded_locate_without_tiles_is_one_piece(whole, tmp_path):
    from mapdiff.io import read_table
    from mapdiff.locate import locate

    run("locate", whole / "observations.parquet", "-o", tmp_path / "o.parquet", "-q")
    objects, _ = locate(read_table(whole / "observations.parquet"))
    pd.testing.assert_frame_equal(read_table(tmp_path / "o.parquet"), objects)


@pytest.mark.parametrize("tile_m", [100.0, 1000.0, 5000.0])
def test_object_ids_are_exact_as_doubles_and_a_full_tile_is_refused(tile_m):
    from mapdiff.errors import ConfigError
    from mapdiff.jobs.tiles import Tiling

    tiling = Tiling(tile_m=tile_m, halo_m=50.0).validate()
    # the far corners of the grid, and a tile as full as its numbers allow
    keys = tiling.key(np.array([-180.0, 179.999, 179.999, -180.0]), np.array([-89.999, 89.999, -89.999, 89.999]))
    room = 1 << tiling._bits[2]
    for key in keys:
        ids = tiling.object_ids(int(key), 3)
        # the tile's last number, as a full tile would give it
        last = int(ids[0]) | (room - 1)
        assert last < 2**53 and int(float(last)) == last  # JavaScript, floats with nulls
        assert len(set(ids.tolist())) == 3
    assert len({tiling.object_ids(int(k), 1)[0] for k in keys}) == len(set(keys.tolist()))
    if room <= 1 << 16:
        assert tiling.object_ids(int(keys[1]), room)[-1] == (int(keys[1]) << tiling._bits[2]) | (room - 1)
    with pytest.raises(ConfigError, match="use smaller tiles"):
        tiling.object_ids(int(keys[0]), room + 1)


def test_tiles_see_their_halo_and_own_what_lies_in_them():
    from mapdiff.jobs.tiles import M_PER_DEG, Tiling

    tiling = Tiling(tile_m=1000, halo_m=100)
    lat0 = 3 * tiling.dlat  # a row's lower edge
    dlon = tiling._dlon(np.array([3]))[0]
    lon0 = 7 * dlon - 180.0  # a column's left edge
    m_lon = M_PER_DEG * np.cos(np.radians(lat0))
    # in the middle of a tile; 50 m inside its left edge; 150 m beyond its left edge; at its corner
    lon = np.array([lon0 + 500 / m_lon, lon0 + 50 / m_lon, lon0 - 150 / m_lon, lon0 + 30 / m_lon])
    lat = np.array([lat0 + 500 / M_PER_DEG, lat0 + 500 / M_PER_DEG, lat0 + 500 / M_PER_DEG, lat0 + 30 / M_PER_DEG])
    home = tiling.key(lon, lat)
    assert home[0] == home[1] == home[3] != home[2]
    idx, keys = tiling.near(lon, lat)
    seen = {i: sorted(keys[idx == i]) for i in range(4)}
    assert len(seen[0]) == 1 and len(seen[2]) == 1  # 150 m from the next tile: beyond the halo
    assert len(seen[1]) == 2 and home[2] in seen[1]  # within 100 m of the left neighbour
    assert len(seen[3]) == 4  # a corner: the three neighbours around it too


def test_the_tiles_a_point_reaches_are_those_a_slow_reference_finds():
    """The kernel against plain Python: for each point, each of the nine tiles around its own,
    the distance from the point to the tile's box (metres along the meridian and the parallel)
    within the halo. Points crowd the tiles' edges and corners, at several latitudes."""
    import math

    from mapdiff.jobs.tiles import M_PER_DEG, Tiling

    rng = np.random.default_rng(11)
    tiling = Tiling(tile_m=1000, halo_m=150).validate()
    lat = np.r_[rng.uniform(-70, 70, 300), np.round(rng.uniform(59, 61, 300) / tiling.dlat) * tiling.dlat
                + rng.normal(0, 150 / M_PER_DEG, 300)]
    lon = rng.uniform(-179, 179, len(lat))
    lon[300:] = 24.9 + rng.uniform(0, 0.2, 300)
    shift, col_bits, _ = tiling._bits
    expected = set()
    for i, (x, y) in enumerate(zip(lon, lat)):
        row0 = math.floor(y / tiling.dlat)
        for row in (row0 - 1, row0, row0 + 1):
            gap_y = max(row * tiling.dlat - y, y - (row + 1) * tiling.dlat, 0.0) * M_PER_DEG
            dlon = tiling.tile_m / (M_PER_DEG * max(math.cos(math.radians((row + 0.5) * tiling.dlat)), 1e-6))
            col0 = math.floor((x + 180.0) / dlon)
            for col in (col0 - 1, col0, col0 + 1):
                gap_x = max(col * dlon - (x + 180.0), (x + 180.0) - (col + 1) * dlon, 0.0) * M_PER_DEG * max(
                    math.cos(math.radians(y)), 1e-6)
                if math.hypot(gap_x, gap_y) <= tiling.halo_m:
                    expected.add((i, ((row + shift) << col_bits) | col))
    idx, keys = tiling.near(lon, lat)
    assert set(zip(idx.tolist(), keys.tolist())) == expected and len(idx) == len(expected)
    assert set(keys[np.isin(idx, np.arange(len(lat)))].tolist()) >= set(tiling.key(lon, lat).tolist())


def test_a_tiles_centre_lies_in_it_midway():
    from mapdiff.jobs.tiles import Tiling

    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(-180, 180, 500), rng.uniform(-80, 80, 500)
    for tile_m in (100, 5000):
        tiling = Tiling(tile_m=tile_m, halo_m=50).validate()
        for key, x, y in zip(tiling.key(lon, lat), lon, lat):
            c_lon, c_lat = tiling.centre(key)
            assert tiling.key(np.array([c_lon]), np.array([c_lat]))[0] == key
            # within half a tile of every point of the tile
            assert abs(c_lat - y) <= 0.5 * tiling.dlat + 1e-9
            assert abs(c_lon - x) <= 0.5 * tiling._dlon(np.floor(y / tiling.dlat)) + 1e-9


def test_tiles_are_balanced_the_biggest_first():
    from mapdiff.jobs.tiles import balance

    # 10 -> shard 0; 9 -> shard 1; 2 -> shard 1 (9 < 10); 1 -> shard 0 (10 < 11)
    assert list(balance(np.array([1, 2, 3, 4]), np.array([10, 9, 2, 1]), 2)) == [0, 1, 1, 0]
    assert list(balance(np.array([7, 5]), np.array([3, 3]), 3)) == [1, 0]  # a tie: the lower key first


def test_labels_need_an_unsharded_run(whole, tmp_path):
    result = CliRunner().invoke(cli, ["locate", str(whole / "observations.parquet"), "-o", str(tmp_path / "o.parquet"),
                                      "--labels", str(tmp_path / "l.parquet"), "--shard", "0/2"])
    assert result.exit_code == 2 and "--labels" in result.output


@pytest.mark.parametrize("n", NS)
def test_coverage_shards_merge_into_the_whole_run(whole, n, tmp_path):
    _sharded(["coverage", whole / "paths.parquet", "-o", lambda s: tmp_path / "c" / f"{s.name}.parquet"], n, tmp_path)
    merged = _merged("coverage", tmp_path / "c", tmp_path)
    pd.testing.assert_frame_equal(merged, pd.read_parquet(whole / "coverage.parquet"))
    assert n == 1 or len(pd.read_parquet(next((tmp_path / "c").iterdir()))) < len(merged)  # each shard counts a part


@pytest.mark.parametrize("n", NS)
def test_observe_shards_merge_into_the_whole_run(sim_dir, whole, n, tmp_path):
    sim = Path(sim_dir)
    _sharded(["observe", sim / "detections.parquet", "--matched", whole / "matched.parquet", "--camera",
              sim / "camera.json", "--map", sim / "map.gpkg", "-o", lambda s: tmp_path / "o" / f"{s.name}.parquet"],
             n, tmp_path)
    pd.testing.assert_frame_equal(_merged("observe", tmp_path / "o", tmp_path),
                                  pd.read_parquet(whole / "observations.parquet"))


@pytest.mark.parametrize("n", NS)
def test_simulate_shards_merge_into_the_whole_run(helsinki_gpkg, n, tmp_path):
    sim = ["simulate", "--map", helsinki_gpkg, "--vehicles", 4, "--seed", 5]
    run(*sim, "-o", tmp_path / "whole", "-q")
    _sharded([*sim, "-o", lambda s: tmp_path / "parts" / s.name], n, tmp_path)
    run("merge", "simulate", tmp_path / "parts", "-o", tmp_path / "merged", "-q")
    tables = sorted(str(p.relative_to(tmp_path / "whole")) for p in (tmp_path / "whole").rglob("*.parquet"))
    assert tables == sorted(str(p.relative_to(tmp_path / "merged")) for p in (tmp_path / "merged").rglob("*.parquet"))
    for name in tables:
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "merged" / name), pd.read_parquet(tmp_path / "whole" / name)
        )
    import json

    assert json.loads((tmp_path / "merged/truth/meta.json").read_text()) == json.loads(
        (tmp_path / "whole/truth/meta.json").read_text())


@pytest.mark.parametrize("capture", ["video", "imagery"])
def test_simulate_vehicle_by_vehicle_writes_the_whole_run(helsinki_gpkg, capture, tmp_path, monkeypatch):
    """A fleet written a few vehicles at a time (small batches) is the fleet written at once."""
    import json

    import pyarrow.parquet as pq

    sim = ["simulate", "--map", helsinki_gpkg, "--vehicles", 5, "--seed", 5, "--capture", capture]
    run(*sim, "-o", tmp_path / "once", "-q")
    fixes = len(pd.read_parquet(tmp_path / "once" / "traces.parquet", columns=["trip_id"]))
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(fixes // 4))
    run(*sim, "-o", tmp_path / "batched", "-q")
    tables = sorted(str(p.relative_to(tmp_path / "once")) for p in (tmp_path / "once").rglob("*.parquet"))
    assert "truth/objects.parquet" in tables
    for name in tables:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "batched" / name),
                                      pd.read_parquet(tmp_path / "once" / name))
    assert pq.ParquetFile(tmp_path / "batched" / "traces.parquet").num_row_groups >= 3  # written as it went
    assert json.loads((tmp_path / "batched/truth/meta.json").read_text()) == json.loads(
        (tmp_path / "once/truth/meta.json").read_text())


def test_parts_of_different_runs_are_refused(whole, tmp_path):
    paths = whole / "paths.parquet"
    run("coverage", paths, "-o", tmp_path / "a.parquet", "--shard", "0/2", "-q")
    run("coverage", paths, "-o", tmp_path / "b.parquet", "--shard", "1/2", "--since", "2000-01-01", "-q")
    result = CliRunner().invoke(cli, ["merge", "coverage", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"),
                                      "-o", str(tmp_path / "m.parquet")])
    assert result.exit_code == 1 and "parts of different runs" in result.output
    assert not (tmp_path / "m.parquet").exists()


def test_a_missing_or_repeated_part_is_refused(whole, tmp_path):
    paths = whole / "paths.parquet"
    for i in range(3):
        run("coverage", paths, "-o", tmp_path / f"{i}.parquet", "--shard", f"{i}/3", "-q")
    result = CliRunner().invoke(cli, ["merge", "coverage", str(tmp_path / "0.parquet"), str(tmp_path / "2.parquet"),
                                      "-o", str(tmp_path / "m.parquet")])
    assert result.exit_code == 1 and "shard(s) [1] of 3 missing" in result.output
    result = CliRunner().invoke(cli, ["merge", "coverage", *(str(tmp_path / f"{i}.parquet") for i in (0, 1, 2, 2)),
                                      "-o", str(tmp_path / "m.parquet")])
    assert result.exit_code == 1 and "given twice" in result.output


def test_a_whole_output_is_not_a_part(whole, tmp_path):
    result = CliRunner().invoke(
        cli, ["merge", "match", str(whole / "matched.parquet"), "-o", str(tmp_path / "m.parquet")]
    )
    assert result.exit_code == 1 and "not a shard output" in result.output


@pytest.mark.parametrize("bad", ["3/3", "-1/2", "1", "a/b", "0/0"])
def test_a_shard_outside_its_range_is_a_usage_error(whole, bad, tmp_path):
    result = CliRunner().invoke(cli, ["coverage", str(whole / "paths.parquet"), "-o", str(tmp_path / "c.parquet"),
                                      "--shard", bad])
    assert result.exit_code == 2 and "--shard" in result.output


def test_the_hash_is_stable_and_spreads_trips():
    # CRC-32 values fixed for all time: a shard owns the same trips on every machine and run
    assert list(hash_shard(["a", "b", "a"], 7)) == [0xE8B7BE43 % 7, 0x71BEEFF9 % 7, 0xE8B7BE43 % 7]
    counts = pd.Series(hash_shard([f"trip-{i}" for i in range(7000)], 7)).value_counts()
    assert counts.min() > 850 and counts.max() < 1150


@pytest.mark.parametrize("ids", [["a", "b", None, "a"], ["c", None, "c"], [3, 17, 3, 40_000_000_000], [1.5, 2.0, 2.0]])
def test_a_parquet_batchs_ids_hash_as_the_same_ids_in_a_list(ids):
    """Batches of a file hash their Arrow column through its distinct values: the shards they
    give are those of the ids one by one (text, numbers, a missing id)."""
    import pyarrow as pa

    as_list = hash_shard(ids, 7)
    # (a missing id is the text "None" both ways; "c" and "None" fall in different shards of 7)
    assert list(as_list) == [zlib.crc32(str(v).encode()) % 7 for v in ids]
    assert list(hash_shard(pa.array(ids), 7)) == list(as_list)
    assert list(hash_shard(pa.chunked_array([pa.array(ids[:2]), pa.array(ids[2:])]), 7)) == list(as_list)


def test_spilled_batches_keep_rows_whose_read_batches_bring_their_own_dictionaries(tmp_path, monkeypatch):
    """A file whose row groups carry categorical columns with different categories (as a stage
    writing batch by batch leaves them) is read batch by batch and spilled: each batch's rows
    come back as they were, the file's order kept, a row going to two batches in both."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mapdiff.jobs import batches

    parts = [pd.DataFrame({"trip_id": pd.Categorical(["a", "b", "a"]),
                           "class": pd.Categorical(["stop", "yield", "stop"]), "n": [0, 1, 2]}),
             pd.DataFrame({"trip_id": pd.Categorical(["c", "a"]),
                           "class": pd.Categorical(["speed_limit", "stop"]), "n": [3, 4]})]
    path = tmp_path / "two_groups.parquet"
    tables = [pa.Table.from_pandas(p, preserve_index=False) for p in parts]
    with pq.ParquetWriter(path, tables[0].schema) as writer:
        for t in tables:
            writer.write_table(t)
    monkeypatch.setattr(batches, "READ_ROWS", 3)  # one row group a read batch

    def assign(table):  # trip "a" to batch 0, every row also to batch 1
        trips = table.column("trip_id").to_pylist()
        rows = [i for i, t in enumerate(trips) if t == "a"] + list(range(len(trips)))
        return np.array(rows, dtype=np.int64), np.array([0] * (len(rows) - len(trips)) + [1] * len(trips))

    read = batches.spill(path, assign, str(tmp_path / "s"))
    whole = pd.concat(parts, ignore_index=True).astype({"trip_id": str, "class": str})
    for b, want in ((0, whole[whole["trip_id"] == "a"]), (1, whole)):
        got = read(b).astype({"trip_id": str, "class": str})
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


def test_a_shard_that_owns_no_trip_writes_empty_outputs_that_merge(whole, sim_dir, tmp_path):
    sim = Path(sim_dir)
    trips = pd.read_parquet(sim / "traces.parquet", columns=["trip_id"])["trip_id"].unique()
    n = 200
    empty = next(i for i in range(n) if not (hash_shard(trips, n) == i).any())
    out = tmp_path / "o.parquet"
    run("observe", sim / "detections.parquet", "--matched", whole / "matched.parquet", "--camera", sim / "camera.json",
        "-o", out, "--shard", f"{empty}/{n}", "-q")
    assert len(pd.read_parquet(out)) == 0
    run("coverage", whole / "paths.parquet", "-o", out, "--shard", f"{empty}/{n}", "-q")
    assert len(pd.read_parquet(out)) == 0


def test_trip_batches_hold_whole_trips_in_order_and_bounded(tmp_path):
    from mapdiff.jobs.batches import trip_batches
    from mapdiff.jobs.shards import batch_owner

    rng = np.random.default_rng(4)
    sizes = {"a": 3, "b": 5, "c": 12, "d": 2, "e": 4, "f": 1}  # "c" alone is longer than a batch
    trips = np.concatenate([[k] * n for k, n in sizes.items()])
    frame = pd.DataFrame({"trip_id": trips, "t": np.arange(len(trips), dtype=float)}).iloc[rng.permutation(len(trips))]
    other = pd.DataFrame({"trip_id": ["f", "a", "zz"], "x": [1, 2, 3]})  # "zz": only in the second file
    frame.to_parquet(tmp_path / "first.parquet")
    other.to_parquet(tmp_path / "second.parquet")
    files = [tmp_path / "first.parquet", tmp_path / "second.parquet"]
    batches = list(trip_batches(files, max_rows=8))
    # a, b (8 rows) | c (12) | d, e, f (7); the second file's rows go with their trips, "zz" with the last
    assert [sorted(set(b[0]["trip_id"])) for b in batches] == [["a", "b"], ["c"], ["d", "e", "f"]]
    assert [sorted(b[1]["trip_id"]) for b in batches] == [["a"], [], ["f", "zz"]]
    whole = pd.concat([b[0] for b in batches]).sort_values("t").reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, frame.sort_values("t").reset_index(drop=True))
    assert len(list(trip_batches(files, max_rows=100))) == 1  # fits: one batch
    shard = Shard(0, 2)  # a shard's trips, batched
    owned = {k for k in sizes if hash_shard([k], 2)[0] == 0}
    got = [set(b[0]["trip_id"]) for b in trip_batches(files, max_rows=4, where=batch_owner(shard))]
    assert set().union(*got) == owned and all(len(g) for g in got)


def test_trip_batches_of_number_ids_put_a_missing_id_first_and_refuse_text_beside_numbers(tmp_path):
    """The batches go by the ids' distinct values (not a Python object per row): numbers sort
    as numbers (9 before 10), a missing id goes to the first batch (the stage names it), and a
    second file of text ids beside the first's numbers is one clear error."""
    from mapdiff.jobs.batches import trip_batches

    ids = pd.array([10, 9, None, 10, 100, 9, 100, 100, 2, None], dtype="Int64")
    frame = pd.DataFrame({"trip_id": ids, "n": np.arange(len(ids))})
    frame.to_parquet(tmp_path / "first.parquet")
    got = list(trip_batches([tmp_path / "first.parquet"], max_rows=4))
    # 2, 9 (3 rows) | 10 (2) | 100 (3); the two missing ids in the first
    assert [sorted(set(b[0]["trip_id"].dropna())) for b in got] == [[2, 9], [10], [100]]
    assert [int(b[0]["trip_id"].isna().sum()) for b in got] == [2, 0, 0]
    assert sorted(pd.concat([b[0] for b in got])["n"]) == list(range(len(ids)))
    pd.DataFrame({"trip_id": ["x"], "n": [0]}).to_parquet(tmp_path / "second.parquet")
    with pytest.raises(InputError, match="mixes kinds"):
        list(trip_batches([tmp_path / "first.parquet", tmp_path / "second.parquet"], max_rows=4))


def test_trip_batches_read_only_the_columns_asked_for(tmp_path):
    # diff reads a big file of fixes for a few of its columns: split into batches or read in
    # one, the other columns (a point geometry, its bounding box) are never read
    from mapdiff.io import write_table
    from mapdiff.jobs.batches import trip_batches

    frame = pd.DataFrame({"trip_id": np.repeat(["a", "b", "c"], 4), "t": np.arange(12.0),
                          "lon": 24.9 + np.arange(12.0) * 1e-4, "lat": 60.17, "d": np.arange(12.0)})
    write_table(frame, tmp_path / "f.parquet")  # GeoParquet: a geometry and its bounding box too
    for max_rows in (5, 100):
        batches = [b[0] for b in trip_batches([tmp_path / "f.parquet"], max_rows=max_rows, columns=["trip_id", "d"])]
        assert len(batches) == (3 if max_rows == 5 else 1)
        assert all(list(b.columns) == ["trip_id", "d"] for b in batches)
        pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), frame[["trip_id", "d"]])


def test_match_and_observe_in_small_batches_write_the_whole_run(sim_dir, whole, tmp_path, monkeypatch):
    """The law for batches: a run whose input is cut into many batches of whole trips (and a
    shard of one, batched too) writes the rows of one run over the whole input."""
    import pyarrow.parquet as pq

    sim = Path(sim_dir)
    n_fixes = len(pd.read_parquet(sim / "traces.parquet", columns=["trip_id"]))
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(n_fixes // 5))
    run("match", sim / "traces.parquet", "--map", sim / "map.gpkg", "-o", tmp_path / "m.parquet",
        "--paths", tmp_path / "p.parquet", "-q")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "m.parquet"), pd.read_parquet(whole / "matched.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p.parquet"), pd.read_parquet(whole / "paths.parquet"))
    assert pq.ParquetFile(tmp_path / "m.parquet").num_row_groups >= 5  # written batch by batch
    n_det = len(pd.read_parquet(sim / "detections.parquet", columns=["trip_id"]))
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(n_det // 6))
    observe = ["observe", sim / "detections.parquet", "--matched", whole / "matched.parquet", "--camera",
               sim / "camera.json", "--map", sim / "map.gpkg"]
    run(*observe, "-o", tmp_path / "o.parquet", "-q")
    assert pq.ParquetFile(tmp_path / "o.parquet").num_row_groups >= 6
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "o.parquet"),
                                  pd.read_parquet(whole / "observations.parquet"))
    _sharded([*observe, "-o", lambda s: tmp_path / "parts" / f"{s.name}.parquet"], 2, tmp_path)
    pd.testing.assert_frame_equal(_merged("observe", tmp_path / "parts", tmp_path),
                                  pd.read_parquet(whole / "observations.parquet"))


def test_the_evidence_of_the_fixes_is_the_same_in_batches_of_whole_trips(sim_dir, whole):
    """What diff takes from the matched fixes (GPS sigma, confirmed trips, off-map runs, trip
    ids), gathered from three batches of whole trips, is what one frame of them all gives."""
    import geopandas as gpd

    from mapdiff.diff import fix_evidence
    from mapdiff.network import Network

    net = Network.from_edges(gpd.read_file(Path(sim_dir) / "map.gpkg", layer="edges"))
    matched = pd.read_parquet(whole / "matched.parquet")
    one = fix_evidence(matched, net)
    trips = np.array(sorted(matched["trip_id"].astype(str).unique()))

    class Batches:
        def distances(self):
            return matched[["state", "distance_m"]]

        def batches(self):
            for part in np.array_split(trips, 3):
                yield matched[matched["trip_id"].astype(str).isin(part)]

    three = fix_evidence(Batches(), net)
    assert len(one.runs) > 0 and len(one.confirmed) > 0
    assert three.sigma_m == one.sigma_m
    pd.testing.assert_series_equal(three.confirmed, one.confirmed)
    assert (three.trip_ids == one.trip_ids).all()
    cols = ["trip", "x", "y", "t"]
    pd.testing.assert_frame_equal(three.runs[cols].reset_index(drop=True), one.runs[cols].reset_index(drop=True))
    # a run's fixes share its number, and no two runs share one
    for ev in (one, three):
        assert (ev.runs.groupby("run")["trip"].nunique() == 1).all()
    assert three.runs["run"].nunique() == one.runs["run"].nunique()


def test_diff_reads_the_fixes_in_batches_and_writes_the_whole_run(diff_args, whole, tmp_path, monkeypatch):
    import geopandas as gpd

    import mapdiff.jobs.stages as stages

    run(*diff_args, "-o", tmp_path / "whole.gpkg", "-q")
    n_fixes = len(pd.read_parquet(whole / "matched.parquet", columns=["trip_id"]))
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(n_fixes // 4))
    seen = []
    batches = stages.owned_batches

    def counted(*args, **kwargs):
        for frames in batches(*args, **kwargs):
            seen.append(len(frames[0]))
            yield frames

    monkeypatch.setattr(stages, "owned_batches", counted)
    run(*diff_args, "-o", tmp_path / "batched.gpkg", "-q")
    assert len(seen) >= 4 and max(seen) < n_fixes
    for layer in ("diffs", "unverified"):
        pd.testing.assert_frame_equal(gpd.read_file(tmp_path / "batched.gpkg", layer=layer),
                                      gpd.read_file(tmp_path / "whole.gpkg", layer=layer))


def test_a_bad_batch_size_is_one_clear_error(sim_dir, tmp_path, monkeypatch):
    sim = Path(sim_dir)
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", "lots")
    result = CliRunner().invoke(cli, ["match", str(sim / "traces.parquet"), "--map", str(sim / "map.gpkg"),
                                      "-o", str(tmp_path / "m.parquet")])
    assert result.exit_code == 1 and "MAPDIFF_BATCH_ROWS" in result.output and "'lots'" in result.output
    assert not (tmp_path / "m.parquet").exists()


def test_locate_in_small_batches_of_tiles_writes_the_whole_run(whole, whole_objects, tmp_path, monkeypatch):
    """Tiles in batches (each batch its tiles' observations, halos included): the objects and the
    labels of one run over the whole file; a shard's tiles in batches merge into it too."""
    import pyarrow.parquet as pq

    obs = whole / "observations.parquet"
    run("locate", obs, *TILES, "-o", tmp_path / "one.parquet", "--labels", tmp_path / "one-labels.parquet", "-q")
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(len(pd.read_parquet(obs, columns=["trip_id"])) // 8))
    run("locate", obs, *TILES, "-o", tmp_path / "b.parquet", "--labels", tmp_path / "b-labels.parquet", "-q")
    assert pq.ParquetFile(tmp_path / "b.parquet").num_row_groups >= 5  # written batch by batch
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b.parquet"), whole_objects)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b-labels.parquet"),
                                  pd.read_parquet(tmp_path / "one-labels.parquet"))
    _sharded(["locate", obs, *TILES, "-o", lambda s: tmp_path / "l" / f"{s.name}.parquet"], 2, tmp_path)
    pd.testing.assert_frame_equal(_merged("locate", tmp_path / "l", tmp_path), whole_objects)


def test_an_unsharded_locate_bigger_than_a_batch_is_one_piece_read_in_parts(whole, tmp_path, monkeypatch):
    """Without tiles an input bigger than a batch is still one piece, read in parts of whole
    trips: the objects and labels of the run that holds it all (the metres centred elsewhere:
    equal to float precision), numbered 0, 1, ... as one piece's, not by tile. Its tracks held,
    it measures the errors over them all, not over the tiles' sample of the file."""
    import mapdiff.jobs.stages as stages

    obs = whole / "observations.parquet"
    run("locate", obs, "-o", tmp_path / "held.parquet", "--labels", tmp_path / "held_labels.parquet", "-q")
    n_rows = len(pd.read_parquet(obs, columns=["trip_id"]))
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(n_rows // 3))
    monkeypatch.setattr(stages, "MEASURE_ROWS", n_rows // 4)
    run("locate", obs, "-o", tmp_path / "big.parquet", "--labels", tmp_path / "big_labels.parquet", "-q")
    big, held = pd.read_parquet(tmp_path / "big.parquet"), pd.read_parquet(tmp_path / "held.parquet")
    # (the geometry's bytes hold lon and lat, compared here to the last bits' rounding)
    pd.testing.assert_frame_equal(big.drop(columns="geometry"), held.drop(columns="geometry"), rtol=1e-9)
    pd.testing.assert_series_equal(pd.read_parquet(tmp_path / "big_labels.parquet")["object_id"],
                                   pd.read_parquet(tmp_path / "held_labels.parquet")["object_id"])
    assert big["object_id"].tolist() == list(range(len(big)))  # (a tile's would begin with its key)


def test_one_piece_whose_tracks_go_to_disk_takes_the_files_measures(whole, sim_dir, tmp_path, monkeypatch):
    """An unsharded input whose tracks are more than a batch runs region by region; the regions
    take the errors measured once over the file's sample (regions measuring their own lost some
    0.02: see test_locate_region_by_region_does_not_depend_on_the_batches)."""
    import mapdiff.locate
    from mapdiff.evaluate import Truth, score_locate

    obs = whole / "observations.parquet"
    run("locate", obs, "-o", tmp_path / "held.parquet", "-q")
    measure, calls = mapdiff.locate.measure, []
    monkeypatch.setattr(mapdiff.locate, "measure", lambda *a, **k: calls.append(1) or measure(*a, **k))
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(len(pd.read_parquet(obs, columns=["trip_id"])) // 40))
    run("locate", obs, "-o", tmp_path / "regions.parquet", "-q")
    assert calls == [1]
    truth = Truth(sim_dir)
    held, regions = (pd.read_parquet(tmp_path / f"{n}.parquet") for n in ("held", "regions"))
    ours, theirs = score_locate(truth, regions), score_locate(truth, held)
    assert abs(len(regions) - len(held)) <= 0.01 * len(held)
    assert ours["recall"] >= theirs["recall"] - 0.005 and ours["precision_all"] >= theirs["precision_all"] - 0.005


def test_trips_lying_together_are_read_in_runs_of_rows_and_interleaved_ones_spilled(whole, tmp_path, monkeypatch):
    """An unsharded input bigger than a batch whose trips' rows lie together (observe writes
    them so) is read in runs of whole trips straight from the file, nothing written out again;
    one whose trips interleave is spilled into parts by trip. Both give the held run's objects
    and each row's label."""
    import mapdiff.jobs.batches as batches
    from mapdiff.io import write_table

    obs = whole / "observations.parquet"
    frame = pd.read_parquet(obs)
    run("locate", obs, "-o", tmp_path / "held.parquet", "--labels", tmp_path / "held_labels.parquet", "-q")
    held = pd.read_parquet(tmp_path / "held.parquet").drop(columns="geometry")
    held_labels = pd.read_parquet(tmp_path / "held_labels.parquet")[["detection_id", "object_id"]]
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(len(frame) // 3))
    spill = batches.spill

    def no_spill(*args, **kwargs):
        raise AssertionError("the rows were written out again")

    monkeypatch.setattr(batches, "spill", no_spill)
    run("locate", obs, "-o", tmp_path / "runs.parquet", "--labels", tmp_path / "runs_labels.parquet", "-q")
    interleaved = tmp_path / "interleaved.parquet"
    write_table(frame.sort_values("t", kind="stable").drop(columns="geometry"), interleaved)
    with pytest.raises(AssertionError, match="written out again"):
        run("locate", interleaved, "-o", tmp_path / "x.parquet", "-q")
    monkeypatch.setattr(batches, "spill", spill)
    run("locate", interleaved, "-o", tmp_path / "spilled.parquet", "--labels", tmp_path / "spilled_labels.parquet",
        "-q")
    for name in ("runs", "spilled"):
        got = pd.read_parquet(tmp_path / f"{name}.parquet").drop(columns="geometry")
        pd.testing.assert_frame_equal(got, held, rtol=1e-9)
        labels = pd.read_parquet(tmp_path / f"{name}_labels.parquet")[["detection_id", "object_id"]]
        pd.testing.assert_frame_equal(labels.sort_values("detection_id").reset_index(drop=True),
                                      held_labels.sort_values("detection_id").reset_index(drop=True))


def test_a_tile_with_more_tracks_than_a_batch_is_located_region_by_region(whole, tmp_path, monkeypatch):
    """A tile whose tracks are more than a batch's rows runs region by region (its tracks and
    rows on disk): its shards still merge into the unsharded run, every object has its rows in
    ``--labels`` and every label is an object's."""
    obs = whole / "observations.parquet"
    n_rows = len(pd.read_parquet(obs, columns=["trip_id"]))
    run("locate", obs, "-o", tmp_path / "held.parquet", "-q")
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(n_rows // 40))  # (some ten rows a track: 4 batches' worth)
    run("locate", obs, "--tile-m", 5000, "-o", tmp_path / "regions.parquet", "--labels", tmp_path / "labels.parquet",
        "-q")
    objects = pd.read_parquet(tmp_path / "regions.parquet")
    _sharded(["locate", obs, "--tile-m", 5000, "-o", lambda s: tmp_path / "l" / f"{s.name}.parquet"], 2, tmp_path)
    pd.testing.assert_frame_equal(_merged("locate", tmp_path / "l", tmp_path), objects)
    labels = pd.read_parquet(tmp_path / "labels.parquet", columns=["object_id"])["object_id"]
    assert len(labels) == n_rows
    # (an object on a tile border, which each tile fits a little apart, is one tile's: see
    # test_an_object_on_a_tile_border_is_one_tiles)
    assert set(labels[labels >= 0]) == set(objects["object_id"])
    assert abs(len(objects) - len(pd.read_parquet(tmp_path / "held.parquet"))) <= 0.03 * len(objects)


def test_tiles_take_the_runs_measures_and_give_one_pieces_objects(whole, whole_objects, tmp_path):
    """Every tile takes the fleet's errors measured once over the run's data, so the fixture's
    400 m tiles give one piece's objects, where they are (to float precision). Each tile
    measuring its own made 1,854 objects against 1,827, the 95 % circles holding the truth of
    0.85 against 0.89."""
    from scipy.spatial import cKDTree

    from mapdiff.projection import LocalProjection

    run("locate", whole / "observations.parquet", "-o", tmp_path / "one.parquet", "-q")
    one = pd.read_parquet(tmp_path / "one.parquet")
    assert len(whole_objects) == len(one)
    proj = LocalProjection.around(float(one["lon"].median()), float(one["lat"].median()))
    a = np.c_[proj.to_metres(one["lon"].to_numpy(), one["lat"].to_numpy())]
    b = np.c_[proj.to_metres(whole_objects["lon"].to_numpy(), whole_objects["lat"].to_numpy())]
    dist, nearest = cKDTree(b).query(a)
    same = (dist < 1e-3) & (whole_objects["n_trips"].to_numpy()[nearest] == one["n_trips"].to_numpy())
    assert same.mean() >= 0.99


def test_a_tiled_runs_measures_come_from_runs_of_rows_spread_over_the_file(whole, tmp_path, monkeypatch):
    """A file bigger than ``MEASURE_ROWS`` is measured over that many rows in ``MEASURE_RUNS``
    runs from its start to its end; every shard and every cut into batches takes the same
    measures, so the law holds with a sample as with the whole file."""
    import mapdiff.jobs.stages as stages
    import mapdiff.locate

    obs = whole / "observations.parquet"
    n_rows = len(pd.read_parquet(obs, columns=["trip_id"]))
    monkeypatch.setattr(stages, "MEASURE_ROWS", n_rows // 4)
    measure, samples = mapdiff.locate.measure, []

    def spied(sample, *args, **kwargs):
        samples.append(sample["detection_id"].to_numpy())
        return measure(sample, *args, **kwargs)

    monkeypatch.setattr(mapdiff.locate, "measure", spied)
    run("locate", obs, *TILES, "-o", tmp_path / "one.parquet", "-q")
    rows = pd.read_parquet(obs, columns=["detection_id"])["detection_id"]
    at = np.flatnonzero(rows.isin(samples[0]).to_numpy())
    assert len(at) == len(samples[0]) <= n_rows // 4
    assert at[0] == 0 and at[-1] >= n_rows * (stages.MEASURE_RUNS - 1) // stages.MEASURE_RUNS
    assert (np.diff(at) > 1).sum() == stages.MEASURE_RUNS - 1  # (runs of consecutive rows)
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(n_rows // 8))
    run("locate", obs, *TILES, "-o", tmp_path / "b.parquet", "-q")
    _sharded(["locate", obs, *TILES, "-o", lambda s: tmp_path / "l" / f"{s.name}.parquet"], 3, tmp_path)
    one = pd.read_parquet(tmp_path / "one.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b.parquet"), one)
    pd.testing.assert_frame_equal(_merged("locate", tmp_path / "l", tmp_path), one)
    assert all(np.array_equal(s, samples[0]) for s in samples)


@pytest.mark.parametrize("spilled", ["tracks", "rows"])
def test_a_full_disk_while_locate_spills_names_the_spill_not_the_output(whole, tmp_path, monkeypatch, spilled):
    """What locate spills (its tracks and a tile's row numbers as arrays, a tile's rows as
    Arrow streams) goes to the temporary folder, often another disk than the output's: a full
    one there is named, transient (exit 75), and nothing is written."""
    import errno

    import pyarrow.ipc

    spilled = np if spilled == "tracks" else pyarrow.ipc

    obs = whole / "observations.parquet"
    n_rows = len(pd.read_parquet(obs, columns=["trip_id"]))
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(n_rows // 40))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "spill"))
    (tmp_path / "spill").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # (tempfile reads TMPDIR once, then caches)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spilled, "save" if spilled is np else "new_stream", full)
    result = CliRunner().invoke(cli, ["locate", str(obs), "--tile-m", "5000", "-o", str(tmp_path / "o.parquet"), "-q"])
    assert result.exit_code == 75, result.output
    assert result.output.strip() == (f"mapdiff: error: {tmp_path / 'spill'}: cannot spill there "
                                     "(TMPDIR chooses the disk) (No space left on device)")
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("n_batches", [2, 5])
def test_locate_in_batches_of_whole_trips_gives_one_batchs_objects(whole, n_batches):
    """However the trips are cut into batches (a tile bigger than a batch is read in parts),
    the objects and each row's object are those of one batch of them all."""
    from mapdiff.io import read_table
    from mapdiff.locate import locate_batches

    obs = read_table(whole / "observations.parquet")
    origin = (float(obs["lon"].median()), float(obs["lat"].median()))
    one, (one_labels,) = locate_batches(lambda columns=None: [obs], origin=origin)
    assert len(one) > 50 and (one_labels >= 0).mean() > 0.5
    trips = obs["trip_id"].astype(str).unique()
    part = dict(zip(trips, np.random.default_rng(n_batches).integers(0, n_batches, len(trips))))
    of_row = obs["trip_id"].astype(str).map(part).to_numpy()
    rows = [np.flatnonzero(of_row == k) for k in range(n_batches)]
    objects, labels = locate_batches(lambda columns=None: [obs.iloc[r] for r in rows], origin=origin)
    pd.testing.assert_frame_equal(objects, one)
    joined = np.full(len(obs), -2)
    for r, lab in zip(rows, labels):
        joined[r] = lab
    np.testing.assert_array_equal(joined, one_labels)


def test_an_object_on_a_tile_border_is_one_tiles(whole):
    """A tile fits the objects near its border from a window that its halo cuts: a pass's pose
    offset comes from its other tracks, so the fit moves with the window, and two tiles' fits of
    one object could fall on either side of their border (each kept its own: the object came out
    twice). The anchor a tile owns an object by does not move with the window."""
    from mapdiff.io import read_table
    from mapdiff.locate import ANCHOR_COLUMNS, locate_batches
    from mapdiff.projection import LocalProjection

    obs = read_table(whole / "observations.parquet")
    origin = (float(obs["lon"].median()), float(obs["lat"].median()))
    proj = LocalProjection.around(*origin)
    x, _ = proj.to_metres(obs["lon"].to_numpy(), obs["lat"].to_numpy())
    cut = float(np.median(x)) - 100.0
    wide, _ = locate_batches(lambda columns=None: [obs], origin=origin)
    part = obs[x < cut + 60.0]  # a window whose edge is 60 m past the objects compared
    cut_off, _ = locate_batches(lambda columns=None: [part], origin=origin)

    def metres(frame, cols):
        return np.c_[proj.to_metres(frame[cols[0]].to_numpy(float), frame[cols[1]].to_numpy(float))]

    a, b = metres(wide, ["lon", "lat"]), metres(cut_off, ["lon", "lat"])
    a_anchor, b_anchor = metres(wide, ANCHOR_COLUMNS), metres(cut_off, ANCHOR_COLUMNS)
    moved, anchor_moved = [], []
    for k in np.flatnonzero((a[:, 0] < cut) & (a[:, 0] > cut - 60.0) & (wide["n_trips"].to_numpy() >= 2)):
        d = np.hypot(*(b - a[k]).T)
        j = int(np.argmin(d))
        # the same object: its class, its observations, nearby
        if d[j] < 3.0 and cut_off["class"][j] == wide["class"][k] and \
                cut_off["n_observations"][j] == wide["n_observations"][k]:
            moved.append(d[j])
            anchor_moved.append(np.hypot(*(b_anchor[j] - a_anchor[k])))
    moved, anchor_moved = np.array(moved), np.array(anchor_moved)
    assert len(moved) >= 50 and (moved > 1e-3).mean() > 0.5 and moved.max() > 0.1
    assert (anchor_moved < 1e-6).mean() >= 0.97


def test_sigmas_are_honest_on_a_small_fleet(whole, sim_dir):
    """Six cars for a day: the 95 % circles of ``sigma_m`` hold the true position of most objects
    seen in >= 5 trips. What the passes of one direction share is measured each round, after
    that round's pass offsets, which pull an object's directions together; the last round's
    measure alone (0.06 m^2 here against 0.60 in the first) made the circles hold 67 %."""
    from mapdiff.evaluate import Truth, score_locate
    from mapdiff.io import read_table
    from mapdiff.locate import locate

    objects, _ = locate(read_table(whole / "observations.parquet"))
    scores = score_locate(Truth(sim_dir), objects)
    assert scores["recall"] > 0.8
    assert 0.85 <= scores["sigma_coverage_95"] <= 0.98


def test_locate_region_by_region_does_not_depend_on_the_batches(whole, sim_dir, monkeypatch):
    """Past ``max_tracks`` the tracks go to disk and the association runs region by region: the
    objects and each row's object are the same however the trips are cut into batches, and,
    with the fleet's errors measured once over the whole (as a CLI run takes them), they are
    one piece's against the truth (no object twice at a border: without the halo 4 % more
    objects). Each region measuring the errors from its own few objects lost some 0.02: regions
    of 1/80 to 1/260 of the rows gave recall 0.828-0.835 against 0.852 and precision over all
    0.738-0.741 against 0.763; with the whole's measures 0.853 and 0.763."""
    from mapdiff.evaluate import Truth, score_locate
    from mapdiff.io import read_table
    from mapdiff.locate import locate_batches, measure
    from mapdiff.locate_regions import TrackSpill

    obs = read_table(whole / "observations.parquet")
    origin = (float(obs["lon"].median()), float(obs["lat"].median()))
    one, _ = locate_batches(lambda columns=None: [obs], origin=origin)
    measures = measure(obs, origin=origin)
    trips = obs["trip_id"].astype(str).unique()

    def batches(n):
        of_row = obs["trip_id"].astype(str).map(dict(zip(trips, np.arange(len(trips)) % n))).to_numpy()
        return [np.flatnonzero(of_row == k) for k in range(n)]

    runs = []
    write, per_folder = TrackSpill._write, []

    def counted(self, piece, row_tracks):
        per_folder.append(len(row_tracks))
        return write(self, piece, row_tracks)

    monkeypatch.setattr(TrackSpill, "_write", counted)
    # (in batches of two trips, several go to disk together: a folder holds a few batches)
    for cut in ([np.arange(len(obs))], batches(3), batches(len(trips) // 2)):
        # (some ten observations a track: regions of a few hundred tracks, dozens of borders)
        objects, labels = locate_batches(lambda columns=None, cut=cut: [obs.iloc[r] for r in cut], origin=origin,
                                         max_tracks=len(obs) // 160, measures=measures)
        joined = np.full(len(obs), -2)
        for r, lab in zip(cut, labels):
            joined[r] = lab
        runs.append((objects, joined))
    assert max(per_folder) > 1
    (objects, labels), *others = runs
    for objects_n, labels_n in others:
        pd.testing.assert_frame_equal(objects_n, objects)
        np.testing.assert_array_equal(labels_n, labels)
    assert labels.min() == -1 and labels.max() == len(objects) - 1
    assert np.isin(np.arange(len(objects)), labels).all()
    assert len(objects) <= 1.01 * len(one)
    truth = Truth(sim_dir)
    ours, theirs = score_locate(truth, objects), score_locate(truth, one)
    assert ours["recall"] >= theirs["recall"] - 0.005
    assert ours["precision_all"] >= theirs["precision_all"] - 0.005


def test_regions_cover_every_cell_once_and_hold_at_most_max_tracks():
    """The regions partition the cells (an object anywhere lies in exactly one); each with its
    ring of cells holds at most ``max_tracks`` tracks unless it is a single cell."""
    from mapdiff.locate_regions import TrackSpill, _key

    rng = np.random.default_rng(5)
    for max_tracks in (1, 50, 400, 10_000):
        spill = TrackSpill(max_tracks, reach_m=15.0)
        row = np.round(rng.normal(0, 6, 3000)).astype(np.int64)  # dense in the middle, as a city
        col = np.round(rng.normal(0, 9, 3000)).astype(np.int64)
        spill.cells = pd.Series(np.ones(3000, dtype=np.int64)).groupby(_key(row, col)).sum()
        regions = spill.regions()
        x, y = rng.uniform(-4000, 4000, 5000), rng.uniform(-4000, 4000, 5000)
        owners = sum(spill.owns(r, x, y).astype(int) for r in regions)
        assert (owners == 1).all()
        for r0, r1, c0, c1 in regions:
            ring = (row >= r0 - 1) & (row < r1 + 1) & (col >= c0 - 1) & (col < c1 + 1)
            inside = (row >= r0) & (row < r1) & (col >= c0) & (col < c1)
            single = len(np.unique(_key(row[inside], col[inside]))) == 1
            assert ring.sum() <= max_tracks or single
        if max_tracks == 10_000:
            assert len(regions) == 1


def test_the_median_of_batches_is_the_median_of_their_values():
    from mapdiff.locate import _median_of_batches

    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 1000, 1001):
        v = np.round(rng.lognormal(0, 1, n), 2)  # ties, as detectors' stated sigmas have them
        frames = [pd.DataFrame({"s": part}) for part in np.array_split(v, 3)]
        assert _median_of_batches(lambda frames=frames: frames, "s", "obs") == np.median(v)
    assert np.isnan(_median_of_batches(lambda: [pd.DataFrame({"s": [np.nan, 0.0]})], "s", "obs"))


def test_tracks_of_batches_join_into_one_batchs_tracks(whole):
    """The tracks of batches (trips taken alternately by name) join into the tracks one batch
    of them all gives, in its order (ties in the association go by that order)."""
    from mapdiff.io import read_table
    from mapdiff.locate import LocateConfig, _TrackSet, _video_tracks, validate_observations
    from mapdiff.projection import LocalProjection

    obs = read_table(whole / "observations.parquet")
    frame = (LocalProjection.around(float(obs["lon"].median()), float(obs["lat"].median())), 0.0, 0.0)

    def tracks(o):
        return _video_tracks(o, validate_observations(o), frame, LocateConfig(), vague_deg=3.0)

    names = np.sort(obs["trip_id"].astype(str).unique())
    odd = obs["trip_id"].astype(str).isin(names[1::2]).to_numpy()
    one = tracks(obs)
    joined = _TrackSet.join([tracks(obs[~odd]), tracks(obs[odd])])
    pd.testing.assert_frame_equal(joined.table, one.table)
    np.testing.assert_array_equal(joined.frame_ptr, one.frame_ptr)
    np.testing.assert_array_equal(joined.frame_t, one.frame_t)
    np.testing.assert_array_equal(joined.row_track, np.r_[one.row_track[~odd], one.row_track[odd]])
    assert joined.n_sums == one.n_sums


@pytest.mark.parametrize("bad", ["drop", "text", "zero"])
def test_bad_bearing_sigmas_in_a_tile_read_in_parts_are_named(whole, tmp_path, monkeypatch, bad):
    """A tile bigger than a batch is read column by column for the median bearing sigma first:
    a missing or non-numeric column, or a sigma of 0, is still one line and exit 1."""
    obs = pd.read_parquet(whole / "observations.parquet").drop(columns=["geometry", "bbox"], errors="ignore")
    if bad == "drop":
        obs = obs.drop(columns=["bearing_sigma_deg"])
    elif bad == "text":
        obs["bearing_sigma_deg"] = "wide"
    else:
        obs.loc[obs.index[len(obs) // 2], "bearing_sigma_deg"] = 0.0
    obs.to_parquet(tmp_path / "obs.parquet")
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(len(obs) // 3))
    result = CliRunner().invoke(cli, ["locate", str(tmp_path / "obs.parquet"), "-o", str(tmp_path / "o.parquet"),
                                      "-q"])
    assert result.exit_code == 1, result.output
    assert "bearing_sigma_deg" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.parquet").exists()


def test_a_batch_whose_every_bearing_is_vague_makes_no_track_and_no_crash(whole):
    from mapdiff.io import read_table
    from mapdiff.locate import locate_batches

    obs = read_table(whole / "observations.parquet")
    origin = (float(obs["lon"].median()), float(obs["lat"].median()))
    trips = obs["trip_id"].astype(str)
    mine = trips.isin(trips.unique()[::2]).to_numpy()
    vague = obs[~mine].assign(bearing_sigma_deg=1000.0)
    objects, (kept, dropped) = locate_batches(lambda columns=None: [obs[mine], vague], origin=origin)
    assert len(objects) > 10 and (kept >= 0).any()
    assert len(dropped) == len(vague) and (dropped == -1).all()
    nothing, labels = locate_batches(lambda columns=None: [], origin=origin)
    assert len(nothing) == 0 and list(labels) == []
    # one bearing without a range fixes no point: no track is held at all
    ray = vague.iloc[:1].assign(bearing_sigma_deg=1.0, range_m=np.nan)
    none, (labels,) = locate_batches(lambda columns=None: [ray], origin=origin)
    assert len(none) == 0 and labels.tolist() == [-1]


@pytest.mark.parametrize("batch", [37, 10_000])
def test_parts_merge_a_batch_at_a_time_into_the_whole_run(sim_dir, whole, batch, tmp_path, monkeypatch):
    """The merge holds a few rows of each part at a time (``batch`` rows in all: so few
    that a trip's rows span many reads and a part runs dry while others read on) and still
    writes the unsharded run's rows, in its order, as row groups of the stream."""
    import pyarrow.parquet as pq

    sim = Path(sim_dir)
    _sharded(["observe", sim / "detections.parquet", "--matched", whole / "matched.parquet", "--camera",
              sim / "camera.json", "--map", sim / "map.gpkg", "-o", lambda s: tmp_path / "o" / f"{s.name}.parquet"],
             3, tmp_path)
    monkeypatch.setenv("MAPDIFF_BATCH_ROWS", str(batch))
    out = tmp_path / "merged.parquet"
    run("merge", "observe", tmp_path / "o", "-o", out, "-q")
    whole_rows = pd.read_parquet(whole / "observations.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out), whole_rows)
    if batch < 100:  # written as it went
        assert pq.ParquetFile(out).num_row_groups > 10


def _part(path, frame, shard, n):
    from mapdiff.io import write_table
    from mapdiff.jobs.parts import label
    from mapdiff.jobs.shards import Shard

    path.parent.mkdir(exist_ok=True)
    write_table(frame, path, metadata=label("locate", "r1", Shard(shard, n)))


@pytest.mark.parametrize("case", ["unsorted", "shared"])
def test_parts_not_as_shards_write_them_are_refused(case, tmp_path):
    """A part whose keys are out of order, or a key in two parts: one line, nothing written."""
    rows = pd.DataFrame({"object_id": [3.0, 1.0, 2.0], "lon": 24.9, "lat": 60.2})
    if case == "unsorted":
        _part(tmp_path / "p" / "part-0.parquet", rows, 0, 1)
    else:
        _part(tmp_path / "p" / "part-0.parquet", rows.iloc[[1, 2]], 0, 2)
        _part(tmp_path / "p" / "part-1.parquet", rows.iloc[[2, 0]], 1, 2)
    result = CliRunner().invoke(cli, ["merge", "locate", str(tmp_path / "p"), "-o", str(tmp_path / "m.parquet")])
    assert result.exit_code == 1
    assert ("not sorted by 'object_id'" if case == "unsorted" else "object_id 2.0 is in two parts") in result.output
    assert not (tmp_path / "m.parquet").exists()
