"""Bounded shortest paths on a CSR graph (no all-pairs table).

State lives in caller-owned arrays so that many searches in one kernel call share them:
``stamp`` tags which entries of ``dist``/``pred`` belong to the current search, so nothing
is cleared between searches.
"""

from collections import namedtuple

import numpy as np

from mapdiff._kernels import jit, jit_lean

#: the arrays of :func:`dijkstra`, by name (see :func:`new_workspace`)
Workspace = namedtuple("Workspace", ["dist", "pred", "seen", "settled", "target", "heap_key", "heap_node", "order",
                                     "first", "extra"])


@jit
def new_workspace(n_nodes, n_edges):
    """Arrays for :func:`dijkstra`: dist, pred_edge, seen-stamp, settled-stamp, target-stamp, heap,
    the settled nodes in order, the first edge of each node's path and the metres of its
    distance that are a price, not road (see :func:`dijkstra`)."""
    dist = np.empty(n_nodes)
    pred = np.empty(n_nodes, dtype=np.int64)
    seen = np.zeros(n_nodes, dtype=np.int64)
    # no stamp is -1: a node is settled under a search's stamp only once that search settles it
    # (stamps start at 0 in some callers; zeros would make every node look settled under 0)
    settled = np.full(n_nodes, -1, dtype=np.int64)
    target = np.zeros(n_nodes, dtype=np.int64)
    # lazy-deletion heap: at most one push per relaxed edge plus the source
    heap_key = np.empty(n_edges + 1)
    heap_node = np.empty(n_edges + 1, dtype=np.int64)
    order = np.empty(n_nodes, dtype=np.int64)
    first = np.empty(n_nodes, dtype=np.int64)
    extra = np.empty(n_nodes)
    return Workspace(dist, pred, seen, settled, target, heap_key, heap_node, order, first, extra)


@jit_lean
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


@jit_lean
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


@jit_lean
def dijkstra(src, bound, n_targets, stamp, out_ptr, out_edge, edge_v, edge_len, ws, road_len):
    """Settle nodes from ``src`` in distance order (by ``edge_len``) until ``n_targets`` marked
    targets are settled or the next distance exceeds ``bound``.

    Targets are the nodes with ``target[node] == stamp`` (marked by the caller). Afterwards a
    node's shortest distance is ``dist[node]`` if ``settled[node] == stamp``, else unknown
    (beyond the bound); ``pred[node]`` is the edge that reached it, ``first[node]`` the first
    edge of its path, and ``extra[node]`` how much of its distance is ``edge_len`` beyond the
    edges' ``road_len`` (a price on the way, such as a one-way driven backwards; the same
    array twice: none). Returns how many nodes were settled; they are ``order[:count]``,
    nearest first.
    """
    dist, pred, seen, settled, target, heap_key, heap_node, order, first, extra = ws
    dist[src] = 0.0
    pred[src] = -1
    first[src] = -1
    extra[src] = 0.0
    seen[src] = stamp
    size = _heap_push(heap_key, heap_node, 0, 0.0, src)
    remaining = n_targets
    count = 0
    while size > 0:
        d, node, size = _heap_pop(heap_key, heap_node, size)
        if settled[node] == stamp:
            continue
        if d > bound:
            break
        settled[node] = stamp
        order[count] = node
        count += 1
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
                first[w] = e if node == src else first[node]
                extra[w] = extra[node] + edge_len[e] - road_len[e]
                size = _heap_push(heap_key, heap_node, size, nd, w)
    return count


@jit
def new_cache(n_nodes, n_entries=4096, pool=1 << 20):
    """A cache of bounded searches by source node, for :func:`cached_search`."""
    slot = np.full(n_nodes, -1, dtype=np.int64)  # source node -> entry
    e_node = np.full(n_entries, -1, dtype=np.int64)
    e_bound = np.zeros(n_entries)
    e_start = np.zeros(n_entries, dtype=np.int64)
    e_len = np.zeros(n_entries, dtype=np.int64)
    p_node = np.empty(pool, dtype=np.int64)
    p_dist = np.empty(pool)
    p_first = np.empty(pool, dtype=np.int64)
    p_extra = np.empty(pool)
    fill = np.zeros(2, dtype=np.int64)  # entries used, pool used
    return slot, e_node, e_bound, e_start, e_len, p_node, (p_dist, p_extra), p_first, fill


@jit_lean
def cached_search(src, bound, stamp, graph, ws, cache):
    """Like :func:`dijkstra` without targets (everything within ``bound``) on ``graph`` (out_ptr,
    out_edge, edge_v, the routing weight, the road length), but served from ``cache`` when an
    earlier search from ``src`` reached at least as far. Consecutive GPS fixes mostly share
    their candidate edges, so most searches are repeats. Afterwards ``dist``, ``first``,
    ``extra`` and ``settled`` of ``ws`` hold the result under ``stamp``."""
    dist, settled, first, extra = ws.dist, ws.settled, ws.first, ws.extra
    slot, e_node, e_bound, e_start, e_len, p_node, (p_dist, p_extra), p_first, fill = cache
    s = slot[src]
    if s >= 0 and e_bound[s] >= bound:
        for q in range(e_start[s], e_start[s] + e_len[s]):
            node = p_node[q]
            if p_dist[q] > bound:
                break  # the entry is in distance order
            dist[node] = p_dist[q]
            first[node] = p_first[q]
            extra[node] = p_extra[q]
            settled[node] = stamp
        return
    # search further than asked: the next fixes on these edges ask for a little more each time
    bound = bound * 1.5 + 50.0
    out_ptr, out_edge, edge_v, edge_w, road_len = graph
    count = dijkstra(src, bound, 0, stamp, out_ptr, out_edge, edge_v, edge_w, ws, road_len)
    if fill[0] == e_node.shape[0] or fill[1] + count > p_node.shape[0]:
        for q in range(fill[0]):  # full: start over
            slot[e_node[q]] = -1
        fill[0] = 0
        fill[1] = 0
    if count > p_node.shape[0]:
        return
    s = slot[src]
    if s < 0:
        s = fill[0]
        fill[0] += 1
        slot[src] = s
        e_node[s] = src
    order = ws.order
    start = fill[1]
    for q in range(count):
        node = order[q]
        p_node[start + q] = node
        p_dist[start + q] = dist[node]
        p_first[start + q] = first[node]
        p_extra[start + q] = extra[node]
    e_bound[s] = bound
    e_start[s] = start
    e_len[s] = count
    fill[1] += count


@jit
def route_legs(src, dst, n_nodes, out_ptr, out_edge, edge_u, edge_v, edge_w):
    """Shortest path (by ``edge_w``) of each leg ``src[i] -> dst[i]``.

    Returns (edges, ptr, ok): the edges of leg i are ``edges[ptr[i]:ptr[i+1]]``; ``ok[i]`` is
    False when ``dst[i]`` cannot be reached from ``src[i]``.
    """
    n = src.shape[0]
    ws = new_workspace(n_nodes, out_edge.shape[0])
    pred, settled, target = ws.pred, ws.settled, ws.target
    ptr = np.zeros(n + 1, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    out = np.empty(max(16, 64 * n), dtype=np.int64)
    rev = np.empty(n_nodes + 1, dtype=np.int64)
    for i in range(n):
        stamp = i + 1
        target[dst[i]] = stamp
        dijkstra(src[i], np.inf, 1, stamp, out_ptr, out_edge, edge_v, edge_w, ws, edge_w)
        count = 0
        if settled[dst[i]] == stamp:
            ok[i] = True
            node = dst[i]
            while node != src[i]:
                e = pred[node]
                rev[count] = e
                count += 1
                node = edge_u[e]
        if ptr[i] + count > out.shape[0]:
            grown = np.empty(2 * (ptr[i] + count), dtype=np.int64)
            grown[: ptr[i]] = out[: ptr[i]]
            out = grown
        for k in range(count):
            out[ptr[i] + k] = rev[count - 1 - k]
        ptr[i + 1] = ptr[i] + count
    return out[: ptr[n]].copy(), ptr, ok
