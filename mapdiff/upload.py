"""The cars' side of a plan, simulated (the ``upload`` stage): of all the detections the
simulator rendered (as if every second of every trip were filmed), keep those inside the
requested clips, as the detector would see them once the clips are uploaded."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

#: a dashcam's 1080p H.264 stream, about 8 Mbit/s, what a clip costs to send by default
BITRATE_MBPS = 8.0


@dataclass
class Upload:
    clips: int
    clip_seconds: float
    bytes: float
    detections: int  # rendered in all
    kept: int  # inside the clips

    def summary(self) -> dict:
        return {"clips": self.clips, "clip_seconds": round(self.clip_seconds, 3), "bytes": round(self.bytes),
                "detections": self.detections, "detections_in_clips": self.kept}


def upload_file(detections_path, clips: pd.DataFrame, out_path, *, bitrate_mbps: float = BITRATE_MBPS,
                batch_rows: int = 1_000_000, progress=None) -> Upload:
    """Write the detections of ``detections_path`` that fall inside ``clips``
    (:func:`mapdiff.clips.read_clips`) to ``out_path`` (Parquet, same columns), streaming."""
    import pyarrow.parquet as pq

    from mapdiff.clips import merged, within
    from mapdiff.errors import InputError
    from mapdiff.io import open_parquet
    from mapdiff.schema import time_seconds

    total = kept = 0
    with open_parquet(detections_path) as pf:
        names = pf.schema_arrow.names
        missing = [c for c in ("trip_id", "t") if c not in names]
        if missing:
            msg = f"{detections_path}: missing column(s) {missing}; found columns {names}"
            raise InputError(msg)
        with pq.ParquetWriter(out_path, pf.schema_arrow) as writer:
            for batch in pf.iter_batches(batch_size=batch_rows):
                keys = batch.select(["trip_id", "t"]).to_pandas()
                t = time_seconds(keys["t"], source=str(detections_path))
                mask = within(keys["trip_id"].to_numpy(), t, t, clips)
                writer.write_batch(batch.filter(mask))
                total += batch.num_rows
                kept += int(mask.sum())
                if progress is not None:
                    progress(batch.num_rows)
    runs = merged(clips) if len(clips) else clips
    seconds = float((runs["t1"] - runs["t0"]).sum()) if len(runs) else 0.0
    return Upload(clips=len(clips), clip_seconds=seconds, bytes=seconds * bitrate_mbps * 1e6 / 8.0, detections=total,
                  kept=kept)



def check_tasks(store, clips: pd.DataFrame, *, source: str) -> None:
    """Refuse clips whose tasks the store does not hold (the plan wrote to another store)."""
    from mapdiff.errors import InputError

    missing = set(clips["task_id"]) - set(store.list()["task_id"])
    if missing:
        msg = (f"{source}: {len(missing):,} tasks are not in the task store {store.url} (e.g. {min(missing)}); "
               "give the --store the plan wrote to")
        raise InputError(msg)


def mark_uploaded(store, clips: pd.DataFrame) -> int:
    """Move the clips' free pending tasks through requested to uploaded, as the cars' upload
    would. Returns how many became uploaded."""
    ids = clips["task_id"].tolist()
    store.set_many(ids, "requested", expect="pending")
    return store.set_many(ids, "uploaded", expect="requested")
