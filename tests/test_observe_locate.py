"""observe and locate on hand-checkable cases, and their bad-input handling."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mapdiff.camera import Camera, read_camera
from mapdiff.errors import InputError
from mapdiff.locate import LocateConfig, locate
from mapdiff.observe import observe
from mapdiff.projection import LocalProjection

PROJ = LocalProjection.around(24.94, 60.17)
X0, Y0 = (float(v) for v in PROJ.to_metres(24.94, 60.17))


def ts(s):
    return pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(np.asarray(s, float), unit="s")


def observations_of(points, observers, *, trips, cls="stop", sigma_deg=0.5, range_sigma_m=1.0, seed=0, ranged=True):
    """Exact bearings and ranges from each observer to each point, plus seeded noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for (px, py) in points:
        for k, (qx, qy) in enumerate(observers):
            dx, dy = px - qx, py - qy
            lon, lat = (float(np.ravel(v)[0]) for v in PROJ.to_lonlat(X0 + qx, Y0 + qy))
            rows.append({"trip_id": f"trip{trips[k]}", "t": ts([k])[0], "class": cls,
                         "value": None, "score": 0.9, "lon": lon, "lat": lat,
                         "bearing_deg": (np.degrees(np.arctan2(dx, dy)) + rng.normal(0, sigma_deg)) % 360,
                         "bearing_sigma_deg": sigma_deg,
                         "range_m": np.hypot(dx, dy) + rng.normal(0, range_sigma_m) if ranged else np.nan,
                         "range_sigma_m": range_sigma_m if ranged else np.nan})
    return pd.DataFrame(rows)


def positions(objects):
    x, y = PROJ.to_metres(objects["lon"], objects["lat"])
    return np.c_[x - X0, y - Y0]


def test_locate_recovers_one_object_from_many_trips():
    observers = [(-30.0 + 3 * k, -5.0 + (k % 3)) for k in range(20)]
    obs = observations_of([(0.0, 3.0)], observers, trips=[k // 2 for k in range(20)])
    objects, labels = locate(obs)
    assert len(objects) == 1 and (labels == 0).all()
    assert np.hypot(*(positions(objects)[0] - [0.0, 3.0])) < 0.5
    assert objects.loc[0, "n_trips"] == 10 and objects.loc[0, "n_observations"] == 20
    # too few tracks to measure the passes' pose error: the prior (pose_sigma_m) over 10 trips
    prior = LocateConfig().pose_sigma_m / np.sqrt(10)
    assert 0.8 * prior < objects.loc[0, "sigma_m"] < 1.5 * prior
    assert not objects.loc[0, "weak"]


def test_two_objects_of_one_class_stay_apart_and_one_trip_is_weak():
    observers = [(-20.0 + 4 * k, -6.0) for k in range(10)]
    obs = pd.concat([observations_of([(0.0, 4.0)], observers, trips=list(range(10))),
                     observations_of([(40.0, 4.0)], observers, trips=[99] * 10, seed=1)], ignore_index=True)
    objects, _ = locate(obs)
    assert len(objects) == 2
    p = positions(objects)
    far = objects.loc[np.argmax(p[:, 0])]
    assert far["weak"] and far["n_trips"] == 1
    assert not objects.loc[np.argmin(p[:, 0]), "weak"]


def test_bearing_only_rays_make_no_ghosts():
    # rays only: they cross in many places, but no ranged observation starts an object there
    observers = [(-20.0 + 4 * k, -6.0) for k in range(10)]
    obs = observations_of([(0.0, 4.0), (10.0, 4.0)], observers, trips=list(range(10)), ranged=False)
    objects, labels = locate(obs)
    assert len(objects) == 0 and (labels == -1).all()


def test_split_value_vote_is_reported():
    observers = [(-20.0 + 4 * k, -6.0) for k in range(10)]
    obs = observations_of([(0.0, 4.0)], observers, trips=list(range(10)), cls="speed_limit")
    obs["value"] = ["30"] * 8 + ["40"] * 2
    objects, _ = locate(obs)
    assert len(objects) == 1
    assert objects.loc[0, "value"] == "30" and objects.loc[0, "value_share"] == pytest.approx(0.8)
    assert objects.loc[0, "value_votes"] == "30:8;40:2"


@pytest.mark.parametrize(("column", "value", "message"), [
    ("bearing_deg", 360.0, "bearing_deg' must be in \\[0, 360\\)"),
    ("bearing_deg", -1.0, "bearing_deg' must be in \\[0, 360\\)"),
    ("lon", np.nan, "'lon' has 1 NaN"),
    ("range_m", -2.0, "'range_m' must be >= 0"),
    ("bearing_sigma_deg", 0.0, "'bearing_sigma_deg' must be > 0"),
])
def test_locate_bad_input_names_the_column(column, value, message):
    obs = observations_of([(0.0, 4.0)], [(-10.0, 0.0), (-5.0, 0.0)], trips=[0, 1])
    obs.loc[1, column] = value
    with pytest.raises(InputError, match=message):
        locate(obs)


def _matched(trip="A", n=30, speed=10.0):
    """A car driving north along x = 0 at ``speed`` m/s, one matched fix a second."""
    t = np.arange(n, dtype=float)
    lon, lat = PROJ.to_lonlat(np.full(n, X0), Y0 + speed * t)
    return pd.DataFrame({"trip_id": trip, "t": ts(t), "matched_lon": lon, "matched_lat": lat, "distance_m": 2.0,
                         "edge_id": pd.array([None] * n, dtype="Int64")})


def _detection(cam, t, dx_right, forward, trip="A"):
    """The box of a sign ``forward`` metres ahead and ``dx_right`` to the right."""
    h = cam.focal_px * 0.64 / forward
    u = cam.width_px / 2 + cam.focal_px * dx_right / forward
    return {"detection_id": 0, "trip_id": trip, "t": ts([t])[0], "class": "traffic_sign", "value": "FI:311",
            "score": 0.9, "x_min": u - h / 2, "x_max": u + h / 2, "y_min": 300.0, "y_max": 300.0 + h}


def test_observe_bearing_and_range_from_the_box():
    cam = Camera()
    det = pd.DataFrame([_detection(cam, 10.5, 5.0, 20.0)])
    obs, rejected = observe(det, _matched(), cam)
    assert len(rejected) == 0
    o = obs.iloc[0]
    assert o["bearing_deg"] == pytest.approx(np.degrees(np.arctan2(5.0, 20.0)), abs=0.01)
    # f H / h, less the bias of dividing by a height with two noisy edges
    h_px = cam.focal_px * 0.64 / 20.0
    assert o["range_m"] == pytest.approx(np.hypot(5.0, 20.0) / (1 + 2 * (cam.pixel_sigma_px / h_px) ** 2), rel=1e-6)
    x, y = PROJ.to_metres([o["lon"]], [o["lat"]])
    assert y[0] - Y0 == pytest.approx(105.0, abs=0.01)
    # sigmas: not constants; a smaller (farther) box is less certain
    far = observe(pd.DataFrame([_detection(cam, 10.5, 5.0, 40.0)]), _matched(), cam)[0].iloc[0]
    assert far["range_sigma_m"] > o["range_sigma_m"] > 0 and o["bearing_sigma_deg"] > 0
    # a box a few pixels high: a bearing, but no range
    tiny = observe(pd.DataFrame([_detection(cam, 10.5, 5.0, 70.0)]), _matched(), cam)[0].iloc[0]
    assert np.isnan(tiny["range_m"]) and np.isnan(tiny["range_sigma_m"]) and tiny["bearing_sigma_deg"] > 0


def test_observe_counts_detections_without_a_pose():
    cam = Camera()
    det = pd.DataFrame([_detection(cam, 10.5, 0.0, 20.0), _detection(cam, 10.5, 0.0, 20.0, trip="B"),
                        _detection(cam, 500.0, 0.0, 20.0)])
    obs, rejected = observe(det, _matched(), cam)
    assert len(obs) == 1
    assert sorted(rejected["reason"].astype(str)) == ["time outside the trip's matched fixes", "trip not in matched"]


def test_observe_rejects_empty_boxes():
    cam = Camera()
    det = pd.DataFrame([_detection(cam, 10.5, 0.0, 20.0)])
    det.loc[0, "x_max"] = det.loc[0, "x_min"] - 1
    with pytest.raises(InputError, match="empty"):
        observe(det, _matched(), cam)


def test_camera_file_missing_a_field(tmp_path):
    path = tmp_path / "camera.json"
    path.write_text(json.dumps({"width_px": 1920, "height_px": 1080, "hfov_deg": 90}))
    with pytest.raises(InputError, match="lacks field\\(s\\) \\['mount_yaw_deg'\\]"):
        read_camera(path)
    path.write_text(json.dumps({"width_px": 1920, "height_px": 1080, "hfov_deg": 190, "mount_yaw_deg": 0}))
    with pytest.raises(InputError, match="hfov_deg must be in \\(0, 180\\)"):
        read_camera(path)


def test_cli_observe_then_locate(tmp_path):
    from mapdiff_cli.main import cli

    cam = Camera()
    (tmp_path / "camera.json").write_text(cam.to_json())
    _matched().to_parquet(tmp_path / "matched.parquet")
    dets = []
    for k, t in enumerate(np.arange(5.0, 14.0, 0.5)):
        # a sign at (4, 150): ahead of the car at y = 10 t
        d = _detection(cam, t, 4.0, 150.0 - 10.0 * t)
        d["detection_id"] = k
        dets.append(d)
    pd.DataFrame(dets).to_parquet(tmp_path / "det.parquet")
    res = CliRunner().invoke(cli, ["observe", str(tmp_path / "det.parquet"), "--matched", str(tmp_path / "matched.parquet"),
                                   "--camera", str(tmp_path / "camera.json"), "-o", str(tmp_path / "obs.parquet")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["locate", str(tmp_path / "obs.parquet"), "-o", str(tmp_path / "obj.parquet")])
    assert res.exit_code == 0, res.output
    objects = pd.read_parquet(tmp_path / "obj.parquet")
    assert len(objects) == 1
    assert np.hypot(*(positions(objects)[0] - [4.0, 150.0])) < 0.5
    res = CliRunner().invoke(cli, ["observe", str(tmp_path / "det.parquet"), "--matched", str(tmp_path / "matched.parquet"),
                                   "--camera", str(tmp_path / "nope.json"), "-o", str(tmp_path / "o2.parquet")])
    assert res.exit_code == 1 and "nope.json: file not found" in res.output
