"""Scores of stage outputs against ground truth, written once and shared by tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RouteScore:
    """Length-weighted comparison of a matched edge set with the true one.

    ``mismatch`` is Newson & Krumm's route mismatch fraction: (length wrongly added + length
    wrongly left out) / true length; ``accuracy`` is 1 - mismatch (can go below 0).
    """

    precision: float
    recall: float
    mismatch: float
    true_m: float
    matched_m: float

    @property
    def accuracy(self) -> float:
        return 1.0 - self.mismatch


def route_score(true_edges, matched_edges, edge_length) -> RouteScore:
    """Compare two edge sets (directed edge ids, repeats ignored), weighted by ``edge_length``.

    ``edge_length`` maps an edge id to its length: an array indexed by id or a mapping.
    """
    truth = set(int(e) for e in true_edges)
    found = set(int(e) for e in matched_edges)
    length = edge_length.__getitem__
    t_len = float(sum(length(e) for e in truth))
    m_len = float(sum(length(e) for e in found))
    both = float(sum(length(e) for e in truth & found))
    missed = t_len - both
    added = m_len - both
    precision = both / m_len if m_len > 0 else (1.0 if t_len == 0 else 0.0)
    recall = both / t_len if t_len > 0 else 1.0
    mismatch = (missed + added) / t_len if t_len > 0 else (0.0 if m_len == 0 else np.inf)
    return RouteScore(precision, recall, mismatch, t_len, m_len)


def match_scores(paths, truth, edge_length) -> "pd.DataFrame":
    """Per-trip :func:`route_score` of matched ``paths`` against ``truth`` (both with
    ``trip_id`` and ``edge_id`` columns); ``edge_length`` maps edge_id to metres.

    Returns one row per true trip: precision, recall, mismatch, accuracy, true and matched metres.
    """
    import pandas as pd

    found = {trip: part["edge_id"].to_numpy() for trip, part in paths.groupby("trip_id")}
    rows = []
    for trip, part in truth.groupby("trip_id", sort=True):
        s = route_score(part["edge_id"].to_numpy(), found.get(trip, []), edge_length)
        rows.append({"trip_id": trip, "precision": s.precision, "recall": s.recall, "mismatch": s.mismatch,
                     "accuracy": s.accuracy, "true_m": s.true_m, "matched_m": s.matched_m})
    return pd.DataFrame(rows)
