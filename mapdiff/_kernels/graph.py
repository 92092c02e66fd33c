"""Bounded shortest paths on a CSR graph (no all-pairs table).

State lives in caller-owned arrays so that many searches in one kernel call share them:
``stamp`` tags which entries of ``dist``/``pred`` belong to the current search, so nothing
is cleared between searches.
"""

import numpy as np

from mapdiff._kernels import jit


@jit
def new_workspace(n_nodes, n_edges):
    """Arrays for :func:`dijkstra`: dist, pred_edge, seen-stamp, settled-stamp, target-stamp, heap."""
    dist = np.empty(n_nodes)
    pred = np.empty(n_nodes, dtype=np.int64)
    seen = np.zeros(n_nodes, dtype=np.int64)
    settled = np.zeros(n_nodes, dtype=np.int64)
    target = np.zeros(n_nodes, dtype=np.int64)
    # lazy-deletion heap: at most one push per relaxed edge plus the source
    heap_key = np.empty(n_edges + 1)
    heap_node = np.empty(n_edges + 1, dtype=np.int64)
    return dist, pred, seen, settled, target, heap_key, heap_node


@jit
def _heap_push(keys, nodes, size, key, node):
    i = size
    keys[i] = key
    nodes[i] = node
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= key:
            break
        keys[i] = keys[parent]
        nodes[i] = nodes[parent]
        i = parent
    keys[i] = key
    nodes[i] = node
    return size + 1


@jit
def _heap_pop(keys, nodes, size):
    top_key = keys[0]
    top_node = nodes[0]
    size -= 1
    if size > 0:
        key = keys[size]
        node = nodes[size]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= size:
                break
            if c + 1 < size and keys[c + 1] < keys[c]:
                c += 1
            if keys[c] >= key:
                break
            keys[i] = keys[c]
            nodes[i] = nodes[c]
            i = c
        keys[i] = key
        nodes[i] = node
    return top_key, top_node, size


@jit
def dijkstra(src, bound, n_targets, stamp, out_ptr, out_edge, edge_v, edge_len, ws):
    """Settle nodes from ``src`` in distance order until ``n_targets`` marked targets are
    settled or the next distance exceeds ``bound``.

    Targets are the nodes with ``target[node] == stamp`` (marked by the caller). Afterwards a
    node's shortest distance is ``dist[node]`` if ``settled[node] == stamp``, else unknown
    (beyond the bound); ``pred[node]`` is the edge that reached it.
    """
    dist, pred, seen, settled, target, heap_key, heap_node = ws
    dist[src] = 0.0
    pred[src] = -1
    seen[src] = stamp
    size = _heap_push(heap_key, heap_node, 0, 0.0, src)
    remaining = n_targets
    while size > 0:
        d, node, size = _heap_pop(heap_key, heap_node, size)
        if settled[node] == stamp:
            continue
        if d > bound:
            break
        settled[node] = stamp
        if target[node] == stamp:
            remaining -= 1
            if remaining == 0:
                break
        for j in range(out_ptr[node], out_ptr[node + 1]):
            e = out_edge[j]
            w = edge_v[e]
            nd = d + edge_len[e]
            if nd > bound:
                continue
            if seen[w] != stamp or nd < dist[w]:
                seen[w] = stamp
                dist[w] = nd
                pred[w] = e
                size = _heap_push(heap_key, heap_node, size, nd, w)
