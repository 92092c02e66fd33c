"""``mapdiff locate observations.parquet -o objects.parquet``"""

from __future__ import annotations

import click

from mapdiff_cli.options import build_config, fail, info, output_option, quiet_option


@click.command(short_help="Estimate object positions from many observations.")
@click.argument("observations", metavar="OBSERVATIONS")
@output_option("Objects (Parquet): one row per estimated object.")
@click.option("--reach-m", type=float, help="A pass's track joins an object at most this far away (metres) [15].")
@click.option("--gate-sigma", type=float, help="... and within this many sigmas of it (Mahalanobis) [3].")
@click.option("--pose-sigma-m", type=float,
              help="A pass's pose error before the data tell it (metres; then measured) [3].")
@click.option("--labels", "labels_path", metavar="PATH",
              help="Also write the observations with the object_id each was assigned (-1: none).")
@quiet_option
def locate(observations, output, reach_m, gate_sigma, pose_sigma_m, labels_path, quiet):
    """Associate observations (trip_id, t, class, value, lon, lat, bearing_deg, bearing_sigma_deg,
    range_m, range_sigma_m) that see the same object and estimate each object's position by
    robust weighted least squares; see mapdiff.locate."""
    from mapdiff.errors import MapdiffError
    from mapdiff.io import read_table, write_table
    from mapdiff.locate import LocateConfig, locate as run

    config = build_config(LocateConfig, reach_m=reach_m, gate_sigma=gate_sigma, pose_sigma_m=pose_sigma_m)
    try:
        obs = read_table(observations)
        objects, labels = run(obs, config, source=observations)
        write_table(objects, output)
        if labels_path:
            write_table(obs.assign(object_id=labels), labels_path)
    except MapdiffError as exc:
        fail(exc)
    n_weak = int(objects["weak"].sum())
    info(f"{len(objects):,} objects ({n_weak:,} weak: one trip) from {len(obs):,} observations; "
         f"{int((labels < 0).sum()):,} observations fitted no object", quiet=quiet)
