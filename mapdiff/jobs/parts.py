"""Shard outputs and their merge.

Each shard's output carries, in its Parquet metadata, the stage, the run's id and its place
``I/N``; :func:`merge` refuses parts of different runs or stages, a part given twice and a
missing part, then joins them: coverages add up (see :func:`mapdiff.coverage.merge_coverage`),
the other stages' rows are concatenated in the order one unsharded run writes them.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from mapdiff.errors import InputError
from mapdiff.jobs.shards import Shard

#: the key in a Parquet file's metadata that labels a shard output
META_KEY = "mapdiff.part"

#: the key one unsharded run writes each stage's rows in order of; a key's rows (a trip's by
#: time, an object) belong to one shard, which writes them in the unsharded order, so the merge
#: interleaves whole runs of one key
KEY = {
    "match": "trip_id",
    "paths": "trip_id",
    "observe": "trip_id",
    "locate": "object_id",
    "coverage": "edge_id",
}
#: the tables of a simulation folder (mapdiff.simulate) and the key of their rows; the other
#: files (the stale map, the camera, the planted changes, the edges) are the world's, the same in
#: every shard
SIM_KEY = {
    "traces": "trip_id", "detections": "detection_id", "observations": "detection_id",
    "truth/fixes": "trip_id", "truth/routes": "trip_id", "truth/detections": "detection_id",
}
#: the layers of a diffs GeoPackage and the order of their rows
DIFF_ORDER = {"diffs": ["diff_id"], "unverified": ["feature_id"]}
STAGES = (*KEY, "simulate", "diff")


def run_id(stage: str, params: dict) -> str:
    """A run's id, derived from what determines its output: the stage, its options and the
    inputs' fingerprints (size and modification time, or the object's ETag), so that every shard
    and every retried attempt of one run computes the same id without being told it, and a run
    on other inputs or options gets another."""
    from mapdiff.io import fingerprint

    described = {k: (v, fingerprint(v)) if isinstance(v, str) else v for k, v in sorted(params.items())}
    text = json.dumps([stage, described], default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def label(stage: str, run: str, shard: Shard) -> dict:
    """The metadata a shard output carries."""
    return {META_KEY: json.dumps({"stage": stage, "run_id": run, "shard": shard.index, "shards": shard.count})}


def part_files(paths) -> list[str]:
    """The parts of ``paths``: a folder stands for the ``part-*`` entries in it (a retried
    attempt's leftover temporary files, hidden, are not parts), unless it is a simulation
    folder, which is a part itself."""
    from mapdiff.io import list_parts

    files = []
    for p in paths:
        files.extend([str(p)] if _is_sim(p) else list_parts(p))
    return files


def _is_sim(path) -> bool:
    from mapdiff.io import exists

    return exists(f"{str(path).rstrip('/')}/traces.parquet")


def _labels(files) -> list[dict | None]:
    from mapdiff.io import read_metadata

    out = []
    for f in files:
        raw = read_metadata(f"{f}/traces.parquet" if _is_sim(f) else f).get(META_KEY)
        out.append(json.loads(raw) if raw else None)
    return out


def check_parts(stage: str, files: list[str]) -> None:
    """Refuse parts that are not one whole run of ``stage``; unlabelled parts pass only for
    coverage (windows of time merge too) and only when none is labelled."""
    labels = _labels(files)
    if all(lab is None for lab in labels):
        if stage == "coverage":
            return
        msg = f"{files[0]}: not a shard output of mapdiff {stage} (no {META_KEY!r} metadata); run it with --shard I/N"
        raise InputError(msg)
    for f, lab in zip(files, labels):
        if lab is None:
            msg = f"{f}: not a shard output (no {META_KEY!r} metadata), unlike {files[0]}"
            raise InputError(msg)
        if lab["stage"] != stage:
            msg = f"{f}: a shard output of mapdiff {lab['stage']}; expected {stage}"
            raise InputError(msg)
    first = labels[0]
    for f, lab in zip(files, labels):
        if (lab["run_id"], lab["shards"]) != (first["run_id"], first["shards"]):
            msg = (f"{f}: shard {lab['shard']}/{lab['shards']} of run {lab['run_id']}; expected a shard of "
                   f"run {first['run_id']} in {first['shards']} shards like {files[0]} (parts of different runs)")
            raise InputError(msg)
    seen = pd.Series([lab["shard"] for lab in labels])
    twice = sorted(set(seen[seen.duplicated()]))
    if twice:
        msg = f"shard(s) {twice} of run {first['run_id']} given twice"
        raise InputError(msg)
    missing = sorted(set(range(first["shards"])) - set(seen))
    if missing:
        msg = f"run {first['run_id']}: shard(s) {missing[:10]} of {first['shards']} missing"
        raise InputError(msg)


def merge(stage: str, paths, output) -> int:
    """The shard outputs ``paths`` (files or folders of parts) of one run joined into the
    output one unsharded run gives, written to ``output``; returns its number of rows. Coverages
    are added up in memory (a row per edge); the other stages' rows stream through, a batch of
    each part at a time, so a month's observations merge in bounded memory."""
    from mapdiff.io import read_table, table_writer, write_table

    if stage not in KEY:
        msg = f"stage must be one of {list(KEY)}; found {stage!r}"
        raise InputError(msg)
    files = part_files(paths)
    check_parts(stage, files)
    if stage == "coverage":
        from mapdiff.coverage import merge_coverage

        merged = merge_coverage([read_table(f) for f in files])
        write_table(merged, output)
        return len(merged)
    with table_writer(output) as out:
        return _stream_sorted(files, KEY[stage], out)


def merge_simulation(paths, out_dir) -> dict:
    """The shard folders ``paths`` of one simulation (``mapdiff simulate --shard``) joined into
    the folder one unsharded run writes, at ``out_dir``: the world's files from the first part,
    the vehicles' tables concatenated in order, the objects' sighting counts added up, the
    counts in meta.json summed. Returns the merged meta."""
    import shutil

    from mapdiff.io import atomic_dir, local_copy, read_json, read_table, table_writer, write_table

    parts = [p.rstrip("/") for p in part_files(paths)]
    check_parts("simulate", parts)
    first = parts[0]
    with atomic_dir(out_dir) as out:
        for name in ("map.gpkg", "camera.json"):
            with local_copy(f"{first}/{name}") as src:
                shutil.copyfile(src, f"{out}/{name}")
        for name in ("truth/changes", "truth/edges"):  # (rewritten: without the shard's label)
            write_table(read_table(f"{first}/{name}.parquet"), f"{out}/{name}.parquet")
        seen = "observations" if _exists_all(parts, "observations.parquet") else "detections"
        for name, key in SIM_KEY.items():
            if name in ("detections", "observations") and name != seen:
                continue
            with table_writer(f"{out}/{name}.parquet") as writer:
                _stream_sorted([f"{p}/{name}.parquet" for p in parts], key, writer)
        objects = [read_table(f"{p}/truth/objects.parquet") for p in parts]
        merged = objects[0].copy()
        for col in ("n_detections", "n_trips_seen"):
            merged[col] = sum(o[col].to_numpy() for o in objects)
        write_table(merged, f"{out}/truth/objects.parquet")
        metas = [read_json(f"{p}/truth/meta.json") for p in parts]
        meta = metas[0]
        for key in ("trips", "fixes", "detections"):
            meta["counts"][key] = sum(m["counts"][key] for m in metas)
        with open(f"{out}/truth/meta.json", "w") as f:
            f.write(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def _concat_sorted(frames, order):
    """The frames as one, sorted stably by ``order``."""
    # empty parts carry no rows but may carry looser dtypes (object for an empty string column)
    full = [f for f in frames if len(f)] or frames[:1]
    both = pd.concat(full, ignore_index=True) if len(full) > 1 else full[0]
    return both.sort_values(order, kind="stable").reset_index(drop=True)


class _Cursor:
    """A part read batch by batch, as Arrow tables (its columns as stored: no conversion to a
    frame and back, no geometry rebuilt): the rows read and not yet written (``rows``), as runs
    of one key (run k's rows start at ``starts[k]``; its key ``keys[k]``, a plain value: a
    dictionary's text), and whether the file is read to its end."""

    def __init__(self, path: str, key: str, batch_rows: int):
        from mapdiff.io import read_arrow_batches

        self.path, self.key = path, key
        self._batches = read_arrow_batches(path, batch_rows=batch_rows)
        self.rows, self.starts, self.keys, self.done = None, np.zeros(0, dtype=np.int64), np.zeros(0), False

    def read_more(self) -> None:
        """Append the next batch with rows to the rows held (or mark the part read)."""
        batch = next(self._batches, None)
        while batch is not None and not len(batch):
            self.rows = batch if self.rows is None else self.rows  # (a part without rows: its columns)
            batch = next(self._batches, None)
        if batch is None:  # (a file of no rows gave one batch of none: self.rows holds its columns)
            self.done = True
            return
        if self.key not in batch.column_names:
            msg = f"{self.path}: missing column {self.key!r}; found {batch.column_names}"
            raise InputError(msg)
        starts, keys = _runs(batch.column(self.key).combine_chunks())
        held = self.rows is not None and len(self.rows)
        # a run may go on from the last batch; beyond that each run's key is greater than the last
        go_on = held and keys[0] == self.keys[-1]
        ahead = np.r_[self.keys[-1:], keys[1:] if go_on else keys] if held else keys
        if len(ahead) > 1 and not bool(np.all(ahead[1:] > ahead[:-1])):
            msg = f"{self.path}: rows not sorted by {self.key!r}, as a shard writes them"
            raise InputError(msg)
        if not held:
            self.rows, self.starts, self.keys = batch, starts, keys
            return
        if go_on:
            starts, keys = starts[1:], keys[1:]
        self.starts = np.r_[self.starts, starts + len(self.rows)]
        self.keys = np.r_[self.keys, keys]
        self.rows = _concat([self.rows, batch])

    def take_before(self, bound):
        """The rows of the runs whose key is below ``bound`` (None: all), no longer held, with
        their runs (starts, keys); None when there are none."""
        runs = len(self.keys) if bound is None else int(np.searchsorted(self.keys, bound, side="left"))
        if not runs:
            return None
        n = len(self.rows) if runs == len(self.keys) else int(self.starts[runs])
        head = (self.rows.slice(0, n), self.starts[:runs], self.keys[:runs])
        self.rows = self.rows.slice(n)
        self.starts, self.keys = self.starts[runs:] - n, self.keys[runs:]
        return head


def _runs(col) -> tuple[np.ndarray, np.ndarray]:
    """Where each run of one value of an Arrow array starts, and its value (a dictionary's text,
    not its index: parts have their own dictionaries)."""
    import pyarrow as pa

    if pa.types.is_dictionary(col.type):
        codes = col.indices.to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        return starts, np.asarray(col.dictionary.to_pylist(), dtype=object)[codes[starts]]
    values = col.to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return starts, values[starts]


def _concat(tables):
    """Arrow tables of one schema as one (the parts' metadata differ: their shard labels)."""
    import pyarrow as pa

    return pa.concat_tables([t.replace_schema_metadata(tables[0].schema.metadata) for t in tables])


def _stream_sorted(files, key, writer) -> int:
    """Write the rows of ``files`` with ``writer`` (a :class:`mapdiff.io.TableWriter`) in order
    of ``key``, batch by batch, holding about a batch of each file (``$MAPDIFF_BATCH_ROWS`` rows
    in all). Each file holds its rows in that order and all the rows of one key value, as a
    shard writes them (a trip, an object, a detection belongs to one shard): then the rows
    before the smallest key still being read are complete, and whole runs of one key interleave,
    each keeping its rows' order within its part. The output carries the first part's schema
    metadata but its shard label. Returns the number of rows."""
    from mapdiff.jobs.batches import batch_rows

    cursors = [_Cursor(f, key, max(1, batch_rows() // len(files))) for f in files]
    for c in cursors:
        c.read_more()
    meta = dict(cursors[0].rows.schema.metadata or {})
    meta.pop(META_KEY.encode(), None)
    total = 0
    while True:
        reading = [c for c in cursors if not c.done]
        bound = min(c.keys[-1] for c in reading) if reading else None
        chunks = [(k, chunk) for k, chunk in enumerate(c.take_before(bound) for c in cursors) if chunk is not None]
        if chunks:
            table = _interleave(chunks, key, files)
            writer.write_arrow(table.replace_schema_metadata(meta))
            total += len(table)
        if bound is None:
            break
        for c in reading:  # the part whose last key is the bound reads on, and a part emptied
            if not len(c.rows) or c.keys[-1] == bound:
                c.read_more()
    if not total:
        writer.write_arrow(cursors[0].rows.slice(0, 0).replace_schema_metadata(meta))
    return total


def _interleave(chunks, key, files):
    """The rows of the parts' ``chunks`` ((part, (rows, their runs' starts and keys of one ``key``
    value))) as one Arrow table, the runs in key order (a value in two parts is refused: shards
    own their keys)."""
    offset, starts, run_keys, part = 0, [], [], []
    for k, (chunk, s, keys) in chunks:
        starts.append(s + offset)
        run_keys.append(keys)
        part.append(np.full(len(s), k))
        offset += len(chunk)
    starts, run_keys, part = np.concatenate(starts), np.concatenate(run_keys), np.concatenate(part)
    by_key = np.argsort(run_keys, kind="stable")
    same = np.flatnonzero(run_keys[by_key][1:] == run_keys[by_key][:-1])
    if len(same):
        i, j = by_key[same[0]], by_key[same[0] + 1]
        msg = (f"{key} {np.asarray(run_keys[i]).item()!r} is in two parts, {files[part[i]]} and {files[part[j]]}; "
               "a shard's rows are its own")
        raise InputError(msg)
    both = _concat([chunk for _, (chunk, _, _) in chunks])
    mixed = _mixed_dictionaries(both)
    if len(chunks) > 1:  # (one part's runs are in order already)
        lengths = (np.r_[starts[1:], offset] - starts)[by_key]
        idx = np.repeat(starts[by_key] - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(offset)
        both = both.take(idx)
    return _own_dictionaries(both, mixed)


def _mixed_dictionaries(table) -> list[int]:
    """The dictionary columns of ``table`` whose chunks (parts, batches) carry different
    dictionaries (trip ids: each part its own) rather than one (a class's fixed list)."""
    import pyarrow as pa

    mixed = []
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            chunks = table.column(i).chunks
            if any(not c.dictionary.equals(chunks[0].dictionary) for c in chunks[1:]):
                mixed.append(i)
    return mixed


def _own_dictionaries(table, columns):
    """``table`` with the dictionaries of ``columns`` made of their own values, sorted, as
    concatenating categoricals of other categories and making them categoricals again gives."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i in columns:
        field = table.schema.field(i)
        values = table.column(i).cast(field.type.value_type)
        kinds = pc.drop_null(pc.unique(values))
        kinds = kinds.take(pc.sort_indices(kinds))
        codes = pc.index_in(values, value_set=kinds).cast(field.type.index_type).combine_chunks()
        table = table.set_column(i, field, pa.DictionaryArray.from_arrays(codes, kinds))
    return table


def _exists_all(parts, name) -> bool:
    from mapdiff.io import exists

    return all(exists(f"{p}/{name}") for p in parts)


def merge_diffs(paths, output) -> int:
    """The shard GeoPackages ``paths`` of one ``mapdiff diff`` run joined into the GeoPackage
    one unsharded run writes (layers ``diffs`` and ``unverified``, in their order). Returns the
    number of diffs."""
    from mapdiff.io import read_gpkg_layer, write_gpkg

    files = part_files(paths)
    check_parts("diff", files)
    layers = {name: _concat_sorted([read_gpkg_layer(f, name) for f in files], order)
              for name, order in DIFF_ORDER.items()}
    write_gpkg(layers, output)
    return len(layers["diffs"])
