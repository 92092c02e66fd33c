"""Which passes to film: greedy set multicover with costs that shrink as neighbours are chosen.

A piece is one path row (a trip's pass over one directed edge) with its time interval
``[t0, t1]`` and its lead-in start ``a <= t0`` (the camera sees ahead: to film an edge the
clip starts a little before it). Filming a set of pieces of a trip costs the length of the
union of their intervals ``[a, t1]``: adjacent pieces share one clip and one lead-in. A piece
on a target edge serves that target once per trip; target ``t`` wants ``need[t]`` pieces from
distinct trips.

The greedy takes the piece with the most value per marginal second: value is the piece's
quality (daylight, recency) times ``repeat_weight`` when its vehicle already serves the
target, marginal seconds the part of its interval that chosen pieces do not already cover.
Values only fall as targets fill, but marginal costs fall too when a neighbour is chosen, so
the lazy heap gets a fresh entry for every neighbour of a chosen piece.
"""

from __future__ import annotations

import heapq

import numpy as np

from mapdiff._kernels import jit

#: the least marginal cost of a piece (seconds): a piece inside chosen neighbours' intervals is
#: free, and must not divide by zero
MIN_COST_S = 1e-3


@jit
def windows(trip_ptr, t0, t1, a):
    """Per piece, the first and last piece of its trip whose interval ``[a, t1]`` overlaps its
    own (``back``, ``fwd``, inclusive): the pieces whose cost choosing it changes."""
    n = len(t0)
    back = np.empty(n, np.int64)
    fwd = np.empty(n, np.int64)
    for r in range(len(trip_ptr) - 1):
        lo, hi = trip_ptr[r], trip_ptr[r + 1]
        for p in range(lo, hi):
            q = p
            while q > lo and t1[q - 1] > a[p]:
                q -= 1
            back[p] = q
            q = p
            while q + 1 < hi and a[q + 1] < t1[p]:
                q += 1
            fwd[p] = q
    return back, fwd


@jit
def _marginal(p, chosen, a, t1, back, fwd):
    """Seconds of piece p's interval not yet covered by chosen pieces of its trip."""
    lo, hi = a[p], t1[p]
    m = 0
    starts = np.empty(fwd[p] - back[p] + 1)
    ends = np.empty(fwd[p] - back[p] + 1)
    for q in range(back[p], fwd[p] + 1):
        if q != p and chosen[q]:
            s, e = max(a[q], lo), min(t1[q], hi)
            if e > s:
                starts[m] = s
                ends[m] = e
                m += 1
    covered = 0.0
    if m:
        order = np.argsort(starts[:m])
        cur_s, cur_e = starts[order[0]], ends[order[0]]
        for i in range(1, m):
            s, e = starts[order[i]], ends[order[i]]
            if s > cur_e:
                covered += cur_e - cur_s
                cur_s, cur_e = s, e
            elif e > cur_e:
                cur_e = e
        covered += cur_e - cur_s
    return max(hi - lo - covered, MIN_COST_S)


@jit
def _value(p, target, trip, vehicle, quality, need, served, slot_ptr, slot_trip, slot_vehicle, repeat_weight):
    t = target[p]
    if t < 0 or served[t] >= need[t]:
        return 0.0
    w = quality[p]
    for s in range(slot_ptr[t], slot_ptr[t] + served[t]):
        if slot_trip[s] == trip[p]:
            return 0.0  # this trip already serves the target
        if slot_vehicle[s] == vehicle[p]:
            w = quality[p] * repeat_weight
    return w


@jit
def multicover(trip_ptr, vehicle_of_trip, t1, a, back, fwd, target, quality, need, repeat_weight):
    """Choose pieces so that each target ``t`` is served by ``need[t]`` distinct trips where it
    can be (``back``, ``fwd``: :func:`windows`). Returns (chosen per piece, trips serving each
    target)."""
    n = len(t1)
    trip = np.empty(n, np.int64)
    for r in range(len(trip_ptr) - 1):
        trip[trip_ptr[r]:trip_ptr[r + 1]] = r
    vehicle = vehicle_of_trip[trip]
    n_t = len(need)
    slot_ptr = np.zeros(n_t + 1, np.int64)
    slot_ptr[1:] = np.cumsum(need)
    slot_trip = np.full(slot_ptr[-1], -1, np.int64)
    slot_vehicle = np.full(slot_ptr[-1], -1, np.int64)
    served = np.zeros(n_t, np.int64)
    chosen = np.zeros(n, np.bool_)

    heap = [(0.0, np.int64(0))]
    heap.pop()
    for p in range(n):
        if target[p] >= 0 and need[target[p]] > 0:
            cost = _marginal(p, chosen, a, t1, back, fwd)
            heap.append((-quality[p] / cost, np.int64(p)))
    heapq.heapify(heap)
    while len(heap):
        _, p = heapq.heappop(heap)
        if chosen[p]:
            continue
        v = _value(p, target, trip, vehicle, quality, need, served, slot_ptr, slot_trip, slot_vehicle, repeat_weight)
        if v <= 0.0:
            continue  # its target is full, or its trip serves it already: never again worth anything
        score = v / _marginal(p, chosen, a, t1, back, fwd)
        if len(heap) and score < -heap[0][0] * (1 - 1e-12):
            heapq.heappush(heap, (-score, p))  # worth less than it was: rank it again
            continue
        chosen[p] = True
        t = target[p]
        slot_trip[slot_ptr[t] + served[t]] = trip[p]
        slot_vehicle[slot_ptr[t] + served[t]] = vehicle[p]
        served[t] += 1
        # the neighbours' intervals now overlap a chosen one: cheaper, so possibly better
        for q in range(back[p], fwd[p] + 1):
            if not chosen[q] and target[q] >= 0 and served[target[q]] < need[target[q]]:
                vq = _value(q, target, trip, vehicle, quality, need, served, slot_ptr, slot_trip, slot_vehicle,
                            repeat_weight)
                if vq > 0.0:
                    heapq.heappush(heap, (-vq / _marginal(q, chosen, a, t1, back, fwd), q))
    return chosen, served


@jit
def union_runs(trip_ptr, a, t1, chosen):
    """The clips: per trip, the union of the chosen pieces' intervals as runs
    (trip index, start, end), in trip and time order."""
    out_trip = np.empty(int(chosen.sum()), np.int64)
    out_s = np.empty(len(out_trip))
    out_e = np.empty(len(out_trip))
    m = 0
    for r in range(len(trip_ptr) - 1):
        lo, hi = trip_ptr[r], trip_ptr[r + 1]
        picked = np.flatnonzero(chosen[lo:hi]) + lo
        if len(picked) == 0:
            continue
        # a long lead-in can reach back past an earlier piece's start: merge in start order
        picked = picked[np.argsort(a[picked], kind="mergesort")]
        cur_s, cur_e = a[picked[0]], t1[picked[0]]
        for p in picked[1:]:
            if a[p] <= cur_e:
                cur_e = max(cur_e, t1[p])
            else:
                out_trip[m], out_s[m], out_e[m] = r, cur_s, cur_e
                m += 1
                cur_s, cur_e = a[p], t1[p]
        out_trip[m], out_s[m], out_e[m] = r, cur_s, cur_e
        m += 1
    return out_trip[:m], out_s[:m], out_e[:m]


@jit
def _priced_choice(trip_ptr, t0, t1, a, target, back, price, chosen):
    """For target prices ``price``, the choice of target pieces that minimises
    ``sum (d_p - price[t(p)]) x_p + sum L_p s_p`` (the covering rows moved into the objective):
    per trip a shortest path, since "a clip starts at p" depends only on the last chosen piece
    before p. Fills ``chosen``; returns the minimum."""
    total = 0.0
    n = len(t0)
    f = np.empty(n)
    prev = np.full(n, -1, np.int64)
    best_to = np.empty(n)  # min(0, f of target pieces up to this one): the best way to have stopped
    best_at = np.empty(n, np.int64)
    chosen[:] = False
    for r in range(len(trip_ptr) - 1):
        lo, hi = trip_ptr[r], trip_ptr[r + 1]
        run_min, run_at = 0.0, np.int64(-1)
        for p in range(lo, hi):
            if target[p] >= 0:
                c = (t1[p] - t0[p]) - price[target[p]]
                # a new clip: pay the lead-in after the best choice that ends before the window
                b = back[p]
                if b > lo:
                    start, start_at = best_to[b - 1], best_at[b - 1]
                else:
                    start, start_at = 0.0, np.int64(-1)
                fp, at = c + (t0[p] - a[p]) + start, start_at
                for q in range(b, p):  # or continue a clip from a chosen piece in the window
                    if target[q] >= 0 and c + f[q] < fp:
                        fp, at = c + f[q], q
                f[p], prev[p] = fp, at
                if fp < run_min:
                    run_min, run_at = fp, p
            best_to[p], best_at[p] = run_min, run_at
        total += run_min
        p = run_at
        while p >= 0:
            chosen[p] = True
            p = prev[p]
    return total


@jit
def lagrangian_bound(trip_ptr, t0, t1, a, back, target, need, upper, iterations):
    """A lower bound on the clip-seconds of any choice that gives target ``t`` ``need[t]``
    pieces: the Lagrangian dual of the covering rows, maximised by subgradient steps (Polyak's
    rule towards ``upper``, a known plan's cost). Every iterate is a valid bound (weak duality);
    the best is returned."""
    n_t = len(need)
    price = np.zeros(n_t)
    # start from each target's cheapest lone piece: about what a sighting costs
    for p in range(len(t0)):
        t = target[p]
        if t >= 0:
            alone = t1[p] - a[p]
            if price[t] == 0.0 or alone < price[t]:
                price[t] = alone
    chosen = np.zeros(len(t0), np.bool_)
    best = 0.0
    theta = 1.0
    stall = 0
    count = np.zeros(n_t)
    for _ in range(iterations):
        value = _priced_choice(trip_ptr, t0, t1, a, target, back, price, chosen)
        bound = value + (price * need).sum()
        if bound > best + 1e-9 * abs(best):
            best, stall = bound, 0
        else:
            stall += 1
            if stall >= 10:
                theta, stall = theta / 2.0, 0
        count[:] = 0.0
        for p in range(len(t0)):
            if chosen[p]:
                count[target[p]] += 1.0
        g = need - count
        norm = (g * g).sum()
        if norm == 0.0 or theta < 1e-4:
            break
        step = theta * max(upper - bound, 1e-6 * upper) / norm
        price = np.maximum(price + step * g, 0.0)
    return best
