"""Speed of ``mapdiff simulate`` on the Helsinki extract, through its command line.

Each case runs in its own process; the table gives wall time, the peak memory of the process
and what was made. ``--cases`` picks some of: month-traces (300 vehicles x 30 days on a map
without features: traces and truth only), days-detections (300 vehicles x 3 days with the
camera), default (20 vehicles x 1 day).

    python benchmarks/simulate.py [--cases month-traces,days-detections,default]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = {
    "default": (20, 1, True),
    "days-detections": (300, 3, True),
    "month-traces": (300, 30, False),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args(argv)
    from mapdiff.io import read_gpkg_layer, write_gpkg
    from mapdiff.osm import build_map

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "helsinki.gpkg"
        build_map(ROOT / "fixtures" / "helsinki.osm.pbf", full)
        bare = Path(tmp) / "helsinki-roads.gpkg"
        write_gpkg({"edges": read_gpkg_layer(full, "edges")}, bare)
        for name in args.cases.split(","):
            vehicles, days, camera = CASES[name]
            out = Path(tmp) / name
            cmd = [sys.executable, "-m", "mapdiff_cli.main", "simulate", "--map", str(full if camera else bare),
                   "-o", str(out), "--vehicles", str(vehicles), "--days", str(days), "-q"]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            wall = time.perf_counter() - t0
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            counts = json.loads((out / "truth" / "meta.json").read_text())["counts"]
            size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
            rows.append((name, vehicles, days, counts["trips"], counts["fixes"], counts["detections"], wall, peak_mb,
                         size_mb))
    print(f"{'case':<16} {'veh':>4} {'days':>4} {'trips':>7} {'fixes':>11} {'detections':>12} {'wall s':>7} "
          f"{'peak MB':>8} {'out MB':>7}")
    for r in rows:
        print(f"{r[0]:<16} {r[1]:>4} {r[2]:>4} {r[3]:>7,} {r[4]:>11,} {r[5]:>12,} {r[6]:>7.1f} {r[7]:>8,.0f} "
              f"{r[8]:>7,.0f}")
    print("peak MB is the largest child so far (ru_maxrss of all children)")


if __name__ == "__main__":
    main()
