"""What cutting locate's work costs: tiles (``--tile-m``, as the shards of an array job run it)
and regions (a run whose tracks are more than a batch), against one piece, city by city.

A tiled run takes the fleet's errors (:class:`mapdiff.locate.Measures`: the pose sigmas, the
fragment length, the mixture the tracks are reassigned with ...) measured once over a sample of
the whole file (:meth:`mapdiff.jobs.stages.TileBatches.measures`); the rows "each tile its
own" run the same tiles with every tile measuring them from its own objects (what locate did
before stop 47; still what ``locate_batches`` does when no measures are given), through the
same job layer in the same run. Per row: the objects, recall and precision for the objects
seen in >= 5 trips, precision over all objects, and the share of 95 % circles that hold the
truth, as ``mapdiff evaluate`` counts them; wall time of the locate call.

    python benchmarks/locate_tiles.py [--cities helsinki,liechtenstein,harrisburg] [--placements physical,osm]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from locate_sim import scene  # noqa: E402  (the same command lines; found through the path just set)

TILE_SIDES_M = (5000.0, 2000.0, 1000.0)


def located(path, tile_m, *, own_measures: bool):
    """The objects of one unsharded run over ``path`` through the job layer, as ``mapdiff locate``
    runs it (``tile_m`` None: one piece); ``own_measures``: every tile (or region) measures the
    errors from its own objects."""
    from mapdiff.jobs.stages import locate_part, tile_batches
    from mapdiff.jobs.tiles import Tiling
    from mapdiff.locate import LocateConfig

    config = LocateConfig()
    tiling = None if tile_m is None else Tiling(tile_m=tile_m)
    work = tile_batches(path, tiling, None)
    measures = None if own_measures else functools.partial(work.measures, config)
    frames = [locate_part(parts, config, tiling=work.tiling, tiles=tiles, kind=work.kind, measures=measures,
                          source=str(path)) for tiles, parts in work.batches]
    return pd.concat(frames, ignore_index=True)


def rows_of(folder: Path, city: str, placement: str) -> list:
    from mapdiff.evaluate import Truth, score_locate

    truth = Truth(folder / "sim")
    obs = folder / "obs.parquet"
    n_rows = len(pd.read_parquet(obs, columns=["trip_id"]))
    runs = [("one piece", None, False, None)]
    for side in TILE_SIDES_M:
        runs += [(f"{side / 1000:g} km tiles, the run's measures", side, False, None),
                 (f"{side / 1000:g} km tiles, each tile its own", side, True, None)]
    # (a fortieth of the rows a batch: regions of a few thousand tracks)
    runs += [("regions, the run's measures", None, False, n_rows // 40),
             ("regions, each region its own", None, True, n_rows // 40)]
    out = []
    for name, tile_m, own, batch in runs:
        if batch is not None:
            os.environ["MAPDIFF_BATCH_ROWS"] = str(batch)
        start = time.perf_counter()
        objects = located(obs, tile_m, own_measures=own)
        wall = time.perf_counter() - start
        os.environ.pop("MAPDIFF_BATCH_ROWS", None)
        s = score_locate(truth, objects)
        out.append((city, placement, name, len(objects), s["recall"], s["precision"], s["precision_all"],
                    s["sigma_coverage_95"], wall))
        print(f"  {city} {placement} {name}: {len(objects)} objects, {wall:.1f} s", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cities", default="helsinki,liechtenstein,harrisburg")
    ap.add_argument("--placements", default="physical,osm")
    ap.add_argument("--vehicles", type=int, default=30)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for city in args.cities.split(","):
            for placement in [p for p in args.placements.split(",") if p]:
                folder = scene(Path(tmp), city, placement, args.vehicles, args.days, args.seed)
                rows += rows_of(folder, city, placement)
    print(f"{args.vehicles} vehicles x {args.days} days, seed {args.seed}; scores for objects seen in >= 5 trips "
          "(within 3 m), precision (all) over every object")
    print(f"{'city':14}{'placement':10}{'run':38}{'objects':>8}{'recall':>8}{'prec':>8}{'prec all':>9}"
          f"{'sigma95':>9}{'wall s':>8}")
    for city, placement, name, n, rec, prec, prec_all, cov, wall in rows:
        print(f"{city:14}{placement:10}{name:38}{n:8,}{rec:8.3f}{prec:8.3f}{prec_all:9.3f}{cov:9.3f}{wall:8.1f}")


if __name__ == "__main__":
    main()
