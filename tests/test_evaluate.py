"""``evaluate`` metrics on hand-made cases where the right score is obvious."""

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from mapdiff.errors import InputError
from mapdiff.evaluate import Truth, score_coverage, score_diff, score_locate, score_matching
from mapdiff.projection import LocalProjection

LON0, LAT0 = 24.94, 60.17
PROJ = LocalProjection.around(LON0, LAT0)
X0, Y0 = PROJ.to_metres(LON0, LAT0)


def lonlat(dx, dy):
    lon, lat = PROJ.to_lonlat(X0 + np.atleast_1d(dx), Y0 + np.atleast_1d(dy))
    return lon, lat


def ts(s):
    return pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(s, unit="s")


@pytest.fixture()
def truth(tmp_path):
    folder = tmp_path / "sim" / "truth"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    pd.DataFrame({"edge_id": [0, 1, 2, 5], "u": [10, 11, 12, 15], "v": [11, 12, 13, 16],
                  "length_m": [100.0, 50.0, 30.0, 20.0], "in_world": True, "in_map": True}
                 ).to_parquet(folder / "edges.parquet")
    pd.DataFrame({"trip_id": ["A", "A", "A"], "seq": [0, 1, 2], "edge_id": [0, 1, 0],
                  "t_enter": ts([0, 10, 20]), "t_exit": ts([10, 20, 30])}).to_parquet(folder / "routes.parquet")
    pd.DataFrame({"trip_id": ["A"] * 4, "t": ts([1, 2, 11, 12]), "edge_id": pd.array([0, 0, 1, 1], dtype="Int64"),
                  "offset_m": [10.0, 20.0, 10.0, 20.0]}).to_parquet(folder / "fixes.parquet")
    lon, lat = lonlat([0.0, 50.0, 100.0], [0.0, 0.0, 0.0])
    pd.DataFrame({"object_id": [0, 1, 2], "class": ["stop", "stop", "traffic_signals"], "value": [None, None, None],
                  "lon": lon, "lat": lat, "n_trips_seen": [6, 6, 1]}).to_parquet(folder / "objects.parquet")
    plon, plat = lonlat([200.0], [0.0])
    line = shapely.LineString(np.c_[lonlat([0, 0], [300, 400])])
    gpd.GeoDataFrame(
        {
            "change_id": [0, 1],
            "kind": pd.Categorical(["object_added", "road_closed"]),
            "feature_id": pd.array([None, None], dtype="Int64"),
            "object_id": pd.array([0, None], dtype="Int64"),
            "edge_ids": [[], [5]],
        },
        geometry=[shapely.Point(plon[0], plat[0]), line],
        crs=4326,
    ).to_parquet(folder / "changes.parquet")
    return Truth(tmp_path / "sim")


def test_matching_scores_by_length(truth):
    paths = pd.DataFrame({"trip_id": ["A", "A"], "edge_id": [0, 2]})
    s = score_matching(truth, paths=paths)
    assert s["edge_precision"] == pytest.approx(100 / 130)
    assert s["edge_recall"] == pytest.approx(100 / 150)
    assert s["mismatch_mean"] == pytest.approx((50 + 30) / 150)
    matched = pd.DataFrame({"trip_id": ["A"] * 4, "t": ts([1, 2, 11, 12]), "edge_id": [0, 2, 1, 1]})
    assert score_matching(truth, matched=matched)["fixes_on_true_edge"] == pytest.approx(0.75)


def test_matching_from_another_simulation_names_the_ids(truth):
    with pytest.raises(InputError, match="trip ids not in this simulation.*e.g. B"):
        score_matching(truth, paths=pd.DataFrame({"trip_id": ["A", "B"], "edge_id": [0, 0]}))
    with pytest.raises(InputError, match="edge ids not in this simulation.*e.g. 99"):
        score_matching(truth, paths=pd.DataFrame({"trip_id": ["A"], "edge_id": [99]}))


def test_coverage_passes(truth):
    cov = pd.DataFrame({"edge_id": [0, 1, 5], "passes": [2, 0, 1]})
    s = score_coverage(truth, cov)
    assert s["edges_driven"] == 2
    assert s["edge_recall"] == 0.5 and s["edge_precision"] == 0.5
    assert s["passes_exact"] == 0.5
    assert s["passes_mae"] == pytest.approx((0 + 1 + 1) / 3)


def test_locate_pairs_same_class_within_threshold(truth):
    lon, lat = lonlat([1.0, 52.5, 0.0, 100.5], [0.0, 0.0, 30.0, 0.0])
    est = pd.DataFrame({"object_id": [0, 1, 2, 3], "class": ["stop", "traffic_signals", "stop", "traffic_signals"],
                        "lon": lon, "lat": lat, "n_trips": [7, 7, 7, 1]})
    s = score_locate(truth, est, threshold_m=3.0, min_trips=5)
    assert s["true_objects"] == 2 and s["estimates"] == 3
    assert s["recall"] == 0.5  # object 1 has only a signal estimate near it: wrong class
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["median_error_m"] == pytest.approx(1.0, abs=1e-3)
    assert s["precision_all"] == pytest.approx(2 / 4)  # the weak estimate found object 2


def test_locate_pairs_one_to_one(truth):
    lon, lat = lonlat([0.5, 1.0], [0.0, 0.0])
    est = pd.DataFrame({"class": ["stop", "stop"], "lon": lon, "lat": lat})
    s = score_locate(truth, est)
    assert s["precision"] == 0.5 and s["recall"] == 0.5
    assert s["median_error_m"] == pytest.approx(0.5, abs=1e-3)


def test_diff_precision_recall_per_kind(truth):
    near_lon, near_lat = lonlat([204.0], [0.0])
    far_lon, far_lat = lonlat([500.0], [0.0])
    diffs = gpd.GeoDataFrame(
        {"kind": ["object_added", "object_added", "road_closed"], "edge_id": pd.array([None, None, 5], dtype="Int64")},
        geometry=[shapely.Point(near_lon[0], near_lat[0]), shapely.Point(far_lon[0], far_lat[0]),
                  shapely.Point(far_lon[0], far_lat[0])], crs=4326)
    s = score_diff(truth, diffs)
    assert s["object_added"] == {"planted": 1, "observable": 1, "reported": 2, "precision": 0.5, "recall": 1.0,
                                 "recall_all": 1.0}
    # the closed road's ends (nodes 15, 16) were never passed: found, but not observable
    closed = s["road_closed"]
    assert closed["precision"] == 1.0 and closed["recall_all"] == 1.0
    assert closed["observable"] == 0 and np.isnan(closed["recall"])


def test_cli_prints_a_table_and_writes_json(truth, tmp_path):
    from mapdiff_cli.main import cli

    paths = tmp_path / "paths.parquet"
    t = pd.to_datetime(["2026-01-05T08:00:00Z", "2026-01-05T08:00:10Z", "2026-01-05T08:00:20Z"])
    pd.DataFrame({"trip_id": ["A", "A"], "seq": [0, 1], "edge_id": [0, 2], "t_enter": t[:2],
                  "t_exit": t[1:]}).to_parquet(paths)
    res = CliRunner().invoke(cli, ["evaluate", "--truth", str(tmp_path / "sim"), "--paths", str(paths),
                                   "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert "edge_precision" in res.output and "0.7692" in res.output
    assert json.loads((tmp_path / "s.json").read_text())["match"]["edge_recall"] == pytest.approx(2 / 3)
    res = CliRunner().invoke(cli, ["evaluate", "--truth", str(tmp_path), "--paths", str(paths)])
    assert res.exit_code == 1 and "not a simulation's truth folder" in res.output
    res = CliRunner().invoke(cli, ["evaluate", "--truth", str(tmp_path / "sim")])
    assert res.exit_code == 2


@pytest.mark.parametrize(("sigma_m", "covered"), [(0.5, 1.0), (0.3, 0.0)])
def test_locate_sigma_coverage_counts_the_95_circle(truth, sigma_m, covered):
    # a pair 1 m off: inside the 95 % circle of sigma 0.5 m (radius 1.22 m), outside 0.3 m's (0.73 m)
    lon, lat = lonlat([1.0], [0.0])
    est = pd.DataFrame({"class": ["stop"], "lon": lon, "lat": lat, "n_trips": [7], "sigma_m": [sigma_m]})
    assert score_locate(truth, est)["sigma_coverage_95"] == covered
