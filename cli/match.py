"""``mapdiff match traces.parquet --map roads.gpkg -o matched.parquet --paths paths.parquet``"""

from __future__ import annotations

import click

from mapdiff.matching import MatchConfig
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


def _positive(ctx, param, value):
    if value is not None and not value > 0:
        raise click.BadParameter(f"must be > 0; got {value}", param_hint=f"--{param.name.replace('_', '-')}")
    return value


@show_config_defaults(MatchConfig)
@click.command(short_help="Match GPS traces to the road network (HMM).")
@click.argument("traces", metavar="TRACES")
@click.option("--map", "map_path", required=True, metavar="GPKG", help="Map GeoPackage with an edges layer.")
@output_option("Matched points: one row per input fix (Parquet).")
@output_path_option(("--paths", "paths_path"), "Also write the driven edges per trip (Parquet).")
@click.option("--search-radius-m", type=float, callback=_positive, help="Candidate search radius.")
@click.option("--gps-sigma-m", type=float, callback=_positive, help="GPS error sigma.")
@click.option("--max-candidates", type=int, callback=_positive, help="Candidate edges per fix.")
@click.option("--beta-m", type=float, callback=_positive, help="Transition scale between close fixes.")
@click.option("--beta-rel", type=float, help="... growing by this per metre between the fixes.")
@click.option("--max-gap-s", type=float, callback=_positive, help="A longer time gap breaks the chain.")
@click.option("--thin-sigmas", type=float,
              help="Thin fixes this many GPS sigmas from the last kept one (evidence kept); 0: none.")
@shard_option("trips split by a stable hash of trip_id")
@results_store_option
@click.option("--fast", is_flag=True, help="Lighter preset for dense clean 1 Hz data (see MatchConfig.fast).")
@quiet_option
def match(traces, map_path, output, paths_path, quiet, fast, shard, run_id, store_url, **overrides):
    """Match GPS fixes to the edges of the map. TRACES: Parquet or GeoParquet with the columns
    trip_id, t (UTC), lon, lat (optional vehicle_id, speed_mps, heading_deg, accuracy_m); CSV
    (.csv, .csv.gz) with those columns in a header, t as ISO 8601 (no zone: UTC) or seconds since
    1970-01-01 UTC; or GPX (.gpx), one trip per track segment. Local or s3://."""
    from collections import Counter

    from mapdiff.errors import MapdiffError
    from mapdiff.io import optional_writer, read_batches, table_writer, together
    from mapdiff.jobs.stages import match_part, owned_batches, owned_rows
    from mapdiff.matching import MatchConfig
    from mapdiff.network import load_network

    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = build_config(MatchConfig.fast if fast else MatchConfig, **overrides)
    outputs = ("output", "paths_path")
    counts, trips = Counter(), 0
    try:
        net = load_network(map_path)
        compiling_notice("hmm", "geometry", "graph", quiet=quiet)
        progress = Progress(owned_rows(traces, shard), f"matched fixes{f' of shard {shard}' if shard else ''}",
                            quiet=quiet)
        with together(), \
                table_writer(output, metadata=part_label("match", shard, run_id, outputs=outputs)) as out, \
                optional_writer(paths_path, metadata=part_label("paths", shard, run_id, outputs=outputs)) as p_out:
            for (df,) in owned_batches([traces], shard):
                matched, paths = match_part(df, net, config, shard=shard, source=str(traces), progress=progress)
                out.write(matched)
                if p_out is not None:
                    p_out.write(paths)
                counts.update(matched["state"].value_counts().to_dict())
                trips += matched["trip_id"].nunique()
        progress.finish()
        store_results(store_url, "match", read_batches(output), shard, run_id, outputs=outputs)
    except MapdiffError as exc:
        fail(exc)
    info(
        f"{sum(counts.values()):,} fixes in {trips:,} trips: "
        + ", ".join(f"{counts[s]:,} {s}" for s in ("matched", "unmatched", "break")),
        quiet=quiet,
    )
