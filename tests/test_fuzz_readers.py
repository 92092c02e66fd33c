"""Every reader, fed random frames: random subsets of its contract's columns and others, each of a
random type (floats with NaN and infinities, ints, text, booleans, UTC times, all missing), zero
to five rows. The only outcomes allowed are success and a :class:`MapdiffError` (one line, exit
1 at the CLI): never another exception. Seeded (``derandomize``), so CI sees the same cases."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapdiff.errors import MapdiffError
from mapdiff.schema import CONTRACTS

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _column(kind: str, n: int, draw, name: str):
    if kind == "float":
        base = {"lon": (24.92, 24.96), "lat": (60.16, 60.18)}.get(name, (-1e3, 1e3))
        values = draw(st.lists(st.one_of(st.floats(*base), st.sampled_from([np.nan, np.inf, -np.inf, 0.0])),
                               min_size=n, max_size=n))
        return pd.Series(values, dtype="float64")
    if kind == "int":
        return pd.Series(draw(st.lists(st.integers(-5, 2**40), min_size=n, max_size=n)), dtype="int64")
    if kind == "text":
        return pd.Series(draw(st.lists(st.text(max_size=6), min_size=n, max_size=n)), dtype=object)
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "time":
        seconds = draw(st.lists(st.integers(0, 2_000_000_000), min_size=n, max_size=n))
        return pd.Series(pd.to_datetime(seconds, unit="s", utc=True))
    return pd.Series([None] * n, dtype=object)


@st.composite
def frames(draw, contract: str, extra=()):
    names = [c for c in (*CONTRACTS[contract], *extra) if draw(st.integers(0, 9)) > 0]  # each kept 9 times in 10
    if draw(st.booleans()):
        names.append(draw(st.sampled_from(["junk", "geometry", "t_enter", "edge_id", "object_id"])))
    n = draw(st.integers(0, 5))
    kinds = ["float", "int", "text", "bool", "time", "null"]
    data = {name: _column(draw(st.sampled_from(kinds)), n, draw, name) for name in dict.fromkeys(names)}
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _only_mapdiff_errors(call):
    try:
        call()
    except MapdiffError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(frames("traces", extra=("vehicle_id", "accuracy_m")))
def test_traces_reader(grid_net, df):
    from mapdiff.matching import match

    _only_mapdiff_errors(lambda: match(df, grid_net))


@SETTINGS
@given(frames("paths", extra=("vehicle_id", "against")))
def test_paths_reader(df):
    from mapdiff.coverage import coverage

    _only_mapdiff_errors(lambda: coverage(df))


@SETTINGS
@given(frames("observations"))
def test_observations_reader(df):
    from mapdiff.locate import locate

    _only_mapdiff_errors(lambda: locate(df))


@SETTINGS
@given(frames("matched"), frames("observations", extra=("detection_id", "x_min", "y_min", "x_max", "y_max")))
def test_matched_and_detections_readers(matched, detections):
    from mapdiff.camera import Camera
    from mapdiff.observe import observe

    _only_mapdiff_errors(lambda: observe(detections, matched, Camera()))


@SETTINGS
@given(frames("objects", extra=("t_first", "t_last", "score")), frames("coverage", extra=("against", "trips")))
def test_objects_and_coverage_readers(grid_gpkg, objects, cov):
    from mapdiff.diff import diff
    from mapdiff.io import read_map_layers

    layers = read_map_layers(grid_gpkg)
    _only_mapdiff_errors(lambda: diff(layers, objects, cov))


CAMERA_FIELDS = ["width_px", "height_px", "hfov_deg", "mount_yaw_deg", "mount_height_m", "pixel_sigma_px"]
json_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 5000), st.floats(allow_nan=True),
                        st.text(max_size=4), st.lists(st.integers(), max_size=2))


@SETTINGS
@given(st.one_of(st.dictionaries(st.sampled_from([*CAMERA_FIELDS, "junk"]), json_values),
                 json_values, st.text(max_size=20)))
def test_camera_reader(tmp_path, content):
    from mapdiff.camera import read_camera

    path = tmp_path / "camera.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    _only_mapdiff_errors(lambda: read_camera(path))


@SETTINGS
@given(st.data())
def test_map_reader(grid_gpkg, tmp_path, data):
    """The map's edges layer with columns dropped or replaced by random values."""
    import geopandas as gpd

    from mapdiff.network import load_network

    edges = gpd.read_file(grid_gpkg, layer="edges")
    for name in [c for c in edges.columns if c != "geometry"]:
        action = data.draw(st.sampled_from(["keep", "keep", "keep", "drop", "spoil"]))
        if action == "drop":
            edges = edges.drop(columns=name)
        elif action == "spoil":
            kind = data.draw(st.sampled_from(["float", "int", "text", "null"]))
            edges[name] = _column(kind, len(edges), data.draw, name).to_numpy()
    if data.draw(st.booleans()):
        edges = edges.iloc[: data.draw(st.integers(0, 3))]
    path = tmp_path / "map.gpkg"
    path.unlink(missing_ok=True)
    edges.to_file(path, layer="edges", driver="GPKG")
    _only_mapdiff_errors(lambda: load_network(path))


@pytest.mark.parametrize("content", [b"", b"not a geopackage", b"SQLite format 3\x00" + b"\x00" * 100])
def test_map_reader_on_bytes(tmp_path, content):
    from mapdiff.network import load_network

    path = tmp_path / "map.gpkg"
    path.write_bytes(content)
    with pytest.raises(MapdiffError):
        load_network(path)


@pytest.mark.parametrize("column", ["u", "v"])
def test_map_reader_names_missing_node_ids(grid_gpkg, tmp_path, column):
    """(found by the fuzz test above, on one machine: a null node id reached np.bincount)"""
    import geopandas as gpd

    from mapdiff.network import load_network

    edges = gpd.read_file(grid_gpkg, layer="edges")
    edges[column] = edges[column].astype(object)
    edges.loc[0, column] = None
    edges.to_file(tmp_path / "map.gpkg", layer="edges", driver="GPKG")
    with pytest.raises(MapdiffError, match=f"column '{column}' has 1 missing node ids"):
        load_network(tmp_path / "map.gpkg")
