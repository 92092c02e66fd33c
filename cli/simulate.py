"""``mapdiff simulate --map roads.gpkg -o sim/ --vehicles N --days D --seed S``"""

from __future__ import annotations

import click

from mapdiff.camera import Camera
from mapdiff.simulate import SimConfig
from mapdiff_cli.options import (
    build_config,
    compiling_notice,
    fail,
    info,
    output_option,
    part_label,
    quiet_option,
    shard_option,
    show_config_defaults,
    step,
)

# option name -> (SimConfig field, help); every one maps straight onto the config
_RATES = {
    "added-rate": "fraction of map features missing from the stale map (added in the world)",
    "removed-rate": "map features whose poles the street lost, as a fraction of the features",
    "moved-rate": "fraction of features the stale map has 3-40 m off",
    "value-changed-rate": "fraction of valued features whose value the stale map has wrong",
    "missing-road-rate": "fraction of roads missing from the stale map",
    "oneway-reversed-rate": "fraction of one-way roads the stale map has backwards",
    "closed-road-rate": "fraction of roads closed in the world but still in the stale map",
    "outlier-rate": "share of GPS fixes that are multipath outliers (20-100 m)",
    "dropout-rate": "share of trips with one 10-60 s GPS dropout",
    "offroad-rate": "share of trip ends off the mapped network",
    "uturn-rate": "share of trips with a U-turn",
    "multipath-rate": "share of trips with a 10-60 s multipath stretch 20-80 m off to one side",
    "detour-rate": "share of trips with a stop off the network mid-trip (a car park)",
    "overhead-rate": "share of junction signal poles on a mast arm above the lane",
    "loop-rate": "share of trips through a waypoint",
    "miss-rate": "share of visible objects the detector misses per frame",
    "false-positive-rate": "false detections per frame (per capture with --capture imagery)",
    "confusion-rate": "share of detections with a wrong class or value",
}
_VALUES = {
    "trips-per-day": (float, "mean trips per vehicle and day"),
    "sample-interval-s": (float, "seconds between GPS fixes"),
    "min-trip-m": (float, "shortest route a trip drives (metres); shorter ones are not driven"),
    "gps-sigma-m": (float, "white GPS noise per axis (metres)"),
    "gps-bias-sigma-m": (float, "drifting per-trip GPS bias per axis (metres)"),
    "gps-bias-tau-s": (float, "correlation time of the bias (seconds)"),
    "frame-interval-s": (float, "seconds between camera frames"),
    "max-range-m": (float, "farthest detection (metres)"),
    "start-date": (str, "UTC date of day 0"),
    "accel-mps2": (float, "how fast cars speed up (m/s^2)"),
    "decel-mps2": (float, "how hard cars brake (m/s^2)"),
    "turn-speed-mps": (float, "fastest a car takes a turn from one road to another (m/s)"),
    "turn-arc-m": (float, "length of path over which a car's (and camera's) heading turns at a corner "
                          "(metres; 0: the road's heading)"),
    "placement": (click.Choice(["physical", "osm"]), "where objects stand: physical (poles at the kerb, the map "
                                                      "in OSM's convention) or osm (on the map's node)"),
    "kerb-m": (float, "how far right of the centre line kerb poles stand (metres)"),
    "capture": (click.Choice(["video", "imagery"]), "what the fleet records: video (dashcam detections, GPS traces) "
                                                    "or imagery (street-level captures every few metres, each its "
                                                    "own trip, written as observations.parquet)"),
    "capture-spacing-m": (float, "mean distance between street-level captures (metres)"),
    "panorama-width-px": (float, "street-level panorama width: an object is detected where its height spans "
                                 "--min-box-px on it (pixels)"),
    "imagery-bearing-sigma-deg": (float, "street-level bearing error of most captures (degrees)"),
    "bearing-tail-rate": (float, "share of street-level bearings off by 10-30 degrees"),
    "range-error-rel": (float, "street-level monocular range error (log sigma)"),
}
_CAMERA = {
    "hfov-deg": (float, "camera horizontal field of view (degrees, < 180)"),
    "mount-yaw-deg": (float, "camera yaw from the vehicle heading (degrees clockwise)"),
    "width-px": (int, "image width"),
    "height-px": (int, "image height"),
    "pixel-sigma-px": (float, "detector box-edge noise (pixels)"),
}


def _options(f):
    for name, help_text in reversed(list(_RATES.items()) + [(k, v[1]) for k, v in _VALUES.items()]):
        kind = _VALUES[name][0] if name in _VALUES else float
        f = click.option(f"--{name}", type=kind, help=f"{help_text[0].upper()}{help_text[1:]}.")(f)
    for name, (kind, help_text) in reversed(list(_CAMERA.items())):
        f = click.option(f"--{name}", type=kind, help=f"{help_text[0].upper()}{help_text[1:]}.")(f)
    return f


@show_config_defaults(SimConfig, Camera)
@click.command(short_help="Simulate a fleet with ground truth on a map.")
@click.option("--map", "map_path", required=True, metavar="GPKG", help="Map GeoPackage: the true world.")
@output_option("Output folder.", kind="folder", marker="truth/meta.json")
@click.option("--vehicles", type=int, default=20, show_default=True, help="Number of vehicles.")
@click.option("--days", type=int, default=1, show_default=True, help="Number of days.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same bytes.")
@_options
@shard_option("vehicles split by a stable hash of their id; every shard writes the whole world")
@quiet_option
def simulate(map_path, output, shard, run_id, quiet, **options):
    """Take the map's roads and features as the true world, derive a stale map with planted
    differences, drive a fleet over the world, and write GPS traces, dashcam detections (or, with
    --capture imagery, street-level observations) and the truth folder (see mapdiff.simulate)."""
    from mapdiff.camera import Camera
    from mapdiff.errors import MapdiffError
    from mapdiff.io import read_map_layers
    from mapdiff.jobs.batches import batch_rows
    from mapdiff.jobs.shards import vehicles_of
    from mapdiff.simulate import SimConfig, simulate_to

    cam = {k.replace("-", "_"): options.pop(k.replace("-", "_")) for k in _CAMERA}
    config = build_config(SimConfig, **options)
    camera = build_config(Camera, **cam)
    try:
        layers = read_map_layers(map_path)
        if "features" not in layers:
            info(f"{map_path}: no 'features' layer: simulating traces but no detections", quiet=quiet)
        vehicles = vehicles_of(config.vehicles, shard) if shard else None
        compiling_notice("simulate", "graph", quiet=quiet)
        counts = simulate_to(output, layers, config, camera, progress=lambda m: step(m, quiet=quiet),
                             vehicles=vehicles, metadata=part_label("simulate", shard, run_id), batch_rows=batch_rows())
    except MapdiffError as exc:
        fail(exc)
    if counts["trips"] == 0 and (vehicles is None or len(vehicles)) and config.days > 0:
        # (a shard may own no vehicle; a fleet that drove nothing had no route long enough)
        info(f"{map_path}: warning: no trip was driven: no route of --min-trip-m {config.min_trip_m:g} m or more "
             "came up on this map (a few hundred metres of road?)", quiet=quiet)
    seen = "street-level observations" if config.capture == "imagery" else "detections"
    info(f"wrote {output}: {counts['fixes']:,} fixes in {counts['trips']:,} trips, {counts['sightings']:,} {seen}, "
         f"{counts['changes']:,} planted changes", quiet=quiet)
