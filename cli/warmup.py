"""``mapdiff warmup``"""

from __future__ import annotations

import click

from mapdiff_cli.options import info, quiet_option


@click.command(short_help="Compile every kernel ahead (for container images): run the stages on a tiny town.")
@quiet_option
def warmup(quiet):
    """Run every stage once on a made-up town of 25 junctions (mapdiff.warmup), so that numba
    compiles its kernels into the cache now rather than on the first real run. Build a container
    image with it to bake the cache in ($NUMBA_CACHE_DIR, else ~/.cache/mapdiff/numba)."""
    import os
    import tempfile
    import time

    from mapdiff.warmup import town_osm
    from mapdiff_cli.main import cli

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mapdiff-warmup-") as tmp:
        def at(name):
            return os.path.join(tmp, name)

        town_osm(at("town.osm"))
        sim, imagery = at("sim"), at("imagery")
        steps = [
            ["network", at("town.osm"), "-o", at("roads.gpkg")],
            ["simulate", "--map", at("roads.gpkg"), "-o", sim, "--vehicles", "2", "--days", "1", "--seed", "1"],
            ["simulate", "--map", at("roads.gpkg"), "-o", imagery, "--vehicles", "1", "--days", "1", "--seed", "1",
             "--capture", "imagery"],
            ["match", f"{sim}/traces.parquet", "--map", f"{sim}/map.gpkg", "-o", at("matched.parquet"), "--paths",
             at("paths.parquet")],
            ["coverage", at("paths.parquet"), "-o", at("coverage.parquet")],
            ["observe", f"{sim}/detections.parquet", "--matched", at("matched.parquet"), "--camera",
             f"{sim}/camera.json", "--map", f"{sim}/map.gpkg", "-o", at("observations.parquet")],
            # (gaps over half a second bridged: the one caller of the bridges' kernel, which a
            # sparse fleet or a tunnel calls)
            ["observe", f"{sim}/detections.parquet", "--matched", at("matched.parquet"), "--camera",
             f"{sim}/camera.json", "--map", f"{sim}/map.gpkg", "-o", at("observations_bridged.parquet"),
             "--max-gap-s", "0.5"],
            ["locate", at("observations.parquet"), "-o", at("objects.parquet")],
            ["locate", f"{imagery}/observations.parquet", "-o", at("imagery_objects.parquet")],
            # (an AWS Batch shard: over tiles, whose kernel no unsharded run calls)
            ["locate", at("observations.parquet"), "-o", at("objects_shard.parquet"), "--shard", "0/2"],
            ["diff", "--map", f"{sim}/map.gpkg", "--objects", at("objects.parquet"), "--coverage",
             at("coverage.parquet"), "--matched", at("matched.parquet"), "--paths", at("paths.parquet"), "-o",
             at("diffs.gpkg")],
            ["plan", at("coverage.parquet"), at("paths.parquet"), "--map", f"{sim}/map.gpkg", "-o",
             at("requests.parquet"), "--store", at("tasks.sqlite"), "--sightings", "1"],
        ]
        for args in steps:
            info(f"warmup: {args[0]}", quiet=quiet)
            cli.main([*args, "-q"], standalone_mode=False)
    info(f"kernels compiled and cached in {time.perf_counter() - start:.0f} s", quiet=quiet)
