"""Reading and writing stage files: Parquet/GeoParquet and GeoPackage, local or ``s3://``.

Every reader names the file in its errors; every writer writes to a temporary name beside
the target and renames it into place, so a failed run never leaves a half-written output.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path

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
            try:
                kept = []
                for batch in pf.iter_batches(batch_size=1_000_000, columns=columns):
                    table = pa.Table.from_batches([batch])
                    kept.append(table.filter(where(table)))
            except Exception as exc:
                err = _storage_error(exc, path, "read")
                if err is not None:
                    raise err from None
                raise
            table = pa.concat_tables(kept) if kept else pf.schema_arrow.empty_table()
            table = table.replace_schema_metadata(pf.schema_arrow.metadata)
        return _frame(table, path)
    check_exists(path)
    try:
        if _is_remote(path):
            import fsspec

            with fsspec.open(str(path), "rb") as f:
                table = pq.read_table(f, columns=columns)
        else:
            table = pq.read_table(str(path), columns=columns)
    except Exception as exc:  # pyarrow raises several types for "not a Parquet file"
        err = _storage_error(exc, path, "read")
        if err is not None:
            raise err from None
        msg = f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc})"
        raise InputError(msg) from None
    return _frame(table, path)


def _frame(table, path) -> pd.DataFrame:
    if b"geo" in (table.schema.metadata or {}):
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
            pf = pq.ParquetFile(source)
        except Exception as exc:  # pyarrow raises several types for "not a Parquet file"
            err = _storage_error(exc, path, "read")
            if err is not None:
                raise err from None
            msg = f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc})"
            raise InputError(msg) from None
        yield pf


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary local path; on success move it to ``path`` (local or remote).

    On any error the temporary file is removed and ``path`` is left untouched.
    """
    path = str(path)
    if _is_remote(path):
        suffix = Path(path.split("?")[0]).suffix
        fd, tmp = tempfile.mkstemp(suffix=suffix)
        os.close(fd)
        os.unlink(tmp)
    else:
        parent = Path(path).resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = str(parent / f".{Path(path).name}.{uuid.uuid4().hex[:8]}.tmp{Path(path).suffix}")
    try:
        with storage(path, "write"):
            yield tmp
            if _is_remote(path):
                fs, fspath = _fs(path)
                fs.put_file(tmp, fspath)
                os.unlink(tmp)
            else:
                os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary local folder; on success it becomes the folder ``path``: renamed into
    place whole (an old folder there is replaced), or for ``s3://`` uploaded file by file once
    all are written. On any error nothing of it is left."""
    import shutil

    path = str(path).rstrip("/")
    if _is_remote(path):
        tmp = tempfile.mkdtemp(prefix="mapdiff-")
    else:
        parent = Path(path).resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = str(parent / f".{Path(path).name}.{uuid.uuid4().hex[:8]}.tmp")
        os.mkdir(tmp)
    try:
        with storage(path, "write"):
            yield tmp
        if _is_remote(path):
            fs, fspath = _fs(path)
            with storage(path, "write"):
                fs.put(tmp.rstrip("/") + "/", fspath, recursive=True)
            shutil.rmtree(tmp)
        else:
            old = f"{tmp}.old"
            if os.path.exists(path):
                os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_table(df: pd.DataFrame, path, *, metadata: dict | None = None) -> None:
    """Write a frame as Parquet (GeoParquet if it is a GeoDataFrame), atomically; ``metadata``
    (text keys and values) joins the file's schema metadata (see :func:`read_metadata`)."""
    import geopandas as gpd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(df, gpd.GeoDataFrame):
        from geopandas.io.arrow import _geopandas_to_arrow

        table = _geopandas_to_arrow(df, index=False)
    else:
        table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               **{k.encode(): v.encode() for k, v in metadata.items()}})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


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
