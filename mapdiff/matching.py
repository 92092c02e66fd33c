"""HMM map matching of GPS traces to a road network (the ``match`` stage).

Candidates come from a grid index; emission is Gaussian in the fix-to-road distance,
transition is exponential in the gap between route and straight-line distance, the route
distance comes from a bounded Dijkstra on the compiled CSR graph (no all-pairs table), and
Viterbi picks the path. Fixes with no road within the search radius, or that no road path can
reach, are ``unmatched`` and the trip goes on past them; when the chain cannot go on (a long
time gap, or several fixes in a row unreachable) it breaks and the next matched fix is marked
``break``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mapdiff.errors import ConfigError, InputError
from mapdiff.network import Network
from mapdiff.schema import validate_traces

STATES = ["matched", "unmatched", "break"]  # indexed by the kernels' state codes
STATE_UNMATCHED = STATES.index("unmatched")


@dataclass(frozen=True)
class MatchConfig:
    """Matching parameters; every field carries its unit.

    Attributes
    ----------
    search_radius_m : candidate roads are searched this far from each fix; farther fixes are
        unmatched.
    max_candidates : at most this many nearest edges per fix.
    gps_sigma_m : standard deviation of the GPS error (a per-fix ``accuracy_m`` column, if
        present, overrides it).
    emission_cap_sigma : errors beyond this many sigmas all cost the same, so a single outlier
        cannot force a detour.
    beta_m : scale of the transition penalty on ``|route - straight|`` between fixes close
        together.
    beta_rel, beta_rel_from_m : and how it grows with the straight distance between the fixes
        beyond ``beta_rel_from_m`` (metres per metre): a route winds from the straight line by
        some fifth of it (the circuity of city drive networks, route / straight, is about
        1.1-1.3), so for fixes a minute apart (600 m) the scale is 90 m, not 10; within a block
        or two (200 m) a route has little room to wind, and a growing scale there made skipping
        the far-off fixes of motorway tracks cheap (Kubicka track 89 lost 0.09 accuracy with
        the growth from 0 m, 43 lost 0.012 from 100 or 150 m, none changed from 200 m).
    travel_mps : and the distance that scale grows with is the straight one, or as far as a car
        covers at this pace in the time between the fixes if that is more: a car that took a
        minute between fixes 280 m apart drove some 600 m around the blocks, and scored by the
        straight distance alone the route it took cost more than skipping the fix. The time is
        the trip's clock, which holds a gap to twice the trip's usual interval (a gap in a dense
        trace may be a stop). 8 m/s (29 km/h) is on the slow side of a car's pace in town,
        stops included, so that the time understates the distance driven rather than
        overstates it; it matters only for steps over ``beta_rel_from_m / travel_mps`` (25 s)
        on that clock, and never narrows the scale; 0 turns it off.
    route_factor, route_slack_m : a route between two fixes longer than
        ``route_factor * straight + route_slack_m`` is not considered.
    reverse_tolerance_m : a move backwards along one edge up to this far is GPS jitter, not a
        loop around the block.
    max_gap_s : a time gap longer than this breaks the chain (at no cost).
    wrong_way_cost_m : driving a one-way edge against its direction is allowed (and reported
        with ``against``) but its route length counts this many metres more per edge entered,
        priced as they weigh between fixes close together (``wrong_way_cost_m / beta_m``
        log-likelihood) however far apart the fixes are: in the wider scale of a step a minute
        long, they cost a tenth of that, and wrong-way shortcuts around a block won.
    wrong_way_fix_cost : and each fix matched against the direction costs this much
        log-likelihood, so a few noisy fixes never outvote the one-way sign.
    u_turn_cost : log-likelihood price of turning straight back onto the reverse of the edge
        just driven (rare in traffic; cheap in an HMM on short connector edges).
    min_end_m : a chain's first or last edge is left out of ``paths`` when less than this much
        of it was driven (a fix near a node touches every edge there).
    lone_end_sigmas : and when only one fix lies on it, when less than this many GPS sigmas
        (``gps_sigma_m``) of it were driven: the fix of a car at a node lands along any edge
        there by its GPS error, beyond one sigma one time in six and beyond two one time in 44
        (one-sided), while a car that starts or stops on an edge leaves several fixes on it, if
        the fixes come often enough (the next within the time a car takes to cover that
        distance from rest, at :data:`START_ACCEL_MPS2`). With ``min_end_m`` alone, 42 of 200
        synthetic Helsinki trips got the edge before their first node and 28 the edge after
        their last, two thirds of their route mismatch (benchmarks/README.md, "A chain's
        ends"); with one sigma (until stop 60) a trip starting at a node kept the 1.4 and
        2.3 km edges its first fix fell 14-18 m along: two of 200 synthetic Liechtenstein
        trips made 0.0147 of its 0.0204 mismatch.
    break_cost : log-likelihood price of ending the chain and restarting it at a later fix
        (an unexplained jump); it competes with detours, skips and far-off matches.
    max_outliers : up to this many consecutive fixes may be skipped as outliers (each costs
        what a fix at the emission cap costs).
    end_outlier_s : a trip's last fixes are skipped as outliers only when they lie within this
        many seconds of the fix before them. Skipping them throws away the route to them, which
        no later fix can bring back, and at sparse fixes it was cheaper than their transition: at
        a fix a minute 12 of 200 synthetic Helsinki trips lost their last fix (mismatch at 30 s
        0.148 -> 0.132, at 60 s 0.307 -> 0.287 with the rule). Skips within a trip stay free of
        it: real motorway tracks have runs of fixes far off for minutes.
    rescue_radius_m : a fix that no hypothesis can reach gets a second candidate search this
        far (GPS far off a fast road) before it counts as an outlier; 0 disables it.
    beam : hypotheses more than this far (log-likelihood) behind the best of their fix are not
        extended; a speed-for-optimality trade that rarely costs accuracy.
    stop_radius_m : a thinned fix this close to the last fix that counted adds no evidence: a
        car parked for an hour would otherwise outvote the road it came on.
    thin_sigmas : a fix within this many GPS sigmas (and at least ``stop_radius_m``) of the
        last kept fix of its trip is thinned: it leaves the lattice and its emissions are
        added to that fix's (Newson & Krumm 2009 drop the fixes within 2 sigma of the previous
        one as no independent look at the route; adding their emissions keeps what they say
        about which road); thinned fixes are matched to their anchor's edge or, past a
        junction, to the next kept fix's. 0 (the default) keeps every fix apart from stops.
        At 2 (the :meth:`fast` preset's) a 1 Hz city trace matches twice as fast with a lower
        route mismatch, but the judgment built on it was worse on the simulated fleets
        (located objects' precision 0.83 -> 0.78 in Helsinki, added objects' 0.69 -> 0.54 in
        Liechtenstein; benchmarks/README.md, "Thinning"), so it is not the default.
    """

    search_radius_m: float = 50.0
    max_candidates: int = 16
    gps_sigma_m: float = 10.0
    emission_cap_sigma: float = 4.0
    beta_m: float = 10.0
    beta_rel: float = 0.2
    beta_rel_from_m: float = 200.0
    travel_mps: float = 8.0
    route_factor: float = 2.0
    route_slack_m: float = 150.0
    reverse_tolerance_m: float = 20.0
    max_gap_s: float = 600.0
    max_outliers: int = 5
    end_outlier_s: float = 10.0
    break_cost: float = 40.0
    wrong_way_cost_m: float = 100.0
    wrong_way_fix_cost: float = 1.0
    u_turn_cost: float = 10.0
    min_end_m: float = 5.0
    lone_end_sigmas: float = 2.0
    rescue_radius_m: float = 200.0
    stop_radius_m: float = 5.0
    beam: float = 20.0
    thin_sigmas: float = 0.0

    @classmethod
    def fast(cls, **overrides) -> MatchConfig:
        """A lighter preset for dense, clean 1 Hz data (GPS sigma under about 8 m): a 40 m search
        radius, 8 candidates, 1 skip, a narrower beam, and fixes within 2 sigma thinned (their
        evidence kept). About 3.5x the speed of the defaults; it loses some accuracy on hard
        real tracks (see benchmarks/README.md)."""
        preset = {"search_radius_m": 40.0, "max_candidates": 8, "max_outliers": 1, "beam": 10.0, "thin_sigmas": 2.0}
        return cls(**{**preset, **overrides})

    def validate(self) -> MatchConfig:
        """Raise :class:`ConfigError` naming the first field out of range; return self."""
        positive = ("search_radius_m", "gps_sigma_m", "emission_cap_sigma", "beta_m", "max_gap_s", "break_cost",
                    "beam", "end_outlier_s")
        for name in positive:
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                msg = f"MatchConfig.{name} must be a positive number; got {value!r}"
                raise ConfigError(msg, field=name)
        for name in ("beta_rel", "beta_rel_from_m", "travel_mps", "route_slack_m", "reverse_tolerance_m",
                     "stop_radius_m", "thin_sigmas", "rescue_radius_m", "u_turn_cost", "min_end_m", "lone_end_sigmas",
                     "wrong_way_cost_m", "wrong_way_fix_cost"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                msg = f"MatchConfig.{name} must be >= 0; got {value!r}"
                raise ConfigError(msg, field=name)
        if not self.route_factor >= 1:
            msg = f"MatchConfig.route_factor must be >= 1; got {self.route_factor!r}"
            raise ConfigError(msg, field='route_factor')
        if not 1 <= self.max_candidates <= 64:
            msg = f"MatchConfig.max_candidates must be in [1, 64]; got {self.max_candidates!r}"
            raise ConfigError(msg, field='max_candidates')
        if self.max_outliers < 0:
            msg = f"MatchConfig.max_outliers must be >= 0; got {self.max_outliers!r}"
            raise ConfigError(msg, field='max_outliers')
        return self


MATCHED_COLUMNS = [
    "trip_id", "t", "lon", "lat", "edge_id", "offset_m", "matched_lon", "matched_lat",
    "distance_m", "state", "confidence", "against",
]
PATH_COLUMNS = ["trip_id", "seq", "chain", "edge_id", "u", "v", "key", "against", "t_enter", "t_exit"]


def match(traces: pd.DataFrame, network: Network, config: MatchConfig | None = None, *,
          source: str = "traces", batch_points: int = 200_000, progress=None):
    """Match GPS traces to ``network``.

    Parameters
    ----------
    traces : frame in the traces contract (``trip_id``, ``t``, ``lon``, ``lat``; optional
        ``accuracy_m`` and any other columns, which pass through). ``t`` is UTC timestamps or
        float seconds. Rows need not be sorted.
    network : the compiled map (:func:`mapdiff.load_network`).
    config : :class:`MatchConfig`; defaults when omitted.
    source : name of the input for error messages.
    batch_points : trips are matched in batches of about this many fixes.
    progress : optional callable ``progress(n_points_done)`` called after each batch.

    Returns
    -------
    matched : one row per input fix, sorted by trip and time (the columns of
        ``MATCHED_COLUMNS`` then the passed-through ones).
    paths : one row per traversed edge per trip in driving order (``PATH_COLUMNS``, plus the
        trip's ``vehicle_id`` when the traces carry one); ``chain`` counts breaks within the
        trip, and consecutive rows of one chain are connected.
    """
    config = (config or MatchConfig()).validate()
    df = validate_traces(traces, source)
    _check_overlap(df, network, source)
    x, y = network.proj.to_metres(df["lon"].to_numpy(), df["lat"].to_numpy())
    sigma = _sigma(df, config, source)
    t_s = df["_t_s"].to_numpy()
    trip_codes, _ = pd.factorize(df["_trip"], sort=False)
    starts = np.flatnonzero(np.r_[True, trip_codes[1:] != trip_codes[:-1]])
    trip_names = df["trip_id"].to_numpy()[starts]
    trip_ptr = np.r_[starts, len(df)].astype(np.int64)
    clock = _trace_clock(t_s, trip_codes)
    graph, params = _kernel_graph(network, config), _hmm_params(config)

    n = len(df)
    edge_idx = np.full(n, -1, dtype=np.int64)
    offset = np.full(n, np.nan)
    mx = np.full(n, np.nan)
    my = np.full(n, np.nan)
    dist = np.full(n, np.nan)
    conf = np.full(n, np.nan)
    state = np.full(n, STATE_UNMATCHED, dtype=np.int8)
    chain = np.full(n, -1, dtype=np.int64)
    path_parts = []
    # batches hold whole trips, so each batch is an independent kernel call
    cuts = [0]
    for b in range(1, len(trip_ptr) - 1):
        if trip_ptr[b] - trip_ptr[cuts[-1]] >= batch_points:
            cuts.append(b)
    cuts.append(len(trip_ptr) - 1)
    for c0, c1 in zip(cuts[:-1], cuts[1:]):
        p0, p1 = trip_ptr[c0], trip_ptr[c1]
        part = _match_batch(network, graph, params, config, x[p0:p1], y[p0:p1], (t_s[p0:p1], clock[p0:p1]),
                            sigma[p0:p1], trip_ptr[c0:c1 + 1] - p0)
        sl = slice(p0, p1)
        edge_idx[sl], offset[sl], mx[sl], my[sl], dist[sl], conf[sl], state[sl], chain[sl] = part[:8]
        p_trip, p_chain, p_edge, p_t0, p_t1 = part[8]
        path_parts.append((p_trip + c0, p_chain, p_edge, p_t0, p_t1))
        if progress is not None:
            progress(int(p1 - p0))

    # the posterior is over the roads; a fix off every road (a car park, a road the map lacks)
    # is on none of them, which its trip's distances to the roads tell
    from mapdiff._kernels.hmm import on_road

    conf *= on_road(trip_ptr, dist, config.search_radius_m)
    matched = _matched_frame(df, network, edge_idx, offset, mx, my, dist, conf, state)
    paths = _paths_frame(df, network, trip_names, path_parts)
    return matched, paths


def _kernel_graph(network: Network, config: MatchConfig):
    """The graph the HMM kernels take (:data:`mapdiff._kernels.hmm.HmmGraph`), with this
    config's wrong-way prices, built once per call."""
    from mapdiff._kernels.hmm import HmmGraph

    return HmmGraph(network.out_ptr, network.out_edge, network.edge_u, network.edge_v, network.edge_len,
                    network.edge_weights(config.wrong_way_cost_m),
                    # log-prior per fix on an edge: wrong-way twins are possible but unlikely
                    np.where(network.edge_against, -config.wrong_way_fix_cost, 0.0))


def _match_batch(network: Network, graph, params, config: MatchConfig, x, y, times, sigma, trip_ptr):
    from mapdiff._kernels import hmm
    from mapdiff._kernels.geometry import candidates

    cedge, cdist, coff, cx, cy = candidates(x, y, config.search_radius_m, config.max_candidates, network.geom)
    anchor = hmm.thin(trip_ptr, x, y, sigma, cedge, config.stop_radius_m, config.thin_sigmas)
    cand = (cedge, cdist, coff, cx, cy)
    t_s, clock = times
    sel, chain, state, emissions = hmm.viterbi(trip_ptr, x, y, times, sigma, cand, anchor, network.geom,
                                               network.n_nodes, graph, params)
    # over the lattice the Viterbi scored (its emissions pooled once, a rescued fix's its own)
    conf = hmm.posterior(trip_ptr, (x, y, clock), emissions, cand, anchor, sel, chain, network.n_nodes, graph,
                         params)
    edge_idx, offset, mx, my, dist = hmm.resolve(trip_ptr, sel, anchor, chain, conf, state, cand, x, y, sigma,
                                                 params.floor)
    path = hmm.paths(trip_ptr, t_s, edge_idx, np.nan_to_num(offset), chain, anchor, network.n_nodes, graph,
                     config.reverse_tolerance_m, _ends(config))
    return edge_idx, offset, mx, my, dist, conf, state, chain, path


#: a gap in a trace counts on its clock (see :func:`_trace_clock`) as at most this many of the
#: trip's usual intervals: a fix late or one lost is a step of two; a longer gap (a tunnel, a
#: logger paused while the car stood) says nothing of how far the car drove in it
CLOCK_GAPS = 2.0


def _trace_clock(t_s: np.ndarray, trip_codes: np.ndarray) -> np.ndarray:
    """Each fix's time on its trip's clock: the time since the trip's first fix, with every gap
    held to ``CLOCK_GAPS`` times the trip's median interval between fixes. The transition's
    span is measured by it (``MatchConfig.travel_mps``): a fleet logging every minute drove a
    minute between its fixes, a 1 Hz trace with a minute's gap may have stood there. Rows are
    sorted by trip and time."""
    dt = np.diff(t_s, prepend=t_s[:1])
    first = np.r_[True, trip_codes[1:] != trip_codes[:-1]] if len(t_s) else np.zeros(0, bool)
    dt[first] = 0.0
    moving = pd.Series(np.where(dt > 0, dt, np.nan))
    usual = moving.groupby(trip_codes).transform("median").fillna(0.0).to_numpy()
    held = np.minimum(dt, CLOCK_GAPS * usual)
    return pd.Series(held).groupby(trip_codes).cumsum().to_numpy()


#: a car's acceleration from rest (m/s^2): gentle city driving, 1.5-3 m/s^2
START_ACCEL_MPS2 = 2.0


def _ends(config: MatchConfig):
    """The :data:`mapdiff._kernels.hmm.EndRule` of a chain's ends: ``min_end_m``, the lone
    fix's metres, and the seconds within which a car starting on the edge would cover them
    (sqrt(2 d / a): 3.2 s for 10 m), so that a second fix would show it there."""
    from mapdiff._kernels import hmm

    lone_m = config.lone_end_sigmas * config.gps_sigma_m
    return hmm.EndRule(float(config.min_end_m), float(lone_m), float(np.sqrt(2.0 * lone_m / START_ACCEL_MPS2)))


def _hmm_params(config: MatchConfig):
    """The config as the HMM kernels take it (:data:`mapdiff._kernels.hmm.HmmParams`)."""
    from mapdiff._kernels import hmm

    floor = -0.5 * config.emission_cap_sigma**2
    return hmm.HmmParams(
        beta=(config.beta_m, config.beta_rel, config.beta_rel_from_m, config.travel_mps), floor=floor,
        # skipping a fix costs what matching it at the emission cap would
        log_skip=floor, log_break=-config.break_cost, log_uturn=-config.u_turn_cost,
        route_factor=config.route_factor, route_slack_m=config.route_slack_m, rev_tol_m=config.reverse_tolerance_m,
        max_gap_s=config.max_gap_s, max_skip=config.max_outliers, end_skip_s=config.end_outlier_s,
        rescue_radius_m=config.rescue_radius_m,
        beam=config.beam, stop_radius_m=config.stop_radius_m)


def _sigma(df: pd.DataFrame, config: MatchConfig, source: str) -> np.ndarray:
    sigma = np.full(len(df), config.gps_sigma_m)
    if "accuracy_m" in df.columns:
        acc = pd.to_numeric(df["accuracy_m"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if (acc < 0).any():
            msg = f"{source}: column 'accuracy_m' must be >= 0 metres; found {np.nanmin(acc)!r}"
            raise InputError(msg)
        ok = np.isfinite(acc) & (acc > 0)
        # a reported accuracy below the model's sigma is usually optimistic: never trust it more
        sigma[ok] = np.maximum(acc[ok], config.gps_sigma_m)
    return sigma


def _check_overlap(df: pd.DataFrame, network: Network, source: str) -> None:
    """Fail early when no fix is near the map: the common lon/lat swap, or the wrong map."""
    minx, miny, maxx, maxy = network.bounds_lonlat()
    pad = 0.05
    lon, lat = df["lon"].to_numpy(), df["lat"].to_numpy()
    inside = (lon >= minx - pad) & (lon <= maxx + pad) & (lat >= miny - pad) & (lat <= maxy + pad)
    if inside.any():
        return
    swapped = (lat >= minx - pad) & (lat <= maxx + pad) & (lon >= miny - pad) & (lon <= maxy + pad)
    hint = "; columns 'lon' and 'lat' look swapped" if swapped.any() else ""
    msg = (
        f"{source}: no fix lies within the map's extent (lon {minx:.4f}..{maxx:.4f}, "
        f"lat {miny:.4f}..{maxy:.4f}){hint}"
    )
    raise InputError(msg)


def _matched_frame(df, network, edge_idx, offset, mx, my, dist, conf, state):
    mlon, mlat = np.full(len(df), np.nan), np.full(len(df), np.nan)
    ok = edge_idx >= 0
    if ok.any():
        mlon[ok], mlat[ok] = network.proj.to_lonlat(mx[ok], my[ok])
    edge_ids = network.edges["edge_id"].to_numpy()
    base = network.edge_base[np.maximum(edge_idx, 0)]
    against = ok & network.edge_against[np.maximum(edge_idx, 0)]
    # offsets are along the map's edge, from u, whichever way it was driven
    offset = np.where(against, network.edge_len[np.maximum(edge_idx, 0)] - offset, offset)
    out = pd.DataFrame({
        "trip_id": df["trip_id"].array,
        "t": df["t"].array,
        "lon": df["lon"].to_numpy(),
        "lat": df["lat"].to_numpy(),
        "edge_id": pd.array(np.where(ok, edge_ids[base], 0), dtype="Int64"),
        "offset_m": offset,
        "matched_lon": mlon,
        "matched_lat": mlat,
        "distance_m": dist,
        # categorical: three values on millions of rows (Parquet stores it dictionary-encoded)
        "state": pd.Categorical.from_codes(state, categories=STATES),
        "confidence": conf,
        "against": against,
    })
    out.loc[~ok, "edge_id"] = pd.NA
    out = out[MATCHED_COLUMNS]
    extra = [c for c in df.columns if c not in out.columns and not c.startswith("_") and c != "geometry"]
    for c in extra:
        out[c] = df[c].to_numpy()
    return out


def _paths_frame(df, network, trip_names, parts):
    if parts:
        p_trip, p_chain, p_edge, p_t0, p_t1 = (np.concatenate(a) for a in zip(*parts))
    else:
        p_trip = p_chain = p_edge = np.zeros(0, dtype=np.int64)
        p_t0 = p_t1 = np.zeros(0)
    seq = pd.Series(p_trip).groupby(p_trip).cumcount().to_numpy()
    e = network.edges
    base = network.edge_base[p_edge]
    time_is_ts = pd.api.types.is_datetime64_any_dtype(df["t"])
    out = pd.DataFrame({
        "trip_id": trip_names[p_trip] if len(p_trip) else trip_names[:0],
        "seq": seq.astype(np.int64),
        "chain": p_chain.astype(np.int64),
        "edge_id": e["edge_id"].to_numpy()[base],
        "u": e["u"].to_numpy()[base],
        "v": e["v"].to_numpy()[base],
        "key": e["key"].to_numpy()[base],
        "against": network.edge_against[p_edge],
        "t_enter": _from_seconds(p_t0, df["t"]) if time_is_ts else p_t0,
        "t_exit": _from_seconds(p_t1, df["t"]) if time_is_ts else p_t1,
    })
    out = out[PATH_COLUMNS]
    if "vehicle_id" in df.columns:  # coverage counts distinct vehicles: carry the trip's vehicle
        first_row = np.flatnonzero(np.r_[True, df["_trip"].to_numpy()[1:] != df["_trip"].to_numpy()[:-1]])
        out.insert(1, "vehicle_id", df["vehicle_id"].to_numpy()[first_row][p_trip] if len(p_trip)
                   else df["vehicle_id"].to_numpy()[:0])
    return out


def _from_seconds(seconds: np.ndarray, like: pd.Series):
    from mapdiff.schema import timestamps

    return timestamps(seconds, naive=getattr(like.dt, "tz", None) is None)
