"""Locate's association region by region, when a run's tracks are too many to hold.

A month of a city's fleet makes tens of millions of tracks (:class:`mapdiff.locate._TrackSet`),
several gigabytes in the association. :class:`TrackSpill` takes the tracks of the batches as
they come; past ``max_tracks`` it writes them to disk, one folder of arrays per batch, ordered
by a grid of cells of the tracks' points. The association then runs region by region: the
cells are cut in two, at the median of their tracks, along the longer side, until each region
with a ring of cells around it holds at most ``max_tracks`` tracks (or is one cell). A region's
work sees its own tracks and those within ``halo_m`` of it; it keeps the objects whose position
lies in it, so that an object near a border is estimated once, from all its tracks.

What locate measures from the data (:class:`mapdiff.locate.Measures`: the pose errors, the
mixture of the reassignment, ...) a region takes as given when the run has them (a CLI run
measures them once, over a sample of its file); else a region measures them from its own
objects, fewer than the whole would give: on the 6-car test fleet, regions of 1/80 to 1/260 of
the rows lost some 0.02 of recall and of precision so, and nothing with the run's measures
(tests/test_jobs.py). Everything else that does not depend on a region is the whole run's: the
vague bearing limit, the fragment length (from all tracks' sums of n and n squared), the codes
of trips, identities and values by name. The regions and what each holds depend only on the
tracks, not on how the trips were cut into batches.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

#: the side of the grid's cells, metres: the smallest region. A region's halo is at most a cell
#: (so a region plus a ring of cells holds it); smaller cells would be mostly halo
CELL_M = 100.0
#: a region sees the tracks this many association reaches beyond it: a track joins an object
#: within ``reach_m`` of its point, so an object owned near the border has every track it can
#: take, and beyond those the competing objects that could take them instead (on the 300 x 3
#: fleet, 500 m regions with halos of 30 m and 50 m scored within 0.003 of each other and of one
#: piece; without a halo, a test fleet's border objects came twice: 6 % more objects)
HALO_REACHES = 3.0


class TrackSpill:
    """The tracks of a run's batches (:class:`mapdiff.locate._TrackSet`), held while they are at
    most ``max_tracks`` and on disk beyond. Use as a context manager (the disk is freed at its
    end)."""

    def __init__(self, max_tracks: int, *, reach_m: float):
        self.max_tracks = int(max_tracks)
        self.halo_m = HALO_REACHES * reach_m
        self.cell_m = max(CELL_M, self.halo_m)
        self.held: list = []
        self.n_tracks = 0
        self.n_sums = (0, 0)
        self.folders: list[Path] = []
        self.cells = pd.Series(dtype=np.int64)  # tracks per cell, of the spilled pieces
        self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def spilled(self) -> bool:
        return bool(self.folders)

    def add(self, piece) -> None:
        """One batch's tracks (its ``table`` gains ``uid``: the track's number over the run).
        Past ``max_tracks`` the held batches go to disk together, a batch's worth of tracks at a
        time: every region visits every folder, and a month's hundreds of one-batch folders made
        those visits most of its time."""
        piece.table["uid"] = self.n_tracks + np.arange(len(piece.table), dtype=np.int64)
        self.n_tracks += len(piece.table)
        self.n_sums = tuple(a + b for a, b in zip(self.n_sums, piece.n_sums))
        self.held.append(piece)
        if self.n_tracks > self.max_tracks and sum(len(p.table) for p in self.held) >= self.max_tracks:
            self._write_held()

    def finish(self) -> None:
        """Once every batch is in: a spill's last held batches go to disk too."""
        if self.spilled and self.held:
            self._write_held()

    def _write_held(self) -> None:
        from mapdiff.locate import _TrackSet

        # each batch's rows' tracks by their run-wide numbers, before the join renumbers them
        row_tracks = [np.where(p.row_track >= 0, p.row_track.astype(np.int64) + int(p.table["uid"].iloc[0]), -1)
                      if len(p.table) else np.full(len(p.row_track), -1, dtype=np.int64) for p in self.held]
        self._write(_TrackSet.join(self.held), row_tracks)  # (empties the held list)

    def _write(self, piece, row_tracks) -> None:
        from mapdiff.io import spilling

        with spilling():
            self._write_folder(piece, row_tracks)

    def _write_folder(self, piece, row_tracks) -> None:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mapdiff-tracks-")
        folder = Path(self._tmp.name) / str(len(self.folders))
        folder.mkdir()
        row, col = self._cell(*points_of_tracks(piece.table))
        key = _key(row, col)
        order = np.argsort(key, kind="stable")
        count = np.diff(piece.frame_ptr)[order]
        ptr = np.r_[0, np.cumsum(count)].astype(np.int64)
        at = np.repeat(piece.frame_ptr[:-1][order] - ptr[:-1], count) + np.arange(ptr[-1])
        arrays = {"key": key[order], "frame_ptr": ptr, "frame_t": piece.frame_t[at]}
        arrays.update({f"row_track_{k}": r for k, r in enumerate(row_tracks)})
        arrays.update({f"col_{c}": piece.table[c].to_numpy()[order] for c in piece.table.columns})
        # only the names of the piece's own trips (a part's may be every trip of the file)
        used = np.unique(arrays["col_trip"])
        arrays["col_trip"] = np.searchsorted(used, arrays["col_trip"])
        for name, a in arrays.items():
            np.save(folder / f"{name}.npy", a)
        with open(folder / "meta.pkl", "wb") as f:
            pickle.dump({"columns": list(piece.table.columns), "idents": piece.idents,
                         "value_names": piece.value_names, "trip_names": piece.trip_names[used],
                         "n_batches": len(row_tracks)}, f)
        self.cells = self.cells.add(pd.Series(key).value_counts(), fill_value=0).astype(np.int64)
        self.folders.append(folder)

    def _cell(self, x, y):
        return np.floor(y / self.cell_m).astype(np.int64), np.floor(x / self.cell_m).astype(np.int64)

    def regions(self) -> list[tuple]:
        """The regions, (row0, row1, col0, col1) in cells, ends exclusive (the outer ones
        unbounded), cut until each with its ring of cells holds at most ``max_tracks``."""
        key = self.cells.index.to_numpy(np.int64)
        row, col = _unkey(key)
        n = self.cells.to_numpy()
        out = []
        todo = [(-np.inf, np.inf, -np.inf, np.inf)]
        while todo:
            r0, r1, c0, c1 = todo.pop()
            inside = (row >= r0) & (row < r1) & (col >= c0) & (col < c1)
            ring = (row >= r0 - 1) & (row < r1 + 1) & (col >= c0 - 1) & (col < c1 + 1)
            if not inside.any():
                continue
            rows, cols = row[inside], col[inside]
            height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
            if n[ring].sum() <= self.max_tracks or height == width == 1:
                out.append((r0, r1, c0, c1))
                continue
            # the longer side, at the median of the tracks (the cut between two cells)
            along = rows if height >= width else cols
            w = n[inside]
            order = np.argsort(along, kind="stable")
            half = along[order][np.searchsorted(np.cumsum(w[order]), 0.5 * w.sum())]
            cut = max(half, along.min() + 1)  # (both sides keep a cell)
            if height >= width:
                todo += [(r0, cut, c0, c1), (cut, r1, c0, c1)]
            else:
                todo += [(r0, r1, c0, cut), (r0, r1, cut, c1)]
        return sorted(out, key=lambda r: (r[0], r[2]))

    def owns(self, region, x, y) -> np.ndarray:
        """Whether each point (local metres) lies in ``region``."""
        r0, r1, c0, c1 = region
        row, col = self._cell(x, y)
        return (row >= r0) & (row < r1) & (col >= c0) & (col < c1)

    def gather(self, region):
        """The spilled tracks of ``region`` and its halo as one :class:`mapdiff.locate._TrackSet`
        (the run's codes by name, the tracks by trip; its ``n_sums`` the whole run's)."""
        from mapdiff.locate import _TrackSet

        r0, r1, c0, c1 = region
        cells = self.cells.index.to_numpy(np.int64)
        row, col = _unkey(cells)
        lo_r, hi_r = max(r0 - 1, row.min()), min(r1, row.max() + 1)
        lo_c, hi_c = max(c0 - 1, col.min()), min(c1, col.max() + 1)
        pieces = []
        for folder in self.folders:
            key = np.load(folder / "key.npy", mmap_mode="r")
            rows = np.arange(int(lo_r), int(hi_r) + 1)
            lo = np.searchsorted(key, _key(rows, int(lo_c)))
            hi = np.searchsorted(key, _key(rows, int(hi_c)), side="right")
            idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(rows) else np.zeros(0, int)
            if not len(idx):
                continue
            with open(folder / "meta.pkl", "rb") as f:
                meta = pickle.load(f)
            col_of = {c: np.load(folder / f"col_{c}.npy", mmap_mode="r") for c in meta["columns"]}
            near = points_of_tracks({c: col_of[c][idx] for c in ("x", "y", "first_x", "first_y")})
            idx = idx[self._near(region, *near)]
            if not len(idx):
                continue
            idx = idx[np.argsort(col_of["uid"][idx], kind="stable")]  # (the batch's own order)
            ptr_all = np.load(folder / "frame_ptr.npy", mmap_mode="r")
            count = ptr_all[idx + 1] - ptr_all[idx]
            ptr = np.r_[0, np.cumsum(count)].astype(np.int64)
            at = np.repeat(ptr_all[idx] - ptr[:-1], count) + np.arange(ptr[-1])
            table = pd.DataFrame({c: np.asarray(col_of[c][idx]) for c in meta["columns"]})
            frame_t = np.asarray(np.load(folder / "frame_t.npy", mmap_mode="r")[at])
            pieces.append(_TrackSet(table, ptr, frame_t, meta["idents"], meta["value_names"], meta["trip_names"],
                                    np.zeros(0, dtype=np.int32), (0, 0)))
        if not pieces:
            return None
        tracks = _TrackSet.join(pieces)
        tracks.n_sums = self.n_sums
        return tracks

    def _near(self, region, x, y) -> np.ndarray:
        """Whether each point lies within ``halo_m`` of ``region``."""
        r0, r1, c0, c1 = (v * self.cell_m for v in region)
        dx = np.maximum(np.maximum(c0 - x, x - c1), 0.0)
        dy = np.maximum(np.maximum(r0 - y, y - r1), 0.0)
        return np.hypot(dx, dy) <= self.halo_m

    def row_tracks(self):
        """Per spilled batch, each of its rows' track (``uid``; -1: none), in batch order."""
        for folder in self.folders:
            with open(folder / "meta.pkl", "rb") as f:
                n_batches = pickle.load(f)["n_batches"]
            for k in range(n_batches):
                yield np.load(folder / f"row_track_{k}.npy")


def points_of_tracks(table):
    """Each track's point: its fit, or its first observer where its rays never part (a weak
    object stands there)."""
    x, y = np.asarray(table["x"]), np.asarray(table["y"])
    return (np.where(np.isfinite(x), x, np.asarray(table["first_x"])),
            np.where(np.isfinite(y), y, np.asarray(table["first_y"])))


#: a cell's key: its row and column, each shifted to be non-negative, in one int64 ordered by
#: row, then column (a region's cells of one row are one run of keys)
_SHIFT = 1 << 30


def _key(row, col):
    return ((np.asarray(row, dtype=np.int64) + _SHIFT) << 31) | (np.asarray(col, dtype=np.int64) + _SHIFT)


def _unkey(key):
    key = np.asarray(key, dtype=np.int64)
    return (key >> 31) - _SHIFT, (key & ((1 << 31) - 1)) - _SHIFT
