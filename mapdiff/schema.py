"""Column contracts between stages, checked on read.

Each ``validate_*`` takes a frame and the name of the file it came from, and either returns a
normalised copy or raises :class:`~mapdiff.errors.InputError` naming the file, the column, what
was expected and what was found.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mapdiff.errors import InputError

#: the kinds of map change: what the simulator plants, diff reports and evaluate scores
CHANGE_KINDS = ("object_added", "object_removed", "object_moved", "value_changed", "road_missing",
                "oneway_reversed", "road_closed")


#: each stage file's columns, as a reader checks them (a point geometry may stand for lon, lat)
CONTRACTS = {
    "traces": ("trip_id", "t", "lon", "lat"),
    "matched": ("trip_id", "t", "lon", "lat", "edge_id", "offset_m", "matched_lon", "matched_lat", "distance_m",
                "state", "confidence"),
    "paths": ("trip_id", "seq", "edge_id", "t_enter", "t_exit"),
    "coverage": ("edge_id", "passes"),
    "observations": ("trip_id", "t", "class", "value", "score", "lon", "lat", "bearing_deg", "bearing_sigma_deg",
                     "range_m", "range_sigma_m"),
    "objects": ("object_id", "class", "value", "lon", "lat", "sigma_m", "n_observations", "n_trips"),
}
#: what writes each of them, for the error that meets a file of another kind
WRITTEN_BY = {"traces": "GPS traces", "matched": "matched fixes (mapdiff match -o)",
              "paths": "matched paths (mapdiff match --paths)", "coverage": "coverage (mapdiff coverage -o)",
              "observations": "observations (mapdiff observe -o)", "objects": "objects (mapdiff locate -o)"}


def check_contract(df: pd.DataFrame, name: str, source: str) -> None:
    """Raise InputError unless ``df`` has the columns of the contract ``name`` (a key of
    :data:`CONTRACTS`); the message says what the file looks like instead, when it has another
    contract's columns."""
    have = set(map(str, df.columns))
    if "geometry" in have:
        have |= {"lon", "lat"}
    missing = [c for c in CONTRACTS[name] if c not in have]
    if not missing:
        return
    looks = [other for other, cols in CONTRACTS.items() if other != name and set(cols) <= have]
    if looks:
        best = max(looks, key=lambda other: len(CONTRACTS[other]))
        msg = (f"{source}: expected {WRITTEN_BY[name]}; found {WRITTEN_BY[best]} "
               f"(missing column(s) {', '.join(map(repr, missing))})")
        raise InputError(msg)
    require(df, missing, source)


def timestamps(seconds, *, naive: bool = False) -> pd.DatetimeIndex:
    """UTC timestamps (millisecond resolution, the contracts' ``t``) from float seconds since
    the epoch; ``naive``: without the time zone (for inputs whose times had none)."""
    ms = np.round(np.asarray(seconds, dtype=np.float64) * 1e3).astype(np.int64)
    ts = pd.to_datetime(ms, unit="ms", utc=True)
    return ts.tz_localize(None) if naive else ts


def numbers(df: pd.DataFrame, column: str, source: str, *, integer: bool = False, missing: bool = False) -> np.ndarray:
    """Column ``column`` as float64 (int64 with ``integer``, unless ``missing``), or InputError
    naming the file, the column and what it holds instead: not numbers, missing or infinite
    values (``missing``: allowed, as NaN; an all-missing column of any type is then NaN), or, with
    ``integer``, fractions."""
    col = df[column]
    if len(col) == 0:  # (as in time_seconds)
        return np.zeros(0, dtype=np.int64 if integer and not missing else np.float64)
    if missing and col.isna().all():
        return np.full(len(col), np.nan)
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        msg = f"{source}: column {column!r} must be {'whole ' if integer else ''}numbers; found dtype {col.dtype}"
        raise InputError(msg)
    out = col.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(out)
    if bad.any() and not missing:
        row = int(np.flatnonzero(bad)[0])
        msg = f"{source}: column {column!r} has {int(bad.sum())} missing or infinite values (first at row {row})"
        raise InputError(msg)
    if integer:
        frac = ~bad & (out != np.round(out))
        if frac.any():
            row = int(np.flatnonzero(frac)[0])
            msg = f"{source}: column {column!r} must be whole numbers; found {out[row]!r} at row {row}"
            raise InputError(msg)
        if not missing:
            return out.astype(np.int64)
    return out


def flags(df: pd.DataFrame, column: str, source: str, *, missing: bool = False) -> np.ndarray:
    """Column ``column`` as booleans (False where absent), or InputError naming the file and the
    column when it holds anything but true/false (``missing``: an all-missing column is False,
    and so are missing values)."""
    if column not in df:
        return np.zeros(len(df), dtype=bool)
    col = df[column]
    if missing and col.isna().all():
        return np.zeros(len(col), dtype=bool)
    if not pd.api.types.is_bool_dtype(col):
        msg = f"{source}: column {column!r} must be true/false; found dtype {col.dtype}"
        raise InputError(msg)
    return col.fillna(False).to_numpy(bool)


def require(df: pd.DataFrame, columns, source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        import difflib

        hints = []
        for c in missing:
            close = difflib.get_close_matches(c, [str(x) for x in df.columns], n=1, cutoff=0.6)
            hints.append(f"{c!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        msg = (
            f"{source}: missing column(s) {', '.join(hints)}; "
            f"found columns {[str(c) for c in df.columns]}"
        )
        raise InputError(msg)


def time_seconds(values: pd.Series, *, source: str, column: str = "t") -> np.ndarray:
    """Convert a time column (UTC timestamps or float seconds) to float64 seconds."""
    if len(values) == 0:  # an empty column holds no wrong value, whatever its type (files keep none)
        return np.zeros(0)
    if pd.api.types.is_datetime64_any_dtype(values):
        s = values
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        if s.isna().any():
            msg = f"{source}: column {column!r} has {int(s.isna().sum())} missing timestamps"
            raise InputError(msg)
        ns = s.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        return ns.astype(np.float64) / 1e9
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        out = values.to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(out).all():
            msg = f"{source}: column {column!r} has {int((~np.isfinite(out)).sum())} NaN or infinite times"
            raise InputError(msg)
        return out
    msg = (
        f"{source}: column {column!r} must be UTC timestamps or float seconds; "
        f"found dtype {values.dtype}"
    )
    raise InputError(msg)


def _float_column(df: pd.DataFrame, column: str, source: str) -> np.ndarray:
    col = df[column]
    if len(col) == 0:  # (as in time_seconds)
        return np.zeros(0)
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        msg = f"{source}: column {column!r} must be float degrees; found dtype {col.dtype}"
        raise InputError(msg)
    out = col.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(out)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        msg = f"{source}: column {column!r} has {int(bad.sum())} NaN or infinite values (first at row {first})"
        raise InputError(msg)
    return out


def lonlat_columns(df: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Return validated WGS84 ``lon``, ``lat`` arrays from columns or a point geometry."""
    if "lon" not in df.columns and "lat" not in df.columns and hasattr(df, "geometry"):
        try:
            geom = df.geometry.to_crs(4326)
        except Exception as exc:
            msg = f"{source}: cannot read point geometry as lon/lat ({exc})"
            raise InputError(msg) from None
        if len(geom) and not (geom.geom_type == "Point").all():
            msg = f"{source}: geometry must be points; found {sorted(set(geom.geom_type))}"
            raise InputError(msg)
        lon = geom.x.to_numpy(dtype=np.float64)
        lat = geom.y.to_numpy(dtype=np.float64)
        frame = pd.DataFrame({"lon": lon, "lat": lat})
        return _float_column(frame, "lon", source), _float_column(frame, "lat", source)
    require(df, ["lon", "lat"], source)
    lon = _float_column(df, "lon", source)
    lat = _float_column(df, "lat", source)
    if len(lat) and (np.abs(lat) > 90).any():
        row = int(np.flatnonzero(np.abs(lat) > 90)[0])
        hint = " (are lon and lat swapped?)" if (np.abs(lon) <= 90).all() else ""
        msg = f"{source}: column 'lat' must be in [-90, 90]; found {lat[row]!r} at row {row}{hint}"
        raise InputError(msg)
    if len(lon) and (np.abs(lon) > 180).any():
        row = int(np.flatnonzero(np.abs(lon) > 180)[0])
        msg = f"{source}: column 'lon' must be in [-180, 180]; found {lon[row]!r} at row {row}"
        raise InputError(msg)
    return lon, lat


def validate_traces(df: pd.DataFrame, source: str = "traces") -> pd.DataFrame:
    """Check the traces contract and return a frame sorted by trip and time.

    ``lon``/``lat`` become validated float64 (taken from a point geometry if the file has one
    instead); the private columns ``_t_s`` (float seconds) and ``_row`` (input row number) are
    added, and ``_trip`` (the trip id as text, what trips group by); other columns pass through
    unchanged. Rows with the
    same trip and time keep their input order.
    """
    if len(df.columns) == 0 or len(df) == 0:
        msg = f"{source}: the file has no rows; expected GPS fixes with columns trip_id, t, lon, lat"
        raise InputError(msg)
    require(df, ["trip_id", "t"], source)
    lon, lat = lonlat_columns(df, source)
    t_s = time_seconds(df["t"], source=source)
    trip = df["trip_id"]
    if trip.isna().any():
        msg = f"{source}: column 'trip_id' has {int(trip.isna().sum())} missing values"
        raise InputError(msg)
    out = pd.DataFrame(df).copy()
    if hasattr(out, "geometry") and "geometry" in out.columns:
        out = pd.DataFrame(out.drop(columns="geometry"))
    # trips group by their text; the column keeps the user's type (a string, or ints)
    out["_trip"] = trip.astype(str).to_numpy()
    out["lon"], out["lat"] = lon, lat
    out["_t_s"], out["_row"] = t_s, np.arange(len(out))
    out = out.sort_values(["_trip", "_t_s", "_row"], kind="stable").reset_index(drop=True)
    return out
