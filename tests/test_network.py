"""The network stage (OSM to GeoPackage) and the compiled network model."""

import geopandas as gpd
import numpy as np
import pytest
import shapely

from mapdiff.osm import classify_node, is_drivable
from tests.conftest import FIXTURES


@pytest.mark.parametrize(
    "tags, expected",
    [
        ({"highway": "traffic_signals"}, [("traffic_signals", None)]),
        ({"highway": "stop"}, [("stop", None)]),
        ({"highway": "give_way"}, [("give_way", None)]),
        ({"highway": "crossing", "crossing": "zebra"}, [("crossing", "zebra")]),
        ({"traffic_sign": "FI:231"}, [("traffic_sign", "FI:231")]),
        ({"traffic_sign": "FI:231;141"}, [("traffic_sign", "FI:231"), ("traffic_sign", "FI:141")]),
        ({"traffic_sign": "DE:274[50]"}, [("speed_limit", "50")]),
        # a comma inside a sign's brackets is the sign's own (a 2.5 t weight limit), not a split
        ({"traffic_sign": "FI:344[2,5 t],FI:372"}, [("traffic_sign", "FI:344[2,5 t]"), ("traffic_sign", "FI:372")]),
        ({"traffic_sign": "FI:612[left][FI:663[E 75]];FI:211"},
         [("traffic_sign", "FI:612[left][FI:663[E 75]]"), ("traffic_sign", "FI:211")]),
        ({"traffic_sign": "maxspeed", "maxspeed": "30"}, [("speed_limit", "30")]),
        ({"amenity": "cafe"}, []),
    ],
)
def test_classify_node(tags, expected):
    assert classify_node(tags) == expected


@pytest.mark.parametrize(
    "tags, drivable",
    [
        ({"highway": "residential"}, True),
        ({"highway": "footway"}, False),
        ({"highway": "service"}, False),
        ({"highway": "primary", "access": "private"}, False),
        ({"highway": "tertiary", "motor_vehicle": "no"}, False),
        ({"building": "yes"}, False),
    ],
)
def test_drive_filter(tags, drivable):
    assert is_drivable(tags) is drivable


@pytest.fixture(scope="module")
def helsinki(tmp_path_factory):
    from mapdiff.osm import build_map

    path = tmp_path_factory.mktemp("hel") / "helsinki.gpkg"
    build_map(FIXTURES / "helsinki.osm.pbf", path)
    return path


def test_helsinki_layers_follow_the_osmnx_layout(helsinki):
    edges = gpd.read_file(helsinki, layer="edges")
    nodes = gpd.read_file(helsinki, layer="nodes")
    assert {"edge_id", "u", "v", "key", "osmid", "highway", "oneway", "maxspeed", "length"} <= set(edges.columns)
    assert edges["edge_id"].is_unique and edges["edge_id"].dtype == np.int64
    assert set(edges["u"]) | set(edges["v"]) <= set(nodes["osmid"])
    # geometry runs from u to v
    pos = dict(zip(nodes["osmid"], zip(nodes.geometry.x, nodes.geometry.y)))
    start = shapely.get_point(edges.geometry.values, 0)
    ux = np.array([pos[u][0] for u in edges["u"]])
    assert np.allclose(shapely.get_x(start), ux)
    # no footways in a drive network
    assert not edges["highway"].astype(str).str.contains("footway").any()


def test_helsinki_features_count_what_osm_has(helsinki):
    import osmium

    signals = 0
    for node in osmium.FileProcessor(str(FIXTURES / "helsinki.osm.pbf"), osmium.osm.NODE):
        if node.tags.get("highway") == "traffic_signals":
            signals += 1
    features = gpd.read_file(helsinki, layer="features")
    assert (features["class"] == "traffic_signals").sum() == signals == 135
    assert features["feature_id"].is_unique
    assert (features["class"] == "traffic_sign").sum() > 1000
    assert features.crs.to_epsg() == 4326


def test_network_output_is_reproducible(tmp_path):
    from mapdiff.osm import build_map

    a, b = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    build_map(FIXTURES / "West-Oakland.osm.bz2", a)
    build_map(FIXTURES / "West-Oakland.osm.bz2", b)
    ea, eb = gpd.read_file(a, layer="edges"), gpd.read_file(b, layer="edges")
    assert ea.equals(eb)


def test_compiled_network_matches_the_layer(grid_net, grid_edges):
    assert grid_net.n_edges == len(grid_edges)
    assert np.allclose(grid_net.edge_len, 100.0, atol=0.5)
    # CSR: each edge leaves its u
    for node in range(grid_net.n_nodes):
        for j in range(grid_net.out_ptr[node], grid_net.out_ptr[node + 1]):
            assert grid_net.edge_u[grid_net.out_edge[j]] == node


def test_edge_ids_default_to_row_numbers(grid_edges):
    from mapdiff.network import Network

    net = Network.from_edges(grid_edges.drop(columns="edge_id"))
    assert net.edges["edge_id"].tolist() == list(range(len(grid_edges)))


def test_duplicate_edge_ids_are_rejected(grid_edges):
    from mapdiff.errors import InputError
    from mapdiff.network import Network

    bad = grid_edges.copy()
    bad.loc[1, "edge_id"] = 0
    with pytest.raises(InputError, match="edge_id"):
        Network.from_edges(bad)


def test_the_same_extract_gives_the_same_bytes_whatever_the_hash_seed(tmp_path):
    # osmnx merges the attributes of simplified ways through sets, whose order follows Python's
    # string hash seed: the map must not
    import os
    import subprocess
    import sys

    from tests.conftest import FIXTURES

    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"roads{seed}.gpkg"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "mapdiff_cli.main", "network", str(FIXTURES / "helsinki.osm.pbf"),
                        "-o", str(out), "-q"], check=True, env=env)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
