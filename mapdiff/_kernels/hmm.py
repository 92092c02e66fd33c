"""HMM map matching: Viterbi over candidate edges, with route distances from bounded Dijkstra.

Probabilities are tiny pure functions in log space; the kernel walks every trip of a batch
(``trip_ptr`` into points sorted by trip and time) in one call.
"""

import numpy as np

from mapdiff._kernels import jit
from mapdiff._kernels.graph import dijkstra, new_workspace

NEG = -1e300  # log(0) stand-in that survives additions

STATE_MATCHED = 0
STATE_UNMATCHED = 1
STATE_BREAK = 2


@jit
def log_emission(dist_m, sigma_m, floor):
    """Gaussian log-likelihood of a GPS error, floored so one outlier cannot force a detour."""
    z = dist_m / sigma_m
    return max(-0.5 * z * z, floor)


@jit
def log_transition(route_m, straight_m, beta_m):
    """Exponential in the gap between route and straight-line distance (Newson & Krumm)."""
    return -abs(route_m - straight_m) / beta_m


@jit
def same_edge_route(off_a, off_b, rev_tol_m):
    """Route length when staying on one edge; -1 if it would need a loop (too far backwards)."""
    if off_b >= off_a:
        return off_b - off_a
    if off_a - off_b <= rev_tol_m:
        # GPS jitter while slow or stopped: treat the small step back as standing still
        return off_a - off_b
    return -1.0


@jit
def _route_matrix(a_pt, b_pt, cedge, coff, ka, kb, bound, stamp, out_ptr, out_edge, edge_u, edge_v,
                  edge_len, rev_tol_m, ws, route):
    """Fill ``route[a, b]`` with route distances between the candidates of two fixes
    (np.inf where unreachable within ``bound``); returns the next free search stamp."""
    dist = ws[0]
    settled = ws[3]
    target = ws[4]
    for a in range(ka):
        for b in range(kb):
            route[a, b] = np.inf
    for a in range(ka):
        ea = cedge[a_pt, a]
        src = edge_v[ea]
        # one search per distinct source node serves every candidate edge ending there
        done = False
        for a2 in range(a):
            if edge_v[cedge[a_pt, a2]] == src:
                done = True
                break
        if done:
            continue
        stamp += 1
        n_targets = 0
        for b in range(kb):
            w = edge_u[cedge[b_pt, b]]
            if target[w] != stamp:
                target[w] = stamp
                n_targets += 1
        tail_min = np.inf
        for a2 in range(a, ka):
            if edge_v[cedge[a_pt, a2]] == src:
                tail_min = min(tail_min, edge_len[cedge[a_pt, a2]] - coff[a_pt, a2])
        dijkstra(src, bound - tail_min, n_targets, stamp, out_ptr, out_edge, edge_v, edge_len, ws)
        for a2 in range(a, ka):
            e2 = cedge[a_pt, a2]
            if edge_v[e2] != src:
                continue
            tail = edge_len[e2] - coff[a_pt, a2]
            for b in range(kb):
                eb = cedge[b_pt, b]
                if eb == e2:
                    r = same_edge_route(coff[a_pt, a2], coff[b_pt, b], rev_tol_m)
                    if r >= 0.0:
                        route[a2, b] = r
                        continue
                w = edge_u[eb]
                if settled[w] == stamp:
                    route[a2, b] = tail + dist[w] + coff[b_pt, b]
    return stamp


@jit
def _ncand(cedge, p):
    k = 0
    while k < cedge.shape[1] and cedge[p, k] >= 0:
        k += 1
    return k


@jit
def _finish_chain(last, ncand_last, delta, back, bprev, sel, conf, chain, state, chain_id, is_first_chain):
    """Backtrack one chain ending at point ``last``; set ``sel``, ``conf``, ``chain``, ``state``."""
    best = 0
    for q in range(1, ncand_last):
        if delta[last, q] > delta[last, best]:
            best = q
    p = last
    q = best
    first = last
    while p >= 0:
        sel[p] = q
        chain[p] = chain_id
        state[p] = STATE_MATCHED
        # filtering confidence: the chosen state's share of the forward probability mass
        total = 0.0
        for r in range(delta.shape[1]):
            if delta[p, r] > NEG / 2:
                total += np.exp(delta[p, r] - delta[p, q])
        conf[p] = 1.0 / total
        first = p
        nq = back[p, q]
        p = bprev[p]
        q = nq
    if not is_first_chain:
        state[first] = STATE_BREAK


@jit
def viterbi(trip_ptr, px, py, t, sigma, cedge, cdist, coff, n_nodes, out_ptr, out_edge, edge_u, edge_v,
            edge_len, beta_m, emission_floor, route_factor, route_slack_m, rev_tol_m, max_gap_s,
            max_outliers):
    """Match every trip; returns per point the chosen candidate slot (-1 unmatched), the
    confidence, the chain number within its trip and the state code."""
    n, k = cedge.shape
    sel = np.full(n, -1, dtype=np.int64)
    conf = np.full(n, np.nan)
    chain = np.full(n, -1, dtype=np.int64)
    state = np.full(n, STATE_UNMATCHED, dtype=np.int8)
    delta = np.full((n, k), NEG)
    back = np.full((n, k), -1, dtype=np.int64)
    bprev = np.full(n, -1, dtype=np.int64)
    ws = new_workspace(n_nodes, edge_u.shape[0])
    route = np.empty((k, k))
    stamp = 0
    for tr in range(trip_ptr.shape[0] - 1):
        start, end = trip_ptr[tr], trip_ptr[tr + 1]
        prev = -1
        chain_id = 0
        fails = 0
        first_fail = -1
        i = start
        while i < end:
            kb = _ncand(cedge, i)
            if kb == 0:
                i += 1
                continue
            if prev >= 0 and t[i] - t[prev] > max_gap_s:
                _finish_chain(prev, _ncand(cedge, prev), delta, back, bprev, sel, conf, chain, state,
                              chain_id, chain_id == 0)
                chain_id += 1
                prev = -1
                fails = 0
            if prev < 0:
                for b in range(kb):
                    delta[i, b] = log_emission(cdist[i, b], sigma[i], emission_floor)
                bprev[i] = -1
                prev = i
                i += 1
                continue
            ka = _ncand(cedge, prev)
            straight = np.hypot(px[i] - px[prev], py[i] - py[prev])
            bound = route_factor * straight + route_slack_m
            stamp = _route_matrix(prev, i, cedge, coff, ka, kb, bound, stamp, out_ptr, out_edge, edge_u,
                                  edge_v, edge_len, rev_tol_m, ws, route)
            best_all = NEG
            for b in range(kb):
                best = NEG
                arg = -1
                for a in range(ka):
                    if route[a, b] == np.inf or delta[prev, a] <= NEG / 2:
                        continue
                    s = delta[prev, a] + log_transition(route[a, b], straight, beta_m)
                    if s > best:
                        best = s
                        arg = a
                if arg >= 0:
                    best += log_emission(cdist[i, b], sigma[i], emission_floor)
                delta[i, b] = best
                back[i, b] = arg
                best_all = max(best_all, best)
            if best_all <= NEG / 2:
                # nothing reaches this fix: an outlier, or the chain is really broken
                fails += 1
                if fails == 1:
                    first_fail = i
                for b in range(kb):
                    delta[i, b] = NEG
                if fails > max_outliers:
                    _finish_chain(prev, ka, delta, back, bprev, sel, conf, chain, state, chain_id,
                                  chain_id == 0)
                    chain_id += 1
                    prev = -1
                    fails = 0
                    i = first_fail
                else:
                    i += 1
                continue
            for b in range(kb):
                if delta[i, b] > NEG / 2:
                    delta[i, b] -= best_all  # keep scores near zero along long trips
            fails = 0
            bprev[i] = prev
            prev = i
            i += 1
        if prev >= 0:
            _finish_chain(prev, _ncand(cedge, prev), delta, back, bprev, sel, conf, chain, state,
                          chain_id, chain_id == 0)
    return sel, conf, chain, state


@jit
def _grow(arr, need):
    if need <= arr.shape[0]:
        return arr
    out = np.empty(max(need, 2 * arr.shape[0]), dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


@jit
def paths(trip_ptr, t, sel_edge, sel_off, chain, n_nodes, out_ptr, out_edge, edge_u, edge_v, edge_len,
          rev_tol_m):
    """The driven edge sequence of every chain, with enter and exit times.

    Between consecutive matched fixes the route is the shortest path (the one the HMM scored);
    times along it are interpolated by distance. Returns flat arrays: trip index, chain, edge,
    t_enter, t_exit.
    """
    cap = 1024
    o_trip = np.empty(cap, dtype=np.int64)
    o_chain = np.empty(cap, dtype=np.int64)
    o_edge = np.empty(cap, dtype=np.int64)
    o_t0 = np.empty(cap)
    o_t1 = np.empty(cap)
    m = 0
    ws = new_workspace(n_nodes, edge_u.shape[0])
    pred = ws[1]
    target = ws[4]
    stamp = 0
    seq = np.empty(64, dtype=np.int64)
    for tr in range(trip_ptr.shape[0] - 1):
        prev = -1
        for i in range(trip_ptr[tr], trip_ptr[tr + 1]):
            if chain[i] < 0:
                continue
            e1 = sel_edge[i]
            if prev < 0 or chain[prev] != chain[i]:
                # a new chain starts on its first matched edge
                o_trip = _grow(o_trip, m + 1)
                o_chain = _grow(o_chain, m + 1)
                o_edge = _grow(o_edge, m + 1)
                o_t0 = _grow(o_t0, m + 1)
                o_t1 = _grow(o_t1, m + 1)
                o_trip[m], o_chain[m], o_edge[m], o_t0[m], o_t1[m] = tr, chain[i], e1, t[i], t[i]
                m += 1
                prev = i
                continue
            e0 = sel_edge[prev]
            if e0 == e1 and same_edge_route(sel_off[prev], sel_off[i], rev_tol_m) >= 0.0:
                o_t1[m - 1] = t[i]
                prev = i
                continue
            stamp += 1
            src, dst = edge_v[e0], edge_u[e1]
            target[dst] = stamp
            dijkstra(src, np.inf, 1, stamp, out_ptr, out_edge, edge_v, edge_len, ws)
            nseq = 0
            w = dst
            while w != src:
                seq = _grow(seq, nseq + 1)
                seq[nseq] = pred[w]
                nseq += 1
                w = edge_u[pred[w]]
            total = (edge_len[e0] - sel_off[prev]) + ws[0][dst] + sel_off[i]
            rate = (t[i] - t[prev]) / total if total > 0 else 0.0
            s = edge_len[e0] - sel_off[prev]
            o_t1[m - 1] = t[prev] + s * rate
            need = m + nseq + 1
            o_trip = _grow(o_trip, need)
            o_chain = _grow(o_chain, need)
            o_edge = _grow(o_edge, need)
            o_t0 = _grow(o_t0, need)
            o_t1 = _grow(o_t1, need)
            for j in range(nseq + 1):
                e = seq[nseq - 1 - j] if j < nseq else e1
                o_trip[m], o_chain[m], o_edge[m] = tr, chain[i], e
                o_t0[m] = t[prev] + s * rate
                s += edge_len[e] if j < nseq else sel_off[i]
                o_t1[m] = t[prev] + s * rate
                m += 1
            o_t1[m - 1] = t[i]
            prev = i
    return o_trip[:m], o_chain[:m], o_edge[:m], o_t0[:m], o_t1[:m]
