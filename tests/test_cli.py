"""The ``mapdiff`` command line, driven through click's CliRunner: results, exit codes, messages."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from fixtures.grid import drive
from mapdiff_cli.main import cli


@pytest.fixture()
def traces_file(tmp_path):
    path = tmp_path / "traces.parquet"
    drive([0, 10, 20, 21], noise_m=2, seed=1).to_parquet(path)
    return path


def run(runner, *args):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_the_stages(runner):
    result = run(runner, "--help")
    assert result.exit_code == 0
    assert "match" in result.output and "network" in result.output


@pytest.mark.parametrize("given, want", [(None, "1"), ("2", "2")])
def test_the_command_runs_numpy_on_one_blas_thread_unless_told(given, want):
    """The ``mapdiff`` process sets OpenBLAS to one thread before numpy loads (its spinning
    threads cost CPU and a neighbouring worker's core); a user's own setting is kept."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    code = ("import os, sys; sys.argv = ['mapdiff', '--version']; from mapdiff_cli.main import run\n"
            "try:\n    run()\nexcept SystemExit:\n    print(os.environ.get('OPENBLAS_NUM_THREADS'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split()[-1] == want


def test_match_writes_points_and_paths(runner, grid_gpkg, traces_file, tmp_path):
    out, paths = tmp_path / "matched.parquet", tmp_path / "paths.parquet"
    result = run(runner, "match", traces_file, "--map", grid_gpkg, "-o", out, "--paths", paths)
    assert result.exit_code == 0, result.output
    matched = pd.read_parquet(out)
    assert list(matched.columns[:11]) == [
        "trip_id", "t", "lon", "lat", "edge_id", "offset_m", "matched_lon", "matched_lat",
        "distance_m", "state", "confidence",
    ]
    assert len(matched) == len(pd.read_parquet(traces_file))
    p = pd.read_parquet(paths)
    assert {"trip_id", "seq", "edge_id", "u", "v", "key", "t_enter", "t_exit"} <= set(p.columns)
    assert "matched" in result.stderr


def test_match_quiet_prints_nothing(runner, grid_gpkg, traces_file, tmp_path):
    result = run(runner, "match", traces_file, "--map", grid_gpkg, "-o", tmp_path / "m.parquet", "-q")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_match_is_reproducible(runner, grid_gpkg, traces_file, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    run(runner, "match", traces_file, "--map", grid_gpkg, "-o", a, "-q")
    run(runner, "match", traces_file, "--map", grid_gpkg, "-o", b, "-q")
    assert a.read_bytes() == b.read_bytes()


def test_network_builds_the_map_layers(runner, tmp_path):
    from tests.conftest import FIXTURES

    out = tmp_path / "oak.gpkg"
    result = run(runner, "network", FIXTURES / "West-Oakland.osm.bz2", "-o", out)
    assert result.exit_code == 0, result.output
    import pyogrio

    assert {name for name, _ in pyogrio.list_layers(out)} == {"nodes", "edges", "features"}
    edges = gpd.read_file(out, layer="edges")
    for col in ("edge_id", "u", "v", "key", "osmid", "highway", "oneway", "maxspeed", "length"):
        assert col in edges.columns
    assert edges["edge_id"].is_unique


# --- bad input: one line naming the file and the column or option, exit 1, no output -------------


def _bad(runner, tmp_path, grid_gpkg, frame_or_bytes, expected, *, map_path=None):
    src = tmp_path / "bad.parquet"
    if isinstance(frame_or_bytes, bytes):
        src.write_bytes(frame_or_bytes)
    else:
        frame_or_bytes.to_parquet(src)
    out = tmp_path / "out.parquet"
    result = runner.invoke(cli, ["match", str(src), "--map", str(map_path or grid_gpkg), "-o", str(out)])
    assert result.exit_code == 1, result.output
    msg = result.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert expected in msg, msg
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out.parquet*"))
    return msg


def good():
    return drive([0, 10, 20], noise_m=1, seed=2)


def test_missing_column(runner, tmp_path, grid_gpkg):
    msg = _bad(runner, tmp_path, grid_gpkg, good().rename(columns={"lat": "latitude"}), "'lat'")
    assert "bad.parquet" in msg


def test_misspelt_column_gets_a_hint(runner, tmp_path, grid_gpkg):
    msg = _bad(runner, tmp_path, grid_gpkg, good().rename(columns={"trip_id": "tripid"}), "'trip_id'")
    assert "did you mean 'tripid'" in msg


def test_wrong_type(runner, tmp_path, grid_gpkg):
    df = good()
    df["lon"] = df["lon"].astype(str)
    _bad(runner, tmp_path, grid_gpkg, df, "'lon' must be float degrees")


def test_bad_time_type(runner, tmp_path, grid_gpkg):
    df = good()
    df["t"] = "yesterday"
    _bad(runner, tmp_path, grid_gpkg, df, "'t' must be UTC timestamps or float seconds")


def test_nan_coordinates(runner, tmp_path, grid_gpkg):
    df = good()
    df.loc[3, "lat"] = np.nan
    _bad(runner, tmp_path, grid_gpkg, df, "'lat' has 1 NaN")


def test_out_of_range_latitude(runner, tmp_path, grid_gpkg):
    df = good()
    df.loc[0, "lat"] = 123.0
    _bad(runner, tmp_path, grid_gpkg, df, "'lat' must be in [-90, 90]")


def test_swapped_lon_lat(runner, tmp_path, grid_gpkg):
    df = good()
    df["lon"], df["lat"] = df["lat"].to_numpy(), df["lon"].to_numpy()
    _bad(runner, tmp_path, grid_gpkg, df, "look swapped")


def test_empty_file(runner, tmp_path, grid_gpkg):
    _bad(runner, tmp_path, grid_gpkg, good().iloc[:0], "no rows")


def test_zero_byte_file(runner, tmp_path, grid_gpkg):
    _bad(runner, tmp_path, grid_gpkg, b"", "cannot read as Parquet")


def test_not_parquet(runner, tmp_path, grid_gpkg):
    _bad(runner, tmp_path, grid_gpkg, b"trip_id,t,lon,lat\na,0,24.9,60.1\n", "cannot read as Parquet")


def test_geometry_without_crs(runner, tmp_path, grid_gpkg):
    df = good()
    gdf = gpd.GeoDataFrame(df[["trip_id", "t"]], geometry=gpd.points_from_xy(df["lon"], df["lat"]))
    src = tmp_path / "bad.parquet"
    gdf.to_parquet(src)
    result = runner.invoke(cli, ["match", str(src), "--map", str(grid_gpkg), "-o", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1
    assert "has no CRS" in result.stderr and "bad.parquet" in result.stderr


def test_geoparquet_points_are_accepted(runner, tmp_path, grid_gpkg):
    df = good()
    gdf = gpd.GeoDataFrame(df[["trip_id", "t"]], geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs=4326)
    src = tmp_path / "geo.parquet"
    gdf.to_parquet(src)
    result = runner.invoke(cli, ["match", str(src), "--map", str(grid_gpkg), "-o", str(tmp_path / "o.parquet")])
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(tmp_path / "o.parquet")["lon"].notna().all()


def test_map_without_edges_layer(runner, tmp_path, grid_gpkg):
    nodes = gpd.read_file(grid_gpkg, layer="nodes")
    bad_map = tmp_path / "nodes_only.gpkg"
    nodes.to_file(bad_map, layer="nodes", driver="GPKG")
    msg = _bad(runner, tmp_path, grid_gpkg, good(), "no layer 'edges'", map_path=bad_map)
    assert "nodes_only.gpkg" in msg


def test_map_not_a_geopackage(runner, tmp_path, grid_gpkg):
    bad_map = tmp_path / "roads.gpkg"
    bad_map.write_text("not a database")
    _bad(runner, tmp_path, grid_gpkg, good(), "not a GeoPackage", map_path=bad_map)


def test_missing_map_file(runner, tmp_path, grid_gpkg):
    _bad(runner, tmp_path, grid_gpkg, good(), "file not found", map_path=tmp_path / "nowhere.gpkg")


def test_bad_option_is_a_usage_error(runner, grid_gpkg, traces_file, tmp_path):
    result = runner.invoke(
        cli, ["match", str(traces_file), "--map", str(grid_gpkg), "-o", str(tmp_path / "o.parquet"),
              "--search-radius-m", "-5"]
    )
    assert result.exit_code == 2
    assert "--search-radius-m" in result.output
    assert not (tmp_path / "o.parquet").exists()


def test_network_rejects_a_non_osm_file(runner, tmp_path):
    bad = tmp_path / "roads.txt"
    bad.write_text("hello")
    result = runner.invoke(cli, ["network", str(bad), "-o", str(tmp_path / "r.gpkg")])
    assert result.exit_code == 1
    assert "roads.txt" in result.stderr and "expected an OpenStreetMap file" in result.stderr
    assert not (tmp_path / "r.gpkg").exists()


def test_network_rejects_a_corrupt_pbf(runner, tmp_path):
    bad = tmp_path / "broken.osm.pbf"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    result = runner.invoke(cli, ["network", str(bad), "-o", str(tmp_path / "r.gpkg")])
    assert result.exit_code == 1
    assert "broken.osm.pbf" in result.stderr
    assert not (tmp_path / "r.gpkg").exists()


def test_match_fast_preset(runner, grid_gpkg, traces_file, tmp_path, monkeypatch):
    """--fast reaches the matcher as the preset, and an option given with it still wins."""
    import mapdiff.jobs.stages
    from mapdiff.matching import MatchConfig

    seen = []
    real = mapdiff.jobs.stages.match_part

    def spy(traces, network, config=None, **kwargs):
        seen.append(config)
        return real(traces, network, config, **kwargs)

    monkeypatch.setattr(mapdiff.jobs.stages, "match_part", spy)
    out = tmp_path / "m.parquet"
    result = run(runner, "match", traces_file, "--map", grid_gpkg, "-o", out, "--fast", "--gps-sigma-m", "8", "-q")
    assert result.exit_code == 0, result.output
    assert seen == [MatchConfig.fast(gps_sigma_m=8.0)] and seen[0] != MatchConfig(gps_sigma_m=8.0)
    assert (pd.read_parquet(out)["state"] == "matched").all()
    result = run(runner, "match", traces_file, "--map", grid_gpkg, "-o", out, "--thin-sigmas", "2", "-q")
    assert result.exit_code == 0, result.output
    assert seen[-1] == MatchConfig(thin_sigmas=2.0) and seen[-1] != MatchConfig()
    result = run(runner, "match", traces_file, "--map", grid_gpkg, "-o", out, "--thin-sigmas", "-1", "-q")
    assert result.exit_code == 2 and "--thin-sigmas" in result.stderr and "must be >= 0" in result.stderr
