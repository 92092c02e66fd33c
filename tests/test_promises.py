"""What the README promises a user: outputs checked before any work, nothing half-written
(a folder in the way, a rename that fails, Ctrl-C mid-kernel), GeoParquet outputs, CSV and GPX
traces, quiet logs, and inputs checked against their stage's contract."""

import json
import os
import signal
import subprocess
import sys
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fixtures.grid import drive
from mapdiff_cli.main import cli

from .conftest import ROOT


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapdiff: error: "), result.output
    for word in words:
        assert word in lines[0], result.output


@pytest.fixture()
def traces(tmp_path):
    df = drive([0, 10, 20, 21], noise_m=2, seed=1, trip_id="a")
    df = pd.concat([df, drive([33, 23, 13], noise_m=2, seed=2, trip_id="b", t0=1000.0)], ignore_index=True)
    df["t"] = pd.to_datetime(np.round(df["t"].to_numpy() * 1000).astype(np.int64), unit="ms", utc=True)
    path = tmp_path / "traces.parquet"
    df.to_parquet(path)
    return path


# every output option a stage has, with what it writes; the inputs do not exist: an output that
# cannot be written is refused before any input is read
OUTPUTS = [
    (["match", "t.parquet", "--map", "m.gpkg"], "-o", "out.parquet", "out.csv"),
    (["match", "t.parquet", "--map", "m.gpkg", "-o", "ok.parquet"], "--paths", "paths.parquet", "paths.gpkg"),
    (["network", "in.osm.pbf"], "-o", "roads.gpkg", "roads.parquet"),
    (["simulate", "--map", "m.gpkg"], "-o", None, None),
    (["coverage", "p.parquet"], "-o", "cov.parquet", "cov.json"),
    (["observe", "d.parquet", "--matched", "m.parquet", "--camera", "c.json"], "-o", "obs.parquet", "obs.txt"),
    (["observe", "d.parquet", "--matched", "m.parquet", "--camera", "c.json", "-o", "ok.parquet"], "--rejects",
     "rej.parquet", "rej.csv"),
    (["locate", "o.parquet"], "-o", "objects.parquet", "objects.gpkg"),
    (["locate", "o.parquet", "-o", "ok.parquet"], "--labels", "labels.parquet", "labels.csv"),
    (["diff", "--map", "m.gpkg", "--coverage", "c.parquet"], "-o", "diffs.gpkg", "diffs.parquet"),
    (["report", "d.gpkg", "--map", "m.gpkg"], "-o", "report.html", "report.pdf"),
    (["report", "d.gpkg", "--map", "m.gpkg", "-o", "ok.html"], "--png", "view.png", "view.jpg"),
    (["evaluate", "--truth", "sim", "--objects", "o.parquet"], "--json", "scores.json", "scores.txt"),
    (["plan", "c.parquet", "p.parquet", "--map", "m.gpkg"], "-o", "requests.parquet", "requests.csv"),
    (["upload", "r.parquet", "--sim", "sim"], "-o", None, None),
    (["merge", "match", "a.parquet"], "-o", "merged.parquet", "merged.gpkg"),
]


@pytest.mark.parametrize("args, option, name, wrong", OUTPUTS, ids=lambda v: v if isinstance(v, str) else None)
def test_an_output_in_the_way_is_refused_before_any_work(tmp_path, args, option, name, wrong):
    os.chdir(tmp_path)
    if name is None:  # a folder output: a file in the way, and a folder that is not the stage's
        (tmp_path / "afile").write_text("keep me")
        one_line_error(invoke(*args, option, "afile"), "afile", "found a file")
        (tmp_path / "adir").mkdir()
        (tmp_path / "adir" / "mine.txt").write_text("keep me")
        one_line_error(invoke(*args, option, "adir"), "adir", "refusing to replace it")
        assert (tmp_path / "afile").read_text() == (tmp_path / "adir" / "mine.txt").read_text() == "keep me"
        return
    (tmp_path / name).mkdir()  # a folder where the file goes
    one_line_error(invoke(*args, option, name), name, "found a folder")
    one_line_error(invoke(*args, option, wrong), wrong, "expected a")
    (tmp_path / name).rmdir()
    (tmp_path / name).write_text("not what this stage writes")
    one_line_error(invoke(*args, option, name), name, "refusing to replace it")
    assert (tmp_path / name).read_text() == "not what this stage writes"
    assert not (tmp_path / "ok.parquet").exists()


def test_an_earlier_output_is_replaced(grid_gpkg, traces, tmp_path):
    out = tmp_path / "m.parquet"
    for _ in range(2):
        result = invoke("match", traces, "--map", grid_gpkg, "-o", out, "-q")
        assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) == len(pd.read_parquet(traces))


def test_two_outputs_appear_together_or_not_at_all(grid_gpkg, traces, tmp_path, monkeypatch):
    import mapdiff.io

    matched, paths = tmp_path / "m.parquet", tmp_path / "p.parquet"
    real_replace = os.replace

    def failing_for_paths(src, dst):  # the new paths file cannot be moved into place
        if str(dst) == str(paths) and str(src).endswith(".tmp.parquet"):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(mapdiff.io.os, "replace", failing_for_paths)
    result = invoke("match", traces, "--map", grid_gpkg, "-o", matched, "--paths", paths, "-q")
    assert result.exit_code == 75 and "p.parquet: cannot write" in result.output
    assert sorted(os.listdir(tmp_path)) == ["traces.parquet"]  # matched.parquet was taken back, no temp files

    monkeypatch.setattr(mapdiff.io.os, "replace", real_replace)
    assert invoke("match", traces, "--map", grid_gpkg, "-o", matched, "--paths", paths, "-q").exit_code == 0
    before = matched.read_bytes(), paths.read_bytes()
    monkeypatch.setattr(mapdiff.io.os, "replace", failing_for_paths)
    assert invoke("match", traces, "--map", grid_gpkg, "-o", matched, "--paths", paths, "-q",
                  "--gps-sigma-m", "4").exit_code == 75
    assert (matched.read_bytes(), paths.read_bytes()) == before  # the earlier pair stands, restored
    assert sorted(os.listdir(tmp_path)) == ["m.parquet", "p.parquet", "traces.parquet"]


def test_an_interrupt_inside_a_kernel_exits_130(grid_gpkg, traces, tmp_path, monkeypatch):
    """Numba reports a Ctrl-C that lands in machine code as a SystemError caused by it."""
    import mapdiff.jobs.stages

    def interrupted(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise SystemError("CPUDispatcher(<function viterbi>) returned a result with an exception set") from exc

    monkeypatch.setattr(mapdiff.jobs.stages, "match_part", interrupted)
    result = invoke("match", traces, "--map", grid_gpkg, "-o", tmp_path / "m.parquet")
    assert result.exit_code == 130 and result.output.strip() == "mapdiff: interrupted; nothing written"
    assert not (tmp_path / "m.parquet").exists()


def test_an_interrupt_after_the_outputs_are_in_place_names_them(grid_gpkg, traces, tmp_path, monkeypatch):
    """A signal as the run ends, its outputs already renamed into place (a CI run of stop 50):
    the line says what was written instead of "nothing written"; the outputs are whole."""
    import mapdiff.jobs.stages
    import mapdiff_cli.match

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mapdiff_cli.match, "info", interrupted)  # the summary line, after the writes
    out, paths = tmp_path / "m.parquet", tmp_path / "p.parquet"
    result = invoke("match", traces, "--map", grid_gpkg, "-o", out, "--paths", paths)
    said, written = result.output.strip().split("; ")
    assert result.exit_code == 130 and said == "mapdiff: interrupted"
    assert sorted(written.removeprefix("written before it: ").split(", ")) == [str(out), str(paths)]
    assert len(pd.read_parquet(out)) == len(pd.read_parquet(traces))
    # the record is the invocation's own: the next interrupted run wrote nothing
    monkeypatch.setattr(mapdiff.jobs.stages, "match_part", interrupted)
    result = invoke("match", traces, "--map", grid_gpkg, "-o", tmp_path / "n.parquet")
    assert result.exit_code == 130 and result.output.strip() == "mapdiff: interrupted; nothing written"


def test_an_error_once_a_signal_came_is_the_interrupt(grid_gpkg, traces, tmp_path, monkeypatch):
    """pyarrow turns a KeyboardInterrupt that lands in its first import of zoneinfo into an
    ArrowInvalid of its own (no trace of the interrupt left): once a signal came, any error is
    the interrupt's (a traceback in the CI of stop 50). Without a signal the error stays one."""
    import pyarrow as pa

    import mapdiff.jobs.stages
    from mapdiff_cli import main

    def arrow_error(*args, **kwargs):
        raise pa.lib.ArrowInvalid("The zoneinfo module or pytz package must be installed.")

    monkeypatch.setattr(mapdiff.jobs.stages, "match_part", arrow_error)
    monkeypatch.setattr(main, "_RECEIVED", [None])
    with pytest.raises(pa.lib.ArrowInvalid):
        CliRunner().invoke(cli, ["match", str(traces), "--map", str(grid_gpkg), "-o", str(tmp_path / "m.parquet")],
                           catch_exceptions=False)
    monkeypatch.setattr(main, "_RECEIVED", [signal.SIGTERM])
    result = invoke("match", traces, "--map", grid_gpkg, "-o", tmp_path / "m.parquet")
    assert result.exit_code == 143 and result.output.strip() == "mapdiff: terminated; nothing written"
    assert not (tmp_path / "m.parquet").exists()


def test_an_interrupt_in_a_compiler_callback_waits_for_its_return(monkeypatch):
    """llvmlite calls Python back through ctypes (Numba's cache), and ctypes prints and swallows an
    exception raised there: the interrupt was lost and the run wrote its output. Ours waits."""
    from mapdiff_cli import main

    monkeypatch.setattr(main, "_RECEIVED", [None])  # (the signal it plays must not outlive it)
    armed = []
    monkeypatch.setattr(signal, "setitimer", lambda which, seconds: armed.append((which, seconds)))
    callback = {}  # a function compiled as if it were llvmlite's, that takes the signal inside
    exec(compile("def notify(handler):\n    return handler(2, sys._getframe())\n",
                 os.path.join(os.sep, "venv", "llvmlite", "binding", "executionengine.py"), "exec"),
         {"sys": sys}, callback)
    assert callback["notify"](main._interrupt) is None
    assert armed == [(signal.ITIMER_REAL, main.INTERRUPT_RETRY_S)]
    with pytest.raises(KeyboardInterrupt):  # and back in the caller (the retry), it lands
        main._interrupt(signal.SIGALRM, sys._getframe())


def test_an_interrupt_in_a_finalizer_waits_for_its_return(monkeypatch):
    """Python prints and swallows an exception raised in ``__del__``: a SIGTERM that landed in
    pyarrow's ParquetWriter.__del__ as match ended printed a traceback (CI, stop 52). Ours waits
    and lands after it."""
    from mapdiff_cli import main

    monkeypatch.setattr(main, "_RECEIVED", [None])
    armed = []
    monkeypatch.setattr(signal, "setitimer", lambda which, seconds: armed.append((which, seconds)))
    got = []

    class Writer:
        def __del__(self):
            got.append(main._interrupt(signal.SIGTERM, sys._getframe()))

    Writer()  # (collected at once: its __del__ runs here)
    assert got == [None] and armed == [(signal.ITIMER_REAL, main.INTERRUPT_RETRY_S)]
    with pytest.raises(KeyboardInterrupt):
        main._interrupt(signal.SIGALRM, sys._getframe())


def _default_sigint():
    """A child started from a background job inherits SIGINT ignored (and Python then keeps it
    so, as a background job should): the terminal's Ctrl-C is what the test plays."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("signum", "status", "said"), [(signal.SIGINT, 130, "interrupted"),
                                                       (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_on_a_running_stage_leaves_nothing(sim_dir, tmp_path, signum, status, said):
    """SIGINT (Ctrl-C) or SIGTERM (AWS Batch stopping a job) to a real ``mapdiff match`` at 45 to
    75 % of its running time (after its imports: see README, Errors), measured first: exit 130
    or 143 and no output, nor anything in its temporary folder, or (too late) the whole output."""
    import pyarrow.parquet as pq

    # four copies of the fleet's traces, so that matching, not Python's start, fills most of the
    # run and the signals land in it (with one copy and the matcher's speed since stop 33 the
    # four signals once fell before the handler was set or after the run had ended)
    one = pd.read_parquet(sim_dir / "traces.parquet")
    traces = tmp_path / "traces.parquet"
    pd.concat([one.assign(trip_id=one["trip_id"].astype(str) + f"-{k}") for k in range(4)]).to_parquet(traces)

    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def start(out):
        return subprocess.Popen([sys.executable, "-m", "mapdiff_cli.main", "match", str(traces),
                                 "--map", str(sim_dir / "map.gpkg"), "-o", str(out), "--paths",
                                 str(out.with_suffix(".paths.parquet"))],
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=_default_sigint,
                                env={**os.environ, "TMPDIR": str(scratch)})

    # timed on the second run: on a clean clone the first one fills Numba's cache, and took so
    # much longer than the later runs that all four ended before their signal (CI, stop 34)
    for _ in range(2):
        t0 = time.monotonic()
        start(tmp_path / "whole.parquet").communicate(timeout=300)
        whole_s = time.monotonic() - t0
    outcomes = []
    for share in (0.45, 0.55, 0.65, 0.75):
        out = tmp_path / f"m{share}.parquet"
        child = start(out)
        time.sleep(share * whole_s)
        child.send_signal(signum)
        _, err = child.communicate(timeout=300)
        assert "Traceback" not in err and "Aborted" not in err, err
        if child.returncode == status and out.exists():  # it came once the outputs were in place
            written = sorted(err.strip().splitlines()[-1].removeprefix(f"mapdiff: {said}; written before it: ")
                             .split(", "))
            assert written == sorted([str(out), str(out.with_suffix(".paths.parquet"))])
            assert pq.read_metadata(out).num_rows > 0
        elif child.returncode == status:
            assert err.strip().splitlines()[-1] == f"mapdiff: {said}; nothing written"
        elif out.exists():  # done before the signal (0), or it came as Python shut down (-signum)
            assert child.returncode in (0, -signum) and pq.read_metadata(out).num_rows > 0
        else:  # it came before Python had set its handler; or (known gap, README "Errors") the
            # interrupt crashed a native thread: nothing may be half-written either way
            assert child.returncode in (-signum, -signal.SIGSEGV)
        outcomes.append(child.returncode)
    assert status in outcomes, outcomes
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]
    assert not os.listdir(scratch)


def test_a_geoparquet_rewritten_by_pandas_is_read_and_written_whole(grid_gpkg, traces, tmp_path):
    """A GeoParquet output read and written again with plain pandas keeps its ``geometry`` and
    ``bbox`` columns without their metadata: as input they are plain columns, and the output's
    geometry (the point of lon, lat) takes their place instead of doubling them."""
    first = tmp_path / "m.parquet"
    assert invoke("match", traces, "--map", grid_gpkg, "-o", first, "-q").exit_code == 0
    plain = tmp_path / "plain.parquet"
    pd.read_parquet(first)[["trip_id", "t", "lon", "lat", "geometry", "bbox"]].to_parquet(plain)
    again = tmp_path / "again.parquet"
    result = invoke("match", plain, "--map", grid_gpkg, "-o", again, "-q")
    assert result.exit_code == 0, result.output
    gdf = gpd.read_parquet(again)
    assert list(gdf.columns).count("geometry") == 1 and gdf.crs.to_epsg() == 4326
    np.testing.assert_array_equal(gdf.geometry.x, gdf["lon"])


def test_outputs_with_positions_are_geoparquet(grid_gpkg, traces, tmp_path):
    out = tmp_path / "m.parquet"
    assert invoke("match", traces, "--map", grid_gpkg, "-o", out, "-q").exit_code == 0
    gdf = gpd.read_parquet(out)
    assert gdf.crs.to_epsg() == 4326
    np.testing.assert_array_equal(gdf.geometry.x, gdf["lon"])
    np.testing.assert_array_equal(gdf.geometry.y, gdf["lat"])
    import pyarrow.parquet as pq

    geo = json.loads(pq.read_schema(out).metadata[b"geo"])
    assert geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    # and a reader takes either: the lon, lat columns, or the geometry alone
    only_geometry = tmp_path / "geo_only.parquet"
    gdf.drop(columns=["lon", "lat"]).to_parquet(only_geometry)
    from mapdiff.io import read_table
    from mapdiff.schema import lonlat_columns

    lon, lat = lonlat_columns(read_table(only_geometry), "geo_only.parquet")
    np.testing.assert_allclose(lon, gdf["lon"])
    np.testing.assert_allclose(lat, gdf["lat"])


def test_simulated_traces_objects_and_observations_are_geoparquet(sim_dir, tmp_path):
    for path in (sim_dir / "traces.parquet", sim_dir / "truth" / "objects.parquet"):
        assert gpd.read_parquet(path).crs.to_epsg() == 4326
    obs = tmp_path / "obs.parquet"
    result = invoke("observe", sim_dir / "detections.parquet", "--matched", _matched(sim_dir, tmp_path),
                    "--camera", sim_dir / "camera.json", "-o", obs, "-q")
    assert result.exit_code == 0, result.output
    objects = tmp_path / "objects.parquet"
    assert invoke("locate", obs, "-o", objects, "-q").exit_code == 0
    for path in (obs, objects):
        gdf = gpd.read_parquet(path)
        assert gdf.crs.to_epsg() == 4326 and len(gdf)
        np.testing.assert_array_equal(gdf.geometry.x, gdf["lon"])


def _matched(sim_dir, tmp_path):
    out = tmp_path / "matched.parquet"
    result = invoke("match", sim_dir / "traces.parquet", "--map", sim_dir / "map.gpkg", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    return out


def _gpx(df) -> str:
    points = {tid: "".join(f'<trkpt lat="{r.lat!r}" lon="{r.lon!r}"><time>{r.t.isoformat()}</time></trkpt>'
                           for r in g.itertuples()) for tid, g in df.groupby("trip_id")}
    tracks = "".join(f"<trk><name>{tid}</name><trkseg>{pts}</trkseg></trk>" for tid, pts in points.items())
    return f'<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1">{tracks}</gpx>'


def test_csv_and_gpx_traces_match_like_parquet(grid_gpkg, traces, tmp_path):
    df = pd.read_parquet(traces)
    iso, epoch, gpx = tmp_path / "iso.csv", tmp_path / "epoch.csv.gz", tmp_path / "t.gpx"
    df.assign(t=df["t"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).to_csv(iso, index=False)
    df.assign(t=(df["t"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()).to_csv(epoch, index=False)
    gpx.write_text(_gpx(df))
    want = None
    for source in (traces, iso, epoch, gpx):
        out = tmp_path / f"{source.name.split('.')[0]}.m.parquet"
        result = invoke("match", source, "--map", grid_gpkg, "-o", out, "-q")
        assert result.exit_code == 0, result.output
        got = pd.read_parquet(out, columns=["trip_id", "t", "edge_id", "state"])
        got["t"] = got["t"].astype("datetime64[ns, UTC]")
        if want is None:
            want = got
        # the GPX trip ids are the track names and "/0", its first segment
        got["trip_id"] = got["trip_id"].str.removesuffix("/0")
        pd.testing.assert_frame_equal(got, want, check_dtype=False)


@pytest.mark.parametrize("content, words", [
    ("trip_id,t,lon,lat\na,2026-01-05T08:00:00Z,24.9,60.1\na,yesterday,24.9,60.1\n", ["'yesterday' at row 1"]),
    ("trip_id,t,lon,lat\na,1767600000,24.9,60.1\na,,24.9,60.1\n", ["1 missing times (first at row 1)"]),
    ("trip_id,t,lon,lat\na,2026-01-05T08:00:00Z,east,60.1\n", ["column 'lon' must be float degrees"]),
    ("trip,t,lon,lat\na,2026-01-05T08:00:00Z,24.9,60.1\n", ["missing column(s) 'trip_id'"]),
    ('"trip_id,t\n', ["cannot read as CSV"]),
])
def test_bad_csv_rows_are_named(grid_gpkg, tmp_path, content, words):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    one_line_error(invoke("match", src, "--map", grid_gpkg, "-o", tmp_path / "o.parquet"), "bad.csv", *words)


@pytest.mark.parametrize("content, words", [
    ("<gpx><trk><trkseg><trkpt lat='60.1' lon='24.9'/></trkseg></trk></gpx>", ["has no <time>"]),
    ("<gpx><trk><trkseg><trkpt lat='x' lon='24.9'><time>2026-01-05T08:00:00Z</time></trkpt></trkseg></trk></gpx>",
     ["expected lat and lon numbers"]),
    ("<gpx></gpx>", ["no track points"]),
    ("<kml/>", ["expected a GPX document"]),
    ("<gpx><trk>", ["cannot read as GPX"]),
])
def test_bad_gpx_is_named(grid_gpkg, tmp_path, content, words):
    src = tmp_path / "bad.gpx"
    src.write_text(content)
    one_line_error(invoke("match", src, "--map", grid_gpkg, "-o", tmp_path / "o.parquet"), "bad.gpx", *words)


def test_a_log_gets_one_summary_line_and_quiet_gets_none(grid_gpkg, traces, tmp_path):
    result = invoke("match", traces, "--map", grid_gpkg, "-o", tmp_path / "m.parquet")
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 1, result.output
    assert invoke("match", traces, "--map", grid_gpkg, "-o", tmp_path / "m.parquet", "-q").output == ""


def test_a_terminal_gets_a_progress_bar(grid_gpkg, traces, tmp_path, monkeypatch):
    import mapdiff_cli.options

    monkeypatch.setattr(mapdiff_cli.options, "_terminal", lambda: True)
    result = invoke("match", traces, "--map", grid_gpkg, "-o", tmp_path / "m.parquet")
    assert result.exit_code == 0
    assert "matched fixes:" in result.output and "%|" in result.output  # tqdm's bar
    assert invoke("match", traces, "--map", grid_gpkg, "-o", tmp_path / "m.parquet", "-q").output == ""


def test_evaluate_checks_each_input_is_what_its_option_names(sim_dir, tmp_path):
    matched = _matched(sim_dir, tmp_path)
    obs = tmp_path / "obs.parquet"
    assert invoke("observe", sim_dir / "detections.parquet", "--matched", matched, "--camera",
                  sim_dir / "camera.json", "-o", obs, "-q").exit_code == 0
    one_line_error(invoke("evaluate", "--truth", sim_dir, "--objects", obs), "obs.parquet",
                   "expected objects (mapdiff locate -o); found observations (mapdiff observe -o)")
    one_line_error(invoke("evaluate", "--truth", sim_dir, "--paths", matched), "matched.parquet",
                   "expected matched paths", "found matched fixes")
    result = invoke("evaluate", "--truth", sim_dir, "--matched", matched)
    assert result.exit_code == 0 and "edges_from" in result.output and "matched" in result.output


def test_warmup_compiles_every_kernel():
    from pathlib import Path

    from mapdiff._kernels import compiled

    result = invoke("warmup", "-q")
    assert result.exit_code == 0 and result.output == "", result.output
    kernels = sorted(p.stem for p in Path(ROOT, "mapdiff", "_kernels").glob("*.py") if p.stem != "__init__")
    assert [k for k in kernels if not compiled(k)] == []
