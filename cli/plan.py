"""``mapdiff plan coverage.parquet paths.parquet --map roads.gpkg -o requests.parquet [--store URL]``"""

from __future__ import annotations

import click

from mapdiff.plan import PlanConfig
from mapdiff_cli.options import (
    build_config,
    compiling_notice,
    fail,
    info,
    output_option,
    quiet_option,
    show_config_defaults,
    store_option,
)


@show_config_defaults(PlanConfig)
@click.command(short_help="Choose the clips to ask the cars for, so the edges that matter are seen k times.")
@click.argument("coverage_path", metavar="COVERAGE")
@click.argument("paths_path", metavar="PATHS")
@click.option("--map", "map_path", required=True, metavar="GPKG", help="The map the paths were matched on.")
@output_option("Clip requests (Parquet): one row per clip, and one per target left unsatisfied.")
@store_option("Task store the requests go to, and whose uploaded clips say what was filmed recently: a "
              "postgresql:// URL or an SQLite file [$MAPDIFF_STORE, else tasks.sqlite beside the output].")
@click.option("-k", "--sightings", type=int, help="Distinct trips that must film each target edge.")
@click.option("--diffs", "diffs_path", metavar="GPKG", help="Diffs awaiting confirmation (mapdiff diff -o): "
              "the edges that see them are targets.")
@click.option("--confirm-below", type=click.FloatRange(0, 1), help="Only the diffs below this confidence "
              "await confirmation (run diff with --min-confidence 0 to keep the doubtful ones) [all].")
@click.option("--edges", "edges_path", metavar="PATH", help="A table (Parquet or CSV) whose edge_id column "
              "lists more target edges.")
@click.option("--no-features", "features", flag_value=False, default=None,
              help="Do not make the edges that see a mapped feature targets.")
@click.option("--stale-days", type=float, help="Driven edges with no uploaded clip for this many days are "
              "targets.")
@click.option("--no-stale", is_flag=True, help="No stale targets.")
@click.option("--lead-m", type=float, help="A clip starts this far before its first edge.")
@click.option("--max-clip-s", type=float, help="Longer clips are cut in equal parts.")
@click.option("--no-bound", is_flag=True, help="Skip the lower bounds on any plan's cost.")
@quiet_option
def plan(coverage_path, paths_path, map_path, output, store_url, diffs_path, confirm_below, edges_path, no_stale,
         no_bound, quiet, **options):
    """Targets: the edges that see a mapped feature, those of diffs awaiting confirmation, driven
    edges not filmed for --stale-days, and --edges. Each wants -k clips from distinct trips
    (distinct vehicles where possible); the plan picks passes from PATHS at the least clip-seconds,
    preferring daylight and recent ones, adds them to the task store as pending tasks, and prints
    its cost beside the cost of filming every pass and a lower bound on any plan's cost."""
    import dataclasses

    from mapdiff.plan import PlanConfig

    if no_stale and options.get("stale_days") is not None:
        raise click.BadParameter("give --stale-days or --no-stale, not both", param_hint="--no-stale")
    config = build_config(PlanConfig, **options)
    if no_stale:
        config = dataclasses.replace(config, stale_days=None)
    _run(coverage_path, paths_path, map_path, output, store_url, (diffs_path, confirm_below), edges_path, config,
         bound=not no_bound, quiet=quiet)


def _run(coverage_path, paths_path, map_path, output, store_url, diffs, edges_path, config, *, bound, quiet):
    from mapdiff.errors import MapdiffError
    from mapdiff.io import read_map_layers, read_table, write_table
    from mapdiff.network import load_network
    from mapdiff.plan import empty_requests, plan, read_coverage, read_diffs, read_edge_ids, targets
    from mapdiff.store import default_store, open_store

    try:
        with open_store(store_url or default_store(output)) as store:
            cov = read_coverage(coverage_path)
            if len(cov) == 0:
                write_table(empty_requests(), output)
                info(f"{coverage_path}: no edges were driven; the plan is empty", quiet=quiet)
                return
            net = load_network(map_path)
            layers = read_map_layers(map_path, optional=("features",))
            paths = read_table(paths_path)
            diffs_path, below = diffs
            tgt = targets(net, cov, config=config, features=layers.get("features"),
                          diffs=read_diffs(diffs_path, below=below) if diffs_path else None,
                          user_edges=read_edge_ids(edges_path) if edges_path else None, seen=store.video_seen())
            compiling_notice("plan", quiet=quiet)
            result = plan(paths, net, tgt, config=config, bound=bound, source=paths_path)
            added = store.add(result.requests)
            write_table(result.requests, output)
    except MapdiffError as exc:
        fail(exc)
    clips = int((result.requests["status"] == "pending").sum())
    share = 100.0 * result.cost_s / result.all_passes_s if result.all_passes_s else 0.0
    info(f"{result.targets:,} target edges; {clips:,} clips, {result.cost_s:,.0f} clip-seconds "
         f"({share:.2f} % of filming every pass of them: {result.all_passes_s:,.0f} s); "
         f"{added:,} new tasks in {store.url}", quiet=quiet)
    if result.lower_bound_s is not None:
        ratio = result.cost_s / result.lower_bound_s if result.lower_bound_s > 0 else float("nan")
        lp = result.bounds.get("highs_lp")
        lp_text = (f"linear relaxation (HiGHS) {lp:,.0f}" if lp is not None else
                   "linear relaxation (HiGHS) skipped: too many passes")
        info(f"lower bound: {result.lower_bound_s:,.0f} clip-seconds ({lp_text}; Lagrangian dual "
             f"{result.bounds['lagrangian']:,.0f}); the plan costs {ratio:.3f} x that", quiet=quiet)
    if result.unsatisfied:
        info(f"mapdiff: {result.unsatisfied:,} of {result.targets:,} target edges unsatisfied: fewer than "
             f"{config.sightings} distinct trips drove them (listed in {output} with status 'unsatisfied')",
             quiet=quiet)
