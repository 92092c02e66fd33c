"""GPS traces as fleets deliver them besides Parquet: CSV and GPX.

Both become a frame of the traces contract (``trip_id``, ``t``, ``lon``, ``lat`` and any other
CSV columns), which :func:`mapdiff.schema.validate_traces` then checks like a Parquet file's.

- CSV: a header row naming the contract's columns; ``t`` as ISO 8601 text (a time without a
  zone is UTC) or as seconds since 1970-01-01 UTC (numbers); ``trip_id`` is read as text.
- GPX 1.0/1.1: one trip per track segment, ``trip_id`` the track's name (else ``track-I``)
  and ``/J`` the segment's number; every point needs its ``<time>``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mapdiff.errors import InputError

#: file name endings read as CSV or GPX by :func:`read_traces_file` (any other: Parquet)
CSV_SUFFIXES = (".csv", ".csv.gz")
GPX_SUFFIXES = (".gpx",)


def trace_format(path) -> str:
    """"csv", "gpx" or "parquet", by the file name."""
    name = str(path).split("?")[0].lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(GPX_SUFFIXES):
        return "gpx"
    return "parquet"


def read_traces_file(path) -> pd.DataFrame:
    """Read a CSV or GPX traces file (local or remote) into a frame with UTC timestamps ``t``."""
    import fsspec

    from mapdiff.io import check_exists, storage

    check_exists(path)
    kind = trace_format(path)
    with storage(path, "read"), fsspec.open(str(path), "rb", compression="infer") as f:
        raw = f.read()
    return _csv(raw, path) if kind == "csv" else _gpx(raw, path)


def _csv(raw: bytes, path) -> pd.DataFrame:
    import io

    try:
        df = pd.read_csv(io.BytesIO(raw), dtype={"trip_id": str, "vehicle_id": str})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read as CSV ({str(exc).splitlines()[0]})"
        raise InputError(msg) from None
    if "t" in df.columns:
        df["t"] = parse_times(df["t"], source=str(path))
    return df


def parse_times(values: pd.Series, *, source: str, column: str = "t") -> pd.Series:
    """UTC timestamps from ISO 8601 text (zone-less: UTC) or numbers (seconds since the epoch)."""
    from mapdiff.schema import timestamps

    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        seconds = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(seconds)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            msg = f"{source}: column {column!r} has {int(bad.sum())} missing times (first at row {row})"
            raise InputError(msg)
        return pd.Series(timestamps(seconds), index=values.index)
    text = values.astype("string")
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        msg = (f"{source}: column {column!r} must be ISO 8601 times (2026-01-05T08:00:00Z) or seconds since "
               f"1970-01-01 UTC; found {values.iloc[row]!r} at row {row}")
        raise InputError(msg)
    return parsed


def _gpx(raw: bytes, path) -> pd.DataFrame:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        msg = f"{path}: cannot read as GPX ({exc})"
        raise InputError(msg) from None
    if _local(root.tag) != "gpx":
        msg = f"{path}: expected a GPX document (<gpx>); found <{_local(root.tag)}>"
        raise InputError(msg)
    trips, times, lons, lats = [], [], [], []
    for i, trk in enumerate(_children(root, "trk")):
        name = next((c.text.strip() for c in _children(trk, "name") if c.text and c.text.strip()), f"track-{i}")
        for j, seg in enumerate(_children(trk, "trkseg")):
            for k, pt in enumerate(_children(seg, "trkpt")):
                when = next((c.text.strip() for c in _children(pt, "time") if c.text), None)
                if when is None:
                    msg = f"{path}: track {name!r} segment {j} point {k} has no <time>; every fix needs one"
                    raise InputError(msg)
                try:
                    lons.append(float(pt.attrib["lon"]))
                    lats.append(float(pt.attrib["lat"]))
                except (KeyError, ValueError):
                    msg = (
                        f"{path}: track {name!r} segment {j} point {k}: expected lat and lon numbers; found {pt.attrib}"
                    )
                    raise InputError(msg) from None
                trips.append(f"{name}/{j}")
                times.append(when)
    if not trips:
        msg = f"{path}: no track points (<trk><trkseg><trkpt>) in the GPX file"
        raise InputError(msg)
    t = parse_times(pd.Series(times), source=str(path))
    return pd.DataFrame({"trip_id": trips, "t": t, "lon": lons, "lat": lats})


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node, name: str):
    return [c for c in node if _local(c.tag) == name]
