"""``mapdiff locate observations.parquet -o objects.parquet``"""

from __future__ import annotations

import click

from mapdiff.jobs.tiles import Tiling
from mapdiff.locate import LocateConfig
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
    results_store_option,
    shard_option,
    show_config_defaults,
    store_results,
)


@show_config_defaults(LocateConfig, Tiling)
@click.command(short_help="Estimate object positions from many observations.")
@click.argument("observations", metavar="OBSERVATIONS")
@output_option("Objects (Parquet): one row per estimated object.")
@click.option("--reach-m", type=float, help="A pass's track joins an object at most this far away (metres).")
@click.option("--gate-sigma", type=float, help="... and within this many sigmas of it (Mahalanobis).")
@click.option("--pose-sigma-m", type=float,
              help="A pass's pose error before the data tell it (metres; then measured).")
@output_path_option(("--labels", "labels_path"),
                    "Also write the observations with the object_id each was assigned (-1: none).")
@click.option("--tile-m", type=float,
              show_default="5000 with --shard or an input bigger than a batch ($MAPDIFF_BATCH_ROWS); else one piece",
              help="Work tile by tile: the side of a tile (metres).")
@click.option("--halo-m", type=float,
              help="A tile sees the observations this far beyond it: more than an observer sees (metres).")
@shard_option("tiles, balanced by their rows; a tile owns the objects whose anchor (the mean of their "
              "passes' own points, about their position) lies in it")
@results_store_option
@quiet_option
def locate(observations, output, reach_m, gate_sigma, pose_sigma_m, labels_path, tile_m, halo_m, shard, run_id,
           store_url, quiet):
    """Associate observations (trip_id, t, class, value, lon, lat, bearing_deg, bearing_sigma_deg,
    range_m, range_sigma_m) that see the same object and estimate each object's position by
    robust weighted least squares; see mapdiff.locate. With --shard (or --tile-m) the work runs
    over fixed tiles of the globe (mapdiff.jobs.tiles): an object is estimated once, by the tile
    it lies in, from the observations within the tile's halo; the shards merge into an
    unsharded run with the same --tile-m."""
    import functools

    from mapdiff.errors import MapdiffError
    from mapdiff.io import read_batches, table_writer, together
    from mapdiff.jobs.stages import RowLabels, locate_part, tile_batches
    from mapdiff.jobs.tiles import Tiling
    from mapdiff.locate import LocateConfig

    config = build_config(LocateConfig, reach_m=reach_m, gate_sigma=gate_sigma, pose_sigma_m=pose_sigma_m)
    # an unsharded run stays in one piece unless asked, however big (read in parts, its tracks
    # region by region: mapdiff.jobs.stages.tile_batches); tiles would give its objects but for
    # those near their borders (every tile takes the errors measured once: README "Scale")
    tiled = shard is not None or tile_m is not None or halo_m is not None
    tiling = build_config(Tiling, tile_m=tile_m, halo_m=halo_m) if tiled else None
    if labels_path and shard is not None:
        raise click.BadParameter("labels are written by an unsharded run only (an observation near a tile border "
                                 "belongs to more than one shard)", param_hint="--labels")
    outputs = ("output", "labels_path")
    n_objects = n_weak = 0
    try:
        work = tile_batches(observations, tiling, shard)
        measures = functools.partial(work.measures, config)  # (measured when a tile first needs them)
        # what each row of the file fitted (a shard's rows are not the file's)
        found = None if shard is not None else RowLabels(observations, ids=bool(labels_path))
        n_seen = [0]  # (rows its tiles see: an observation near two tiles is seen twice)

        def labelled(lab, rows):
            n_seen[0] += len(lab)
            if found is not None:
                found.add(lab, rows)

        compiling_notice("locate", "captures", quiet=quiet)
        progress = Progress(None, "tiles", quiet=quiet)
        with together():
            with table_writer(output, metadata=part_label("locate", shard, run_id, outputs=outputs)) as out:
                for tiles, parts in work.batches:
                    objects = locate_part(parts, config, tiling=work.tiling, tiles=tiles, kind=work.kind,
                                          measures=measures, source=observations, progress=progress,
                                          on_labels=labelled)
                    out.write(objects)
                    n_objects, n_weak = n_objects + len(objects), n_weak + int(objects["weak"].sum())
            progress.finish()
            if labels_path:
                found.write(observations, labels_path)
        store_results(store_url, "locate", read_batches(output), shard, run_id, outputs=outputs)
    except MapdiffError as exc:
        fail(exc)
    if found is None:
        seen = f"{n_seen[0]:,} observations its tiles see"
    else:
        seen = f"{len(found.labels):,} observations; {found.unfitted:,} observations fitted no object"
    info(f"{n_objects:,} objects ({n_weak:,} weak: one trip) from {seen}", quiet=quiet)
