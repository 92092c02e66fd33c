"""Objects from single captures: each sighting its own trip (street-level imagery).

An observation is a camera position ``(ox, oy)``, a bearing ``b`` (radians clockwise from north)
and a range ``r`` (NaN: none); observations come grouped by identity (``start`` holds each
group's first row) and, within a group, sorted by the x of their end points ``(ex, ey)``, so
that a sweep over x finds the end points near a place.

A candidate is where the rays of two captures of one identity meet, in front of both and at
distances their ranges allow; where they do not (a bearing in the detector's tail, two
captures in line with the object), the point that fits both ranged sightings best, if it fits
both within the gate. Its support is the observations of its identity whose bearing
and range fit it within ``gate`` sigmas: a bearing's sigma at distance d is that of the
detector (``sb`` radians) and of the capture's position (``sp`` metres) across the ray,
sqrt(sb^2 + (sp / d)^2); a range's is ``sr`` in log range. Objects are taken
greedily, the best-supported candidate first, each observation going to one object only; a
candidate is re-scored on what is left before it is taken (a lazy greedy cover).
"""

import heapq

import numpy as np

from mapdiff._kernels import jit


@jit
def _wrap(a):
    return (a + np.pi) % (2.0 * np.pi) - np.pi


@jit
def _window(ex, lo, hi, x, reach):
    """First and one-past-last row of ``lo:hi`` (sorted by ``ex``) with ``|ex - x| <= reach``."""
    return lo + np.searchsorted(ex[lo:hi], x - reach), lo + np.searchsorted(ex[lo:hi], x + reach, side="right")


@jit
def _bearing_sigma(d, sb, sp):
    return np.sqrt(sb * sb + (sp / max(d, 1e-3)) ** 2)


@jit
def _fits(k, cx, cy, ox, oy, b, r, sb, sp, sr, gate):
    """The residuals of observation ``k`` at ``(cx, cy)`` as shares of the gates (bearing,
    range; range 0 without one), or -1 where it does not fit."""
    dx, dy = cx - ox[k], cy - oy[k]
    d = np.hypot(dx, dy)
    if d < 1e-6:
        return -1.0, -1.0
    gate_r = gate * sr
    rb = abs(_wrap(b[k] - np.arctan2(dx, dy))) / (gate * _bearing_sigma(d, sb, sp))
    if rb > 1.0:
        return -1.0, -1.0
    rr = 0.0
    if not np.isnan(r[k]):
        rr = abs(np.log(d / max(r[k], 1e-3))) / gate_r
        if rr > 1.0:
            return -1.0, -1.0
    return rb, rr


@jit
def _free_fit(k, cx, cy, ey, used, reach, ox, oy, b, r, sb, sp, sr, gate):
    """:func:`_fits` of observation ``k`` where it is still free and its end point within
    ``reach`` of ``cy`` (the sweep finds it within reach of ``cx``); -1 otherwise."""
    if used[k] >= 0 or abs(ey[k] - cy) > reach:
        return -1.0, -1.0
    return _fits(k, cx, cy, ox, oy, b, r, sb, sp, sr, gate)


@jit
def _add_row(acc, j1, j2, res):
    """Add one residual's row to the normal equations ``acc`` = (a11, a12, a22, g1, g2, chi)."""
    acc[0] += j1 * j1
    acc[1] += j1 * j2
    acc[2] += j2 * j2
    acc[3] += j1 * res
    acc[4] += j2 * res
    acc[5] += res * res


@jit
def _add_sighting(acc, k, x, y, ox, oy, b, r, sb, sp, sr):
    """Add observation ``k``'s rows at ``(x, y)`` to the normal equations ``acc``: its bearing,
    d(atan2(dx, dy))/d(x, y) = (dy, -dx) / d^2, and its log range where it has one,
    d(log d)/d(x, y) = (dx, dy) / d^2, each in its sigmas."""
    dx, dy = x - ox[k], y - oy[k]
    d2 = max(dx * dx + dy * dy, 1e-12)
    s_b = _bearing_sigma(np.sqrt(d2), sb, sp)
    _add_row(acc, dy / d2 / s_b, -dx / d2 / s_b, _wrap(b[k] - np.arctan2(dx, dy)) / s_b)
    if not np.isnan(r[k]):
        _add_row(acc, dx / d2 / sr, dy / d2 / sr, -np.log(np.sqrt(d2) / max(r[k], 1e-3)) / sr)


@jit
def _step(acc):
    """The Gauss-Newton step of normal equations ``acc`` (0, 0 where they are singular)."""
    det = acc[0] * acc[2] - acc[1] * acc[1]
    if det <= 0:
        return 0.0, 0.0
    return (acc[2] * acc[3] - acc[1] * acc[4]) / det, (acc[0] * acc[4] - acc[1] * acc[3]) / det


@jit
def _best_of_trips(cx, cy, a, z, ex, ey, ox, oy, b, r, trip, used, sb, sp, sr, gate, reach, seen, best):
    """Of the free observations in rows ``a:z`` that fit a point, the best per trip (a capture
    that saw two objects of one identity gives the point the one it fits, not whichever comes
    first in the sweep): ``seen[trip]`` its row, ``best[trip]`` its normal likelihood (residuals
    in sigmas). Returns the likelihoods' sum and the number of trips. ``seen`` is scratch, -1
    everywhere, indexed by trip: the caller resets it over the same rows."""
    total = 0.0
    count = 0
    for k in range(a, z):
        rb, rr = _free_fit(k, cx, cy, ey, used, reach, ox, oy, b, r, sb, sp, sr, gate)
        if rb < 0:
            continue
        w = np.exp(-0.5 * gate * gate * (rb * rb + rr * rr))
        t = trip[k]
        if seen[t] < 0:
            count += 1
            total += w
        elif w > best[t]:
            total += w - best[t]
        else:
            continue
        seen[t] = k
        best[t] = w
    return total, count


@jit
def _score(cx, cy, lo, hi, ex, ey, ox, oy, b, r, trip, used, sb, sp, sr, gate, reach, seen, best):
    """Support of a point: the sum over trips of the likelihood of the free observation that
    fits it best (:func:`_best_of_trips`); and the number of those trips."""
    a, z = _window(ex, lo, hi, cx, reach)
    total, count = _best_of_trips(cx, cy, a, z, ex, ey, ox, oy, b, r, trip, used, sb, sp, sr, gate, reach, seen, best)
    for k in range(a, z):  # reset the scratch
        seen[trip[k]] = -1
    return total, count


@jit
def _refine(cx, cy, lo, hi, ex, ey, ox, oy, b, r, used, sb, sp, sr, gate, reach):
    """Gauss-Newton on the free observations that fit, each with its sigmas. Returns x, y, the
    covariance (xx, xy, yy), the chi-square and the count."""
    x, y = cx, cy
    acc = np.zeros(6)
    n = 0
    for _ in range(6):
        acc[:] = 0.0
        n = 0
        a, z = _window(ex, lo, hi, x, reach)
        for k in range(a, z):
            rb, _ = _free_fit(k, x, y, ey, used, reach, ox, oy, b, r, sb, sp, sr, gate)
            if rb < 0:
                continue
            n += 1
            _add_sighting(acc, k, x, y, ox, oy, b, r, sb, sp, sr)
        if n == 0 or acc[0] * acc[2] - acc[1] * acc[1] <= 0:
            break
        step_x, step_y = _step(acc)
        x += step_x
        y += step_y
        if step_x * step_x + step_y * step_y < 1e-6:
            break
    det = acc[0] * acc[2] - acc[1] * acc[1]
    if n == 0 or det <= 0:
        return x, y, np.inf, 0.0, np.inf, acc[5], n
    return x, y, acc[2] / det, -acc[1] / det, acc[0] / det, acc[5], n


@jit
def _pair_point(i, j, ox, oy, b, r, sigmas):
    """The point that fits two ranged observations best (Gauss-Newton over their bearings and
    log ranges at ``sigmas`` = (sb, sp, sr), from the mean of their end points)."""
    sb, sp, sr = sigmas
    x = 0.5 * (ox[i] + r[i] * np.sin(b[i]) + ox[j] + r[j] * np.sin(b[j]))
    y = 0.5 * (oy[i] + r[i] * np.cos(b[i]) + oy[j] + r[j] * np.cos(b[j]))
    acc = np.zeros(6)
    for _ in range(5):
        acc[:] = 0.0
        _add_sighting(acc, i, x, y, ox, oy, b, r, sb, sp, sr)
        _add_sighting(acc, j, x, y, ox, oy, b, r, sb, sp, sr)
        step_x, step_y = _step(acc)
        x += step_x
        y += step_y
    return x, y


@jit
def candidates(start, ex, ey, ox, oy, b, r, trip, sigmas, gate, reach):
    """Where two observations of one identity from different trips meet: rays crossing in front
    of both, at least 2 degrees apart, within ``gate`` sigmas (``sigmas`` = (sb, sp, sr)) of
    each one's log range; where their rays do not meet so (a bearing in the detector's tail,
    two captures in line), the point that fits both ranged observations best. Returns the
    candidates' x, y and group."""
    gate_r = gate * sigmas[2]
    cx = []
    cy = []
    cg = []
    for g in range(start.shape[0] - 1):
        lo, hi = start[g], start[g + 1]
        for i in range(lo, hi):
            a, z = _window(ex, lo, hi, ex[i], reach)
            si, ci = np.sin(b[i]), np.cos(b[i])
            for j in range(max(a, i + 1), z):
                if trip[j] == trip[i] or abs(ey[j] - ey[i]) > reach:
                    continue
                sj, cj = np.sin(b[j]), np.cos(b[j])
                cross = si * cj - ci * sj
                dx, dy = ox[j] - ox[i], oy[j] - oy[i]
                # 2 degrees: no parallax to place a point
                s = (dx * cj - dy * sj) / cross if abs(cross) >= 0.035 else -1.0  # along ray i
                u = (dx * ci - dy * si) / cross if abs(cross) >= 0.035 else -1.0  # along ray j
                meet = s > 0 and u > 0
                if meet and not np.isnan(r[i]) and abs(np.log(s / max(r[i], 1e-3))) > gate_r:
                    meet = False
                if meet and not np.isnan(r[j]) and abs(np.log(u / max(r[j], 1e-3))) > gate_r:
                    meet = False
                if meet:
                    cx.append(ox[i] + s * si)
                    cy.append(oy[i] + s * ci)
                    cg.append(g)
                elif not (np.isnan(r[i]) or np.isnan(r[j])):
                    px, py = _pair_point(i, j, ox, oy, b, r, sigmas)
                    if _fits(i, px, py, ox, oy, b, r, *sigmas, gate)[0] >= 0 and \
                            _fits(j, px, py, ox, oy, b, r, *sigmas, gate)[0] >= 0:
                        cx.append(px)
                        cy.append(py)
                        cg.append(g)
    return np.array(cx), np.array(cy), np.array(cg, dtype=np.int64)


@jit
def cover(start, cx, cy, cg, ex, ey, ox, oy, b, r, trip, n_trips, sb, sp, sr, gate, reach, min_support):
    """Greedy cover of the observations by candidates (see the module docstring). A candidate
    needs ``min_support`` trips whose likelihoods add up to half as many (two sightings that fit
    within some 1.2 sigmas each, not two that barely pass the gate). Returns each observation's
    object (-1: none) and per object x, y, covariance, chi-square and count."""
    used = np.full(ex.shape[0], -1, dtype=np.int64)
    seen = np.full(n_trips, -1, dtype=np.int64)
    best = np.zeros(n_trips)
    heap = [(0.0, np.int64(0))]
    heap.pop()
    for c in range(cx.shape[0]):
        g = cg[c]
        s, count = _score(cx[c], cy[c], start[g], start[g + 1], ex, ey, ox, oy, b, r, trip, used, sb, sp, sr, gate,
                          reach, seen, best)
        if count >= min_support and s >= 0.5 * min_support:
            heapq.heappush(heap, (-s, np.int64(c)))
    ox_ = []
    oy_ = []
    oxx = []
    oxy = []
    oyy = []
    ochi = []
    on = []
    while len(heap):
        c = heapq.heappop(heap)[1]
        g = cg[c]
        lo, hi = start[g], start[g + 1]
        s, count = _score(cx[c], cy[c], lo, hi, ex, ey, ox, oy, b, r, trip, used, sb, sp, sr, gate, reach, seen,
                          best)
        if count < min_support or s < 0.5 * min_support:
            continue
        if len(heap) and s < -heap[0][0] - 1e-9:
            heapq.heappush(heap, (-s, c))  # others may now be better: score it again later
            continue
        x, y, vxx, vxy, vyy, chi, n = _refine(cx[c], cy[c], lo, hi, ex, ey, ox, oy, b, r, used, sb, sp, sr, gate,
                                              reach)
        if n == 0 or not np.isfinite(vxx):
            continue
        k_obj = len(ox_)
        taken = 0
        a, z = _window(ex, lo, hi, x, reach)
        _best_of_trips(x, y, a, z, ex, ey, ox, oy, b, r, trip, used, sb, sp, sr, gate, reach, seen, best)
        for k in range(a, z):  # one observation per trip, the one that fits best
            if seen[trip[k]] == k:
                used[k] = k_obj
                taken += 1
        for k in range(a, z):
            seen[trip[k]] = -1
        if taken == 0:
            continue
        ox_.append(x)
        oy_.append(y)
        oxx.append(vxx)
        oxy.append(vxy)
        oyy.append(vyy)
        ochi.append(chi)
        on.append(n)
    return (used, np.array(ox_), np.array(oy_), np.array(oxx), np.array(oxy), np.array(oyy), np.array(ochi),
            np.array(on, dtype=np.int64))


@jit
def reassign(start, obj_start, obj_of, obj_x, x, y, ex, ey, ox, oy, b, r, trip, sb, sp, sr, gate, reach):
    """Each observation to the object of its identity that fits it best within the gate, the
    closest fits first, a capture giving each object one observation at most (the cover gave
    an observation to the first object that fitted it, not the best). Objects come grouped by
    identity like the observations (``obj_start``), within a group sorted by x (``obj_x``;
    ``obj_of`` their numbers). Returns each observation's object (-1: none fits)."""
    out = np.full(ex.shape[0], -1, dtype=np.int64)
    n_obj = x.shape[0]
    for g in range(start.shape[0] - 1):
        olo, ohi = obj_start[g], obj_start[g + 1]
        if ohi == olo:
            continue
        costs = []
        rows = []
        objs = []
        for k in range(start[g], start[g + 1]):
            a = olo + np.searchsorted(obj_x[olo:ohi], ex[k] - reach)
            z = olo + np.searchsorted(obj_x[olo:ohi], ex[k] + reach, side="right")
            for q in range(a, z):
                o = obj_of[q]
                if abs(y[o] - ey[k]) > reach:
                    continue
                rb, rr = _fits(k, x[o], y[o], ox, oy, b, r, sb, sp, sr, gate)
                if rb < 0:
                    continue
                costs.append(rb * rb + rr * rr)
                rows.append(k)
                objs.append(o)
        taken = {np.int64(0)}
        taken.clear()
        for i in np.argsort(np.array(costs), kind="mergesort"):
            k, o = rows[i], objs[i]
            key = trip[k] * n_obj + o
            if out[k] >= 0 or key in taken:
                continue
            taken.add(key)
            out[k] = o
    return out


@jit
def refit(used, x, y, ox, oy, b, r, sb, sp, sr, rounds):
    """Gauss-Newton of every object on the observations ``used`` gives it, from where it is,
    all objects stepping together until the largest step is under a millimetre. Returns x, y,
    the covariance (xx, xy, yy; infinite where the rows do not place it) and the chi-square
    (at the last step's start) per object."""
    n = x.shape[0]
    x, y = x.copy(), y.copy()
    acc = np.zeros((n, 6))
    for _ in range(rounds):
        acc[:] = 0.0
        for k in range(used.shape[0]):
            if used[k] >= 0:
                _add_sighting(acc[used[k]], k, x[used[k]], y[used[k]], ox, oy, b, r, sb, sp, sr)
        largest = 0.0
        for o in range(n):
            step_x, step_y = _step(acc[o])
            x[o] += step_x
            y[o] += step_y
            largest = max(largest, step_x * step_x + step_y * step_y)
        if largest < 1e-6:
            break
    vxx, vxy, vyy = np.full(n, np.inf), np.zeros(n), np.full(n, np.inf)
    for o in range(n):
        det = acc[o, 0] * acc[o, 2] - acc[o, 1] * acc[o, 1]
        if det > 0:
            vxx[o], vxy[o], vyy[o] = acc[o, 2] / det, -acc[o, 1] / det, acc[o, 0] / det
    return x, y, vxx, vxy, vyy, acc[:, 5].copy()
