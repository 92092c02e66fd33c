"""HMM map matching: Viterbi over candidate edges, with route distances from bounded Dijkstra.

Probabilities are tiny pure functions in log space; the kernel walks every trip of a batch
(``trip_ptr`` into points sorted by trip and time) in one call.
"""

from collections import namedtuple

import numpy as np

from mapdiff._kernels import jit, jit_inline, jit_lean
from mapdiff._kernels.geometry import query_points
from mapdiff._kernels.graph import cached_search, dijkstra, new_cache, new_workspace

NEG = -1e300  # log(0) stand-in that survives additions
SKIP_BEAM = 0.0  # only the best hypothesis of a fix (and its ties) jumps over the next fixes

STATE_MATCHED = 0
STATE_UNMATCHED = 1
STATE_BREAK = 2

#: the road graph as the HMM's kernels take it: CSR out-edges (``out_ptr``, ``out_edge``), each
#: edge's nodes and length, its routing weight (with the wrong-way price) and the log prior of a
#: fix on it
HmmGraph = namedtuple("HmmGraph", ["out_ptr", "out_edge", "edge_u", "edge_v", "edge_len", "edge_w", "edge_prior"])

#: the HMM's parameters as its kernels take them (built from a MatchConfig by the matcher):
#: ``beta`` the transition's (beta_m, beta_rel, from_m); ``floor`` the emission's floor; the log
#: prices (< 0) of a skipped fix, a break and a U-turn; routes longer than ``route_factor`` x
#: straight + ``route_slack_m`` are not considered; ``rev_tol_m`` the jitter back along an
#: edge; ``max_gap_s`` the time gap that breaks a chain for free; ``max_skip`` fixes skipped at
#: most; ``end_skip_s``: a trip's last fixes are skipped only this close in time to the fix
#: before them; ``rescue_radius_m`` (0: off), ``beam`` (log-likelihood), and ``stop_radius_m``:
#: a thinned fix this close to the last one that counted adds no evidence (:func:`_pool`)
HmmParams = namedtuple("HmmParams", ["beta", "floor", "log_skip", "log_break", "log_uturn", "route_factor",
                                     "route_slack_m", "rev_tol_m", "max_gap_s", "max_skip", "end_skip_s",
                                     "rescue_radius_m", "beam", "stop_radius_m"])

#: how much of a chain's end edge must be driven for :func:`paths` to keep it: ``min_m``, or
#: ``lone_m`` when one fix only lies on it and the fix next to it came within ``lone_s``
EndRule = namedtuple("EndRule", ["min_m", "lone_m", "lone_s"])


@jit_inline
def log_emission(dist_m, sigma_m, floor):
    """Gaussian log-likelihood of a GPS error, floored so one outlier cannot force a detour."""
    z = dist_m / sigma_m
    return max(-0.5 * z * z, floor)


@jit_inline
def log_transition(route_m, step, beta):
    """Exponential in the gap between route and straight-line distance (Newson & Krumm), of
    mean beta_m + beta_rel x (the step's span beyond from_m), ``beta`` = (beta_m, beta_rel,
    from_m, travel_mps), ``step`` = (straight distance, span: :func:`step_of`): the longer the
    step between fixes, the farther a route winds from the straight line. Normalised (minus the
    log of that mean over beta_m), so that long steps pay for their wider density."""
    scale = _scale(step[1], beta)
    return -abs(route_m - step[0]) / scale - np.log(scale / beta[0])


@jit_inline
def _scale(span_m, beta):
    """The transition's scale over a step spanning ``span_m`` (see :func:`log_transition`)."""
    return beta[0] + beta[1] * max(span_m - beta[2], 0.0)


@jit_inline
def step_of(pts, i, j, beta):
    """(straight distance, span) of the step from fix i to fix j of ``pts`` = (x, y, clock):
    the span is the straight distance, or as far as a car covers at ``travel_mps`` in the time
    between the fixes on the trace's own clock if that is more (see ``MatchConfig.travel_mps``)."""
    px, py, clock = pts
    straight = np.hypot(px[j] - px[i], py[j] - py[i])
    return straight, max(straight, beta[3] * (clock[j] - clock[i]))


@jit_inline
def same_edge_route(off_a, off_b, rev_tol_m):
    """Signed route length when staying on one edge, or NaN if it would need a loop.

    A step back of up to ``rev_tol_m`` is GPS jitter around a slow or stopped car and gives a
    negative length: scored against the straight-line distance it costs the step back plus the
    distance moved, so sustained backward motion (a one-way driven the wrong way) is not free.
    """
    if off_a - off_b <= rev_tol_m:
        return off_b - off_a
    return np.nan


@jit
def _ncand(cedge, p):
    k = 0
    while k < cedge.shape[1] and cedge[p, k] >= 0:
        k += 1
    return k


@jit
def _emissions(cedge, cdist, sigma, floor, edge_prior):
    """Per fix its number of candidates, and each candidate's log emission with its edge's prior."""
    n, k = cedge.shape
    ncand = np.zeros(n, dtype=np.int64)
    emis = np.full((n, k), NEG)
    for i in range(n):
        ncand[i] = _ncand(cedge, i)
        for b in range(ncand[i]):
            emis[i, b] = log_emission(cdist[i, b], sigma[i], floor) + edge_prior[cedge[i, b]]
    return ncand, emis


@jit
def _pool(emis, ncand, cand_d, anchor, px, py, sigma, graph, params):
    """Add to each kept fix's emissions those of the fixes thinned into it (:func:`thin`) that
    moved at least ``params.stop_radius_m`` from the last one that counted (a stop's jitter
    adds nothing, so a long stop cannot outweigh a route): thinning drops fixes from the
    lattice, not their evidence. A thinned fix speaks for a candidate edge of its anchor by its
    distance to that edge or to one the edge leads on to, if the way there from the anchor's
    place on it is short enough (the car may be past the junction); where it has neither among
    its candidates, it counts at the floor. ``cand_d`` = (edges, distances, offsets) of the
    candidates."""
    cedge, cdist, coff = cand_d
    cur = -1
    lx = 0.0
    ly = 0.0
    r2 = params.stop_radius_m * params.stop_radius_m
    for i in range(anchor.shape[0]):
        a = anchor[i]
        if a < 0:
            if cedge[i, 0] >= 0:
                cur, lx, ly = i, px[i], py[i]
            continue
        if a != cur or (px[i] - lx) ** 2 + (py[i] - ly) ** 2 < r2:
            continue
        lx, ly = px[i], py[i]
        # a route from the anchor to the thinned fix winds little over so short a way
        reach = np.hypot(px[i] - px[a], py[i] - py[a]) + 2.0 * sigma[i]
        for b in range(ncand[a]):
            c = cedge[a, b]
            d = np.inf
            for q in range(ncand[i]):
                e = cedge[i, q]
                if e == c or (graph.edge_u[e] == graph.edge_v[c]
                              and graph.edge_len[c] - coff[a, b] + coff[i, q] <= reach):
                    d = min(d, cdist[i, q])
            emis[a, b] += log_emission(d, sigma[i], params.floor)


@jit_inline
def _needs_graph(ea, off_a, eb, off_b, rev_tol_m):
    """Whether the route from (``ea``, ``off_a``) to (``eb``, ``off_b``) leaves the edge."""
    return ea != eb or np.isnan(same_edge_route(off_a, off_b, rev_tol_m))


@jit_inline
def _log_step(ea, off_a, eb, off_b, bound_m, step, params, edges, found, n_out):
    """Log transition from candidate (``ea``, ``off_a``) to (``eb``, ``off_b``) over ``step``
    (:func:`step_of`), the better of a U-turn where the car is and the route, or NEG when no
    route is within ``bound_m``. ``edges`` is (edge_u, edge_v, edge_len); a route that leaves
    the edge takes ``found`` = (distance, first edge, price metres), what the search from
    ``ea``'s end node (``n_out`` ways out) found to ``eb``'s start (inf: not reached)."""
    edge_u, edge_v, edge_len = edges
    found_m, first, extra = found
    beta, log_uturn = params.beta, params.log_uturn
    src = edge_v[ea]
    best = NEG
    if edge_u[eb] == src and edge_v[eb] == edge_u[ea]:
        # a U-turn where the car is, back along the same street: the route is the distance
        # between the two positions on it
        r = abs((edge_len[eb] - off_b) - off_a)
        if r <= bound_m:
            best = log_transition(r, step, beta) + log_uturn
    r = np.nan
    if ea == eb:
        r = same_edge_route(off_a, off_b, params.rev_tol_m)
    if not np.isnan(r):
        return max(best, log_transition(r, step, beta))
    r = edge_len[ea] - off_a + found_m + off_b
    if r > bound_m:
        return best
    # the price metres (a one-way driven backwards on the way) cost what they cost between fixes
    # close together, whatever the step's scale: with a fix a minute the scale is 90 m, and a
    # wrong-way shortcut around a block cost a tenth of what it costs at 1 Hz (synthetic
    # Helsinki traces at 60 s: mismatch 0.287 -> 0.278; Kubicka tracks 0.913 -> 0.916)
    s = log_transition(r, step, beta) - extra * (1.0 / beta[0] - 1.0 / _scale(step[1], beta))
    # turning straight back onto the reverse of ``ea`` (as the next edge, or the path's first)
    # where there was another way to go: a dead end's turn is no choice, and not priced
    back = edge_u[ea]
    if n_out > 1 and (edge_v[eb] == back if edge_u[eb] == src else first >= 0 and edge_v[first] == back):
        s += log_uturn
    return max(best, s)


@jit_inline
def _found(w, stamp, ws):
    """Distance, first edge and the distance's price metres (see
    :func:`mapdiff._kernels.graph.dijkstra`) of the search stored in ``ws`` under ``stamp`` to
    node ``w`` (inf, -1, 0 where it did not reach)."""
    if ws.settled[w] != stamp:
        return np.inf, -1, 0.0
    return ws.dist[w], ws.first[w], ws.extra[w]


@jit
def new_searches(n_nodes, graph):
    """The route searches' state: the search cache (:func:`mapdiff._kernels.graph.new_cache`),
    and for the searches that leave out wrong-way twins a workspace, their weights (a twin:
    inf) and a stamp counter (see :func:`_legal_found`)."""
    legal_w = np.where(graph.edge_w > graph.edge_len, np.inf, graph.edge_len)
    return new_cache(n_nodes), (new_workspace(n_nodes, graph.edge_u.shape[0]), legal_w, np.zeros(1, dtype=np.int64))


@jit_lean
def _legal_found(src, dst, bound_m, graph, legal):
    """(distance, first edge, 0) of the shortest route from node ``src`` to node ``dst`` that
    drives no one-way edge backwards, within ``bound_m`` (inf, -1, 0 where there is none).

    The cached searches weigh a wrong-way twin at ``wrong_way_cost_m`` metres more, the trade
    between fixes close together; over a longer step, whose scale is wider, the way round a
    block costs less against the twin's price than that, and the search, which keeps one route
    per node, does not find it. Run only where the route it found drives a twin."""
    ws, weight, counter = legal
    counter[0] += 1
    ws.target[dst] = counter[0]
    dijkstra(src, bound_m, 1, counter[0], graph.out_ptr, graph.out_edge, graph.edge_v, weight, ws, weight)
    return _found(dst, counter[0], ws)


@jit_lean
def _way_round(ea, off_a, eb, off_b, bound_m, step, params, graph, legal):
    """The transition from (``ea``, ``off_a``) to (``eb``, ``off_b``) by the way round, that
    drives no one-way edge backwards (:func:`_legal_found`). A function of its own, not inlined:
    it runs only on long steps, and inlined a second time into the push, the transition's code
    made the Viterbi a third slower at 1 Hz."""
    src = graph.edge_v[ea]
    legal_route = _legal_found(src, graph.edge_u[eb], bound_m, graph, legal)
    return _log_step(ea, off_a, eb, off_b, bound_m, step, params, (graph.edge_u, graph.edge_v, graph.edge_len),
                     legal_route, graph.out_ptr[src + 1] - graph.out_ptr[src])


@jit_inline
def _wider(found, step, params):
    """Whether a route ``found`` drives a wrong-way twin on a step whose scale is wider than
    ``beta_m``: the way round may then be the better (:func:`_legal_found`)."""
    return found[2] > 0.0 and _scale(step[1], params.beta) > params.beta[0]


@jit_inline
def _routing(graph):
    """What :func:`mapdiff._kernels.graph.cached_search` searches: the out-edges, the weights
    with their prices and the roads' lengths."""
    return graph.out_ptr, graph.out_edge, graph.edge_v, graph.edge_w, graph.edge_len


#: one lattice of the Viterbi: per fix its candidates' edges and offsets, their log emissions
#: and count, and the scores with their back links (fix, candidate) being filled in
Lattice = namedtuple("Lattice", ["cedge", "coff", "emis", "ncand", "score", "back_j", "back_a"])


@jit_inline
def _order_live(score, i, n, order):
    """The candidates of fix ``i`` with a score into ``order``, best first; returns how many."""
    n_live = 0
    for a in range(n):
        if score[i, a] <= NEG / 2:
            continue
        q = n_live
        while q > 0 and score[i, order[q - 1]] < score[i, a]:
            order[q] = order[q - 1]
            q -= 1
        order[q] = a
        n_live += 1
    return n_live


@jit_inline
def _nearest_tail(lat, i, order, qa, n_live, src, cut, edge_v, edge_len):
    """The shortest way left to node ``src`` from the candidates of fix ``i`` ending there (those
    of ``order[qa:n_live]`` above ``cut``), or NaN if a candidate before ``qa`` ends there (its
    search served them all)."""
    for qa2 in range(qa):
        if edge_v[lat.cedge[i, order[qa2]]] == src:
            return np.nan
    tail_min = np.inf
    for qa2 in range(qa, n_live):
        e2 = lat.cedge[i, order[qa2]]
        if edge_v[e2] == src and lat.score[i, order[qa2]] > cut:
            tail_min = min(tail_min, edge_len[e2] - lat.coff[i, order[qa2]])
    return tail_min


@jit_inline
def _push_pairs(i, a2, j, base, bound_m, step, reach, lat, graph, params, ws, cache, stamp):
    """Push hypothesis ``a2`` of fix ``i`` (score ``base`` with the skips paid) to the candidates
    of fix ``j``. The search from its edge's end node (under ``stamp``, reaching ``reach[0]``
    metres; -inf: not run yet) is run, or run farther, only when a pair that could still raise
    its target needs the graph, and only such a pair reads it. Returns the stamp."""
    e2 = lat.cedge[i, a2]
    src = graph.edge_v[e2]
    n_out = graph.out_ptr[src + 1] - graph.out_ptr[src]
    edges = (graph.edge_u, graph.edge_v, graph.edge_len)
    for b in range(lat.ncand[j]):
        if base + lat.emis[j, b] <= lat.score[j, b]:
            continue  # a transition only lowers the score: this pair cannot win
        eb = lat.cedge[j, b]
        if bound_m - reach[1] > reach[0] and _needs_graph(e2, lat.coff[i, a2], eb, lat.coff[j, b], params.rev_tol_m):
            stamp += 1
            reach[0] = bound_m - reach[1]
            cached_search(src, reach[0], stamp, _routing(graph), ws, cache[0])
        found = _found(graph.edge_u[eb], stamp, ws)
        s = _log_step(e2, lat.coff[i, a2], eb, lat.coff[j, b], bound_m, step, params, edges, found, n_out)
        if _wider(found, step, params):
            s = max(s, _way_round(e2, lat.coff[i, a2], eb, lat.coff[j, b], bound_m, step, params, graph, cache[1]))
        s += base + lat.emis[j, b]
        if s > lat.score[j, b]:
            lat.score[j, b] = s
            lat.back_j[j, b] = i
            lat.back_a[j, b] = a2
    return stamp


@jit_lean
def _push(i, nxt, n_next, skips, lat, pts, stamp, graph, params, ws, cache, bufs):
    """Push the scores of fix ``i`` of the :data:`Lattice` ``lat`` forward to the fixes
    ``nxt[:n_next]`` (fix m of them skips ``skips[m]`` fixes that had candidates). Returns the
    next free search stamp.

    Hypotheses go best first, grouped by the node their edge ends at: one bounded search per
    node serves every candidate edge ending there and every target fix, and it is skipped when
    no pair could still raise a target's score (a transition only lowers a score). Beam:
    hypotheses far behind the best of this fix are not extended, and only those close to the
    best jump over a fix (a skip matters only where the best chain meets an outlier).
    """
    order, bound, steps, reach = bufs
    n_live = _order_live(lat.score, i, lat.ncand[i], order)
    if n_live == 0:
        return stamp
    best = lat.score[i, order[0]]
    cut = best - params.beam
    for m in range(n_next):
        steps[m, 0], steps[m, 1] = step_of(pts, i, nxt[m], params.beta)
        bound[m] = params.route_factor * steps[m, 0] + params.route_slack_m
    # how far the search from the node reaches (-inf: not run yet, so the first pair that needs
    # the graph runs one even where its bound is shorter than the tail), the nearest tail
    for qa in range(n_live):
        if lat.score[i, order[qa]] <= cut:
            break
        src = graph.edge_v[lat.cedge[i, order[qa]]]
        reach[1] = _nearest_tail(lat, i, order, qa, n_live, src, cut, graph.edge_v, graph.edge_len)
        if np.isnan(reach[1]):
            continue
        reach[0] = -np.inf
        for qa2 in range(qa, n_live):
            a2 = order[qa2]
            if graph.edge_v[lat.cedge[i, a2]] != src or lat.score[i, a2] <= cut:
                continue
            for m in range(n_next):
                if m > 0 and lat.score[i, a2] < best - SKIP_BEAM:
                    break
                base = lat.score[i, a2] + skips[m] * params.log_skip
                stamp = _push_pairs(i, a2, nxt[m], base, bound[m], (steps[m, 0], steps[m, 1]), reach, lat, graph,
                                    params, ws, cache, stamp)
    return stamp


@jit_lean
def _is_live(score, p):
    for q in range(score.shape[1]):  # noqa: SIM110  (numba compiles no any() over a generator)
        if score[p, q] > NEG / 2:
            return True
    return False


@jit_lean
def _backtrack(ends, n_ends, score, back_j, back_a, t, params, sel, chain, state):
    """Backtrack a trip from the best of its last scored fixes ``ends[:n_ends]`` (oldest first;
    an end pays the skip penalty for the scored fixes after it, which lie within ``end_skip_s``
    of it). A back link with ``back_a <= -2`` is a break: the chain restarts there. Sets
    ``sel``, ``chain`` and ``state`` of the fixes on the path."""
    best = NEG
    p = -1
    q = -1
    last = ends[n_ends - 1]
    for m in range(n_ends):
        e = ends[m]
        if m < n_ends - 1 and t[last] - t[e] > params.end_skip_s:
            continue
        for r in range(score.shape[1]):
            s = score[e, r] + (n_ends - 1 - m) * params.log_skip
            if score[e, r] > NEG / 2 and s > best:
                best = s
                p = e
                q = r
    n_breaks = 0
    path_end = p
    while p >= 0:
        sel[p] = q
        state[p] = STATE_MATCHED
        nq = back_a[p, q]
        np_ = back_j[p, q]
        if nq <= -2:
            state[p] = STATE_BREAK
            n_breaks += 1
            nq = -nq - 2
        p, q = np_, nq
    # chain numbers count the breaks from the start of the trip
    c = n_breaks
    p = path_end
    while p >= 0:
        chain[p] = c
        if back_a[p, sel[p]] <= -2:
            c -= 1
        p = back_j[p, sel[p]]


@jit
def thin(trip_ptr, px, py, sigma, cedge, radius_m, thin_sigmas):
    """For each fix, the earlier fix it is thinned into (-1 if it stands for itself).

    A fix within ``thin_sigmas`` GPS sigmas (and at least ``radius_m``) of the last kept fix of
    its trip is no independent look at the route (Newson & Krumm 2009 drop the fixes within 2
    sigma of the previous one): it leaves the lattice, which then has half the steps on a
    1 Hz city trace, and its emissions are added to its anchor's (:func:`_pool`). A parked
    car's fixes all fall into one anchor. When thinning, the trip's last fix with candidates
    stands for itself: it is where the trip ended, up to 2 sigma on from the last kept fix,
    maybe past a junction (within ``radius_m`` alone, a stop, it adds nothing).
    """
    anchor = np.full(px.shape[0], -1, dtype=np.int64)
    for tr in range(trip_ptr.shape[0] - 1):
        last = -1
        end = trip_ptr[tr + 1] - 1 if thin_sigmas > 0 else -1
        while end > trip_ptr[tr] and cedge[end, 0] < 0:
            end -= 1
        for i in range(trip_ptr[tr], trip_ptr[tr + 1]):
            if cedge[i, 0] < 0:
                continue
            r = max(radius_m, thin_sigmas * sigma[i])
            if last >= 0 and i != end and (px[i] - px[last]) ** 2 + (py[i] - py[last]) ** 2 < r * r:
                anchor[i] = last
            else:
                last = i
    return anchor


RESCUE_K = 64


@jit
def _rescue(i, recent, n_recent, cand, lat, anchor, px, py, times, sigma, stamp, geom, graph, ws, cache, bufs, params):
    """Give fix ``i``, which no live hypothesis reaches, a second look (a fast road with the GPS
    far off): up to RESCUE_K edges within ``rescue_radius_m`` are scored from the chain's live
    fixes on a small local copy of the problem, and the best k of them that are reachable
    become ``i``'s candidates. ``times`` = (time, the trace's clock: see :func:`viterbi`).
    Returns (whether ``i`` is now live, next stamp)."""
    t, clock = times
    cedge, cdist, coff, cx, cy = cand
    ncand, emis, score, back_j, back_a = lat.ncand, lat.emis, lat.score, lat.back_j, lat.back_a
    window = params.max_skip + 1
    k = cedge.shape[1]
    rows = n_recent + 1  # local row r < n_recent is recent[r]; the last row is fix i
    l_edge = np.full((rows, RESCUE_K), -1, dtype=np.int64)
    l_dist = np.full((rows, RESCUE_K), np.inf)
    l_off = np.zeros((rows, RESCUE_K))
    l_x = np.zeros((rows, RESCUE_K))
    l_y = np.zeros((rows, RESCUE_K))
    l_score = np.full((rows, RESCUE_K), NEG)
    l_bj = np.full((rows, RESCUE_K), -1, dtype=np.int64)
    l_ba = np.full((rows, RESCUE_K), -1, dtype=np.int64)
    l_px = np.empty(rows)
    l_py = np.empty(rows)
    l_clock = np.empty(rows)
    l_emis = np.full((rows, RESCUE_K), NEG)
    for r in range(rows):
        g = recent[r] if r < n_recent else i
        l_px[r], l_py[r], l_clock[r] = px[g], py[g], clock[g]
        if r < n_recent:
            l_edge[r, :k], l_dist[r, :k], l_off[r, :k] = cedge[g], cdist[g], coff[g]
            l_score[r, :k] = score[g]
    # the rescue row is the last local row; query_points fills row p of its outputs for point p
    found = query_points(px[i:i + 1], py[i:i + 1], params.rescue_radius_m, geom, l_edge[n_recent:], l_dist[n_recent:],
                         l_off[n_recent:], l_x[n_recent:], l_y[n_recent:])[0]
    if found == 0:
        return False, stamp
    l_ncand = np.empty(rows, dtype=np.int64)
    for r in range(n_recent):
        l_ncand[r] = ncand[recent[r]]
    l_ncand[n_recent] = found
    edge_prior, floor = graph.edge_prior, params.floor
    for q in range(found):
        l_emis[n_recent, q] = log_emission(l_dist[n_recent, q], sigma[i], floor) + edge_prior[l_edge[n_recent, q]]
    nxt = np.full(1, n_recent, dtype=np.int64)
    skips = np.empty(1, dtype=np.int64)
    local = Lattice(l_edge, l_off, l_emis, l_ncand, l_score, l_bj, l_ba)
    for r in range(n_recent):
        j = recent[r]
        skipped = 0
        for q in range(j + 1, i):
            if cedge[q, 0] >= 0 and anchor[q] < 0:
                skipped += 1
        if skipped >= window or t[i] - t[j] > params.max_gap_s:
            continue
        skips[0] = skipped
        stamp = _push(r, nxt, 1, skips, local, (l_px, l_py, l_clock), stamp, graph, params, ws, cache, bufs)
    order = np.argsort(-l_score[n_recent])
    if l_score[n_recent, order[0]] <= NEG / 2:
        return False, stamp
    cedge[i, :] = -1
    score[i, :] = NEG
    for q in range(k):
        o = order[q]
        if l_score[n_recent, o] <= NEG / 2:
            break
        cedge[i, q], cdist[i, q], coff[i, q] = l_edge[n_recent, o], l_dist[n_recent, o], l_off[n_recent, o]
        cx[i, q], cy[i, q] = l_x[n_recent, o], l_y[n_recent, o]
        emis[i, q] = l_emis[n_recent, o]
        ncand[i] = q + 1
        score[i, q] = l_score[n_recent, o]
        back_j[i, q] = recent[l_bj[n_recent, o]]
        back_a[i, q] = l_ba[n_recent, o]
    return True, stamp


@jit_lean
def _enter(i, prev, t, lat, restart, params):
    """Fix ``i``'s scores: its emissions at a trip's first scored fix (``prev`` < 0), else also
    a break from ``restart`` (free after a long time gap) where that beats the pushed scores;
    then ``restart`` moves on (it pays a skip per fix) to the best of ``i`` if that is better."""
    kb = lat.ncand[i]
    score = lat.score
    if prev < 0:
        for b in range(kb):
            score[i, b] = lat.emis[i, b]
    else:
        base = restart[0] + (0.0 if t[i] - t[prev] > params.max_gap_s else params.log_break)
        for b in range(kb):
            if base + lat.emis[i, b] > score[i, b]:
                score[i, b] = base + lat.emis[i, b]
                lat.back_j[i, b] = int(restart[1])
                lat.back_a[i, b] = -2 - int(restart[2])
    restart[0] += params.log_skip
    for b in range(kb):
        if score[i, b] > restart[0]:
            restart[0], restart[1], restart[2] = score[i, b], i, b


@jit_lean
def _remember(recent, n_recent, i):
    """Append fix ``i`` to the window of recent scored fixes (the oldest drops out when it is
    full); returns its new length."""
    if n_recent == recent.shape[0]:
        for m in range(n_recent - 1):
            recent[m] = recent[m + 1]
        n_recent -= 1
    recent[n_recent] = i
    return n_recent + 1


@jit_lean
def _next_fixes(i, end, cedge, anchor, t, params, nxt, skips):
    """The scored fixes after ``i`` (before ``end``) that ``i`` pushes to, into ``nxt`` with the
    fixes each skips into ``skips``: up to the window's length, not across a long time gap.
    Returns how many."""
    n_next = 0
    j = i + 1
    while j < end and n_next < nxt.shape[0]:
        if cedge[j, 0] >= 0 and anchor[j] < 0:
            if t[j] - t[i] > params.max_gap_s:
                break
            nxt[n_next] = j
            skips[n_next] = n_next
            n_next += 1
        j += 1
    return n_next


@jit
def viterbi(trip_ptr, px, py, times, sigma, cand, anchor, geom, n_nodes, graph, params):
    """Match every trip; returns per fix the chosen candidate slot (-1 unmatched), the chain
    number within its trip and the state code, and the emissions it scored, (ncand, emis), for
    :func:`posterior`. ``params`` is an :data:`HmmParams`.

    A push-forward Viterbi: each scored fix sends its scores to the next ``max_skip + 1`` fixes
    that have candidates, paying ``log_skip`` (a log-probability, < 0) per fix jumped, so an
    outlier is skipped rather than explained by a detour. Every fix may also start a new chain
    from the best hypothesis so far at the price ``log_break`` (free after a time gap longer
    than ``max_gap_s``): a break competes with detours and skips instead of being a fallback.
    A fix no hypothesis reaches first gets a wider candidate search (``rescue_radius_m``, 0 to
    disable); ``cand`` (edge, dist, offset, x, y rows) is updated in place where that
    succeeds. Fixes thinned into an anchor (:func:`thin`) take no part but their emissions.
    ``times`` = (each fix's time, the trace's clock: the time a step's span is measured by,
    which leaves out what a gap lasted beyond the trip's usual interval; see
    ``MatchConfig.travel_mps``).
    """
    t, clock = times
    cedge, cdist, coff, cx, cy = cand
    n, k = cedge.shape
    sel = np.full(n, -1, dtype=np.int64)
    chain = np.full(n, -1, dtype=np.int64)
    state = np.full(n, STATE_UNMATCHED, dtype=np.int8)
    score = np.full((n, k), NEG)
    ncand, emis = _emissions(cedge, cdist, sigma, params.floor, graph.edge_prior)
    _pool(emis, ncand, (cedge, cdist, coff), anchor, px, py, sigma, graph, params)
    lat = Lattice(cedge, coff, emis, ncand, score, np.full((n, k), -1, dtype=np.int64),
                  np.full((n, k), -1, dtype=np.int64))
    ws = new_workspace(n_nodes, graph.edge_u.shape[0])
    cache = new_searches(n_nodes, graph)
    window = params.max_skip + 1
    # for _push: the live candidates in order, each target's bound and step (straight, span), the reach
    bufs = (np.empty(max(k, RESCUE_K), dtype=np.int64), np.empty(window), np.empty((window, 2)), np.empty(2))
    nxt = np.empty(window, dtype=np.int64)
    skips = np.empty(window, dtype=np.int64)
    recent = np.empty(window, dtype=np.int64)  # the trip's last scored fixes, oldest first
    restart = np.empty(3)  # where a break would restart from: best score so far less the skips since, fix, slot
    stamp = 0
    for tr in range(trip_ptr.shape[0] - 1):
        start, end = trip_ptr[tr], trip_ptr[tr + 1]
        n_recent = 0
        prev = -1  # the previous scored fix
        restart[0], restart[1], restart[2] = NEG, -1, -1
        for i in range(start, end):
            if cedge[i, 0] < 0 or anchor[i] >= 0:
                continue
            if prev >= 0 and not _is_live(score, i) and params.rescue_radius_m > 0:
                _, stamp = _rescue(i, recent, n_recent, cand, lat, anchor, px, py, times, sigma, stamp, geom, graph,
                                   ws, cache, bufs, params)
            _enter(i, prev, t, lat, restart, params)
            n_recent = _remember(recent, n_recent, i)
            prev = i
            n_next = _next_fixes(i, end, cedge, anchor, t, params, nxt, skips)
            if n_next > 0:
                stamp = _push(i, nxt, n_next, skips, lat, (px, py, clock), stamp, graph, params, ws, cache, bufs)
        if n_recent > 0:
            _backtrack(recent, n_recent, score, lat.back_j, lat.back_a, t, params, sel, chain, state)
    return sel, chain, state, (lat.ncand, lat.emis)


@jit
def _next_kept(trip_ptr, anchor, sel):
    """Per fix the next fix of its trip that stands for itself and is matched (-1: none)."""
    nxt = np.full(anchor.shape[0], -1, dtype=np.int64)
    for tr in range(trip_ptr.shape[0] - 1):
        n = -1
        for i in range(trip_ptr[tr + 1] - 1, trip_ptr[tr] - 1, -1):
            nxt[i] = n
            if anchor[i] < 0 and sel[i] >= 0:
                n = i
    return nxt


@jit_inline
def _slot_of(cedge, i, e):
    """Fix ``i``'s candidate slot on edge ``e``, -1 if it has none there."""
    for r in range(cedge.shape[1]):
        if cedge[i, r] == e:
            return r
    return -1


@jit
def resolve(trip_ptr, sel, anchor, chain, conf, state, cand, px, py, sigma, floor):
    """Per fix: matched edge, offset, matched x/y and distance. A thinned fix (:func:`thin`) is
    on its anchor's edge or, past a junction, on the next kept fix's edge if its chain goes on
    there: whichever of its own candidates on the two is nearer (the route between them rarely
    has a third edge within 2 sigma); without its own candidate there it takes its anchor's
    place. Its confidence is that of the kept fix whose edge it took times the posterior of
    that edge among the two given its own emissions (the route known, which of its edges the
    fix is on: near the junction between them, about even)."""
    cedge, cdist, coff, cx, cy = cand
    n = sel.shape[0]
    edge = np.full(n, -1, dtype=np.int64)
    off = np.full(n, np.nan)
    mx = np.full(n, np.nan)
    my = np.full(n, np.nan)
    dist = np.full(n, np.nan)
    nxt = _next_kept(trip_ptr, anchor, sel)
    for i in range(n):
        a = anchor[i]
        if a < 0:
            q = sel[i]
            if q >= 0:
                edge[i], off[i], mx[i], my[i], dist[i] = cedge[i, q], coff[i, q], cx[i, q], cy[i, q], cdist[i, q]
            continue
        if sel[a] < 0:
            continue
        src = a
        q = _slot_of(cedge, i, cedge[a, sel[a]])
        share = 1.0
        b = nxt[i]
        if b >= 0 and chain[b] == chain[a] and cedge[b, sel[b]] != cedge[a, sel[a]]:
            qb = _slot_of(cedge, i, cedge[b, sel[b]])
            if qb >= 0 and (q < 0 or cdist[i, qb] < cdist[i, q]):
                q, src, qb = qb, b, q
            if qb >= 0:  # the other edge is a candidate of the fix too
                other = log_emission(cdist[i, qb], sigma[i], floor) - log_emission(cdist[i, q], sigma[i], floor)
                share = 1.0 / (1.0 + np.exp(other))
        chain[i], conf[i], state[i] = chain[a], conf[src] * share, STATE_MATCHED
        edge[i] = cedge[src, sel[src]]
        if q >= 0:
            off[i], mx[i], my[i], dist[i] = coff[i, q], cx[i, q], cy[i, q], cdist[i, q]
        else:
            off[i], mx[i], my[i] = coff[a, sel[a]], cx[a, sel[a]], cy[a, sel[a]]
            dist[i] = np.hypot(px[i] - mx[i], py[i] - my[i])
    return edge, off, mx, my, dist


@jit
def _grow(arr, need):
    if need <= arr.shape[0]:
        return arr
    out = np.empty(max(need, 2 * arr.shape[0]), dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


@jit_inline
def _end_m(n_fixes, gap_s, ends):
    """How much of a chain's end edge must be driven for it to count, with ``n_fixes`` on it
    and ``gap_s`` seconds to the fix next to them (``ends``: an :data:`EndRule`)."""
    return max(ends.min_m, ends.lone_m) if n_fixes == 1 and gap_s <= ends.lone_s else ends.min_m


@jit
def _trim_chain_end(m, row0, last_off, entered_by_route):
    """Drop the chain's last path row if the vehicle only touched its edge (exit at ~0 m)."""
    if entered_by_route and m - 1 > row0 and last_off < 0.0:
        return m - 1
    return m


@jit
def paths(trip_ptr, t, sel_edge, sel_off, chain, anchor, n_nodes, graph, rev_tol_m, ends):
    """The driven edge sequence of every chain, with enter and exit times.

    Between consecutive matched fixes the route is the shortest path (the one the HMM scored);
    times along it are interpolated by distance. A chain's first or last edge is left out when
    less than ``ends.min_m`` of it was driven (a fix near a node touches every edge there), or
    ``ends.lone_m`` when one fix only lies on it and the fix next to it came within
    ``ends.lone_s`` seconds (a car at the node, not on the edge: on it, it would have left more
    fixes); ``ends`` is an :data:`EndRule`.
    Returns flat arrays: trip index, chain, edge, t_enter, t_exit.
    """
    out_ptr, out_edge, edge_u, edge_v, edge_len, edge_w, edge_prior = graph
    cap = 1024
    o_trip = np.empty(cap, dtype=np.int64)
    o_chain = np.empty(cap, dtype=np.int64)
    o_edge = np.empty(cap, dtype=np.int64)
    o_t0 = np.empty(cap)
    o_t1 = np.empty(cap)
    m = 0
    ws = new_workspace(n_nodes, edge_u.shape[0])
    pred = ws.pred
    target = ws.target
    stamp = 0
    seq = np.empty(64, dtype=np.int64)
    for tr in range(trip_ptr.shape[0] - 1):
        prev = -1
        row0 = 0  # first path row of the current chain
        start_left = 0.0  # metres of the chain's first edge ahead of its first fix
        routed = False  # whether the last row was entered by a route (not a chain start)
        on_last = 0  # fixes on the last row
        gap_s = np.inf  # seconds between the first row's first fix and the next, or into the last row
        for i in range(trip_ptr[tr], trip_ptr[tr + 1]):
            if chain[i] < 0:
                continue
            if anchor[i] >= 0:
                # a thinned fix only extends the stay: the route is between the kept fixes
                o_t1[m - 1] = t[i]
                on_last += 1
                continue
            e1 = sel_edge[i]
            if prev < 0 or chain[prev] != chain[i]:
                if prev >= 0:
                    m = _trim_chain_end(m, row0, sel_off[prev] - _end_m(on_last, gap_s, ends), routed)
                # a new chain starts on its first matched edge
                o_trip = _grow(o_trip, m + 1)
                o_chain = _grow(o_chain, m + 1)
                o_edge = _grow(o_edge, m + 1)
                o_t0 = _grow(o_t0, m + 1)
                o_t1 = _grow(o_t1, m + 1)
                o_trip[m], o_chain[m], o_edge[m], o_t0[m], o_t1[m] = tr, chain[i], e1, t[i], t[i]
                row0 = m
                start_left = edge_len[e1] - sel_off[i]
                routed = False
                on_last = 1
                gap_s = np.inf
                m += 1
                prev = i
                continue
            e0 = sel_edge[prev]
            if e0 == e1 and not np.isnan(same_edge_route(sel_off[prev], sel_off[i], rev_tol_m)):
                o_t1[m - 1] = t[i]
                on_last += 1
                prev = i
                continue
            stamp += 1
            src, dst = edge_v[e0], edge_u[e1]
            target[dst] = stamp
            dijkstra(src, np.inf, 1, stamp, out_ptr, out_edge, edge_v, edge_w, ws, edge_len)
            nseq = 0
            w = dst
            between = 0.0
            while w != src:
                seq = _grow(seq, nseq + 1)
                seq[nseq] = pred[w]
                between += edge_len[pred[w]]
                nseq += 1
                w = edge_u[pred[w]]
            total = (edge_len[e0] - sel_off[prev]) + between + sel_off[i]
            rate = (t[i] - t[prev]) / total if total > 0 else 0.0
            s = edge_len[e0] - sel_off[prev]
            o_t1[m - 1] = t[prev] + s * rate
            gap_s = t[i] - t[prev]
            if m - 1 == row0 and not routed and start_left < _end_m(on_last, gap_s, ends):
                m -= 1  # the chain only touched its first edge at the end: it starts on the next
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
            routed = True
            on_last = 1
            prev = i
        if prev >= 0:
            m = _trim_chain_end(m, row0, sel_off[prev] - _end_m(on_last, gap_s, ends), routed)
    return o_trip[:m], o_chain[:m], o_edge[:m], o_t0[:m], o_t1[:m]


@jit_lean
def _step_transitions(i, j, live, cand, ncand, pts, trans, graph, params, ws, cache, stamp):
    """Fill ``trans[a, b]`` for the ``live`` candidates a of fix ``i`` to every candidate b of
    fix ``j`` (NEG elsewhere): one search per end node of the live candidates, as far as the
    nearest of them needs, served from ``cache`` as the Viterbi's are (consecutive fixes share
    their candidates' end nodes: on the synthetic Helsinki traces 111,508 searches of 28,000
    fixes came down to 271, and the posterior's time per fix from 5.7 to 3.9 us, one run each).
    Returns the next stamp."""
    cedge, cdist, coff, cx, cy = cand
    step = step_of(pts, i, j, params.beta)
    bound_m = params.route_factor * step[0] + params.route_slack_m
    edges = (graph.edge_u, graph.edge_v, graph.edge_len)
    trans[:, :] = NEG
    for a in range(ncand[i]):
        src = graph.edge_v[cedge[i, a]]
        if not live[a] or _served_before(cedge[i], live, a, src, graph.edge_v):
            continue
        stamp += 1
        reach = -1.0  # the farthest any candidate ending at src needs (-1: none leaves its edge)
        for a2 in range(a, ncand[i]):
            e2 = cedge[i, a2]
            if live[a2] and graph.edge_v[e2] == src:
                for b in range(ncand[j]):
                    if _needs_graph(e2, coff[i, a2], cedge[j, b], coff[j, b], params.rev_tol_m):
                        reach = max(reach, bound_m - (graph.edge_len[e2] - coff[i, a2]))
                        break
        if reach >= 0:
            cached_search(src, reach, stamp, _routing(graph), ws, cache[0])
        for a2 in range(a, ncand[i]):
            e2 = cedge[i, a2]
            if live[a2] and graph.edge_v[e2] == src:
                n_out = graph.out_ptr[src + 1] - graph.out_ptr[src]
                for b in range(ncand[j]):
                    found = _found(graph.edge_u[cedge[j, b]], stamp, ws)
                    trans[a2, b] = _log_step(e2, coff[i, a2], cedge[j, b], coff[j, b], bound_m, step, params,
                                             edges, found, n_out)
                    if _wider(found, step, params):
                        trans[a2, b] = max(trans[a2, b], _way_round(e2, coff[i, a2], cedge[j, b], coff[j, b], bound_m,
                                                                    step, params, graph, cache[1]))
    return stamp


@jit_inline
def _served_before(edges_i, live, a, src, edge_v):
    """Whether a live candidate before ``a`` ends at node ``src`` too (its search served both)."""
    for a2 in range(a):  # noqa: SIM110  (numba compiles no any() over a generator)
        if live[a2] and edge_v[edges_i[a2]] == src:
            return True
    return False


@jit_inline
def _relative_exp(v, n, out):
    """``out[:n]`` = exp(v - max v), 0 where v is NEG; returns max v (NEG: all are)."""
    top = NEG
    for q in range(n):
        top = max(top, v[q])
    for q in range(n):
        out[q] = np.exp(v[q] - top) if v[q] > NEG / 2 else 0.0
    return top


@jit
def _forward(seq, emis, cand, ncand, pts, sel, graph, params, ws, cache, stamp):
    """The forward pass over the fixes ``seq`` of one chain, in probabilities scaled per fix (a
    constant per fix cancels in the posterior, and exp is then taken once per pair, not twice
    with a log per candidate as in log space): per fix each candidate's forward probability
    (normalised), the transitions into it as probabilities relative to the step's best pair,
    and whether any route reached it from the fix before (else it starts afresh). Candidates
    whose forward probability is below e^-beam of their fix's best are not carried on: the
    Viterbi does not extend them either. Returns (fwd, trans, linked, stamp)."""
    n_seq, k = seq.shape[0], cand[0].shape[1]
    fwd = np.zeros((n_seq, k))
    trans = np.full((n_seq, k, k), NEG)  # trans[s, a, b]: from candidate a of seq[s-1] to b of seq[s]
    linked = np.zeros(n_seq, dtype=np.bool_)
    live = np.zeros(k, dtype=np.bool_)
    lik = np.empty(k)
    cut = np.exp(-params.beam)
    for s in range(n_seq):
        j = seq[s]
        _relative_exp(emis[j], ncand[j], lik)
        if s > 0:
            i = seq[s - 1]
            top = np.max(fwd[s - 1, :ncand[i]])
            for a in range(ncand[i]):
                live[a] = fwd[s - 1, a] >= top * cut or a == sel[i]
            stamp = _step_transitions(i, j, live, cand, ncand, pts, trans[s], graph, params, ws, cache, stamp)
            step = trans[s]
            best = NEG
            for a in range(ncand[i]):
                for b in range(ncand[j]):
                    best = max(best, step[a, b])
            for a in range(ncand[i]):
                for b in range(ncand[j]):
                    step[a, b] = np.exp(step[a, b] - best) if step[a, b] > NEG / 2 else 0.0
            for b in range(ncand[j]):
                total = 0.0
                for a in range(ncand[i]):
                    total += fwd[s - 1, a] * step[a, b]
                fwd[s, b] = total * lik[b]
            linked[s] = best > NEG / 2 and np.sum(fwd[s, :ncand[j]]) > 0.0
        if not linked[s]:  # the chain's start (or a step nothing scored: start afresh there)
            fwd[s, :ncand[j]] = lik[:ncand[j]]
        fwd[s, :ncand[j]] /= np.sum(fwd[s, :ncand[j]])
    return fwd, trans, linked, stamp


@jit
def _backward(seq, fwd, trans, linked, emis, ncand, sel, conf):
    """The backward pass over one chain (probabilities, scaled per fix), and ``conf`` of each of
    its fixes: the posterior of its chosen candidate (forward x backward, normalised over the
    fix's candidates)."""
    k = fwd.shape[1]
    bwd = np.ones(k)
    nxt = np.empty(k)
    for s in range(seq.shape[0] - 1, -1, -1):
        j = seq[s]
        nb = ncand[j]
        total = 0.0
        for b in range(nb):
            total += fwd[s, b] * bwd[b]
        conf[j] = fwd[s, sel[j]] * bwd[sel[j]] / total
        if s == 0:
            break
        na = ncand[seq[s - 1]]
        if not linked[s]:
            bwd[:na] = 1.0
            continue
        _relative_exp(emis[j], nb, nxt)
        for b in range(nb):
            nxt[b] *= bwd[b]
        top = 0.0
        for a in range(na):
            total = 0.0
            for b in range(nb):
                total += trans[s, a, b] * nxt[b]
            bwd[a] = total
            top = max(top, total)
        # keep the messages in range (a constant per fix cancels in the posterior)
        if top > 0.0:
            bwd[:na] /= top
        else:
            bwd[:na] = 1.0


@jit
def posterior(trip_ptr, pts, emissions, cand, anchor, sel, chain, n_nodes, graph, params):
    """The smoothed confidence of each matched fix: the posterior probability of its chosen
    candidate given the whole chain (forward-backward, a sum over all paths, where the Viterbi
    keeps the best one), over the lattice :func:`viterbi` scored (``emissions`` = (ncand, emis)
    as it returns them: pooled, a rescued fix's its own; ``pts`` = (x, y, the trace's clock)).
    Fixes off the chains get NaN; thinned fixes are left to :func:`resolve`."""
    n = cand[0].shape[0]
    conf = np.full(n, np.nan)
    ncand, emis = emissions
    ws = new_workspace(n_nodes, graph.edge_u.shape[0])
    cache = new_searches(n_nodes, graph)
    stamp = 0
    seq = np.empty(n, dtype=np.int64)
    for tr in range(trip_ptr.shape[0] - 1):
        m = 0
        for i in range(trip_ptr[tr], trip_ptr[tr + 1]):
            if sel[i] >= 0 and anchor[i] < 0:
                seq[m] = i
                m += 1
        s = 0
        while s < m:
            e = s + 1
            while e < m and chain[seq[e]] == chain[seq[s]]:
                e += 1
            fwd, trans, linked, stamp = _forward(seq[s:e], emis, cand, ncand, pts, sel, graph, params, ws, cache,
                                                 stamp)
            _backward(seq[s:e], fwd, trans, linked, emis, ncand, sel, conf)
            s = e
    return conf


#: fewest matched fixes of a trip to measure its GPS error from (below: the fixes keep their
#: posterior as it is); a sigma and a share from n distances are good to some 1/sqrt(2n)
MIN_FIXES_ON_ROAD = 5


@jit
def _on_road_fit(d, radius_m):
    """Fit distances ``d`` to the road as a mixture: fixes on the road (a 2-D Gaussian GPS error
    of sigma s: Rayleigh) and fixes off it (a car park, a road the map lacks: uniform over the
    disc of ``radius_m``). EM from the median (1.177 s for a Rayleigh); returns (s, share off)."""
    s = max(np.median(d) / 1.177, 0.1)
    off = 0.1
    for _ in range(30):
        total = 0.0
        moment = 0.0
        for q in range(d.shape[0]):
            w = _on_road(d[q], s, off, radius_m)
            total += w
            moment += w * d[q] * d[q]
        s = max(np.sqrt(moment / max(2.0 * total, 1e-12)), 0.1)
        off = min(max(1.0 - total / d.shape[0], 1e-3), 0.5)
    return s, off


@jit_inline
def _on_road(d, s, off, radius_m):
    """The probability that a fix ``d`` metres from the road is on it, under the mixture. Both
    densities of the distance carry the factor 2 pi d of the ring at d; it cancels (and at d =
    0, where it is 0, the fix is on the road)."""
    ray = np.exp(-0.5 * (d / s) ** 2) / (s * s)
    uni = 2.0 / (radius_m * radius_m)
    return (1.0 - off) * ray / ((1.0 - off) * ray + off * uni)


@jit
def on_road(trip_ptr, dist, radius_m):
    """Per fix, the probability that it was taken on a road at all (not in a car park or on a
    road the map lacks, which the lattice has no state for), from its trip's own distances to
    the matched roads (:func:`_on_road_fit`); 1 where a trip has too few matched fixes or a fix
    none. Per trip, so a shard of trips gets the values of the whole run."""
    out = np.ones(dist.shape[0])
    for tr in range(trip_ptr.shape[0] - 1):
        d = dist[trip_ptr[tr]:trip_ptr[tr + 1]]
        ok = d[np.isfinite(d)]
        if ok.shape[0] < MIN_FIXES_ON_ROAD:
            continue
        r = max(radius_m, np.max(ok))
        s, off = _on_road_fit(ok, r)
        for q in range(d.shape[0]):
            if np.isfinite(d[q]):
                out[trip_ptr[tr] + q] = _on_road(d[q], s, off, r)
    return out
