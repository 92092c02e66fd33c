"""``mapdiff observe detections.parquet --matched matched.parquet --camera camera.json -o observations.parquet``"""

from __future__ import annotations

import click

from mapdiff.observe import ObserveConfig
from mapdiff_cli.options import (
    Progress,
    build_config,
    compiling_notice,
    fail,
    info,
    output_option,
    output_path_option,
    part_label,
    quiet_option,
    shard_option,
    show_config_defaults,
)


@show_config_defaults(ObserveConfig)
@click.command(short_help="Turn pixel detections into bearing and range observations.")
@click.argument("detections", metavar="DETECTIONS")
@click.option("--matched", required=True, metavar="PATH", help="Matched fixes of the same trips (mapdiff match -o).")
@click.option("--camera", "camera_path", required=True, metavar="JSON",
              help="Camera model: width_px, height_px, hfov_deg, mount_yaw_deg [, mount_height_m, pixel_sigma_px].")
@click.option("--map", "map_path", metavar="GPKG",
              help="The map the fixes were matched on: headings from the road (else from the motion).")
@output_option("Observations (Parquet).")
@output_path_option(("--rejects", "rejects"), "Also write the detections without a matched pose, with the reason.")
@click.option("--max-gap-s", type=float, help="Matched fixes further apart give no pose, unless bridged.")
@click.option("--max-bridge-s", type=float,
              help="With --map: a gap between matched fixes up to this long (a sparse fleet, a tunnel; no fix "
                   "left unmatched in it) is driven along the route between them.")
@click.option("--lane-offset-m", type=float,
              help="How far right of a two-way road's centre line the camera drives, with --map (metres; "
                   "negative where traffic keeps left).")
@shard_option("trips split by a stable hash of trip_id")
@quiet_option
def observe(detections, matched, camera_path, map_path, output, rejects, max_gap_s, max_bridge_s, lane_offset_m, shard,
            run_id, quiet):
    """From each detection's box, the vehicle's matched pose at that instant and the camera
    model, compute the observer position, the absolute bearing to the object and a range from
    the box height, each with its sigma. Detections without a matched pose are counted on
    stderr by reason (and written with --rejects)."""
    from collections import Counter

    from mapdiff.camera import read_camera
    from mapdiff.errors import MapdiffError
    from mapdiff.io import optional_writer, table_writer, together
    from mapdiff.jobs.stages import observe_part, owned_batches, owned_rows
    from mapdiff.observe import ObserveConfig

    config = build_config(ObserveConfig, max_gap_s=max_gap_s, max_bridge_s=max_bridge_s, lane_offset_m=lane_offset_m)
    n_obs, n_det, reasons = 0, 0, Counter()
    try:
        camera = read_camera(camera_path)
        network = None
        if map_path:
            from mapdiff.network import load_network

            network = load_network(map_path)
        compiling_notice("observe", quiet=quiet)
        progress = Progress(owned_rows(detections, shard), "detections", quiet=quiet)
        label = part_label("observe", shard, run_id, outputs=("output", "rejects"))
        with together(), table_writer(output, metadata=label) as out, optional_writer(rejects) as r_out:
            for det, fixes in owned_batches([detections, matched], shard):
                obs, rejected = observe_part(det, fixes, camera, config, network=network, shard=shard,
                                             source=detections, matched_source=matched)
                out.write(obs)
                if r_out is not None:
                    r_out.write(rejected)
                n_obs, n_det = n_obs + len(obs), n_det + len(det)
                reasons.update(rejected["reason"].value_counts().to_dict())
                progress(len(det))
        progress.finish()
    except MapdiffError as exc:
        fail(exc)
    info(f"{n_obs:,} observations from {n_det:,} detections", quiet=quiet)
    reasons = +reasons  # (the reasons no detection had dropped)
    if reasons:
        info(f"{reasons.total():,} detections without a matched pose: "
             + "; ".join(f"{n:,} {r}" for r, n in reasons.most_common()), quiet=quiet)
