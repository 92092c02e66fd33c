"""Accuracy on a small subset of the Kubicka et al. (2015) real tracks (fixtures/kubicka/)."""

import pytest

from tests.conftest import FIXTURES

TRACKS = ["00000005", "00000039", "00000046", "00000048", "00000052"]


def test_real_track_accuracy():
    from fixtures.kubicka import read_track
    from mapdiff.evaluate import route_score
    from mapdiff.matching import match
    from mapdiff.network import Network

    scores = {}
    for track in TRACKS:
        edges, traces, route = read_track(FIXTURES / "kubicka" / track)
        net = Network.from_edges(edges)
        matched, paths = match(traces, net)
        assert len(matched) == len(traces)
        scores[track] = route_score(route, paths["edge_id"], net.edge_len).accuracy
    # the goal is a mean of 0.99; a track may lose an edge at a node where it starts
    assert sum(scores.values()) / len(scores) >= 0.99, scores
    assert min(scores.values()) >= 0.98, scores


def test_route_score_on_hand_made_cases():
    from mapdiff.evaluate import route_score

    length = {1: 100.0, 2: 50.0, 3: 50.0, 4: 25.0}
    perfect = route_score([1, 2, 3], [1, 2, 3], length)
    assert perfect.precision == perfect.recall == 1.0 and perfect.mismatch == 0.0
    # one 50 m edge missed, one 25 m edge added: mismatch (50 + 25) / 200
    s = route_score([1, 2, 3], [1, 2, 4], length)
    assert s.recall == pytest.approx(150 / 200)
    assert s.precision == pytest.approx(150 / 175)
    assert s.mismatch == pytest.approx(75 / 200)
    assert s.accuracy == pytest.approx(1 - 75 / 200)
