"""``mapdiff diff --map roads.gpkg --objects objects.parquet --coverage coverage.parquet [--matched M]
-o diffs.gpkg``"""

from __future__ import annotations

import click

from mapdiff.diff import DiffConfig
from mapdiff.jobs.tiles import Tiling
from mapdiff_cli.options import (
    build_config,
    compiling_notice,
    fail,
    info,
    output_option,
    part_label,
    quiet_option,
    results_store_option,
    shard_option,
    show_config_defaults,
    store_results,
)


@show_config_defaults(DiffConfig, Tiling)
@click.command(short_help="Judge the map against what the fleet saw: the list of places where it is wrong.")
@click.option("--map", "map_path", required=True, metavar="GPKG", help="The map (edges, features) to judge.")
@click.option("--objects", "objects_path", metavar="PATH", help="Located objects (mapdiff locate -o).")
@click.option("--coverage", "coverage_path", required=True, metavar="PATH", help="Coverage (mapdiff coverage -o).")
@click.option("--matched", "matched_path", metavar="PATH",
              help="Matched fixes (mapdiff match -o): enables road_missing.")
@click.option("--paths", "paths_path", metavar="PATH",
              help="Matched paths (mapdiff match --paths): enables road_closed.")
@click.option("--video-coverage", "video_path", metavar="PATH",
              help="Coverage of the uploaded clips (mapdiff coverage --clips): a feature counts as in view only "
                   "where the clips had it [default: all driving was filmed].")
@output_option("Diffs (GeoPackage): layers 'diffs' and 'unverified'.", kind="gpkg")
@click.option("--min-trips", type=int, help="Trips that make an object evidence of an addition.")
@click.option("--max-move-m", type=float, help="Further than this, a move is an addition and a removal.")
@click.option("--map-sigma-m", type=float, help="How precisely the map places a feature along its road.")
@click.option("--junction-radius-m", type=float, help="Signals this close to a junction node belong to it.")
@click.option("--range-m", type=float, help="How far the dashcam sees objects (metres).")
@click.option("--hfov-deg", type=float, help="The dashcam's horizontal field of view (degrees).")
@click.option("--min-visible-trips", type=int,
              help="Trips that must have had a feature in view before its absence is a removal.")
@click.option("--min-road-trips", type=int, help="Distinct trips that make a road diff.")
@click.option("--min-confidence", type=float, help="Diffs below this confidence are not written.")
@click.option("--tile-m", type=float,
              help="With --shard: the tiles (metres) whose rows a shard keeps.")
@shard_option("tiles of the diffs' places, balanced by their rows; every shard computes the whole judgment "
              "and keeps its tiles' rows")
@results_store_option
@quiet_option
def diff(map_path, objects_path, coverage_path, matched_path, paths_path, video_path, output, tile_m, shard, run_id,
         store_url, quiet, **options):
    """Compare the map's features and roads with the located objects, the coverage and the
    matched fixes; write every change with its kind, confidence and evidence (see mapdiff.diff)."""
    from mapdiff.diff import DiffConfig
    from mapdiff.diff import diff as run
    from mapdiff.errors import MapdiffError
    from mapdiff.io import read_map_layers, read_table, write_gpkg
    from mapdiff.jobs.stages import MatchedFile, diff_part
    from mapdiff.jobs.tiles import Tiling

    config = build_config(DiffConfig, **options)
    try:
        layers = read_map_layers(map_path)
        objects = read_table(objects_path) if objects_path else None
        cov = read_table(coverage_path)
        matched = MatchedFile(matched_path) if matched_path else None
        paths = read_table(paths_path) if paths_path else None
        video = read_table(video_path) if video_path else None
        compiling_notice("diff", "geometry", "graph", "observe", quiet=quiet)
        result = run(layers, objects, cov, config, matched=matched, paths=paths, video_coverage=video,
                     sources={"map": map_path, "objects": objects_path or "objects", "coverage": coverage_path,
                              "matched": matched_path or "matched", "paths": paths_path or "paths",
                              "video_coverage": video_path or "video coverage"})
        result = diff_part(result, tiling=build_config(Tiling, tile_m=tile_m), shard=shard)
        write_gpkg(result.layers(), output, metadata=part_label("diff", shard, run_id))
        store_results(store_url, "diff", result.diffs, shard, run_id)
    except MapdiffError as exc:
        fail(exc)
    for w in result.warnings:
        click.echo(f"mapdiff: warning: {w}", err=True)
    counts = result.diffs["kind"].value_counts()
    info(f"{len(result.diffs):,} diffs (" + ", ".join(f"{n} {k}" for k, n in counts.items()) +
         f"); {len(result.unverified):,} map features unverified (never in view)", quiet=quiet)
