"""The results store: matched points, located objects and diffs in PostgreSQL/PostGIS tables
(schema: ``migrations/0002_results.postgresql.sql``, applied by ``mapdiff tasks migrate``),
beside the task store in the same database. Files stay the interface between stages; the
store is where a map team queries the results (spatial GiST indexes on every geometry).

Every row carries the run's id and the shard that wrote it. :func:`write_results` replaces a
shard's rows in one transaction (delete, then COPY in batches), so a retried shard never
leaves two copies or half of one, and a database that goes down mid-write keeps the old rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mapdiff.errors import StoreError, TransientError

#: stage -> (table, [(column, how to get it from the stage's frame)])
TABLES = {
    "match": ("matched_points", ["trip_id", "t", "lon", "lat", "edge_id", "offset_m", "distance_m", "state",
                                 "confidence"]),
    "locate": ("objects", ["object_id", "class", "value", "sigma_m", "n_observations", "n_trips", "t_first", "t_last",
                           "score", "weak"]),
    "diff": ("diffs", ["diff_id", "kind", "class", "feature_id", "edge_ids", "old_value", "object_id", "new_value",
                       "distance_m", "confidence"]),
}
#: columns of whole numbers (pandas may hold them as floats with NaN for missing)
WHOLE = {"edge_id", "object_id", "n_observations", "n_trips", "feature_id"}
#: rows per batch of the COPY stream
BATCH_ROWS = 50_000


def _geometries(stage: str, frame: pd.DataFrame) -> list:
    """EWKT of each row's geometry (None where it has none): the matched point, the object, the
    diff's own geometry (in WGS84)."""
    if stage == "match":
        lon, lat = frame["matched_lon"].to_numpy(float), frame["matched_lat"].to_numpy(float)
    elif stage == "locate":
        lon, lat = frame["lon"].to_numpy(float), frame["lat"].to_numpy(float)
    else:
        geoms = frame.geometry.to_crs(4326) if frame.crs is not None else frame.geometry
        return [None if g is None or g.is_empty else f"SRID=4326;{g.wkt}" for g in geoms]
    ok = np.isfinite(lon) & np.isfinite(lat)
    return [f"SRID=4326;POINT({float(x)!r} {float(y)!r})" if k else None for x, y, k in zip(lon, lat, ok)]


def _column(frame, name):
    if name not in frame:
        return np.full(len(frame), None)
    col = frame[name]
    if name in WHOLE and pd.api.types.is_numeric_dtype(col):
        col = col.astype("Int64")
    return col.astype(object).to_numpy()


def _cell(v):
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, list | tuple | np.ndarray):
        return ",".join(map(str, v))
    return v


def write_results(url: str, stage: str, frames, *, run_id: str, shard: int = 0) -> int:
    """Replace the rows of ``(run_id, shard)`` in ``stage``'s table with those of ``frames`` (a
    frame, or frames one after another: a big output read back batch by batch), in one
    transaction; returns the rows written. The store must be a migrated PostgreSQL database."""
    import psycopg

    from mapdiff.store import open_store

    if not str(url).startswith(("postgresql://", "postgres://")):
        msg = f"--store: results are written to PostgreSQL/PostGIS only (a postgresql:// URL); found {url!r}"
        raise StoreError(msg)
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    table, columns = TABLES[stage]
    written = 0
    with open_store(url) as store:
        try:
            with store.conn.transaction(), store.conn.cursor() as cur:
                cur.execute(f"DELETE FROM {table} WHERE run_id = %s AND shard = %s", (run_id, shard))
                names = ", ".join(["run_id", "shard", *columns, "geom"])
                with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for frame in frames:
                        for start in range(0, len(frame), BATCH_ROWS):
                            part = frame.iloc[start:start + BATCH_ROWS]
                            geoms, values = _geometries(stage, part), [_column(part, c) for c in columns]
                            for i in range(len(part)):
                                copy.write_row((run_id, shard, *(_cell(v[i]) for v in values), geoms[i]))
                        written += len(frame)
        except psycopg.OperationalError as exc:  # the server went away: the transaction is gone whole
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            msg = f"results store {store.url}: lost while writing {table} ({first}); nothing of this shard was kept"
            raise TransientError(msg) from None
    return written
