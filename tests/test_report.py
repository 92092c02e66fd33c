"""report: the page as a user sees it, rendered in headless Chromium (Debian's ``chromium``):
the map is drawn, the table lists every diff, and values written by strangers stay text."""

import html
import re
import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from fixtures.grid import CRS, node_xy
from mapdiff.report import _json_for_script, render

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
EVIL = "<img src=x onerror=\"document.title='pwned'\">"


def _diffs(n, evil=True):
    rng = np.random.default_rng(0)
    x0, y0 = node_xy(0)
    pts = shapely.points(np.c_[x0 + rng.uniform(0, 300, n), y0 + rng.uniform(0, 300, n)])
    kinds = np.array(["object_added", "object_removed", "object_moved", "value_changed"])[np.arange(n) % 4]
    frame = pd.DataFrame({"diff_id": np.arange(n), "kind": kinds, "class": "traffic_sign",
                          "feature_id": pd.array(np.arange(n), dtype="Int64"), "old_value": "FI:231",
                          "new_value": "FI:311", "confidence": rng.uniform(0.5, 1.0, n)})
    if evil:
        frame.loc[0, "old_value"] = EVIL
        frame.loc[0, "class"] = "</script><script>document.title='pwned2'</script>"
    geom = list(pts)
    geom[-1] = shapely.LineString([node_xy(0), node_xy(11)])
    frame.loc[n - 1, "kind"] = "road_missing"
    return gpd.GeoDataFrame(frame, geometry=geom, crs=CRS).to_crs(4326)


def test_json_cannot_close_its_script_element():
    text = _json_for_script({"v": "</script><b>&"})
    assert "<" not in text and ">" not in text and "&" not in text


def test_page_is_self_contained(grid_edges):
    page = render(_diffs(8), grid_edges)
    # nothing fetched: no script, image, stylesheet or CSS url() loads an http(s) address
    # (Leaflet's own attribution link, switched off, is a link, not a fetch)
    assert not re.search(r"""src\s*=\s*["']?https?://|<link[^>]+https?://|url\(\s*["']?https?://""", page)
    assert "</script><script>document.title" not in page
    assert EVIL not in page


def _chromium(args, timeout=90):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--virtual-time-budget=10000"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout)


@needs_chromium
@pytest.mark.parametrize("n", [30, 250, 50_000])
def test_browser_lists_every_diff_and_keeps_values_as_text(grid_edges, tmp_path, n):
    page = tmp_path / "report.html"
    page.write_text(render(_diffs(n), grid_edges, title=EVIL), encoding="utf-8")
    out = _chromium([f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()])
    dom = out.stdout
    assert 'data-ready="1"' in dom, out.stderr[-2000:]
    # the count the script computed from the data equals the file's, and the table shows a page of it
    assert re.search(r'id="n-diffs">(\d+)<', dom).group(1) == str(n)
    rows = dom.count('class="diff-row')
    assert rows == min(n, 100)
    assert f"1–{min(n, 100)} of {n}" in dom
    # the stranger's value is text in a cell, not an element; no script of theirs ran
    assert html.escape(EVIL, quote=False) in dom
    assert "<img" not in dom
    # the title is still the text it was given: no onerror handler rewrote it
    assert re.search(r"<title>(.*?)</title>", dom, re.S).group(1) == html.escape(EVIL, quote=False)
    assert dom.count("<script") == 3  # the data block, Leaflet, the report's own


@needs_chromium
def test_browser_draws_the_map(grid_edges, tmp_path):
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(render(_diffs(12, evil=False), grid_edges), encoding="utf-8")
    shot = tmp_path / "shot.png"
    out = _chromium([f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,800",
                     f"--screenshot={shot}", page.as_uri()])
    assert shot.exists(), out.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    map_part = img[:, : img.shape[1] * 3 // 5]
    background = np.array([0xF4, 0xF4, 0xF0])
    grey = (np.abs(map_part - np.array([0x9A, 0x9A, 0x9A])).sum(axis=2) < 60).mean()
    coloured = (np.abs(map_part - background).sum(axis=2) > 60).mean()
    # the road network is drawn (grey strokes) and the diffs on it (colour)
    assert grey > 0.002, grey
    assert coloured > 0.005, coloured


def test_png_overview(grid_edges, tmp_path):
    from PIL import Image

    from mapdiff.report import overview_png

    path = tmp_path / "overview.png"
    overview_png(_diffs(10, evil=False), grid_edges, path)
    assert Image.open(path).size[0] > 300


def test_cli_report(grid_edges, tmp_path, runner):
    from mapdiff.io import write_gpkg
    from mapdiff_cli.main import cli

    write_gpkg({"edges": grid_edges.to_crs(4326)}, tmp_path / "map.gpkg")
    write_gpkg({"diffs": _diffs(9)}, tmp_path / "diffs.gpkg")
    r = runner.invoke(cli, ["report", str(tmp_path / "diffs.gpkg"), "--map", str(tmp_path / "map.gpkg"),
                            "-o", str(tmp_path / "r.html"), "--png", str(tmp_path / "o.png"), "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r.html").stat().st_size > 100_000 and (tmp_path / "o.png").exists()
    r = runner.invoke(cli, ["report", str(tmp_path / "map.gpkg"), "--map", str(tmp_path / "map.gpkg"),
                            "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 1 and "no layer 'diffs'" in r.output and not (tmp_path / "x.html").exists()
