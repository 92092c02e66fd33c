"""Pool `diff_sim.py` runs (tables it printed, e.g. one per seed) into one table per object
source: precision and recall per kind and city over all the runs together. One draw of a few
dozen planted changes moves a cell by 0.1-0.3; the pooled counts say more.

    python benchmarks/diff_sim_pool.py benchmarks/results/diff_sim.txt benchmarks/results/diff_sim_seed1.txt

Precision is pooled over the diffs reported, recall over the observable changes (each cell's
counts in parentheses: reported / observable), from the tables' two-decimal figures.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

from diff_sim import DEVELOPED as CITIES  # the tables' kinds and cities (found beside this script)
from diff_sim import KINDS

CELL = re.compile(r"(\S+) /\s+(\S+) /\s+(\S+) \((\d+)/(\d+)/(\d+)\)")


def read(paths) -> dict:
    """(objects, kind, city) -> [found among reported, reported, found among observable, observable]."""
    acc = defaultdict(lambda: [0.0, 0, 0.0, 0])
    for path in paths:
        for line in Path(path).read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 4 + len(KINDS) or cells[2] not in ("located", "true objects"):
                continue
            for kind, cell in zip(KINDS, cells[4:]):
                m = CELL.match(cell)
                if not m:
                    continue
                precision, recall, _, reported, observable, _ = m.groups()
                a = acc[(cells[2], kind, cells[0])]
                a[0] += 0.0 if precision == "n/a" else float(precision) * int(reported)
                a[1] += int(reported)
                a[2] += 0.0 if recall == "n/a" else float(recall) * int(observable)
                a[3] += int(observable)
    return acc


def cell(a) -> str:
    precision = f"{a[0] / a[1]:.2f}" if a[1] else "-"
    recall = f"{a[2] / a[3]:.2f}" if a[3] else "-"
    return f"{precision} / {recall} ({a[1]}/{a[3]})"


def main(argv=None):
    acc = read(sys.argv[1:] if argv is None else argv)
    for objects in ("located", "true objects"):
        print(f"\n{objects}: precision / recall, pooled (reported / observable)\n")
        print("| kind | " + " | ".join(CITIES) + " | all |")
        print("|" + "---|" * (2 + len(CITIES)))
        for kind in KINDS:
            parts = [acc[(objects, kind, city)] for city in CITIES]
            total = [sum(v) for v in zip(*parts)]
            print(f"| {kind} | " + " | ".join(cell(a) for a in parts) + f" | {cell(total)} |")


if __name__ == "__main__":
    main()
