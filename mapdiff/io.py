"""Reading and writing stage files: Parquet/GeoParquet and GeoPackage, local or ``s3://``.

Every reader names the file in its errors; every writer writes to a temporary name beside
the target and renames it into place, so a failed run never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from mapdiff.errors import InputError, MapdiffError, TransientError


def _is_remote(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def _storage_error(exc: BaseException, path, doing: str) -> MapdiffError | None:
    """The one-line error for a storage failure while ``doing`` on ``path`` (None: ``exc`` is
    not one): refused credentials and missing buckets are input errors (a retry meets them
    again); a server stopped or unreachable, a dropped connection, a full disk are transient."""
    if isinstance(exc, MapdiffError):
        return exc
    if isinstance(exc, PermissionError):
        return InputError(f"{path}: access denied ({exc}); check the credentials")
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{path}: not found ({exc})")
    if isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError)):
        return InputError(f"{path}: a file and a folder are in each other's way ({exc.strerror or exc})")
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError", "NoRegionError"):
        return InputError(f"{path}: no usable AWS credentials ({exc}); set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    module = type(exc).__module__.split(".")[0]
    if module in ("botocore", "aiobotocore", "aiohttp", "urllib3", "requests") or (
            isinstance(exc, OSError) and module != "pyarrow"):
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return TransientError(f"{path}: cannot {doing} ({reason})")
    return None


@contextlib.contextmanager
def storage(path, doing: str):
    """Turn a storage failure inside the block into one line naming ``path`` (see
    :func:`_storage_error`); other errors pass."""
    try:
        yield
    except Exception as exc:
        err = _storage_error(exc, path, doing)
        if err is None or err is exc:
            raise
        raise err from None


def spilling():
    """:func:`storage` for a stage's spill to the temporary folder (often another disk than the
    output's): a failure there, such as a full disk, names that folder, not the output being
    written around it."""
    import tempfile

    return storage(tempfile.gettempdir(), "spill there (TMPDIR chooses the disk)")


def exists(path) -> bool:
    """Whether ``path`` (local or remote) exists."""
    if _is_remote(path):
        fs, fspath = _fs(path)
        with storage(path, "reach it"):
            return fs.exists(fspath)
    return Path(path).exists()


def check_exists(path, *, file: bool = True) -> None:
    """Raise InputError unless ``path`` exists (and, with ``file``, is not a local folder: a
    reader would fail on it in ways that look like a broken disk)."""
    if not exists(path):
        msg = f"{path}: file not found"
        raise InputError(msg)
    if file and not _is_remote(path) and Path(path).is_dir():
        msg = f"{path}: expected a file; found a folder (merge shard outputs with mapdiff merge first)"
        raise InputError(msg)


def read_table(path, *, where=None, columns=None) -> pd.DataFrame:
    """Read a Parquet or GeoParquet file into a (Geo)DataFrame.

    A GeoParquet file comes back as a GeoDataFrame with its CRS; a geometry column without
    a CRS is an error, since every coordinate in mapdiff must say what it is. ``where``: a
    function of a batch of rows (a pyarrow Table) giving the mask of those to keep; the file is
    then read batch by batch, so only the kept rows are ever held (a shard's). ``columns``: read
    only these.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if where is not None:
        with open_parquet(path) as pf:
            columns = columns or plain_columns(pf.schema_arrow)
            try:
                kept = []
                for batch in pf.iter_batches(batch_size=1_000_000, columns=columns):
                    table = pa.Table.from_batches([batch])
                    kept.append(table.filter(where(table)))
            except KeyError as exc:  # the column ``where`` needs
                msg = f"{path}: missing column {exc.args[0]!r}; found columns {pf.schema_arrow.names}"
                raise InputError(msg) from None
            except Exception as exc:
                err = _storage_error(exc, path, "read")
                if err is not None:
                    raise err from None
                raise
            table = pa.concat_tables(kept) if kept else pf.schema_arrow.empty_table().select(columns or [])
            table = table.replace_schema_metadata(pf.schema_arrow.metadata)
        return table_frame(table, path)
    check_exists(path)
    try:
        if _is_remote(path):
            import fsspec

            with fsspec.open(str(path), "rb") as f:
                columns = columns or plain_columns(pq.read_schema(f))
                f.seek(0)
                table = pq.read_table(f, columns=columns)
        else:
            columns = columns or plain_columns(pq.read_schema(str(path)))
            table = pq.read_table(str(path), columns=columns)
    except Exception as exc:  # pyarrow raises several types for "not a Parquet file"
        err = _storage_error(exc, path, "read")
        if err is not None:
            raise err from None
        msg = f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc})"
        raise InputError(msg) from None
    return table_frame(table, path)


def read_batches(path, *, batch_rows: int = 1_000_000):
    """The rows of a Parquet file as frames of at most ``batch_rows`` rows, one after another
    (each as :func:`read_table` gives a whole file)."""
    for table in read_arrow_batches(path, batch_rows=batch_rows, plain=True):
        yield table_frame(table, path)


def read_arrow_batches(path, *, batch_rows: int = 1_000_000, plain: bool = False):
    """The rows of a Parquet file as Arrow tables of at most ``batch_rows`` rows, with the file's
    schema metadata; every column as stored (``plain``: those :func:`plain_columns` names). A
    file of no rows gives one table of no rows."""
    import pyarrow as pa

    with open_parquet(path) as pf, storage(path, "read"):
        columns = plain_columns(pf.schema_arrow) if plain else None
        if pf.metadata.num_rows == 0:  # one table of no rows: its columns (pyarrow yields no batch)
            schema = pf.schema_arrow
            yield schema.empty_table().select(columns if columns is not None else schema.names)
            return
        for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
            yield pa.Table.from_batches([batch]).replace_schema_metadata(pf.schema_arrow.metadata)


def read_traces(path, *, where=None) -> pd.DataFrame:
    """Read GPS traces: Parquet/GeoParquet, or CSV and GPX by the file name (see
    :mod:`mapdiff.formats`); ``where`` as in :func:`read_table`."""
    from mapdiff.formats import read_traces_file, trace_format

    if trace_format(path) == "parquet":
        return read_table(path, where=where)
    df = read_traces_file(path)
    if where is not None and len(df):
        import numpy as np
        import pyarrow as pa

        try:
            keep = where(pa.Table.from_pandas(df, preserve_index=False))
        except KeyError as exc:
            msg = f"{path}: missing column {exc.args[0]!r}; found columns {list(df.columns)}"
            raise InputError(msg) from None
        df = df[np.asarray(keep, dtype=bool)].reset_index(drop=True)
    return df


def plain_columns(schema) -> list[str] | None:
    """The columns to read of a GeoParquet file: all but its bounding-box columns, and but its
    geometry when it has the ``lon``, ``lat`` columns the contracts name; both only repeat what
    is there (None: read every column)."""
    import json

    raw = (schema.metadata or {}).get(b"geo")
    if raw is None:
        return None
    try:
        geo = json.loads(raw)
        skip = set(geo["columns"]) if {"lon", "lat"} <= set(schema.names) else set()
        for spec in geo["columns"].values():
            skip |= {v[0] if isinstance(v, list) else v for v in (spec.get("covering") or {}).get("bbox", {}).values()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a broken "geo" entry: _frame names it
    return [n for n in schema.names if n not in skip]


def table_frame(table, path) -> pd.DataFrame:
    """A pyarrow Table read from ``path`` as the readers here give it: a GeoDataFrame where the
    file is GeoParquet and its geometry was read without the ``lon``, ``lat`` columns (its
    geometry checked), else a DataFrame (also for a few columns of a GeoParquet file read
    without its geometry)."""
    import json

    geo = (table.schema.metadata or {}).get(b"geo")
    if geo is not None:
        try:
            primary = json.loads(geo).get("primary_column")
        except ValueError:
            primary = None  # unreadable metadata: the conversion below says what is wrong
        if primary is not None and primary not in table.schema.names:
            geo = None
    if geo is not None and not {"lon", "lat"} <= set(table.schema.names):
        from geopandas.io.arrow import _arrow_to_geopandas

        try:  # the table is read once: convert it (geopandas' own reader would read the file again)
            gdf = _arrow_to_geopandas(table)
        except Exception as exc:
            msg = f"{path}: invalid GeoParquet geometry ({exc})"
            raise InputError(msg) from None
        if gdf.crs is None:
            msg = f"{path}: geometry column {gdf.geometry.name!r} has no CRS; expected one (e.g. EPSG:4326)"
            raise InputError(msg)
        return gdf
    return table.to_pandas()


def read_rows(path, start: int, stop: int, *, columns=None) -> pd.DataFrame:
    """Rows ``start`` to ``stop`` (end excluded) of a Parquet file as :func:`read_table` reads
    them (``columns``: only those of them the file has), reading only the row groups they lie
    in."""
    return read_runs(path, [(start, stop)], columns=columns)


def read_runs(path, runs, *, columns=None) -> pd.DataFrame:
    """The rows of ``runs`` ((start, stop) pairs, stop excluded; in order, apart) of a Parquet
    file, one after another, as :func:`read_rows` reads one run: each row group the runs lie in
    read once (several runs in one row group would read it again each)."""
    import pyarrow as pa

    with open_parquet(path) as pf, storage(path, "read"):
        schema = pf.schema_arrow
        names = plain_columns(schema) or schema.names
        if columns is not None:
            names = [c for c in names if c in columns]
        sizes = np.array([pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)], dtype=np.int64)
        starts = np.r_[0, np.cumsum(sizes)]
        pieces = []
        for g in range(len(sizes)):
            # the parts of the runs in row group g
            parts = [(max(a, starts[g]), min(b, starts[g + 1])) for a, b in runs]
            parts = [(a - starts[g], b - a) for a, b in parts if b > a]
            if parts:
                table = pf.read_row_groups([g], columns=names)
                pieces += [table.slice(int(a), int(n)) for a, n in parts]
        empty = schema.empty_table().select(names)
        table = pa.concat_tables(pieces) if pieces else empty
    return table_frame(table.replace_schema_metadata(schema.metadata), path)


@contextlib.contextmanager
def open_parquet(path):
    """Yield a ``pyarrow.parquet.ParquetFile`` (local or remote) for reading in batches,
    naming the file when it is not Parquet."""
    import pyarrow.parquet as pq

    check_exists(path)
    with contextlib.ExitStack() as stack:
        if _is_remote(path):
            import fsspec

            source = stack.enter_context(fsspec.open(str(path), "rb"))
        else:
            source = str(path)
        try:
            # (pre_buffer, pyarrow's default, keeps every row group it has read cached until the
            # file closes: a pass in batches over a month's 310 M detections held 14 GB)
            pf = pq.ParquetFile(source, pre_buffer=False)
        except Exception as exc:  # pyarrow raises several types for "not a Parquet file"
            err = _storage_error(exc, path, "read")
            if err is not None:
                raise err from None
            msg = f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc})"
            raise InputError(msg) from None
        yield pf


#: what each kind of file output is written as: the name extensions it may carry and the
#: first bytes of such a file (None: told by its first non-blank character)
OUTPUT_KINDS = {
    "parquet": ((".parquet", ".geoparquet", ".parq"), b"PAR1"),
    "gpkg": ((".gpkg",), b"SQLite format 3\x00"),
    "json": ((".json",), None),
    "html": ((".html", ".htm"), None),
    "png": ((".png",), b"\x89PNG"),
}
_TEXT_START = {"json": (b"{", b"["), "html": (b"<",)}


def check_output(path, kind: str, *, marker: str | None = None) -> None:
    """Raise InputError unless ``path`` can take an output of ``kind`` (a key of
    :data:`OUTPUT_KINDS`, or ``"folder"``); called before any work, so a run that cannot write
    its result does not start.

    An existing output of the same kind is replaced (reruns and retries need that); refused are a
    file name whose extension says another format, a folder where a file goes, a file where a
    folder goes, a file of another kind, and a folder that is not an earlier output of the stage
    (``marker``: a file every such folder has; an empty folder is taken). For ``s3://`` the
    bucket and the credentials are checked.
    """
    name = str(path).split("?")[0].rstrip("/")
    if kind != "folder":
        suffixes, _ = OUTPUT_KINDS[kind]
        if not name.lower().endswith(suffixes):
            found = repr(Path(name).suffix) if Path(name).suffix else "none"
            msg = f"{path}: expected a {' or '.join(suffixes)} file name for the {kind} output; found extension {found}"
            raise InputError(msg)
    if _is_remote(path):
        fs, fspath = _fs(path)
        bucket = fspath.split("/", 1)[0]
        with storage(path, "reach it"):
            try:
                if hasattr(fs, "call_s3"):  # S3: ask for the bucket itself (exists() hides refusals)
                    fs.call_s3("head_bucket", Bucket=bucket)
                elif not fs.exists(bucket):
                    raise FileNotFoundError(bucket)
            except FileNotFoundError:
                msg = f"{path}: bucket {bucket!r} not found"
                raise InputError(msg) from None
        return
    target = Path(path)
    if kind == "folder":
        if target.exists() and not target.is_dir():
            msg = f"{path}: expected a folder for the output; found a file (refusing to replace it)"
            raise InputError(msg)
        if target.is_dir() and any(target.iterdir()) and not (marker and (target / marker).exists()):
            msg = f"{path}: a folder that is not an earlier output of this stage (no {marker}); refusing to replace it"
            raise InputError(msg)
        return
    if target.is_dir():
        msg = f"{path}: expected a file path for the {kind} output; found a folder (a folder is never replaced)"
        raise InputError(msg)
    if target.is_file() and target.stat().st_size and not _is_kind(target, kind):
        msg = f"{path}: exists and is not a {kind} file; refusing to replace it"
        raise InputError(msg)


def _is_kind(path: Path, kind: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    magic = OUTPUT_KINDS[kind][1]
    if magic is not None:
        return head.startswith(magic)
    return head.lstrip().startswith(_TEXT_START[kind])


_pending: contextvars.ContextVar[list | bool | None] = contextvars.ContextVar("mapdiff_pending_outputs", default=None)
#: the outputs this process has put in place, in order (a file inside a folder output is not one)
_placed: list[str] = []
#: ``_pending``'s value inside :func:`atomic_dir`: files are placed at once, into the folder
_IN_FOLDER = False


def placed_outputs() -> list[str]:
    """The outputs this process has put in place so far: an interrupt that comes after them
    leaves them whole, and the command line says so."""
    return list(_placed)


@contextlib.contextmanager
def together():
    """The outputs written inside the block appear together or not at all: each writer's final
    rename (or upload) waits for the block to end without error. If one of them then fails,
    those already in place are taken back (a local file or folder they replaced is restored;
    an ``s3://`` object is deleted)."""
    pending: list = []
    token = _pending.set(pending)
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            _drop(tmp)
        raise
    finally:
        _pending.reset(token)
    done = []
    try:
        for i, (tmp, path) in enumerate(pending):
            with storage(path, "write"):
                done.append((path, _place(tmp, path)))
            pending[i] = (None, path)
    except BaseException:
        for path, backup in reversed(done):
            _take_back(path, backup)
        for tmp, _ in pending:
            if tmp is not None:
                _drop(tmp)
        raise
    for _, backup in done:
        if backup is not None:
            _drop(backup)
    _placed.extend(path for _, path in pending)


def _place(tmp: str, path: str) -> str | None:
    """Move the finished ``tmp`` (a file or a folder) to ``path``; return where a local output
    it replaced was moved (None: none, or remote)."""
    import shutil

    if _is_remote(path):
        fs, fspath = _fs(path)
        if os.path.isdir(tmp):
            fs.put(tmp.rstrip("/") + "/", fspath, recursive=True)
            shutil.rmtree(tmp)
        else:
            fs.put_file(tmp, fspath)
            os.unlink(tmp)
        return None
    backup = None
    if os.path.lexists(path):
        backup = f"{tmp}.old"
        os.replace(path, backup)
    try:
        os.replace(tmp, path)
    except BaseException:
        if backup is not None:
            os.replace(backup, path)
        raise
    return backup


def _take_back(path: str, backup: str | None) -> None:
    """Undo :func:`_place`: remove the new output at ``path`` and put back what it replaced."""
    if _is_remote(path):
        fs, fspath = _fs(path)
        with contextlib.suppress(Exception):
            fs.rm(fspath, recursive=True)
        return
    _drop(path)
    if backup is not None:
        os.replace(backup, path)


def _drop(path: str) -> None:
    """Remove a local file or folder if it is there."""
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def _atomic(path, tmp: str):
    """Yield ``tmp``; on success move it to ``path`` (at the end of an enclosing
    :func:`together` block, if any); on any error remove it and leave ``path`` untouched."""
    try:
        with storage(path, "write"):
            yield tmp
    except BaseException:
        _drop(tmp)
        raise
    pending = _pending.get()
    if isinstance(pending, list):
        pending.append((tmp, path))
        return
    try:
        with storage(path, "write"):
            backup = _place(tmp, path)
    except BaseException:
        _drop(tmp)
        raise
    if backup is not None:
        _drop(backup)
    if pending is not _IN_FOLDER:
        _placed.append(path)


def _temp_beside(path: str, *, folder: bool) -> str:
    """A fresh temporary name: beside a local ``path`` (so the rename stays on one file system),
    in the system's temporary folder for a remote one."""
    if _is_remote(path):
        if folder:
            return tempfile.mkdtemp(prefix="mapdiff-")
        fd, tmp = tempfile.mkstemp(suffix=Path(path.split("?")[0]).suffix)
        os.close(fd)
        os.unlink(tmp)
        return tmp
    parent = Path(path).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = str(parent / f".{Path(path).name}.{uuid.uuid4().hex[:8]}.tmp{'' if folder else Path(path).suffix}")
    if folder:
        os.mkdir(tmp)
    return tmp


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary local path; on success move it to ``path`` (local or remote).

    On any error the temporary file is removed and ``path`` is left untouched.
    """
    path = str(path)
    with _atomic(path, _temp_beside(path, folder=False)) as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary local folder; on success it becomes the folder ``path``: renamed into
    place whole (an old folder there is replaced), or for ``s3://`` uploaded file by file once
    all are written. On any error nothing of it is left."""
    path = str(path).rstrip("/")
    with _atomic(path, _temp_beside(path, folder=True)) as tmp:
        token = _pending.set(_IN_FOLDER)  # the files inside are placed at once: the folder is the unit
        try:
            yield tmp
        finally:
            _pending.reset(token)


@functools.cache
def _point_template():
    """The geometry and bounding-box fields and the "geo" metadata (without its ``bbox``) of a
    column of WGS84 points, as geopandas writes them."""
    import json

    import geopandas as gpd
    import shapely
    from geopandas.io.arrow import _geopandas_to_arrow

    table = _geopandas_to_arrow(gpd.GeoDataFrame({"a": [0]}, geometry=[shapely.Point(0, 0)], crs="EPSG:4326"),
                                index=False, write_covering_bbox=True)
    geo = json.loads(table.schema.metadata[b"geo"])
    geo["columns"]["geometry"].pop("bbox", None)
    return table.schema.field("geometry"), table.schema.field("bbox"), json.dumps(geo).encode()


#: a WKB point: byte order (1: little-endian), geometry type (1: point), x, y; 21 bytes packed
_WKB_POINT = np.dtype([("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")])
#: rows per chunk of WKB points (the 32-bit offsets of an Arrow binary array reach 2 GB)
_WKB_CHUNK = 50_000_000


def _points_to_arrow(df: pd.DataFrame):
    """A frame with ``lon``, ``lat`` as the GeoParquet table geopandas would write for it with a
    WGS84 point geometry of them (none where either is missing) and a bounding-box covering
    column, built straight from the numbers: each point's WKB is 21 fixed bytes, so no shapely
    object is made per row."""
    import pyarrow as pa

    geom_field, bbox_field, geo = _point_template()
    lon, lat = (pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                for c in ("lon", "lat"))
    ok = np.isfinite(lon) & np.isfinite(lat)
    # the point of lon, lat is the geometry: columns of those names that came through as plain
    # columns (a GeoParquet file rewritten by pandas keeps them without their metadata) give way
    table = pa.Table.from_pandas(df.drop(columns=[geom_field.name, bbox_field.name], errors="ignore"),
                                 preserve_index=False)
    chunks, boxes = [], []
    for a in range(0, max(len(df), 1), _WKB_CHUNK):
        b = min(a + _WKB_CHUNK, len(df))
        wkb = np.zeros(b - a, dtype=_WKB_POINT)
        wkb["order"], wkb["kind"], wkb["x"], wkb["y"] = 1, 1, lon[a:b], lat[a:b]
        valid = pa.array(ok[a:b])
        offsets = np.arange(b - a + 1, dtype=np.int32) * np.int32(_WKB_POINT.itemsize)
        chunks.append(pa.Array.from_buffers(pa.binary(), b - a, [valid.buffers()[1], pa.py_buffer(offsets),
                                                                  pa.py_buffer(wkb.tobytes())],
                                            null_count=int((~ok[a:b]).sum())))
        # (a missing point's box has missing corners, as geopandas writes it)
        x, y = pa.array(lon[a:b], mask=~ok[a:b]), pa.array(lat[a:b], mask=~ok[a:b])
        boxes.append(pa.StructArray.from_arrays([x, y, x, y], fields=list(bbox_field.type)))
    table = table.append_column(geom_field, pa.chunked_array(chunks, geom_field.type))
    table = table.append_column(bbox_field, pa.chunked_array(boxes, bbox_field.type))
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": geo})


def write_table(df: pd.DataFrame, path, *, metadata: dict | None = None) -> None:
    """Write a frame as Parquet, atomically. A frame with positions is written as GeoParquet: a
    GeoDataFrame as it is, a frame with ``lon``, ``lat`` columns with a point geometry of them
    (WGS84, a bounding-box covering column; the ``lon``, ``lat`` columns stay), so it opens as a
    layer in QGIS and with ``geopandas.read_parquet``. ``metadata`` (text keys and values) joins
    the file's schema metadata (see :func:`read_metadata`)."""
    with table_writer(path, metadata=metadata) as out:
        out.write(df)


class TableWriter:
    """Batches of rows appended to one Parquet file (see :func:`table_writer`).

    Every batch is converted as :func:`write_table` converts a frame. The first batch whose
    columns all have a type fixes the file's schema (a column with no value in a batch has
    none); the batches before it wait, at most :attr:`MAX_WAITING` of them (then a column still
    without a value is text); the later ones are cast to it. A batch without rows is written
    only when no batch has rows."""

    MAX_WAITING = 2

    def __init__(self, tmp: str, metadata: dict | None):
        self._tmp, self._metadata = tmp, metadata
        self._writer = None
        self._waiting: list = []  # batches with an untyped (all-null) column, before the schema is known
        self._empty = None  # the first batch without rows

    def write(self, df: pd.DataFrame) -> None:
        self.write_arrow(_to_arrow(df, self._metadata))

    def write_arrow(self, table) -> None:
        """A batch already in the form :func:`write_table` gives a frame (an Arrow table, e.g.
        read from another such file)."""
        import pyarrow as pa

        if not len(table):  # no rows: its columns may have no types; they count only if no batch has rows
            self._empty = self._empty or table
            return
        if self._writer is not None:
            self._writer.write_table(_cast_like(table, self._writer.schema))
            return
        self._waiting.append(table)
        schema = pa.unify_schemas([t.schema for t in self._waiting], promote_options="permissive")
        if len(self._waiting) >= self.MAX_WAITING or not any(pa.types.is_null(f.type) for f in schema):
            self._open(schema)

    def _open(self, schema) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # a column empty so far is text: the untyped columns of the stages' outputs are (value, reason)
        schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema],
                           metadata=self._waiting[0].schema.metadata)
        # dictionary pages for text only: numbers and geometries are mostly distinct, and trying
        # a dictionary on them took half of the write and made files bigger (a fleet's 6.6 M
        # observations: 4.8 s and 468 MB, against 1.8 s and 381 MB; read as fast)
        text = [f.name for f in schema if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)
                or pa.types.is_large_string(f.type)]
        self._writer = pq.ParquetWriter(self._tmp, schema, use_dictionary=text)
        for table in self._waiting:
            self._writer.write_table(_cast_like(table, schema))
        self._waiting = []

    def abandon(self) -> None:
        """Close the file without finishing it (the run failed; the caller removes it)."""
        if self._writer is not None:
            self._writer.close()

    def close(self) -> None:
        if self._writer is None:
            if not self._waiting and self._empty is None:
                msg = "a table writer closed before any batch (it has no columns to write)"
                raise ValueError(msg)
            self._waiting = self._waiting or [self._empty]
            self._open(self._waiting[0].schema)
        self._writer.close()


def _cast_like(table, schema):
    """``table`` with ``schema``'s column types (and its metadata: the first batch's)."""
    if table.schema.equals(schema, check_metadata=False):
        return table.replace_schema_metadata(schema.metadata)
    try:
        return table.select(schema.names).cast(schema)
    except (KeyError, ValueError, TypeError) as exc:  # (pyarrow's ArrowInvalid is a ValueError)
        msg = f"a batch's columns do not match the file's first batch: {table.schema} against {schema} ({exc})"
        raise ValueError(msg) from None


@contextlib.contextmanager
def table_writer(path, *, metadata: dict | None = None):
    """Yield a :class:`TableWriter` whose batches become the Parquet file ``path``, atomically:
    the file appears when the block ends without error (at the end of an enclosing
    :func:`together` block, if any), and a failed run leaves nothing, so a stage can write its
    output batch by batch as it goes. ``metadata`` as in :func:`write_table`."""
    with atomic_path(path) as tmp:
        writer = TableWriter(tmp, metadata)
        try:
            yield writer
        except BaseException:
            with contextlib.suppress(Exception):
                writer.abandon()
            raise
        writer.close()


@contextlib.contextmanager
def optional_writer(path, *, metadata: dict | None = None):
    """:func:`table_writer` for an optional output: yields None when ``path`` is None."""
    if path is None:
        yield None
        return
    with table_writer(path, metadata=metadata) as writer:
        yield writer


def _to_arrow(df: pd.DataFrame, metadata: dict | None):
    """A frame as the Arrow table :func:`write_table` writes (see there). The geometry's bounding
    box is not written into the file's "geo" metadata (optional in GeoParquet): a file written in
    batches does not know it until the end; the covering column gives each row's."""
    import json

    import geopandas as gpd
    import pyarrow as pa

    if not isinstance(df, gpd.GeoDataFrame) and {"lon", "lat"} <= set(df.columns) and "geometry" not in df.columns:
        table = _points_to_arrow(df)
    elif isinstance(df, gpd.GeoDataFrame):
        from geopandas.io.arrow import _geopandas_to_arrow

        table = _geopandas_to_arrow(df, index=False, write_covering_bbox=True)
        geo = json.loads(table.schema.metadata[b"geo"])
        for spec in geo["columns"].values():
            spec.pop("bbox", None)
        table = table.replace_schema_metadata({**table.schema.metadata, b"geo": json.dumps(geo).encode()})
    else:
        table = pa.Table.from_pandas(df, preserve_index=False)
    # categoricals with 32-bit codes: pandas picks the narrowest, which differs between batches
    wide = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type.value_type), f.nullable)
                      if pa.types.is_dictionary(f.type) else f for f in table.schema], metadata=table.schema.metadata)
    if not wide.equals(table.schema):
        table = table.cast(wide)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               **{k.encode(): v.encode() for k, v in metadata.items()}})
    return table


def read_metadata(path) -> dict:
    """A Parquet file's schema metadata (a GeoPackage's dataset metadata) as text, without
    reading its rows."""
    if str(path).lower().endswith(".gpkg"):
        import pyogrio

        pyogrio.set_gdal_config_options({"GDAL_PAM_ENABLED": "NO"})  # (no .aux.xml beside it)
        with local_copy(path) as local:
            first = pyogrio.list_layers(local)[0][0]
            return dict(pyogrio.read_info(local, layer=first).get("dataset_metadata") or {})
    with open_parquet(path) as pf:
        raw = pf.schema_arrow.metadata or {}
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}


def column_names(path) -> list[str]:
    """The column names of a Parquet file, without reading its rows."""
    with open_parquet(path) as pf:
        return list(pf.schema_arrow.names)


def read_json(path):
    """A JSON file (local or remote), naming the file in its errors."""
    import json

    import fsspec

    check_exists(path)
    with storage(path, "read"), fsspec.open(str(path), "r") as f:
        try:
            return json.load(f)
        except ValueError as exc:
            msg = f"{path}: not JSON ({exc})"
            raise InputError(msg) from None


def list_parts(path) -> list[str]:
    """``path`` itself when it is a file; for a folder (local or remote) the ``part-*`` files in
    it, sorted (hidden temporary files of unfinished writes are not parts)."""
    check_exists(path, file=False)
    fs, fspath = _fs(path)
    with storage(path, "list it"):
        if not fs.isdir(fspath):
            return [str(path)]
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(fspath, detail=False))
    parts = [f"{str(path).rstrip('/')}/{n}" for n in names if n.startswith("part-")]
    if not parts:
        msg = f"{path}: a folder with no part-* files"
        raise InputError(msg)
    return parts


def fingerprint(path) -> str | None:
    """What tells one version of an existing file from another (size and modification time, or
    a remote object's ETag); None when ``path`` is not a file."""
    if "://" not in path and not Path(path).exists():
        return None
    try:
        fs, fspath = _fs(path)
        info = fs.info(fspath)
    except (OSError, ValueError):
        return None
    if info.get("type") != "file":
        return None
    tag = info.get("ETag") or info.get("mtime") or info.get("LastModified")
    return f"{info.get('size')}:{tag}"


def _fs(path):
    import fsspec

    return fsspec.core.url_to_fs(str(path))


def write_gpkg(layers: dict, path, *, metadata: dict | None = None) -> None:
    """Write several GeoDataFrames as the layers of one GeoPackage, atomically; ``metadata``
    (text keys and values) becomes the file's dataset metadata (see :func:`read_metadata`)."""
    import pyogrio

    # GDAL stamps each layer with the current time; a fixed stamp keeps the same inputs giving
    # the same bytes; no .aux.xml sidecar files (the metadata lives in the GeoPackage)
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2000-01-01T00:00:00.000Z", "GDAL_PAM_ENABLED": "NO"})
    with atomic_path(path) as tmp:
        for i, (name, gdf) in enumerate(layers.items()):
            pyogrio.write_dataframe(gdf, tmp, layer=name, driver="GPKG", append=i > 0,
                                    dataset_metadata=metadata if i == 0 else None)


@contextlib.contextmanager
def local_copy(path):
    """Yield a local path to ``path``'s bytes: the path itself, or for a remote file a temporary
    copy (GDAL's SQLite and libosmium need a local file), removed afterwards."""
    check_exists(path)
    if not _is_remote(path):
        yield str(path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, Path(str(path).split("?")[0]).name)
        fs, fspath = _fs(path)
        with storage(path, "read"):
            fs.get_file(fspath, local)
        yield local


def read_gpkg_layer(path, layer: str, *, columns=None):
    """Read one layer of a GeoPackage (local or remote), naming the file and the layer in every
    error."""
    with local_copy(path) as local:
        return _read_layer(local, layer, columns, shown=path)


def _read_layer(local, layer, columns, *, shown):
    import pyogrio

    path = shown  # the name the user gave, for messages
    try:
        layers = [name for name, _ in pyogrio.list_layers(local)]
    except Exception as exc:
        msg = f"{path}: not a GeoPackage (cannot open: {exc})"
        raise InputError(msg) from None
    if layer not in layers:
        msg = f"{path}: no layer {layer!r}; found layers {layers}"
        raise InputError(msg)
    gdf = pyogrio.read_dataframe(local, layer=layer, columns=columns)
    if "geometry" in gdf and gdf.crs is None:
        msg = f"{path}: layer {layer!r} has no CRS; expected one (e.g. EPSG:4326)"
        raise InputError(msg)
    return gdf


def read_map_layers(path, optional=("nodes", "features")) -> dict:
    """The ``edges`` layer of a map GeoPackage and whichever of the ``optional`` layers it has."""
    with local_copy(path) as local:
        layers = {"edges": _read_layer(local, "edges", None, shown=path)}
        for name in optional:
            try:
                layers[name] = _read_layer(local, name, None, shown=path)
            except InputError as exc:
                if f"no layer {name!r}" not in str(exc):
                    raise
    return layers
