"""Many observations to one estimated position per object (the ``locate`` stage).

An object's identity is its class and value (two signs of one class on one post are told apart
by their codes). Observations whose bearing sigma is over ``vague_ratio`` times the data's
median (a frame at a bend, a standing car's heading) would mislead the association and are
left out (label -1).

1. Tracks: within a trip, observations of one identity whose rays meet (and ranges agree) from
   frame to frame chain into a track, one observation per frame, a track ending after
   ``track_gap_s`` unseen. The frames of one pass share the vehicle's pose error, so they are
   compared with the frame-to-frame sigmas (bearing at most ``track_bearing_sigma_deg``, range
   at most ``track_range_rel`` of itself, the track's point with ``track_floor_m``), not the
   absolute ones. Pieces of one pass's track that follow one another and agree (their fits'
   covariances plus ``join_m``) join up. A track's point is the robust least-squares fit of its
   rays and ranges; rays that never meet (one bearing-only sighting), or meet only behind the cameras
   (nearly parallel rays of a far object ahead), make no point, so rays of different objects
   cannot make ghost objects where they cross, nor one pass's rays where the car drove. Tracks shorter than
   ``track_share`` of the typical pass (at most 4 observations) are fragments and do not count.
   A track with fewer than ``confusion_ratio`` times the observations of a track of another
   identity at the same place in the same pass is the detector's confusion and is dropped.
2. Errors: a track's covariance is the fit's plus what its frames share: the heading's error
   (the bearing sigma beyond the frame-to-frame one) across the mean ray and the object's real
   size against its class's (``range_shared_rel`` of the range) along it, times the distance;
   plus the pass's pose error, along the direction of travel more than across it, first
   ``pose_sigma_m``, then measured from the scatter of the tracks around their objects. Each
   pass's pose offset is measured from how its other tracks sit against their objects (their
   residuals as if the pass were left out of each object, weighed by their covariances, within
   the one of ``offset_windows_s`` that predicts the offsets best), shrunk towards none by what
   the data say such offsets are: the covariance of the residuals of two objects' tracks seen
   together by one pass, along and across the direction of travel (a track's own errors do not
   correlate across objects; with perfect poses it is nil, and nothing is taken off; a matched
   pose errs along the road, hardly across it), and taken off.
3. Objects: the tracks, the most precise first, join the object of their identity within
   ``reach_m`` whose position fits them best within ``gate_sigma`` sigmas (Mahalanobis, with
   ``floor_m`` added to both sigmas), or start a new one; an object never takes two tracks one
   pass saw in one frame (those are two objects; tracks whose frames only interleave may be one
   object's, split where a noisy range broke the track). Each object is the robust (Huber beyond
   ``huber_k`` sigmas) information-weighted mean of its tracks, each trip weighing as one (in
   the final fit, each track's own errors taken at the object's distance, not at its own point,
   so that tracks that came out short do not pull it towards the cameras). Objects merge where
   their positions agree within the gate, or where the smaller looks like the bigger one's stray
   passes (see :func:`_merge`); an object whose tracks from different
   directions of travel sit apart by more than ``split_sigma`` is as many objects (a junction's
   poles, each facing its approach: see :func:`_direction_splits`); tracks re-join; ``rounds``
   times. Last, each track goes to the object that explains it best as a mixture would (the
   object's trips times a heavy-tailed likelihood measured from the data: :func:`_reassign`),
   so the passes in the tail of the pose error do not make objects of their own; an object
   that several such passes made anyway, beside a bigger one of its identity that is seen from
   its side as often but never in one frame with it, folds into it (:func:`_fold_pieces`).
4. Values: an object of a value with less than ``split_share`` of the trips of an object of its
   class but another value on the same spot (within ``confusion_m``) is the detector misreading
   the value: it folds into that object. Each trip votes its most frequent value (none, when
   it read none), the object takes the most voted value (none, when the value has less than
   ``split_share`` of the trips that read none) and reports the vote (``value_share`` among the
   trips that read a value, ``value_votes``), so a split vote shows. An object with fewer than
   ``confusion_ratio`` times the observations of an
   object of another class within ``confusion_m`` is a class confusion and is dropped. An object
   seen by fewer than ``rare_share`` of the share of passing trips a typical object is seen by
   (the trips that located anything within ``reach_m`` of it, travelling its way, had it in
   view) is a few passes' gross pose error and is dropped (:func:`_rarely_seen`).

Step 1 sees one trip at a time and the later steps see only the tracks (with the rows, scores,
values and frame times they stand for), so a big input is located in batches of whole trips
holding only their tracks (:func:`locate_batches`; some ten observations make a track). When
even the tracks are too many (a month of a city's fleet), they go to disk and steps 2-4 run
region by region (:mod:`mapdiff.locate_regions`). What the steps measure from the data (the
pose errors, the fragment length, ...: :class:`Measures`) is then measured once, over a sample
of the whole (:func:`measure`), and every region and tile takes it.

``sigma_m`` is the per-axis standard deviation from the fit's covariance, scaled up by the
residual scatter when that is larger than the covariances say, plus the error every pass from
one direction shares (the matcher's bias at a place, the lane): it does not shrink with the
trips, only with the directions the object was seen from (over their effective number,
:func:`_effective_directions`), and is measured as what the means of one object's direction
groups disagree by beyond their covariances (:func:`_direction_splits`). Objects seen by one trip only are kept and
marked ``weak``.

Single captures (street-level imagery: most observations come from trips that are one
instant) have no passes to make tracks of; they go another way (:func:`_locate_captures`):
candidates where two captures' rays meet (where they do not, the point two ranged sightings
fit best), covered greedily, the best-supported first, each
observation going to one object, then settled (each observation to the object that fits it
best, a capture giving an object one at most, until nothing moves: :func:`_settle`); an object
whose sightings from two sides place it in two places is two (a sign is read from in front
only: :func:`_split_by_direction`), with gates
from the errors the data show (a bearing's sigma and the capture position's across the ray, the
log range's); an object that is only a bigger
one's heavy-tailed sightings is dropped (:func:`_echoes`), and so is one that the clutter the
free sightings show would make by chance (:func:`_by_chance`). ``sigma_m`` is then the long
axis's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mapdiff.errors import ConfigError, InputError, check_fields
from mapdiff.projection import LocalProjection
from mapdiff.schema import numbers, timestamps

#: the least pose error the scatter of tracks may report
MIN_POSE_SIGMA_M = 0.3
#: share of a small object's tracks that must fit a bigger one for it to be the bigger one's
#: stray passes, and the most of its trips that may see both together
MERGE_SHARE = 0.5
TOGETHER_SHARE = 0.2
#: an object is seen from one way where its tracks' directions of travel agree within this of
#: their mean (see :func:`_rarely_seen`): the half-width of one of a junction's four approaches
#: (see ``SECTORS``)
SAME_SIDE_DEG = 45.0
#: a smaller object is a piece of a bigger one of its identity only where the bigger is seen from
#: the smaller's sides (its sectors of approach, ``SECTORS``) by at least this share of the
#: smaller's trips there: a piece is a share of one object's passes, so its object is seen from
#: where it is (as often, for a piece as big as what is left), and a pole facing another approach
#: is seen from where the other is not (none). Measured on the kept scenes of
#: ``benchmarks/diff_sim.py`` (three cities, two placements, seeds 0 and 1): 1.0 kept pieces a
#: trip or two short (one of 22 trips 3 m from its object, which had 16 from its sides, not 17)
#: and lowered precision in 7 of 12 scenes; 0.5 folded Harrisburg's kerb poles
#: (recall 0.782 -> 0.748); 0.75 raised precision in 10 of 12 scenes (one the same, one
#: down), recall kept or up
SIDE_SHARE = 0.75
#: the most observations a track may be asked to have (see ``_min_track``)
MAX_MIN_TRACK = 4
#: a track tells its pass's pose error only against an object at least this many trips saw
MIN_TRIPS_FOR_OFFSET = 3
#: the pose error is measured from the scatter of tracks about objects at least this many trips
#: saw (fewer pull their object along with them and show too little scatter)
MIN_TRIPS_FOR_SCATTER = 5
#: tracks of one pass seen within this many seconds of each other share its pose error (the
#: residuals of two objects' tracks so close in time tell its variance)
TOGETHER_S = 2.0
#: an object's tracks are grouped by their direction of travel in this many sectors: the four
#: approaches of a junction (see ``_direction_splits``)
SECTORS = 4
#: the error the passes of one direction share is measured where at least this many pairs of
#: direction groups of one object tell
MIN_GROUP_PAIRS = 20
#: two direction groups of one object are two objects only where they sit apart beyond what the
#: error the directions share explains at 95 % (the 95 % point of a chi-square of 2 degrees of
#: freedom): the groups' own covariances shrink with their trips and that error does not, so a
#: fleet of 100 cars split single signs by the lanes they were seen from (beside the
#: ``split_sigma`` test, which it only narrows). At 99 % the kerb scenes of 30 cars, where the
#: shared error is measured large (1.4-1.7 m, merged poles among the pairs), kept poles whole
#: (Liechtenstein, seed 3: recall 0.858 -> 0.825; at 95 % 0.849)
SPLIT_SHARED_CHI2 = 5.99
OBJECT_COLUMNS = ["object_id", "class", "value", "value_share", "value_votes", "lon", "lat", "sigma_m",
                  "n_observations", "n_trips", "t_first", "t_last", "score", "weak"]


@dataclass(frozen=True)
class LocateConfig:
    """Locate parameters (see the module docstring for how they act together).

    Attributes
    ----------
    reach_m : farthest a track may lie from the object it joins (and objects that may merge).
    gate_sigma : Mahalanobis gate, in sigmas, for every association (track to object, piece to
        piece, capture to candidate).
    floor_m : added to both sides' sigmas when a track is gated against an object: what the
        covariances leave out (the object's real extent, the map-matched lane).
    confusion_m : an object of another class or value this close may be the detector's
        confusion of it (see ``confusion_ratio`` and ``split_share``).
    track_gap_s : a track ends after this long unseen; pieces this close in time may join.
    track_bearing_sigma_deg : the most a bearing wanders from frame to frame within one pass.
    track_turn_deg : a heading that turns more than this between frames starts a new track.
    track_range_rel : the most a range wanders from frame to frame, relative to itself.
    track_floor_m : least sigma of a frame-to-frame gate.
    track_share : a track shorter than this share of the typical pass is a fragment.
    join_m : added to the sigmas when two pieces of one pass's track are compared.
    range_shared_rel : the range error a whole pass shares (the object's real size against its
        class's), relative to the range.
    vague_ratio : observations whose bearing sigma is over this many times the data's median are
        left out.
    pose_sigma_m : the pose error per pass assumed until the data measure it.
    offset_windows_s : time windows over which a pass's pose offset may be measured; the data
        choose one.
    confusion_ratio : an object or track with fewer than this share of the observations of one of
        another class on the same spot is a confusion and is dropped.
    huber_k : robust fits weigh residuals beyond this many sigmas down.
    rounds : association rounds (cluster, fuse, merge, split, offsets).
    split_share : an object of a value with less than this share of the trips of an object of its
        class on the same spot is a misread value and folds into it.
    rare_share : an object seen by fewer than this share of the trips a typical object is seen
        by, of the trips that saw anything within ``reach_m`` of it travelling its way, is
        dropped (a few passes' gross pose errors).
    capture_gate_deg, capture_gate_log : single captures: the first, wide gates (bearing, log
        range) with which the data's own errors are measured.
    capture_min_support : single captures: the fewest trips an object needs.
    split_sigma : an object whose tracks from different directions of travel sit apart by more
        than this many of their stated sigmas is several objects.
    cell_m : grid cell of the clustering index.
    captures : "video" (passes of many frames), "imagery" (single captures) or "auto" (decided
        from the data: :func:`capture_kind`). Work split into tiles decides once, for the whole.
    """

    reach_m: float = 15.0
    gate_sigma: float = 3.0
    floor_m: float = 2.5
    confusion_m: float = 2.0
    track_gap_s: float = 3.0
    track_bearing_sigma_deg: float = 1.0
    track_turn_deg: float = 5.0
    track_range_rel: float = 0.15
    track_floor_m: float = 0.5
    track_share: float = 0.25
    join_m: float = 1.0
    range_shared_rel: float = 0.08
    vague_ratio: float = 2.0
    pose_sigma_m: float = 3.0
    # the data choose among these by how well a pass's other tracks predict a track's offset;
    # 30 and 60 s, when offered, were chosen on the Liechtenstein simulation with kerb signs
    # (physical placement) and cost it 0.055 precision and 0.056 recall against these (the
    # others, Harrisburg and Liechtenstein's OSM-node scenes, chose these anyway or did as well)
    offset_windows_s: tuple = (1.0, 2.0, 5.0, 15.0)
    confusion_ratio: float = 0.2
    huber_k: float = 2.0
    rounds: int = 3
    split_share: float = 0.3
    # a real object is seen by most trips that pass it travelling its way; objects made of a
    # few passes whose pose was grossly wrong, by a median of a twentieth to a thirtieth of the
    # typical share (Helsinki, 300 vehicles x 3 days, trips counted any way). Of 0.05, 0.1 and
    # 0.2 (Helsinki and Liechtenstein, 30 and 300 vehicles), 0.2 cost 0.017-0.021 of Helsinki's
    # recall for 0.025-0.036 of precision more than 0.1, and 0.05 kept a third to four fifths
    # of the precision 0.1 gained; with perfect poses, where no pass errs grossly, 0.1 dropped
    # two or three true objects of some 3,000 (three cities)
    rare_share: float = 0.1
    # single captures: a first gate that takes in the bearing errors of a real street-level data
    # set (a median of 10 degrees, a sigma near 15: the measurement, which knows where it was cut,
    # reads up to some 20 through 3 sigmas of 10); a monocular depth is not off by more than a
    # factor e. The data's errors are then measured within
    capture_gate_deg: float = 30.0
    capture_gate_log: float = 1.0
    capture_min_support: float = 2.0
    # the groups' covariances understate what parts them: where every object is one (objects on
    # their OSM node, simulated on the Harrisburg extract) the median distance between two groups
    # of one object was 2.8 of their sigmas, not chi-square's 1.2, so 10 stated sigmas are some
    # 4.3 honest ones. Against 5 and no split, on three cities x two placements (seed 5), 10 gave
    # the most recall for the least precision lost
    split_sigma: float = 10.0
    cell_m: float = 15.0
    captures: str = "auto"

    def validate(self) -> LocateConfig:
        check_fields(self, ("reach_m", "gate_sigma", "huber_k", "cell_m", "floor_m", "track_gap_s",
                            "track_bearing_sigma_deg", "track_turn_deg", "pose_sigma_m", "confusion_m",
                            "track_range_rel", "track_floor_m", "track_share", "vague_ratio", "join_m",
                            "range_shared_rel"), lambda v: v > 0, "> 0")
        if not self.offset_windows_s or not all(v > 0 for v in self.offset_windows_s):
            msg = f"offset_windows_s must be times > 0; found {self.offset_windows_s}"
            raise ConfigError(msg, field='offset_windows_s')
        if int(self.rounds) != self.rounds or self.rounds < 1:
            msg = f"rounds must be a whole number >= 1; found {self.rounds}"
            raise ConfigError(msg, field='rounds')
        if self.captures not in ("auto", "video", "imagery"):
            msg = f"captures must be auto, video or imagery; found {self.captures!r}"
            raise ConfigError(msg, field='captures')
        if not 0 <= self.rare_share < 1:
            msg = f"rare_share must be in [0, 1); found {self.rare_share}"
            raise ConfigError(msg, field='rare_share')
        if not 0 < self.split_share <= 1:
            msg = f"split_share must be in (0, 1]; found {self.split_share}"
            raise ConfigError(msg, field='split_share')
        return self


@dataclass(frozen=True)
class Measures:
    """What locate measures from the data instead of taking it from its config: this fleet's
    errors. A run that holds all its tracks measures them over all of them; work cut into tiles
    or regions takes them measured once, over a sample of the whole (:func:`measure`), since a
    tile's few objects measure them badly (a 30-car Liechtenstein fleet in 5 km tiles: tiles
    asking for tracks of 1 to 3 observations where the whole asks for 2, 1,053 objects against
    435 in one piece, precision over all objects 0.31 against 0.77).

    Attributes
    ----------
    vague_deg : observations with a bearing sigma over this are left out (``vague_ratio`` times
        the median).
    min_track : the fewest observations a track needs (:func:`_min_track`).
    pose_m : per association round, the pose sigmas (along, across the direction of travel)
        measured in it (:func:`_pose_sigmas`).
    prior : the pose variances (along, across) that the tracks of one pass share
        (:func:`_shared_pose_vars`).
    window_s : the time window a pass's pose offsets are measured over (:func:`_offset_window`).
    shared_var : per round, the error per axis one direction's passes share (NaN: too few
        objects tell; :func:`_direction_splits`).
    tail : the mixture the tracks are reassigned with (:func:`_tail_model`; None: too few tracks
        tell, and none are).
    typical_share : the share of passing trips a typical object is seen by (NaN: none tell;
        :func:`_rarely_seen`).
    """

    vague_deg: float
    min_track: int
    pose_m: tuple
    prior: tuple
    window_s: float
    shared_var: tuple
    tail: tuple | None = None
    typical_share: float = float("nan")


class _Measurer:
    """The measures of one run: each taken from ``given`` (a :class:`Measures` or a dict of some
    of its fields), else measured where the run first needs it and kept (:meth:`measures`).
    Fields measured per round are asked with their round."""

    def __init__(self, given=None):
        self.given = given.__dict__ if isinstance(given, Measures) else dict(given or {})
        self.taken: dict = {}

    def take(self, name, measure, *args, rnd=None):
        """The measure ``name`` (of round ``rnd``), from ``measure(*args)`` unless given."""
        if name in self.given:
            return self.given[name] if rnd is None else self.given[name][rnd]
        value = measure(*args)
        if rnd is None:
            self.taken[name] = value
        else:
            self.taken.setdefault(name, []).append(value)
        return value

    def measures(self) -> Measures:
        both = {**self.taken, **self.given}
        return Measures(**{k: tuple(v) if isinstance(v, list) else v for k, v in both.items()})


def _bad(mask, what, col, values, source):
    if mask.any():
        row = int(np.flatnonzero(mask)[0])
        msg = f"{source}: column {col!r} must be {what}; found {values[row]!r} at row {row} ({int(mask.sum()):,} rows)"
        raise InputError(msg)


def validate_observations(obs: pd.DataFrame, source: str = "observations"):
    """Check the observations contract; returns the float arrays (lon, lat, bearing, its sigma,
    range, its sigma) and the times in seconds."""
    from mapdiff.schema import lonlat_columns, require, time_seconds

    require(obs, ["trip_id", "t", "class", "bearing_deg", "bearing_sigma_deg"], source)
    lon, lat = lonlat_columns(obs, source)
    t = time_seconds(obs["t"], source=source)
    bearing = numbers(obs, "bearing_deg", source, missing=True)
    _bad(~((bearing >= 0) & (bearing < 360)), "in [0, 360) degrees", "bearing_deg", bearing, source)
    sb = numbers(obs, "bearing_sigma_deg", source, missing=True)
    _bad(~(sb > 0), "> 0 degrees", "bearing_sigma_deg", sb, source)
    if "range_m" in obs:
        r = numbers(obs, "range_m", source, missing=True)
        _bad(r < 0, ">= 0 metres or null", "range_m", r, source)
        if "range_sigma_m" not in obs:
            msg = f"{source}: column 'range_m' needs a 'range_sigma_m' column; found {list(obs.columns)}"
            raise InputError(msg)
        sr = numbers(obs, "range_sigma_m", source, missing=True)
        _bad(np.isfinite(r) & ~(sr > 0), "> 0 metres where range_m is given", "range_sigma_m", sr, source)
        _bad(np.isinf(r), "finite or null", "range_m", r, source)
    else:
        r = np.full(len(obs), np.nan)
        sr = np.full(len(obs), np.nan)
    for col in ("trip_id", "class"):
        if obs[col].isna().any():
            msg = f"{source}: column '{col}' has {int(obs[col].isna().sum()):,} missing values"
            raise InputError(msg)
    return lon, lat, bearing, sb, r, sr, t


def no_objects(extra=()) -> pd.DataFrame:
    """The objects of a run that found none: ``OBJECT_COLUMNS`` (and ``extra``), no rows."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in [*OBJECT_COLUMNS, *extra]})


def locate(observations: pd.DataFrame, config: LocateConfig | None = None, *, source="observations"):
    """Estimate one position per object from ``observations`` (the DESIGN contract).

    Returns (objects, labels): ``objects`` in ``OBJECT_COLUMNS``; ``labels`` gives each
    observation's object_id (-1: it fitted no object).
    """
    config = (config or LocateConfig()).validate()
    arrays = validate_observations(observations, source)
    if len(observations) == 0:  # a fleet that saw nothing (a map without features, a quiet window)
        return no_objects(), np.zeros(0, dtype=np.int64)
    lon, lat, bearing, sb_deg, r, sr, t = arrays
    proj = LocalProjection.around(float(np.median(lon)), float(np.median(lat)))
    ox, oy = proj.to_metres(lon, lat)
    # centre the metres: the kernels' hashing and sums like small numbers
    frame = (proj, float(np.median(ox)), float(np.median(oy)))
    trip = _codes(observations["trip_id"])[0]
    kind = _capture_kind(trip, t) if config.captures == "auto" else config.captures
    if kind == "imagery":
        return _locate_imagery(observations, arrays, frame, (ox - frame[1], oy - frame[2]), config)
    measurer = _Measurer()
    vague_deg = measurer.take("vague_deg", lambda: config.vague_ratio * np.median(sb_deg))
    tracks = _video_tracks(observations, arrays, frame, config, vague_deg=vague_deg, xy=(ox - frame[1], oy - frame[2]))
    objects, track_labels = _locate_tracks(tracks, frame, config, measurer)
    return objects.drop(columns=ANCHOR_COLUMNS), _row_labels(track_labels, tracks.row_track)


def measure(observations: pd.DataFrame, config: LocateConfig | None = None, *, origin,
            source="observations") -> Measures | None:
    """Locate's measures (:class:`Measures`) over ``observations`` (video passes, held), as
    :func:`locate_batches` takes them over all its tracks; None where they make no track.
    ``origin``: (lon, lat) of the local metres' centre. ``config``: the one the runs that take
    the measures use (its rounds, its vague ratio)."""
    measurer = _Measurer()
    _locate_batches(lambda columns=None: [observations], config, origin=origin, source=source, max_tracks=None,
                    measurer=measurer)
    return measurer.measures() if "pose_m" in measurer.taken else None


def locate_batches(batches, config: LocateConfig | None = None, *, origin, source="observations",
                   max_tracks: int | None = None, measures: Measures | None = None, spill_measures=None):
    """:func:`locate` of video passes (whatever ``config.captures`` says, but "imagery") streamed in batches, so that
    only the tracks, not the observations, are held: ``batches()`` gives the observation frames
    afresh, each holding whole trips (a trip's tracks are built from its batch alone), and
    ``batches(columns=[...])`` only those columns of them (read twice so, for the median bearing
    sigma). ``origin``: (lon, lat) of the local metres' centre. The objects do not depend on how
    the trips are cut into batches. ``max_tracks``: beyond this many tracks they go to disk and
    the association runs region by region (:mod:`mapdiff.locate_regions`; None: held, one
    piece). Returns (objects, labels: per batch in order, each row's object_id or -1; an
    iterator, read once); the objects carry ``ANCHOR_COLUMNS`` too (see :func:`_with_anchors`:
    the place by which a tile owns an object). ``measures``: this fleet's errors measured
    elsewhere (:func:`measure`; None: measured here, over all the tracks, or region by region
    when they go to disk). ``spill_measures``: where none are given and the tracks go to disk,
    a function giving those the regions take (None, or giving None: each its own)."""
    objects, labels = _locate_batches(batches, config, origin=origin, source=source, max_tracks=max_tracks,
                                      measurer=_Measurer(measures), spill_measures=spill_measures)
    return objects, labels


def _locate_batches(batches, config, *, origin, source, max_tracks, measurer, spill_measures=None):
    from mapdiff.locate_regions import TrackSpill

    config = (config or LocateConfig()).validate()
    if config.captures == "imagery":
        msg = "locate in batches takes video passes (captures 'video' or 'auto'); found captures='imagery'"
        raise ConfigError(msg, field="captures")
    proj = LocalProjection.around(*origin)
    x0, y0 = proj.to_metres(np.array([origin[0]]), np.array([origin[1]]))
    frame = (proj, float(x0[0]), float(y0[0]))
    vague_deg = measurer.take("vague_deg", lambda: config.vague_ratio * _median_of_batches(
        lambda: batches(columns=["bearing_sigma_deg"]), "bearing_sigma_deg", source))
    spill = TrackSpill(np.iinfo(np.int64).max if max_tracks is None else max_tracks, reach_m=config.reach_m)
    for obs in batches():
        spill.add(_video_tracks(obs, validate_observations(obs, source), frame, config, vague_deg=vague_deg))
    spill.finish()
    if spill.spilled:
        # (the fragment length and the vague limit are the whole run's, as when held)
        measurer.take("min_track", _min_track, spill.n_sums, config)
        sample = None if measurer.given or spill_measures is None else spill_measures()
        given = {**(sample.__dict__ if sample is not None else {}), **measurer.given, **measurer.taken}
        return _locate_regions(spill, frame, config, given)
    with spill:
        pieces = spill.held
        if not pieces:
            return no_objects(ANCHOR_COLUMNS), iter([])
        starts = np.cumsum([0] + [len(p.row_track) for p in pieces])
        tracks = _TrackSet.join(pieces)  # (empties the held list: the tables are not held twice)
        tracks.table = tracks.table.drop(columns="uid")
    objects, track_labels = _locate_tracks(tracks, frame, config, measurer)
    labels = _row_labels(track_labels, tracks.row_track)
    return objects, iter([labels[a:b] for a, b in zip(starts[:-1], starts[1:])])


def _locate_regions(spill, frame, config, given):
    """:func:`locate_batches`'s association region by region over the tracks ``spill`` holds on
    disk: each region keeps the objects whose position lies in it; a track takes the object of
    the first region that kept one for it. ``given``: the measures taken as given (those not
    given, each region measures from its own tracks)."""
    proj, x0, y0 = frame
    found, track_object = [], np.full(spill.n_tracks, -1, dtype=np.int64)
    n_objects = 0
    for region in spill.regions():
        tracks = spill.gather(region)
        if tracks is None:
            continue
        objects, track_labels = _locate_tracks(tracks, frame, config, _Measurer(given))
        x, y = proj.to_metres(objects["lon"].to_numpy(float), objects["lat"].to_numpy(float))
        own = spill.owns(region, x - x0, y - y0)
        new = np.full(len(objects) + 1, -1, dtype=np.int64)
        new[np.flatnonzero(own)] = n_objects + np.arange(int(own.sum()))
        label = new[np.where(track_labels >= 0, track_labels, len(objects))]
        uid = tracks.table["uid"].to_numpy()
        take = (label >= 0) & (track_object[uid] < 0)
        track_object[uid[take]] = label[take]
        found.append(objects[own])
        n_objects += int(own.sum())
    full = [f for f in found if len(f)]
    objects = (pd.concat(full, ignore_index=True) if full else
               no_objects(ANCHOR_COLUMNS))
    # an object on a border that two regions each placed on their own side: the first region's
    # took every track, the second's is left without one and goes
    kept = np.bincount(track_object[track_object >= 0], minlength=len(objects)) > 0
    new = np.full(len(objects) + 1, -1, dtype=np.int64)
    new[np.flatnonzero(kept)] = np.arange(int(kept.sum()))
    track_object = new[np.where(track_object >= 0, track_object, len(objects))]
    objects = objects[kept].reset_index(drop=True)
    objects["object_id"] = np.arange(len(objects), dtype=np.int64)

    def labels():
        with spill:
            for row_track in spill.row_tracks():
                yield np.where(row_track >= 0, track_object[np.maximum(row_track, 0)], -1)

    return objects, labels()


def _median_of_batches(batches, column, source):
    """The exact median of a float ``column`` over ``batches()`` without holding it: a pass
    counts the values by the top bits of their IEEE pattern (monotone for values >= 0), a second
    keeps those in the bins of the middle ranks (NaN when there are no values > 0)."""
    from mapdiff.schema import require

    shift = 44  # 2**20 bins of the non-negative doubles

    def values():
        for obs in batches():
            require(obs, [column], source)
            v = numbers(obs, column, source, missing=True)
            yield v[v > 0]  # (the others are refused where the tracks are built)

    one = None
    counts = np.zeros(1 << 20, dtype=np.int64)
    for k, v in enumerate(values()):
        one = v if k == 0 else None
        counts += np.bincount(v.view(np.int64) >> shift, minlength=len(counts))
    n = int(counts.sum())
    if n == 0:
        return float("nan")
    if one is not None:  # (one batch: at hand)
        return float(np.median(one))
    cum = np.cumsum(counts)
    ranks = np.array([(n - 1) // 2, n // 2])
    bins = np.searchsorted(cum, ranks, side="right")
    kept = np.sort(np.concatenate([v[np.isin(v.view(np.int64) >> shift, bins)] for v in values()]))
    before = cum[bins[0]] - counts[bins[0]]
    return float(0.5 * (kept[ranks[0] - before] + kept[ranks[1] - before]))


def _row_labels(track_labels, row_track):
    """Each row's object (-1: none) from its track's."""
    out = np.full(len(row_track), -1, dtype=np.int64)
    has = row_track >= 0
    out[has] = track_labels[row_track[has]]
    return out


def _locate_imagery(observations, arrays, frame, xy, config):
    """:func:`locate` of single captures (see :func:`_locate_captures`); ``xy``: the observers
    in the local metres of ``frame``."""
    lon, lat, bearing, sb_deg, r, sr, t = arrays
    proj, x0, y0 = frame
    ox, oy = xy
    b = np.radians(bearing)
    cls_codes, classes, _ = _identities(observations)
    trip = _codes(observations["trip_id"])[0]
    ranged = np.isfinite(r) & (r > 0)
    stated_sr = float(np.median(sr[ranged] / r[ranged])) if ranged.any() else \
        config.capture_gate_log / config.gate_sigma
    stated = (np.radians(float(np.median(sb_deg))), 0.0, stated_sr)
    x, y, sxx, syy, red, n_trips, labels, ident = _locate_captures(trip, cls_codes, ox, oy, b, r, stated, config)
    value, value_names = _values(observations)
    units = pd.DataFrame({"trip": trip, "t0": t, "t1": t, "n_rows": np.ones(len(t), dtype=np.int64),
                          "score": _scores(observations), "value": value})
    return _objects(units, labels, value_names, classes, ident, (x + x0, y + y0, sxx, syy, red, n_trips), proj,
                    config.split_share)


def _values(observations):
    """Each observation's value code (-1: none) and the sorted value names (none: no values)."""
    if "value" not in observations or not observations["value"].notna().any():
        return np.full(len(observations), -1, dtype=np.int64), np.zeros(0, dtype=object)
    return _codes(observations["value"])


def _scores(observations):
    return observations["score"].to_numpy(float) if "score" in observations else np.ones(len(observations))


@dataclass
class _TrackSet:
    """The tracks of video passes and what the association needs of their observations.

    ``table``: one row per track (see :func:`_track_points`, less the fit's own covariance),
    plus ``n_rows`` and ``score`` (the rows and summed detector scores a track stands for, the
    rows given twice included), ``value`` (its value's code in ``value_names``),
    ``first_x``/``first_y`` (its first observer), ``cls`` (its identity's code in ``idents``,
    each identity's class and value) and ``trip`` (its trip's code in ``trip_names``).
    ``frame_ptr`` into ``frame_t``: the times of the frames each track was seen in.
    ``row_track``: each observation's track (-1: none). ``n_sums``: the sums over every track
    of its observations and of their square (see :func:`_min_track`). Only the tracks that may
    count (``kept``: their length is judged later, against all) or that make a weak object
    (blind: rays that never part) are held."""

    table: pd.DataFrame
    frame_ptr: np.ndarray
    frame_t: np.ndarray
    idents: pd.DataFrame
    value_names: np.ndarray
    trip_names: np.ndarray
    row_track: np.ndarray
    n_sums: tuple

    @classmethod
    def join(cls, pieces: list) -> _TrackSet:
        """The tracks of batches of whole trips as one set, as one batch of them all would give
        it: trips, identities and values coded over all, the tracks by trip. Empties
        ``pieces`` as it goes (a month's tracks are held once)."""
        if len(pieces) == 1:
            return pieces.pop()
        names = np.unique(np.concatenate([p.value_names for p in pieces]).astype(str)).astype(object)
        # (a part's names may be every trip of the file's dictionary: only those of its tracks
        # count; all of them, over a region's hundreds of parts, took gigabytes)
        used = [np.unique(p.table["trip"].to_numpy()) for p in pieces]
        trip_names = np.unique(np.concatenate([p.trip_names[u] for p, u in zip(pieces, used)]).astype(str))
        trip_names = trip_names.astype(object)
        idents = _sorted_idents(pd.concat([p.idents for p in pieces], ignore_index=True).drop_duplicates())
        key = pd.MultiIndex.from_frame(idents.fillna({"value": "\0none"}))
        tables, rows, counts, times = [], [], [], []
        n_tracks = 0
        n_sums = tuple(sum(p.n_sums[k] for p in pieces) for k in range(2))
        while pieces:
            p, u = pieces.pop(0), used.pop(0)
            tab = p.table
            local = pd.MultiIndex.from_frame(p.idents.fillna({"value": "\0none"}))
            tab["cls"] = key.get_indexer(local)[tab["cls"].to_numpy()]
            to_value = np.searchsorted(names, p.value_names.astype(str)) if len(p.value_names) else np.zeros(1, int)
            v = tab["value"].to_numpy()
            tab["value"] = np.where(v >= 0, to_value[np.maximum(v, 0)], -1)
            to_trip = np.zeros(len(p.trip_names), dtype=np.int64)
            to_trip[u] = np.searchsorted(trip_names, p.trip_names[u].astype(str))
            tab["trip"] = to_trip[tab["trip"].to_numpy()]
            tables.append(tab)
            rows.append(np.where(p.row_track >= 0, p.row_track + n_tracks, -1).astype(np.int32))
            counts.append(np.diff(p.frame_ptr))
            times.append(p.frame_t)
            n_tracks += len(tab)
        del p, tab
        # by trip: each trip's tracks in their batch's order
        order = np.argsort(np.concatenate([t["trip"].to_numpy() for t in tables]), kind="stable")
        # (column by column: pd.concat of a region's hundreds of pieces peaked at five times
        # their size)
        table = pd.DataFrame({c: np.concatenate([t[c].to_numpy() for t in tables])[order] for c in tables[0].columns})
        del tables
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        count, frame_t = np.concatenate(counts), np.concatenate(times)
        start = np.r_[0, np.cumsum(count)][:-1]
        at = np.repeat(start[order] - np.r_[0, np.cumsum(count[order])][:-1], count[order]) + np.arange(count.sum())
        row_track = np.concatenate(rows)
        row_track = np.where(row_track >= 0, rank[np.maximum(row_track, 0)], -1).astype(np.int32)
        return cls(table, np.r_[0, np.cumsum(count[order])].astype(np.int64),
                   frame_t[at], idents, names, trip_names, row_track, n_sums)


def _sorted_idents(idents):
    """Identities (class, value) in :func:`_identities`'s order: by class, no value first, then
    by value."""
    order = np.lexsort((idents["value"].fillna("").astype(str).to_numpy(), idents["value"].notna().to_numpy(),
                        idents["class"].astype(str).to_numpy()))
    return idents.iloc[order].reset_index(drop=True)


def _video_tracks(observations, arrays, frame, config, *, vague_deg, xy=None) -> _TrackSet:
    """The tracks of the passes in ``observations`` (whole trips; see the module docstring,
    step 1), in the local metres of ``frame`` (projection, x0, y0; ``xy``: the observers' there,
    when known), leaving out observations whose bearing sigma is over ``vague_deg``."""
    from mapdiff._kernels.locate import Rays, build_tracks, group_rows, track_ends

    lon, lat, bearing, sb_deg, r, sr, t = arrays
    proj, x0, y0 = frame
    if xy is None:
        ox, oy = proj.to_metres(lon, lat)
        ox, oy = ox - x0, oy - y0
    else:
        ox, oy = xy
    b = np.radians(bearing)
    cls_codes, classes, values = _identities(observations)
    trip, trip_names = _codes(observations["trip_id"])
    # within a pass the pose error is shared: frames differ by the box's own noise only
    sb_track = np.minimum(np.radians(sb_deg), np.radians(config.track_bearing_sigma_deg))
    rays = Rays(ox, oy, b, np.sin(b), np.cos(b), sb_track, r, np.minimum(sr, config.track_range_rel * r))
    # most inputs come sorted by trip and time already: skip the sort then
    in_order = len(t) < 2 or bool(np.all((np.diff(trip) > 0) | ((np.diff(trip) == 0) & (np.diff(t) >= 0))))
    order = np.arange(len(t), dtype=np.int64) if in_order else np.lexsort((t, trip)).astype(np.int64)
    # a bearing far less certain than the data's usual (a frame at a bend, a standing car) would
    # mislead the association: such observations are left out
    order = order[~(sb_deg[order] > vague_deg)]
    track, first, last, copy_of = build_tracks(order, trip, t, cls_codes, rays, config.track_gap_s,
                                               config.gate_sigma**2, config.track_floor_m, config.track_turn_deg)
    # a row given twice counts once: copies sit out the fits and take their original's object
    copies = np.flatnonzero(copy_of >= 0)
    track[copies] = -1
    fit_args = (trip, t, cls_codes, rays, np.radians(sb_deg), config)
    tracks = _track_points(track, first, last, *fit_args)
    # pieces of one pass's track (split by a jump in the heading) whose points agree join up
    # again
    track = _join_pieces(track, tracks, config)
    first, last = track_ends(track, t, int(track.max()) + 1 if len(track) else 0)
    tracks = _track_points(track, first, last, *fit_args)
    n_obs = tracks["n_obs"].to_numpy()
    n_sums = (int((n_obs**2).sum()), int(n_obs.sum()))
    # only the tracks that count, and those whose rays never part (weak objects), are held
    blind = ~np.isfinite(tracks["x"].to_numpy()) & (tracks["n_obs"].to_numpy() >= 2)
    held = np.flatnonzero(tracks["kept"].to_numpy() | blind)
    new = np.full(len(tracks) + 1, -1, dtype=np.int64)
    new[held] = np.arange(len(held))
    track = new[np.where(track >= 0, track, len(tracks))]
    row_track = track.astype(np.int32)  # (4 bytes a row, not 8: every row's is held to the end)
    row_track[copies] = row_track[copy_of[copies]]
    value, value_names = _values(observations)
    has = row_track >= 0
    n = len(held)
    # each track's rows by time (``order``: by trip, then time, then row)
    ptr, by = group_rows(track, order, n)
    first_row = np.minimum.reduceat(by, ptr[:-1]) if n else np.zeros(0, dtype=np.int64)
    # (the fit's own covariance only served the joining of pieces)
    tracks = tracks.iloc[held].drop(columns=["fxx", "fxy", "fyy"]).reset_index(drop=True)
    tracks["n_rows"] = np.bincount(row_track[has], minlength=n)
    tracks["score"] = np.bincount(row_track[has], weights=_scores(observations)[has], minlength=n)
    tracks["value"] = value[first_row]  # (a track is of one identity: one value)
    tracks["first_x"], tracks["first_y"] = ox[first_row], oy[first_row]
    idents = pd.DataFrame({"class": np.asarray(classes, dtype=object), "value": np.asarray(values, dtype=object)})
    return _TrackSet(tracks, ptr, t[by], idents, value_names, trip_names, row_track, n_sums)


def _locate_tracks(ts: _TrackSet, frame, config, measurer):
    """Objects from the tracks (see the module docstring, steps 2-4), with the measures of
    ``measurer`` (a :class:`_Measurer`). Returns (objects, each track's object_id or -1)."""
    proj, x0, y0 = frame
    tracks = ts.table
    min_track = measurer.take("min_track", _min_track, ts.n_sums, config)
    tracks["kept"] = tracks["kept"].to_numpy() & (tracks["n_obs"].to_numpy() >= min_track)
    _drop_confused_tracks(tracks, config)
    labels, centres = _objects_of_tracks(tracks, ts, config, measurer)
    x, y, sxx, _, syy, red, n_trips = _fit(tracks, labels, centres, config)
    # what every pass from one direction shares (the matcher's bias there, the lane): it does not
    # shrink with the trips, and shows as the disagreement between the directions of one object
    shared = centres["shared_var"]
    classes = ts.idents["class"].to_numpy()
    # a value the detector read wrong on a few passes of a well-seen sign: the small object of
    # its class and another value on it folds into it, and its votes are reported there
    into = _folds(x, y, classes[centres["cls"]], n_trips, config.confusion_m, config.split_share)
    if (into >= 0).any():
        labels = np.where((labels >= 0) & (into[np.maximum(labels, 0)] >= 0), into[np.maximum(labels, 0)], labels)
        x, y, sxx, _, syy, red, n_trips = _fit(tracks, labels, centres, config)
    # ... which the directions each object was seen from average down: the error of a mean over
    # its direction groups (each trip weighing as one) holds shared / k_eff of it
    shared_k = shared / (np.maximum(red, 1.0) * _effective_directions(labels, tracks, len(x)))
    sxx, syy = sxx + shared_k, syy + shared_k
    # a few detections of a well-seen object get another class from the detector: where a much
    # smaller object of another class sits on it, its observations are those confusions
    has = labels >= 0
    n_obs = np.bincount(labels[has], weights=tracks["n_rows"].to_numpy()[has], minlength=len(x))
    confused = _confusions(x, y, n_obs, n_trips, config.confusion_m, config.confusion_ratio)
    if len(x):
        labels = np.where(has & confused[np.maximum(labels, 0)], -1, labels)
    n_trips = np.where(confused, 0, n_trips)
    # a few passes with a gross pose error (the matcher on the wrong road, a heading off at a
    # corner) place an object where the many that passed by saw nothing
    rare = _rarely_seen(x, y, n_trips, tracks, labels, config, measurer)
    if rare.any():
        labels = np.where((labels >= 0) & rare[np.maximum(labels, 0)], -1, labels)
        n_trips = np.where(rare, 0, n_trips)
    # a track whose rays never part and give no range (one bearing, again and again) tells a
    # direction, not a place: a weak object at its observer, its sigma infinite along the ray
    blind = np.flatnonzero(~np.isfinite(tracks["x"].to_numpy()) & (tracks["n_obs"].to_numpy() >= 2))
    obj_cls = centres["cls"]
    if len(blind):
        labels[blind] = len(x) + np.arange(len(blind))
        inf = np.full(len(blind), np.inf)
        x, y = np.r_[x, tracks["first_x"].to_numpy()[blind]], np.r_[y, tracks["first_y"].to_numpy()[blind]]
        sxx, syy = np.r_[sxx, inf], np.r_[syy, inf]
        red, n_trips = np.r_[red, np.ones(len(blind))], np.r_[n_trips, np.ones(len(blind), dtype=np.int64)]
        obj_cls = np.r_[obj_cls, tracks["cls"].to_numpy()[blind]]
    objects, out_labels = _objects(tracks, labels, ts.value_names, classes, obj_cls,
                                   (x + x0, y + y0, sxx, syy, red, n_trips), proj, config.split_share)
    return _with_anchors(objects, out_labels, tracks, frame), out_labels


#: the columns :func:`locate_batches` adds to the objects: where a tile owns an object
ANCHOR_COLUMNS = ["anchor_lon", "anchor_lat"]


def _with_anchors(objects, labels, tracks, frame):
    """``objects`` with ``ANCHOR_COLUMNS``: the mean of its tracks' own points (each pass's fit
    of its rays, or its first observer where they never part), before any pose offset. Two
    tiles whose halos hold an object's passes fit it a little apart (a pass's offset comes from
    its other tracks, which a halo cuts), and on a border each would keep it; its tracks' own
    points are the same in both, and so is the tile they lie in."""
    from mapdiff.locate_regions import points_of_tracks

    proj, x0, y0 = frame
    has = labels >= 0
    px, py = points_of_tracks(tracks)
    n = np.maximum(np.bincount(labels[has], minlength=len(objects)), 1)
    ax = np.bincount(labels[has], weights=px[has], minlength=len(objects)) / n
    ay = np.bincount(labels[has], weights=py[has], minlength=len(objects)) / n
    lon, lat = proj.to_lonlat(ax + x0, ay + y0)
    return objects.assign(anchor_lon=lon, anchor_lat=lat)


def capture_kind(observations: pd.DataFrame) -> str:
    """"imagery" where the data are single captures (street-level imagery: most observations
    come from trips that are one instant), else "video" (passes of many frames)."""
    from mapdiff.schema import time_seconds

    return _capture_kind(_codes(observations["trip_id"])[0], time_seconds(observations["t"], source="observations"))


def _capture_kind(trip, t):
    """:func:`capture_kind` of the observations' trip codes and times."""
    per_trip = pd.Series(t).groupby(trip).agg(["size", "min", "max"])
    return capture_kind_of_trips(per_trip["size"].to_numpy(), per_trip["min"].to_numpy(), per_trip["max"].to_numpy())


def capture_kind_of_trips(n, t_first, t_last) -> str:
    """:func:`capture_kind` from each trip's count of observations and first and last time (a
    trip of one instant is a single capture): what a pass over a big file in batches gathers."""
    n = np.asarray(n, dtype=np.float64)
    single = np.asarray(t_first) == np.asarray(t_last)
    return "imagery" if n.sum() and n[single].sum() / n.sum() > 0.5 else "video"


#: the most covers of single captures: each gates at the errors the one before measured, until
#: the bearing's sigma moves by less than a tenth (a wide first gate takes in the tail and
#: mixed-up neighbours, so the first measures wide and the next ones narrow in)
CAPTURE_ROUNDS = 6
#: the fewest residuals that measure the errors: a sigma from n normal residuals is good to
#: 1 / sqrt(2 n), and a cut mixture's to some 2.5 times that: 300 make it some 10 %. With fewer
#: (a town of 20 objects) the measurement drifts from cover to cover, each narrower than the last
CAPTURE_MIN_RESIDUALS = 300


def _locate_captures(trip, ident, ox, oy, b, r, stated, config):
    """Objects from single captures (see :mod:`mapdiff._kernels.captures`): candidates where two
    captures' rays meet, the best-supported taken first, each observation to one object.

    The gates come from the data: a first cover with wide gates (``capture_gate_deg`` of
    bearing, a factor e^``capture_gate_log`` of range) gives objects whose observations'
    residuals measure the real bearing and range errors (:func:`_capture_errors`); the next
    cover gates at ``gate_sigma`` of those, until they settle. Where too few
    objects measure them, the observations' ``stated`` sigmas are used (bearing in radians,
    capture position in metres, log range). Returns per object x, y, the variances, reduced
    chi-square, trips, and the observations' labels and objects' identities.
    """
    from mapdiff._kernels.captures import candidates, cover

    ranged = np.isfinite(r)
    nominal = float(np.median(r[ranged])) if ranged.any() else 20.0  # for sorting rays without a range
    dist = np.where(ranged, r, nominal)
    far = float(np.quantile(dist, 0.99))  # the odd depth far off its object finds no partner
    ex, ey = ox + dist * np.sin(b), oy + dist * np.cos(b)
    order = np.lexsort((ex, ident))
    ex_s, ey_s, ox_s, oy_s, b_s, r_s = (v[order] for v in (ex, ey, ox, oy, b, r))
    trip_s, ident_s = trip[order], ident[order]
    start = np.searchsorted(ident_s, np.arange(int(ident_s.max()) + 2)).astype(np.int64)
    n_trips = int(trip.max()) + 1

    def covered(sb, sp, sr):
        # an observation fits a point up to e^(gate sigmas) of its range away from its end point
        reach = far * (np.exp(config.gate_sigma * sr) - 1.0) + 1.0
        cx, cy, cg = candidates(start, ex_s, ey_s, ox_s, oy_s, b_s, r_s, trip_s, (sb, sp, sr), config.gate_sigma,
                                reach)
        # many pairs meet at one place: one candidate per 2 m cell is enough (the fit moves it)
        _, first = np.unique(np.c_[cg, np.floor(cx / 2), np.floor(cy / 2)], axis=0, return_index=True)
        cx, cy, cg = cx[first], cy[first], cg[first]
        found = cover(start, cx, cy, cg, ex_s, ey_s, ox_s, oy_s, b_s, r_s, trip_s, n_trips, sb, sp, sr,
                      config.gate_sigma, reach, config.capture_min_support)
        gates = (config.gate_sigma, reach, config.capture_min_support)
        found = _settle(found, start, (ex_s, ey_s, ox_s, oy_s, b_s, r_s, trip_s), (sb, sp, sr), gates)
        split = _split_by_direction(found, (ox_s, oy_s, b_s, r_s), (sb, sp, sr))
        if split is not None:
            found = _settle(split, start, (ex_s, ey_s, ox_s, oy_s, b_s, r_s, trip_s), (sb, sp, sr), gates)
        # (and the places each identity tried: what chance objects are counted against)
        return found, np.bincount(cg, minlength=len(start))

    # first wide: the gates' sigmas; then the errors the data show
    sb, sp = np.radians(config.capture_gate_deg) / config.gate_sigma, 0.0
    sr = config.capture_gate_log / config.gate_sigma
    for round_ in range(CAPTURE_ROUNDS):
        sb_used, sp_used, sr_used = sb, sp, sr
        (used, x, y, vxx, vxy, vyy, chi, _), tried = covered(sb, sp, sr)
        measured = _capture_errors(used, x, y, (vxx, vxy, vyy), ox_s, oy_s, b_s, r_s, (config.gate_sigma, sb, sp))
        if measured is None:
            if round_ == 0:  # too few to tell: the errors the observations state
                (used, x, y, vxx, vxy, vyy, chi, _), tried = covered(*stated)
                sb_used, sp_used, sr_used = stated
            break
        settled = abs(measured[0] - sb) < 0.1 * sb
        sb, sp = measured[0], measured[1]
        # (the range's MAD does not know where it was cut: never wider than the gate it came through)
        sr = min(measured[2], sr) if np.isfinite(measured[2]) else sr
        if settled:
            break
    if config.capture_min_support <= 2:
        used, x, y, vxx, vxy, vyy, chi = _free_pairs((used, x, y, vxx, vxy, vyy, chi),
                                                     (ox_s, oy_s, b_s, r_s, trip_s, ident_s),
                                                     (sb_used, sp_used, sr_used), config)
    obj_ident = np.full(len(x), -1, dtype=np.int64)
    has = used >= 0
    obj_ident[used[has]] = ident_s[has]
    # residuals: a bearing per observation, and a range where it has one
    n_res = np.bincount(used[has], weights=1.0 + np.isfinite(r_s[has]), minlength=len(x))
    red = np.where(n_res > 2, chi / np.maximum(n_res - 2, 1), 1.0)
    ghost = _echoes(used, x, y, obj_ident, ox_s, oy_s, b_s, trip_s, config)
    if len(x):
        ghost |= _by_chance(used, (x, y, obj_ident), (ox_s, oy_s, b_s, r_s, trip_s, ident_s),
                            (sb_used, sp_used, sr_used), config.gate_sigma, tried)
        used = np.where((used >= 0) & ghost[np.maximum(used, 0)], -1, used)
    labels = np.full(len(order), -1, dtype=np.int64)
    labels[order] = used
    # an object takes one observation per trip: its observations are its trips
    n_obj_trips = np.bincount(used[used >= 0], minlength=len(x))
    # captures along one road see an object from a narrow fan of directions: its error is long
    # along the rays, and the per-axis sigma reported is that of the long axis
    major = _major_variance(vxx, vxy, vyy)
    return x, y, major, major, red, n_obj_trips, labels, obj_ident


def _major_variance(vxx, vxy, vyy):
    """The variance along the long axis of each 2-D covariance (xx, xy, yy)."""
    half = 0.5 * (vxx - vyy)
    return 0.5 * (vxx + vyy) + np.sqrt(half * half + vxy * vxy)


#: the widest long-axis sigma (m) of an object made of two free sightings: two ranges tens of
#: percent off place most pairs no better than some metres. At 2 m it lies within 3 m (what issue
#: 9 judges a located object by) two times in three. On the imagery of three cities at three
#: noise levels, the pairs' precision within 3 m was 0.74 at sigmas of 1-2 m, 0.62 at 2-3 m and
#: 0.40 at 3-5 m; 1.5, 2.0 and 2.5 were tried, and 2.0 left no scene with less recall plus
#: precision than without pairs (benchmarks/results/locate_sim_imagery_pairs.txt)
PAIR_SIGMA_M = 2.0


def _soft_l1(z):
    return 2.0 * (np.sqrt(1.0 + z * z) - 1.0)


def _free_pairs(found, obs, sigmas, config):
    """Objects of two ranged sightings that the covers left free. A sign two captures saw can
    lose a sighting to a neighbour's place the cover took first and be dropped when it settles
    with one; or one of its bearings is in the heavy tail (a fifth of street-level bearings are
    10-30 degrees off) and the gates let it go. Each pair of free sightings of one identity
    (two trips) is fitted at the best of the places where its rays meet, where each ray meets
    the other's range, and its end points (robust: soft L1 over the bearings' and log ranges'
    residuals); it is an object where both ranges and one bearing pass the gate, the other
    bearing the wide first gate (``capture_gate_deg``), and its long-axis sigma is at most
    ``PAIR_SIGMA_M``; the best-fitting pairs first, each sighting in one. Returns the cover's
    arrays (``found`` = used, x, y, vxx, vxy, vyy, chi) with the new objects appended; ``obs`` =
    the observers, bearings, ranges, trips and identities; ``sigmas`` = the bearing's, the
    capture position's and the log range's, as measured."""
    from scipy.spatial import cKDTree

    used, x, y, vxx, vxy, vyy, chi = found
    ox, oy, b, r, trip, ident = obs
    sb, sp, sr = sigmas
    gate, tail = config.gate_sigma, np.radians(config.capture_gate_deg)
    free = np.flatnonzero((used < 0) & np.isfinite(r) & (r > 0))
    if len(free) < 2 or not sr > 0:
        return found
    # a sighting's end point lies within its range error and a tail bearing's sideways error of
    # its object: two sightings of one object, within the sum of theirs of each other
    ex, ey = ox + r * np.sin(b), oy + r * np.cos(b)
    own = np.where(np.isfinite(r), r * (np.exp(gate * sr) - 1.0 + np.sin(tail)) + gate * sp, 0.0)
    i, j = [], []
    for group in np.split(free, np.flatnonzero(np.diff(ident[free])) + 1):  # (free is in identity order)
        if len(group) < 2:
            continue
        pairs = cKDTree(np.c_[ex[group], ey[group]]).query_pairs(2.0 * own[group].max(), output_type="ndarray")
        i.append(group[pairs[:, 0]])
        j.append(group[pairs[:, 1]])
    i, j = (np.concatenate(v) if v else np.zeros(0, np.int64) for v in (i, j))
    ok = (trip[i] != trip[j]) & (np.hypot(ex[i] - ex[j], ey[i] - ey[j]) <= own[i] + own[j])
    i, j = i[ok], j[ok]
    if len(i) == 0:
        return found
    cand = _pair_places(ox, oy, b, r, i, j)  # (pairs, places, 2)
    z = [_pair_residuals(cand, ox[k], oy[k], b[k], r[k], sb, sp, sr) for k in (i, j)]
    cost = sum(_soft_l1(zb) + _soft_l1(zr) for zb, zr, _ in z)
    best = np.nanargmin(np.where(np.isfinite(cost), cost, np.inf), axis=1)
    pick = np.arange(len(i))
    px, py = cand[pick, best, 0], cand[pick, best, 1]
    (zbi, zri, ebi), (zbj, zrj, ebj) = ((zb[pick, best], zr[pick, best], eb[pick, best]) for zb, zr, eb in z)
    fits = (np.abs(zri) <= gate) & (np.abs(zrj) <= gate) & (np.minimum(np.abs(zbi), np.abs(zbj)) <= gate) \
        & (np.maximum(np.abs(ebi), np.abs(ebj)) <= tail) & np.isfinite(cost[pick, best])
    order = np.flatnonzero(fits)[np.argsort(cost[pick, best][fits], kind="stable")]
    taken = np.zeros(len(used), dtype=bool)
    new = []
    for q in order:
        if taken[i[q]] or taken[j[q]]:
            continue
        taken[i[q]] = taken[j[q]] = True
        new.append(q)
    if not new:
        return found
    new = np.asarray(new)
    cov = _pair_covariance(px[new], py[new], (i[new], j[new]), ox, oy, (sb, sp, sr),
                           [(zbi[new], zri[new]), (zbj[new], zrj[new])])
    # a pair is kept where it is placed as well as the covers place their objects (three
    # sightings or more): two ranges tens of percent off and one bearing often place it no
    # better than its ranges, some metres, which is no object
    good = _major_variance(*cov) <= PAIR_SIGMA_M**2
    new, cov = new[good], tuple(c[good] for c in cov)
    if not len(new):
        return found
    used = used.copy()
    used[i[new]] = used[j[new]] = len(x) + np.arange(len(new))
    chi_new = sum(np.minimum(v[new] ** 2, gate**2) for v in (zbi, zri, zbj, zrj))
    return (used, np.r_[x, px[new]], np.r_[y, py[new]], np.r_[vxx, cov[0]], np.r_[vxy, cov[1]], np.r_[vyy, cov[2]],
            np.r_[chi, chi_new])


def _pair_places(ox, oy, b, r, i, j):
    """Where a pair of ranged sightings (rows ``i``, ``j``) may place its object: where the rays
    meet, where each ray is at the other's range from its capture (two solutions each), and
    the end points. Returns (pairs, 7, 2), NaN where a place does not exist."""
    out = np.full((len(i), 7, 2), np.nan)
    si, ci, sj, cj = np.sin(b[i]), np.cos(b[i]), np.sin(b[j]), np.cos(b[j])
    dx, dy = ox[j] - ox[i], oy[j] - oy[i]
    cross = si * cj - ci * sj
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (dx * cj - dy * sj) / cross
        u = (dx * ci - dy * si) / cross
    meet = (np.abs(cross) > 1e-6) & (s > 0) & (u > 0)
    out[meet, 0] = np.c_[ox[i] + s * si, oy[i] + s * ci][meet]
    for col, (a, c, sa, ca, rc) in ((1, (i, j, si, ci, r[j])), (3, (j, i, sj, cj, r[i]))):
        # along ray a: |o_a + t d_a - o_c| = r_c, t = -w.d +- sqrt((w.d)^2 - |w|^2 + r_c^2)
        wx, wy = ox[a] - ox[c], oy[a] - oy[c]
        wd = wx * sa + wy * ca
        disc = wd * wd - (wx * wx + wy * wy) + rc * rc
        root = np.sqrt(np.maximum(disc, 0.0))
        for k, t in enumerate((-wd + root, -wd - root)):
            ok = (disc >= 0) & (t > 0)
            out[ok, col + k] = np.c_[ox[a] + t * sa, oy[a] + t * ca][ok]
    out[:, 5] = np.c_[ox[i] + r[i] * si, oy[i] + r[i] * ci]
    out[:, 6] = np.c_[ox[j] + r[j] * sj, oy[j] + r[j] * cj]
    return out


def _pair_residuals(places, ox, oy, b, r, sb, sp, sr):
    """One sighting's residuals at each of ``places`` (pairs, k, 2): the bearing's in sigmas
    (sqrt(sb^2 + (sp / d)^2)), the log range's in sigmas, and the bearing's in radians."""
    dx, dy = places[..., 0] - ox[:, None], places[..., 1] - oy[:, None]
    d = np.maximum(np.hypot(dx, dy), 1e-3)
    eb = (b[:, None] - np.arctan2(dx, dy) + np.pi) % (2 * np.pi) - np.pi
    return eb / np.sqrt(sb**2 + (sp / d) ** 2), np.log(d / r[:, None]) / sr, eb


def _pair_covariance(px, py, rows, ox, oy, sigmas, z):
    """The covariance (xx, xy, yy) of pair objects at (``px``, ``py``): the inverse of the
    information of the two sightings' bearings and log ranges, each weighted as soft L1 weighs
    its residual ``z`` (a bearing in the tail tells little)."""
    sb, sp, sr = sigmas
    info = np.zeros((len(px), 3))
    for k, (zb, zr) in zip(rows, z):
        dx, dy = px - ox[k], py - oy[k]
        d2 = np.maximum(dx * dx + dy * dy, 1e-6)
        s_b = np.sqrt(sb**2 + sp**2 / d2)
        for (gx, gy), w in (((dy / d2 / s_b, -dx / d2 / s_b), 1.0 / np.sqrt(1.0 + zb * zb)),
                            ((dx / d2 / sr, dy / d2 / sr), 1.0 / np.sqrt(1.0 + zr * zr))):
            info += w[:, None] * np.c_[gx * gx, gx * gy, gy * gy]
    det = np.maximum(info[:, 0] * info[:, 2] - info[:, 1] ** 2, 1e-12)
    return info[:, 2] / det, -info[:, 1] / det, info[:, 0] / det


#: the most rounds of reassignment after a cover: each moves fewer observations, and a round
#: that moves none ends it
SETTLE_ROUNDS = 8


def _settle(found, start, obs, sigmas, gates):
    """The cover's objects settled: each observation to the object that fits it best
    (:func:`mapdiff._kernels.captures.reassign`), each object refitted on what it has, until
    nothing moves. The cover takes the best-supported place first, and at a junction of poles
    a few metres apart that can be a place between two of them, taking sightings of both
    within the gate; the poles found after it then go short. ``gates`` = (gate in sigmas, reach
    in metres, the fewest trips): an object left with fewer trips is dropped, its observations
    free (holding it also to the cover's likelihood sum lost more than it gained: -0.006 to
    +0.003 recall, -0.009 to +0.013 precision on the noisy imagery of three cities). Returns
    what ``cover`` returns."""
    from mapdiff._kernels.captures import reassign

    used, x, y, vxx, vxy, vyy, chi, _ = found
    if len(x) == 0:
        return found
    ex, ey, ox, oy, b, r, trip = obs
    gate, reach, min_support = gates
    ident = np.searchsorted(start, np.arange(len(ex)), side="right") - 1
    for _ in range(SETTLE_ROUNDS):
        count = np.bincount(used[used >= 0], minlength=len(x))
        alive = count >= min_support
        live = np.flatnonzero(alive)
        used = np.where((used >= 0) & alive[np.maximum(used, 0)], used, -1)
        obj_ident = np.full(len(x), -1, dtype=np.int64)
        obj_ident[used[used >= 0]] = ident[used >= 0]
        live = live[np.lexsort((x[live], obj_ident[live]))]
        obj_start = np.searchsorted(obj_ident[live], np.arange(len(start))).astype(np.int64)
        new = reassign(start, obj_start, live, x[live], x, y, ex, ey, ox, oy, b, r, trip, *sigmas, gate, reach)
        x, y, (vxx, vxy, vyy), chi = _refit(new, x, y, (ox, oy, b, r), sigmas)
        moved = not np.array_equal(new, used)
        used = new
        if not moved:
            break
    count = np.bincount(used[used >= 0], minlength=len(x))
    alive = count >= min_support
    keep = np.flatnonzero(alive)
    index = np.full(len(x), -1, dtype=np.int64)
    index[keep] = np.arange(len(keep))
    used = np.where((used >= 0) & alive[np.maximum(used, 0)], index[np.maximum(used, 0)], -1)
    return used, x[keep], y[keep], vxx[keep], vxy[keep], vyy[keep], chi[keep], count[keep]


#: two arcs of one object's sightings place it apart beyond this squared Mahalanobis distance
#: (their covariances summed): chi-square's 0.1 % tail at 2 degrees of freedom, strict because
#: the arcs are chosen (between the widest gaps) to set the two apart. At the 1 % tail (9.2),
#: precision fell at default noise (0.852 -> 0.842 over 6 simulations) for 0.006 more recall
DIRECTION_SPLIT_CHI2 = 13.8


def _split_by_direction(found, obs, sigmas):
    """Objects seen from two sides that place them apart: a sign or a signal head is read from
    in front only, so two poles a few metres apart facing different approaches are never seen
    together, and the cover may take them for one between them. An object's sightings are cut
    into the two arcs of directions (from the object to the captures) between the two widest
    gaps; each arc fitted on its own; where the two places differ by more than
    ``DIRECTION_SPLIT_CHI2`` (the squared Mahalanobis distance over both covariances), the
    object is two. Returns the new
    ``found`` or None where nothing split."""
    used, x, y, vxx, vxy, vyy, chi, n = found
    ox, oy = obs[0], obs[1]
    x, y, new_used = x.copy(), y.copy(), used.copy()
    extra = []
    members = pd.Series(np.flatnonzero(used >= 0)).groupby(used[used >= 0]).apply(np.asarray) if (used >= 0).any() \
        else pd.Series(dtype=object)
    for o, k in members.items():
        if len(k) < 4:
            continue
        ang = np.arctan2(ox[k] - x[o], oy[k] - y[o])
        order = np.argsort(ang)
        a = ang[order]
        gaps = np.diff(np.r_[a, a[0] + 2 * np.pi])
        g1, g2 = np.sort(np.argsort(gaps)[-2:])
        arc = np.zeros(len(k), dtype=np.int64)
        arc[order[g1 + 1: g2 + 1]] = 1
        if min((arc == 0).sum(), (arc == 1).sum()) < 2:
            continue
        sub = np.full(len(used), -1, dtype=np.int64)
        sub[k] = arc
        px, py, (cxx, cxy, cyy), _ = _refit(sub, np.full(2, x[o]), np.full(2, y[o]), obs, sigmas)
        sxx, sxy, syy = cxx.sum(), cxy.sum(), cyy.sum()
        det = sxx * syy - sxy * sxy
        if not np.isfinite(det) or det <= 0:
            continue
        dx, dy = px[1] - px[0], py[1] - py[0]
        if (syy * dx * dx - 2 * sxy * dx * dy + sxx * dy * dy) / det > DIRECTION_SPLIT_CHI2:
            extra.append((px[1], py[1]))
            new_used[k[arc == 1]] = len(x) + len(extra) - 1
            x[o], y[o] = px[0], py[0]
    if not extra:
        return None
    ex_, ey_ = np.array(extra).T
    z = np.zeros(len(extra))
    return (new_used, np.r_[x, ex_], np.r_[y, ey_], np.r_[vxx, z], np.r_[vxy, z], np.r_[vyy, z], np.r_[chi, z],
            np.r_[n, z.astype(np.int64)])


def _refit(used, x, y, obs, sigmas, rounds=8):
    """Every object refitted on its observations (:func:`mapdiff._kernels.captures.refit`):
    x, y, covariance (xx, xy, yy) and chi-square per object (an object without observations
    keeps its place, its covariance infinite)."""
    from mapdiff._kernels.captures import refit

    ox, oy, b, r = obs
    x, y, vxx, vxy, vyy, chi = refit(np.asarray(used, np.int64), np.asarray(x, float), np.asarray(y, float), ox, oy,
                                     b, r, *sigmas, rounds)
    return x, y, (vxx, vxy, vyy), chi


#: the chance objects tolerated per identity: false detections (and sightings in the tail) that
#: happen to meet make objects by chance, and a data set tries as many places as its candidates
CHANCE_OBJECTS = 1.0


def _by_chance(used, objects, obs, sigmas, gate, tried):
    """Objects that the clutter would make by chance. The free sightings (those no object
    explains: false detections, the tail) measure the clutter per capture and identity, and
    their ranges its distances. At an object's place the captures within the distance its
    kind is seen from (the 90th percentile of the sightings' distances) would each give a
    chance sighting that fits it with the clutter rate times the chance that a random bearing
    and range fall in the gate; an object whose trips that Poisson mean reaches with more than
    ``CHANCE_OBJECTS`` / (the places its identity tried: its candidates) chance is dropped, so
    that all places together make about ``CHANCE_OBJECTS`` such objects. Where there is little
    clutter nothing goes; where false detections are many, pairs need to be more than chance."""
    from scipy.spatial import cKDTree
    from scipy.stats import poisson

    x, y, obj_ident = objects
    ox, oy, b, r, trip, ident = obs
    sb, sp, sr = sigmas
    has = used >= 0
    k = np.bincount(used[has], minlength=len(x))
    first = np.unique(trip, return_index=True)[1]
    free = ~has
    rate = np.bincount(ident[free], minlength=len(tried)) / len(first)
    free_log_r = np.sort(np.log(np.maximum(r[free & np.isfinite(r)], 1e-3)))
    reach = float(np.quantile(np.hypot(ox[has] - x[used[has]], oy[has] - y[used[has]]), 0.9)) if has.any() else 0.0
    near = cKDTree(np.c_[ox[first], oy[first]]).query_ball_point(np.c_[x, y], reach)
    # every (object, capture in reach) pair: the chance that a random sighting there fits
    o = np.repeat(np.arange(len(x)), [len(c) for c in near])
    c = first[np.fromiter((q for cs in near for q in cs), dtype=np.int64, count=len(o))]
    d = np.maximum(np.hypot(ox[c] - x[o], oy[c] - y[o]), 1.0)
    in_bearing = np.minimum(1.0, gate * np.sqrt(sb**2 + (sp / d) ** 2) / np.pi)
    if len(free_log_r):
        lo, hi = np.log(d) - gate * sr, np.log(d) + gate * sr
        in_range = (np.searchsorted(free_log_r, hi) - np.searchsorted(free_log_r, lo)) / len(free_log_r)
    else:
        in_range = np.ones(len(d))
    mean = rate[obj_ident] * np.bincount(o, weights=in_bearing * in_range, minlength=len(x))
    chance = poisson.sf(k - 1, mean) > CHANCE_OBJECTS / np.maximum(tried[obj_ident], 1)
    return (k > 0) & chance


#: how close (degrees) a capture's direction from an object must come to one it was seen from
#: to count as a place it is seen from: captures some 10 m apart at 20-50 m
SEEN_FROM_DEG = 15.0
#: the most a detector's bearing is off in its heavy tail: a second object a few metres away is
#: seen far more off than that from the captures near it
ECHO_MAX_DEG = 45.0
#: an echo is a minority of its object's sightings (a heavy tail is); a second pole of a
#: junction is seen about as often as the first
ECHO_SHARE = 0.5


def _echoes(used, x, y, ident, ox, oy, b, trip, config):
    """Objects that are another object's heavy-tailed sightings: a bearing off by tens of
    degrees on several captures of a well-seen object can meet at a place of its own. Such an
    object B of the identity of a bigger object A within ``reach_m`` is an echo where most of
    its captures are places A is seen from (their direction from A within ``SEEN_FROM_DEG`` of
    a capture of A, no farther than A's farthest) that did not see A: each saw one thing, and
    A explains it, each bearing off by less than ``ECHO_MAX_DEG``, and B has at most
    ``ECHO_SHARE`` of A's sightings. A real second object is seen with A from the captures that
    can see both, or far off A's bearing from those near it, or about as often as A."""
    ghost = np.zeros(len(x), dtype=bool)
    has = used >= 0
    size = np.bincount(used[has], minlength=len(x))
    live = np.flatnonzero(size > 0)
    if len(live) < 2:
        return ghost
    members = pd.Series(np.flatnonzero(has)).groupby(used[has]).apply(np.asarray)
    for i, j in zip(*(live[p] for p in _pairs_within(config.reach_m, x[live], y[live], ident[live]))):
        big, small = (i, j) if size[i] >= size[j] else (j, i)
        if ghost[big] or ghost[small]:
            continue
        mb, ms = members[big], members[small]
        seen_dir = np.arctan2(ox[mb] - x[big], oy[mb] - y[big])
        far = np.hypot(ox[mb] - x[big], oy[mb] - y[big]).max()
        d = np.arctan2(ox[ms] - x[big], oy[ms] - y[big])
        gap = np.abs((d[:, None] - seen_dir[None, :] + np.pi) % (2 * np.pi) - np.pi).min(axis=1)
        placed = (gap <= np.radians(SEEN_FROM_DEG)) & (np.hypot(ox[ms] - x[big], oy[ms] - y[big]) <= far)
        together = np.isin(trip[ms], trip[mb])
        # and A explains every sighting of B as a bearing off by less than a tail's
        off = np.abs((b[ms] - np.arctan2(x[big] - ox[ms], y[big] - oy[ms]) + np.pi) % (2 * np.pi) - np.pi)
        if (placed & ~together).mean() >= 0.5 and off.max() <= np.radians(ECHO_MAX_DEG) \
                and len(ms) <= ECHO_SHARE * len(mb):
            ghost[small] = True
    return ghost


def _capture_errors(used, x, y, cov, ox, oy, b, r, gated):
    """The errors the data show, from the observations of objects with at least three: the
    bearing's own sigma (radians) and the capture position's across the ray (metres); and the
    log range's robust sigma (1.4826 MAD). None where fewer than ``CAPTURE_MIN_RESIDUALS`` such
    observations tell.

    The bearing residual at distance d is a normal of sigma sqrt(sb^2 + (sp / d)^2) mixed with a
    uniform share (sightings of a neighbour taken by mistake, the detector's heavy tail), both
    cut at the gate each residual passed, ``gated`` = (gate in sigmas, sb, sp) of that cover:
    sb, sp and the share are fitted by maximum likelihood of that truncated mixture. A gate
    narrower than the errors lets the measurement see only their core; the truncation is what
    keeps it from reading that core as the whole. Each residual is divided by sqrt(1 - h), h its
    leverage in its object's fit (``cov`` = the objects' covariances xx, xy, yy from that fit):
    a sighting from close by pulls its object onto its ray and shows less than its error."""
    from scipy.optimize import minimize
    from scipy.special import ndtr

    has = used >= 0
    if not has.any():
        return None
    count = np.bincount(used[has], minlength=len(x))
    k = np.flatnonzero(has & (count[np.maximum(used, 0)] >= 3))
    if len(k) < CAPTURE_MIN_RESIDUALS:
        return None
    o = used[k]
    dx, dy = x[o] - ox[k], y[o] - oy[k]
    d = np.maximum(np.hypot(dx, dy), 1e-3)
    gate, sb0, sp0 = gated
    cut = gate * np.sqrt(sb0**2 + (sp0 / d) ** 2)
    # leverage of a bearing: J C J' / s^2, J = (dy, -dx) / d^2 its gradient, s its sigma in that fit
    jx, jy = dy / d**2, -dx / d**2
    cxx, cxy, cyy = (c[o] for c in cov)
    lev = (jx * jx * cxx + 2 * jx * jy * cxy + jy * jy * cyy) / (sb0**2 + (sp0 / d) ** 2)
    lev = np.clip(np.nan_to_num(lev, nan=0.9), 0.0, 0.9)
    res = np.minimum(np.abs((b[k] - np.arctan2(dx, dy) + np.pi) % (2 * np.pi) - np.pi) / np.sqrt(1.0 - lev), cut)

    def nll(p):
        sb, sp, share = np.exp(p[0]), np.exp(p[1]), 1.0 / (1.0 + np.exp(-p[2]))
        s = np.sqrt(sb**2 + (sp / d) ** 2)
        core = np.exp(-0.5 * (res / s) ** 2) / (s * np.sqrt(2 * np.pi)) / (2 * ndtr(cut / s) - 1)
        return -np.log((1 - share) * core + share / (2 * cut)).sum()

    start = [np.log(sb0 / 2), np.log(max(sp0, 0.5)), -2.0]
    fit = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-3, "maxiter": 2000})
    ranged = np.isfinite(r[k])
    sr = 1.4826 * float(np.median(np.abs(np.log(d[ranged] / np.maximum(r[k][ranged], 1e-3))))) if ranged.any() \
        else float("nan")
    return float(np.exp(fit.x[0])), float(np.exp(fit.x[1])), sr


def _identities(observations):
    """Integer code of each observation's identity, the class with the value (two signs of one
    class on one post are told apart by their codes), and the class and value (None) of each
    code."""
    cls, names = _codes(observations["class"])
    value, value_names = _values(observations)
    if not len(value_names):
        return cls, names, np.full(len(names), None, dtype=object)
    value = value + 1  # 0: no value
    span = int(value.max()) + 1
    ident, keys = pd.factorize(cls * span + value, sort=True)  # (np.unique with its inverse sorts every row)
    of_key = np.r_[None, value_names].astype(object)[keys % span]
    return ident.astype(np.int64), names[keys // span], of_key


def _codes(col):
    """Integer codes (-1: missing) and the sorted names of a label column (a categorical's
    without a string copy; a text column's without one either)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy().astype(np.int64)
        names = np.asarray(col.cat.categories.astype(str), dtype=object)
        # numbered in the names' order, as a text column's are (ties in the votes go by it)
        order = np.argsort(names, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return np.where(codes >= 0, rank[np.maximum(codes, 0)], -1), names[order]
    if not pd.api.types.is_string_dtype(col.dtype) or pd.api.types.is_object_dtype(col.dtype):
        # anything else, mixed types too, is labelled by its text
        col = col.astype(object).where(col.notna(), None).map(str, na_action="ignore")
    codes, names = pd.factorize(col, sort=True)
    return codes.astype(np.int64), np.asarray(names, dtype=object)


def _track_points(track, first, last, trip, t, cls, rays, sb, config):
    """One row per track (``first`` and ``last`` observation given): its point and covariance
    (xx, xy, yy; and fxx, fxy, fyy of the fit alone) from its own ``rays`` (the pass's sigmas;
    ``sb``: the observations' whole bearing sigmas, radians) and ranges (NaN when they fix no
    point), direction of travel (ux, uy; NaN when the observer stood still), class, trip,
    observation count and time span."""
    from mapdiff._kernels.locate import solve, track_spread, track_sums

    n = len(first)
    # the bearing error the frames share (the heading's) turns the whole track about the
    # observer: across the mean ray, times the distance
    n_obs, sums = track_sums(track, n, rays, sb**2 - rays.sb**2)
    per = np.maximum(n_obs, 1)
    # start from the mean end point (20 m along a ray without a range)
    x, y, sxx, sxy, syy, red = solve(track, n, sums[0] / per, sums[1] / per, rays, config.huber_k, 3)
    scale = np.maximum(red, 1.0)
    shared, ranged = sums[2] / per, sums[3]
    dist2, behind = track_spread(track, x, y, rays)
    dist2 /= per
    norm = np.maximum(np.hypot(sums[4], sums[5]), 1e-12)
    nx, ny = sums[5] / norm, -sums[4] / norm
    turn2 = shared * dist2
    # so does the error of the range scale (the object's real size against its class's): along
    # the mean ray, whatever the number of frames
    scale2 = np.where(ranged > 0, config.range_shared_rel**2 * dist2, 0.0)
    ux, uy = -ny, nx
    fxx, fxy, fyy = sxx * scale, sxy * scale, syy * scale
    sxx = fxx + turn2 * nx * nx + scale2 * ux * ux
    sxy = fxy + turn2 * nx * ny + scale2 * ux * uy
    syy = fyy + turn2 * ny * ny + scale2 * uy * uy
    # the fit takes each ray as a whole line: nearly parallel rays (a far object straight ahead,
    # no range) can meet behind the cameras, where the car drove through, and no camera sees
    # behind itself. Such a track fixes no place (it is kept out, as a fragment is)
    ox, oy = rays.ox, rays.oy
    dx, dy = ox[last] - ox[first], oy[last] - oy[first]
    moved = np.hypot(dx, dy)
    with np.errstate(invalid="ignore", divide="ignore"):
        ux = np.where(moved > 2.0, dx / moved, np.nan)
        uy = np.where(moved > 2.0, dy / moved, np.nan)
    return pd.DataFrame({"x": x, "y": y, "xx": sxx, "xy": sxy, "yy": syy, "fxx": fxx, "fxy": fxy, "fyy": fyy,
                         "ux": ux, "uy": uy, "cls": cls[first], "trip": trip[first], "n_obs": n_obs,
                         "t0": t[first], "t1": t[last], "dist2": dist2, "mx": sums[6] / per, "my": sums[7] / per,
                         "kept": np.isfinite(x) & np.isfinite(sxx) & ~behind})


def _join_pieces(track, tracks, config):
    """Track labels after joining the tracks of one trip and identity where one follows the
    other within ``track_gap_s`` and their points agree within the gate (their own
    fits' covariances, which leave out the errors the pass shares, plus ``join_m``)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ok = np.flatnonzero(np.isfinite(tracks["x"].to_numpy()) & np.isfinite(tracks["xx"].to_numpy()))
    if len(ok) < 2:
        return track
    tr = tracks.iloc[ok]
    x, y = tr["x"].to_numpy(), tr["y"].to_numpy()
    a, c = _pairs_within(config.reach_m, x, y, tr["trip"], tr["cls"])
    if len(a) == 0:
        return track
    t0, t1 = tr["t0"].to_numpy(), tr["t1"].to_numpy()
    # one after the other (two tracks seen in the same frames are two objects)
    gap = config.track_gap_s
    near = ((t1[a] < t0[c]) & (t0[c] - t1[a] <= gap)) | ((t1[c] < t0[a]) & (t0[a] - t1[c] <= gap))
    xx, xy, yy = tr["fxx"].to_numpy(), tr["fxy"].to_numpy(), tr["fyy"].to_numpy()
    f2 = config.join_m**2
    g = _mahal2(x[a] - x[c], y[a] - y[c], xx[a] + xx[c] + f2, xy[a] + xy[c], yy[a] + yy[c] + f2)
    join = near & (g <= config.gate_sigma**2)
    n = len(tracks)
    graph = coo_matrix((np.ones(int(join.sum())), (ok[a[join]], ok[c[join]])), shape=(n, n))
    joined = connected_components(graph, directed=False)[1]
    return np.where(track >= 0, joined[np.maximum(track, 0)], -1).astype(np.int64)


def _min_track(n_sums, config):
    """The fewest observations a track needs to count: ``track_share`` of the length of the
    track a typical observation is in (a video's pass gives long tracks, whose short pieces are
    the fragments a jump in the heading leaves; a photo sequence gives short ones), between 1
    and MAX_MIN_TRACK. ``n_sums``: the sums over all tracks of their observations' count
    squared and of the count."""
    typical = n_sums[0] / max(n_sums[1], 1)
    return int(np.clip(round(config.track_share * typical), 1, MAX_MIN_TRACK))


def _drop_confused_tracks(tracks, config):
    """Un-keep tracks that sit on a track of another class in the same trip, at the same time,
    with more than 1/``confusion_ratio`` times their observations."""
    idx = np.flatnonzero(tracks["kept"].to_numpy())
    if len(idx) < 2:
        return
    tr = tracks.iloc[idx]
    x, y = tr["x"].to_numpy(), tr["y"].to_numpy()
    reach_m = config.confusion_m + 3.0 * config.floor_m
    i, j = _pairs_within(reach_m, x, y, tr["trip"])
    if len(i) == 0:
        return
    cls, n = tr["cls"].to_numpy(), tr["n_obs"].to_numpy()
    t0, t1 = tr["t0"].to_numpy(), tr["t1"].to_numpy()
    dx, dy = x[i] - x[j], y[i] - y[j]
    f2 = config.floor_m**2
    g = _mahal2(dx, dy, tr["xx"].to_numpy()[i] + tr["xx"].to_numpy()[j] + f2,
                tr["xy"].to_numpy()[i] + tr["xy"].to_numpy()[j], tr["yy"].to_numpy()[i] + tr["yy"].to_numpy()[j] + f2)
    meet = ((cls[i] != cls[j]) & (g <= config.gate_sigma**2)
            & (t0[i] <= t1[j] + config.track_gap_s) & (t0[j] <= t1[i] + config.track_gap_s))
    small = np.r_[i[meet & (n[i] < config.confusion_ratio * n[j])], j[meet & (n[j] < config.confusion_ratio * n[i])]]
    kept = tracks["kept"].to_numpy().copy()
    kept[idx[small]] = False
    tracks["kept"] = kept


def _pairs_within(reach_m, x, y, *groups):
    """Index pairs (i, j), i < j, of the points within ``reach_m`` of each other in the same
    group (each combination of ``groups``), ordered by i, then j."""
    from mapdiff._kernels.locate import pairs_within

    group = pd.DataFrame({k: np.asarray(v) for k, v in enumerate(groups)}).groupby(list(range(len(groups)))).ngroup()
    return pairs_within(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                        group.to_numpy(dtype=np.int64), float(reach_m))


def _mahal2(dx, dy, cxx, cxy, cyy):
    return (cyy * dx * dx - 2.0 * cxy * dx * dy + cxx * dy * dy) / (cxx * cyy - cxy * cxy)


def _with_pose(tracks, along_m, across_m):
    """The tracks' covariances with the pose error added: ``along_m`` in the direction of travel,
    ``across_m`` across it (the larger of the two both ways where the observer stood still)."""
    ux, uy = tracks["ux"].to_numpy(), tracks["uy"].to_numpy()
    still = np.isnan(ux)
    big = max(along_m, across_m) ** 2
    a2, c2 = along_m**2, across_m**2
    pxx = np.where(still, big, a2 * ux * ux + c2 * uy * uy)
    pxy = np.where(still, 0.0, (a2 - c2) * ux * uy)
    pyy = np.where(still, big, a2 * uy * uy + c2 * ux * ux)
    return tracks["xx"].to_numpy() + pxx, tracks["xy"].to_numpy() + pxy, tracks["yy"].to_numpy() + pyy


def _passes(kept, ts):
    """The passes of the tracks ``kept`` (rows of ``ts.table``) for the kernels: trip, time
    span, and the frames each was seen in."""
    from mapdiff._kernels.locate import Passes

    count = ts.frame_ptr[kept + 1] - ts.frame_ptr[kept]
    ptr = np.r_[0, np.cumsum(count)].astype(np.int64)
    at = np.repeat(ts.frame_ptr[kept] - ptr[:-1], count) + np.arange(ptr[-1])
    tr = ts.table
    return Passes(tr["trip"].to_numpy()[kept].astype(np.int64), tr["t0"].to_numpy()[kept], tr["t1"].to_numpy()[kept],
                  ptr, ts.frame_t[at])


def _objects_of_tracks(tracks, ts, config, measurer):
    """Cluster the kept tracks into objects (see the module docstring, steps 2-3); ``ts``: the
    :class:`_TrackSet` whose table ``tracks`` is. Returns the object of each track (-1: none)
    and the centres (x, y, cls); the tracks' corrected points and covariances go into
    ``tracks`` (px, py, pxx, pxy, pyy)."""
    from mapdiff._kernels.locate import cluster, trip_offsets

    kept = np.flatnonzero(tracks["kept"].to_numpy())
    tr = tracks.iloc[kept]
    passes = _passes(kept, ts)
    x0, y0 = tr["x"].to_numpy(), tr["y"].to_numpy()
    own = tr["xx"].to_numpy(), tr["xy"].to_numpy(), tr["yy"].to_numpy()
    pcls = tr["cls"].to_numpy().astype(np.int64)
    trip = tr["trip"].to_numpy()
    t0, t1 = tr["t0"].to_numpy(), tr["t1"].to_numpy()
    t_mid = 0.5 * (t0 + t1)
    by_time = np.lexsort((t_mid, trip)).astype(np.int64)
    heading = (tr["ux"].to_numpy(), tr["uy"].to_numpy())
    along_m = across_m = config.pose_sigma_m
    off_x = off_y = np.zeros(len(tr))
    given = {k: np.zeros(0) for k in ("x", "y", "xx", "xy", "yy")}
    given["cls"] = np.zeros(0, dtype=np.int64)
    gate2 = config.gate_sigma**2
    rounds = int(config.rounds)
    shared_var = np.nan
    for rnd in range(rounds + 1):
        pxx, pxy, pyy = _with_pose(tr, along_m, across_m)
        px, py = x0 - off_x, y0 - off_y
        order = np.argsort(pxx + pyy, kind="stable").astype(np.int64)
        lab, cx, cy, _, _, _, ccls = cluster(order, px, py, pxx, pxy, pyy, pcls, passes, given["x"], given["y"],
                                             given["xx"], given["xy"], given["yy"], given["cls"], config.cell_m,
                                             config.reach_m, gate2, config.floor_m)
        x, y, sxx, sxy, syy, _, n_trips = _fuse(lab, cx, cy, px, py, pxx, pxy, pyy, trip, config)
        if rnd == rounds:
            break
        alive = (n_trips > 0) & _merge({"lab": lab, "px": px, "py": py, "pxx": pxx, "pxy": pxy, "pyy": pyy,
                                        "trip": trip, "t0": tr["t0"].to_numpy(), "t1": tr["t1"].to_numpy(),
                                        "own_xx": own[0], "own_xy": own[1], "own_yy": own[2]},
                                       x, y, sxx, sxy, syy, ccls, n_trips, config)
        # the pass's pose error, from how its other tracks sit against their objects; what is
        # left of it is measured from the corrected points' scatter
        known = n_trips[lab] >= MIN_TRIPS_FOR_OFFSET
        dx, dy = _left_out_residuals(x0 - x[lab], y0 - y[lab], n_trips[lab], known)
        residuals = (dx, dy, *_information(own, (sxx[lab], sxy[lab], syy[lab]), known, config.floor_m))
        if rnd == 0:
            prior = tuple(measurer.take("prior", _shared_pose_prior, by_time, t_mid, lab, tr, (x, y),
                                        (x0, y0, pxx, pxy, pyy), config))
            window_s = measurer.take("window_s", _offset_window, by_time, trip, t_mid, residuals, heading, prior,
                                     config.offset_windows_s)
        off_x, off_y = trip_offsets(by_time, trip, t_mid, residuals, heading, window_s, prior)
        along_m, across_m = measurer.take("pose_m", _pose_sigmas, tr, x0 - off_x, y0 - off_y, lab, x, y, n_trips,
                                          along_m, across_m, rnd=rnd)
        # one object that passes from different ways see in different places is several
        # (a junction's poles, each facing its approach)
        # (the groups' own scatter sizes their means' errors: the pose sigmas measured about the
        # objects would be those of the merged poles, and hide the split)
        own_pose = _with_pose(tr, MIN_POSE_SIGMA_M, MIN_POSE_SIGMA_M)
        split, sectors, shared = _direction_splits(lab, tr, x0 - off_x, y0 - off_y, own_pose, len(x), config,
                                                   shared_var=shared_var)
        shared = measurer.take("shared_var", float, shared, rnd=rnd)  # (measured by the splits' groups)
        # the largest of the rounds' measures: each round's pass offsets are fitted to the same
        # residuals and pull the directions of an object together, while its error against the
        # street stays (a 6-car fleet of Helsinki: 0.60, 0.36, 0.06 m^2 over the rounds, and 67 %
        # of its 95 % circles held the truth with the last; 92 % with the largest)
        shared_var = np.fmax(shared_var, shared)
        keep = alive & ~split
        given = {"x": np.r_[x[keep], sectors["x"]], "y": np.r_[y[keep], sectors["y"]],
                 "xx": np.r_[sxx[keep], sectors["xx"]], "xy": np.r_[sxy[keep], sectors["xy"]],
                 "yy": np.r_[syy[keep], sectors["yy"]], "cls": np.r_[ccls[keep], ccls[sectors["object"]]]}
    lab = _reassign(lab, {"px": px, "py": py, "pxx": pxx, "pxy": pxy, "pyy": pyy, "cls": pcls}, passes,
                    {"x": x, "y": y, "xx": sxx, "xy": sxy, "yy": syy, "cls": ccls}, n_trips, config, measurer)
    x, y, sxx, sxy, syy, _, n_trips = _fuse(lab, cx, cy, px, py, pxx, pxy, pyy, trip, config)
    lab = _fold_pieces(lab, tr, passes, (x, y, ccls, n_trips), config)
    x, y, sxx, sxy, syy, _, n_trips = _fuse(lab, cx, cy, px, py, pxx, pxy, pyy, trip, config)
    for col, v in zip(("px", "py", "pxx", "pxy", "pyy"), (px, py, pxx, pxy, pyy)):
        full = np.full(len(tracks), np.nan)
        full[kept] = v
        tracks[col] = full
    labels = np.full(len(tracks), -1, dtype=np.int64)
    labels[kept] = lab
    # too few objects seen from two ways to tell: at least the least pose error a scatter may
    # report (a 10-car day of south-eastern Finland: 58 % of the 95 % circles held the truth with 0)
    shared_var = MIN_POSE_SIGMA_M**2 if np.isnan(shared_var) else shared_var
    return labels, {"x": x, "y": y, "cls": ccls, "shared_var": shared_var}


#: the residuals :func:`_tail_model` fits at most: three parameters, the tail's weight known to
#: about 0.001 from these (its binomial error), while a month's region of a million tracks spent
#: seconds on each of the hundred rounds
TAIL_SAMPLE = 200_000


def _tail_model(g):
    """EM fit of squared normalised residuals ``g`` (2-D) to a scale mixture of two normals:
    (tail weight, core variance factor, tail variance factor). Starts from stated covariances
    that are right (core 1) and a tail of a tenth; the tail stays the wider component and at
    most half, so the two cannot swap. Beyond ``TAIL_SAMPLE`` residuals, a regular sample of
    that many stands for them."""
    g = g[::max(1, -(-len(g) // TAIL_SAMPLE))]
    e, c, t = 0.1, 1.0, 10.0
    for _ in range(100):
        a = (1 - e) * np.exp(-g / (2 * c)) / c
        b = e * np.exp(-g / (2 * t)) / t
        r = b / np.maximum(a + b, 1e-300)
        e = float(np.clip(r.mean(), 1e-3, 0.5))
        c = float(((1 - r) * g).sum() / (2 * max((1 - r).sum(), 1e-9)))
        t = float(max((r * g).sum() / (2 * max(r.sum(), 1e-9)), 1.5 * c))
    return e, c, t


#: the tracks the association weighs at once where it pairs each with several objects
#: (:func:`_fold_pieces`, :func:`_strays`): the pairs of a month's tracks
#: are not held whole (in a month's densest 100 m of central Helsinki, 2.3 M tracks, chunks of
#: 500,000 made those pairs the association's peak)
CHUNK_TRACKS = 100_000


def _reassign(lab, tr, passes, centres, n_trips, config, measurer):
    """Each kept track to the object of its identity within ``reach_m`` that explains it best as
    a mixture would: the object's trips times a heavy-tailed likelihood of the track (a scale
    mixture of two normals, fitted to the tracks' residuals about their objects). The clustering
    gates a track against the nearest fit only, so a pass whose pose error lies in the tail
    starts an object of its own beside the one it belongs to; here it goes back to it, unless
    the object holds a track one pass saw in the same frame. ``tr`` holds the tracks' points
    and covariances (px, py, pxx, pxy, pyy, cls); ``centres`` the objects' (x, y, xx, xy, yy,
    cls). The mixture is measured from the tracks of objects at least ``MIN_TRIPS_FOR_SCATTER``
    trips saw (none where fewer than 50 tell: no track moves)."""
    from mapdiff._kernels.locate import Mixture, best_objects, share_frames

    px, py, pxx, pxy, pyy = (tr[k] for k in ("px", "py", "pxx", "pxy", "pyy"))
    x, y, sxx, sxy, syy = (centres[k] for k in ("x", "y", "xx", "xy", "yy"))

    def tail():
        known = np.flatnonzero((lab >= 0) & (n_trips[np.maximum(lab, 0)] >= MIN_TRIPS_FOR_SCATTER))
        if len(known) < 50:
            return None
        j = lab[known]
        return _tail_model(_mahal2(px[known] - x[j], py[known] - y[j], pxx[known] + sxx[j], pxy[known] + sxy[j],
                                   pyy[known] + syy[j]))

    mixture = measurer.take("tail", tail)
    if mixture is None:
        return lab
    live = np.flatnonzero(n_trips > 0)
    has = np.flatnonzero(lab >= 0)
    best = best_objects(has, (px, py, pxx, pxy, pyy, tr["cls"]),
                        tuple(centres[k][live] for k in ("x", "y", "xx", "xy", "yy", "cls")),
                        n_trips[live].astype(np.float64), config.reach_m, Mixture(*mixture))
    move = (best >= 0) & (live[np.maximum(best, 0)] != lab[has])
    k, to = has[move], live[best[move]]
    # the object may not take a track seen in one frame with one it holds, or with one that
    # moves to it too
    out = lab.copy()
    out[k] = to
    mine = pd.DataFrame({"k": k, "obj": to, "trip": passes.trip[k]})
    held = pd.DataFrame({"h": has, "obj": out[has], "trip": passes.trip[has]})
    both = mine.merge(held, on=["obj", "trip"])
    both = both[both["k"] != both["h"]]
    clash = both["k"].to_numpy()[share_frames(both["k"].to_numpy(), both["h"].to_numpy(), passes)]
    out[clash] = lab[clash]
    return out


def _direction_groups(lab, tr, n_objects):
    """Each track's group of its object's tracks by their direction of travel: object times
    ``SECTORS`` plus its sector, the sectors turned to the object's own grid of approaches (-1:
    no object, or an observer that stood still)."""
    ux, uy = tr["ux"].to_numpy(), tr["uy"].to_numpy()
    ok = (lab >= 0) & np.isfinite(ux)
    out = np.full(len(lab), -1, dtype=np.int64)
    grid = _approach_grids(lab, ux, uy, n_objects)
    out[ok] = lab[ok] * SECTORS + _sectors(ux[ok], uy[ok], grid[lab[ok]])
    return out


def _effective_directions(lab, tr, n_objects):
    """Per object, the effective number of its direction groups (:func:`_direction_groups`):
    (sum of the groups' trips)^2 / sum of their squares, each group weighing by its trips; 1
    for an object seen from one way (or by standing observers only)."""
    from mapdiff._kernels.locate import trip_share

    group = _direction_groups(lab, tr, n_objects)
    _, n_trips = trip_share(group, tr["trip"].to_numpy(), n_objects * SECTORS)
    n = n_trips.reshape(n_objects, SECTORS).astype(float)
    return np.where(n.sum(axis=1) > 0, n.sum(axis=1) ** 2 / np.maximum((n * n).sum(axis=1), 1.0), 1.0)


def _approach_grids(lab, ux, uy, n_objects):
    """Per object, the turn of its grid of ``SECTORS`` approaches (radians): the mean of its
    moving tracks' directions of travel (``ux``, ``uy``) modulo a quarter turn."""
    ok = (lab >= 0) & np.isfinite(ux)
    theta = np.arctan2(ux[ok], uy[ok])
    return np.arctan2(np.bincount(lab[ok], weights=np.sin(4 * theta), minlength=n_objects),
                      np.bincount(lab[ok], weights=np.cos(4 * theta), minlength=n_objects)) / 4


def _sectors(ux, uy, grid):
    """The sector (0..``SECTORS``-1) of each direction of travel on a grid of approaches."""
    theta = np.arctan2(np.nan_to_num(ux), np.nan_to_num(uy))
    width = 2 * np.pi / SECTORS
    sector = np.floor(np.mod(theta - grid + width / 2, 2 * np.pi) / width).astype(np.int64)
    return np.minimum(sector, SECTORS - 1)


def _direction_splits(lab, tr, px, py, cov, n_objects, config, shared_var=np.nan):
    """Which objects split by the direction of travel of their tracks, and the centres they
    split into.

    A sign or a signal head faces one way: the poles of a junction are each seen by the
    traffic of their own approach, a few metres apart, and an object placed between them fits
    every track within its pose error. So each object's tracks are grouped in ``SECTORS``
    sectors of their direction of travel (turned to the object's own grid of approaches); where
    two groups of at least ``MIN_TRIPS_FOR_OFFSET`` trips sit apart by more than ``split_sigma``
    (their means' covariances, scaled up by their scatter where it is larger), the object is
    as many objects as it has such groups. An object seen alike from everywhere keeps its
    groups together. ``shared_var``: the error per axis that one direction's passes share, as
    the rounds have measured it so far (NaN: not yet); two groups are apart only beyond it too
    (``SPLIT_SHARED_CHI2``).
    Returns (split per object, the groups' centres: x, y, xx, xy, yy and the object split, and
    the shared error this round measures, NaN where too few pairs tell)."""
    from mapdiff._kernels.locate import fuse, trip_share

    group = _direction_groups(lab, tr, n_objects)
    ok = group >= 0
    n_groups = n_objects * SECTORS
    share, n_trips = trip_share(group, tr["trip"].to_numpy(), n_groups)
    start_x = np.repeat(np.bincount(lab[ok], weights=px[ok], minlength=n_objects)
                        / np.maximum(np.bincount(lab[ok], minlength=n_objects), 1), SECTORS)
    start_y = np.repeat(np.bincount(lab[ok], weights=py[ok], minlength=n_objects)
                        / np.maximum(np.bincount(lab[ok], minlength=n_objects), 1), SECTORS)
    gx, gy, gxx, gxy, gyy, red = fuse(group, n_groups, px, py, *cov, share, start_x, start_y, config.huber_k, 3)
    scale = np.maximum(red, 1.0)
    gxx, gxy, gyy = gxx * scale, gxy * scale, gyy * scale
    valid = (n_trips >= MIN_TRIPS_FOR_OFFSET).reshape(n_objects, SECTORS)
    pairs = [(a, b) for a in range(SECTORS) for b in range(a + 1, SECTORS)]
    d2 = np.full((n_objects, len(pairs)), np.nan)
    excess = np.full((n_objects, len(pairs)), np.nan)
    for k, (a, b) in enumerate(pairs):
        ia = np.arange(n_objects) * SECTORS + a
        ib = np.arange(n_objects) * SECTORS + b
        both = valid[:, a] & valid[:, b]
        dx, dy = gx[ia] - gx[ib], gy[ia] - gy[ib]
        with np.errstate(invalid="ignore", divide="ignore"):
            d2[both, k] = _mahal2(dx, dy, gxx[ia] + gxx[ib], gxy[ia] + gxy[ib], gyy[ia] + gyy[ib])[both]
        # per axis, what the two means' distance has beyond their stated variances: a squared
        # distance in the plane is its variance times a chi-square of 2 degrees of freedom, whose
        # median is ln 2 of its mean, so the median over pairs comes out right with q / ln 2
        q = (dx * dx + dy * dy) / np.log(2.0)
        excess[both, k] = ((q - gxx[ia] - gyy[ia] - gxx[ib] - gyy[ib]) / 4.0)[both]
        # ... and with what the directions share (each its own: the difference has it twice),
        # once a round has measured it
        if np.isfinite(shared_var):
            with np.errstate(invalid="ignore", divide="ignore"):
                apart = _mahal2(dx, dy, gxx[ia] + gxx[ib] + 2.0 * shared_var, gxy[ia] + gxy[ib],
                                gyy[ia] + gyy[ib] + 2.0 * shared_var) > SPLIT_SHARED_CHI2
            d2[both & ~apart, k] = np.nan
    split = (np.where(np.isfinite(d2), d2, 0.0) > config.split_sigma**2).any(axis=1)
    take = (valid & split[:, None]).ravel()
    one = np.isfinite(excess) & ~split[:, None]
    shared = max(float(np.median(excess[one])), 0.0) if one.sum() >= MIN_GROUP_PAIRS else np.nan
    return split, {"x": gx[take], "y": gy[take], "xx": gxx[take], "xy": gxy[take], "yy": gyy[take],
                   "object": np.flatnonzero(take) // SECTORS}, shared


def _shared_pose_vars(by_time, trip, t_mid, lab, dx, dy, known, heading):
    """The variances (along, across the direction of travel) of the pose error the tracks of
    one pass share: the covariance of the residuals (dx, dy) of two tracks of one pass, of two
    objects, seen within ``TOGETHER_S`` of each other, each residual taken along and across
    the first track's direction of travel (``heading``: ux, uy; NaN where the observer stood
    still, and such pairs are not asked). Errors of a track's own (its fit, its object's size,
    a mixed-up association) do not correlate across objects; the pose's does. A matched pose
    errs mostly along the road (where along it the car was), hardly across it (the lane), so
    one isotropic variance would move every track across by the along-road error: on the
    simulations the offsets so taken moved tracks a median 0.19-0.27 m across where the poses
    were off by nothing across. Each floored at ``MIN_POSE_SIGMA_M``; ``MIN_POSE_SIGMA_M``
    also where fewer than ``MIN_GROUP_PAIRS`` pairs tell. ``lab``: each track's object, or its
    direction group (:func:`_shared_pose_prior`); two tracks of one are not asked."""
    ux, uy = (h[by_time] for h in heading)
    tr_s, t_s, lab_s = trip[by_time], t_mid[by_time], lab[by_time]
    x_s, y_s = dx[by_time], dy[by_time]
    ok_s = known[by_time] & (lab_s >= 0) & np.isfinite(ux)
    along, across, pairs = 0.0, 0.0, 0
    for k in range(1, len(by_time)):
        i, j = np.arange(len(by_time) - k), np.arange(k, len(by_time))
        near = (tr_s[i] == tr_s[j]) & (t_s[j] - t_s[i] <= TOGETHER_S)
        if not near.any():
            break
        use = np.flatnonzero(near & ok_s[i] & ok_s[j] & (lab_s[i] != lab_s[j]))
        i, j = i[use], j[use]
        along += float(np.sum((x_s[i] * ux[i] + y_s[i] * uy[i]) * (x_s[j] * ux[i] + y_s[j] * uy[i])))
        across += float(np.sum((x_s[i] * uy[i] - y_s[i] * ux[i]) * (x_s[j] * uy[i] - y_s[j] * ux[i])))
        pairs += len(use)
    floor = MIN_POSE_SIGMA_M**2
    if pairs < MIN_GROUP_PAIRS:
        return floor, floor
    return max(along / pairs, floor), max(across / pairs, floor)


def _shared_pose_prior(by_time, t_mid, lab, tr, centres, points, config):
    """:func:`_shared_pose_vars` of the tracks' residuals about their direction group's centre
    (:func:`_direction_groups`), each as if its pass were left out, where the group's trips tell
    it (``MIN_TRIPS_FOR_OFFSET``): the pose error a pass shares is measured about where each
    direction sees its objects, not about the objects. In
    the first round a junction's poles are often one object, each pole seen by its own
    approach, and about that object the tracks of one pass were off together, towards the poles
    of the other side: a shared pose error where there was none (perfect poses on the Harrisburg
    extract with kerb poles: 3.9 m^2 across the way, against 0.09 about the directions), which
    the pass offsets then took off and so pulled the poles together. ``centres``: the objects'
    (x, y); ``points``: the tracks' (x, y, xx, xy, yy)."""
    x, y = centres
    px, py, pxx, pxy, pyy = points
    group = _direction_groups(lab, tr, len(x))
    gx, gy, _, _, _, _, g_trips = _fuse(group, np.repeat(x, SECTORS), np.repeat(y, SECTORS), px, py, pxx, pxy, pyy,
                                        tr["trip"].to_numpy(), config)
    n = g_trips[np.maximum(group, 0)]
    known = (group >= 0) & (n >= MIN_TRIPS_FOR_OFFSET)
    dx, dy = _left_out_residuals(px - gx[group], py - gy[group], n, known)
    return _shared_pose_vars(by_time, tr["trip"].to_numpy(), t_mid, group, dx, dy, known,
                             (tr["ux"].to_numpy(), tr["uy"].to_numpy()))


def _left_out_residuals(dx, dy, n_trips, known):
    """Each track's residual (dx, dy) about its object as if its own pass were left out of the
    object: the object holds the pass as one of its ``n_trips`` trips (each weighing as one), so
    it sits 1/n of the way towards the track, and the residual is (1 - 1/n) of what it would be
    without it. Taken as they are, the offsets the residuals tell came out short: on the made-up
    benchmark (a pose error of 3 m along, 1 m across) recall 0.939 against 0.964 with this.
    Tracks not ``known`` (their objects seen in fewer than ``MIN_TRIPS_FOR_OFFSET`` trips) are
    left as they are."""
    scale = np.where(known, 1.0 - 1.0 / np.maximum(n_trips, MIN_TRIPS_FOR_OFFSET), 1.0)
    return dx / scale, dy / scale


def _information(own, obj, known, floor_m):
    """The inverse of a track's residual covariance about its object (its own, its object's, and
    ``floor_m`` shared out over both axes), as (wxx, wxy, wyy); 0 for the tracks not ``known``."""
    cxx = own[0] + obj[0] + floor_m**2 / 2.0
    cxy = own[1] + obj[1]
    cyy = own[2] + obj[2] + floor_m**2 / 2.0
    det = cxx * cyy - cxy * cxy
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = [np.where(known & (det > 0), v, 0.0) for v in (cyy / det, -cxy / det, cxx / det)]
    return inv[0], inv[1], inv[2]


def _offset_window(by_time, trip, t_mid, residuals, heading, prior, windows_s):
    """Of ``windows_s``, the time window over which a pass's other tracks best predict each
    track's offset from its object (the smallest squared residual, each track left out of its
    own prediction, averaged with each residual's mean information over the two axes): long
    for a steady pose error, short for one that wanders. ``residuals``: (dx, dy, wxx, wxy, wyy)
    of each track, as :func:`trip_offsets` takes them. (The median of the squared residuals,
    used before, moved by chance where the
    windows differ little: on a Harrisburg fleet it chose 2 s by 6.93 against 7.04 m^2 at 15 s,
    where the weighted mean chooses 15 s, and 15 s found 0.822 of the objects against 0.776.)"""
    from mapdiff._kernels.locate import trip_offsets

    dx, dy, wxx, _, wyy = residuals
    w = (wxx + wyy) / 2.0
    known = w > 0
    if known.sum() < 50:
        return max(windows_s)
    best, best_err = windows_s[0], np.inf
    for window_s in windows_s:
        off_x, off_y = trip_offsets(by_time, trip, t_mid, residuals, heading, window_s, prior)
        err = float(np.average(((dx - off_x) ** 2 + (dy - off_y) ** 2)[known], weights=w[known]))
        if err < best_err:
            best, best_err = window_s, err
    return best


def _fuse(labels, cx, cy, px, py, pxx, pxy, pyy, trip, config):
    from mapdiff._kernels.locate import fuse, trip_share

    share, n_trips = trip_share(labels, trip, len(cx))
    return (*fuse(labels, len(cx), px, py, pxx, pxy, pyy, share, cx, cy, config.huber_k, 3), n_trips)


def _fit(tracks, labels, centres, config):
    """Final robust fit of each object from its tracks: x, y, covariance, reduced chi-square,
    trips."""
    tr = tracks[labels >= 0]
    lab = labels[labels >= 0]
    # a track's own errors grow with its distance from the observer: measured at its own point,
    # the tracks that came out short (a pose behind the car, short ranges) would weigh more and
    # pull the object towards the cameras; so they are taken at the object's distance
    mx, my, dist2 = tr["mx"].to_numpy(), tr["my"].to_numpy(), tr["dist2"].to_numpy()
    spread = np.maximum(dist2 - (tr["x"].to_numpy() - mx) ** 2 - (tr["y"].to_numpy() - my) ** 2, 0.0)
    f = ((centres["x"][lab] - mx) ** 2 + (centres["y"][lab] - my) ** 2 + spread) / np.maximum(dist2, 1.0)
    own = [tr[c].to_numpy() for c in ("xx", "xy", "yy")]
    pxx, pxy, pyy = (tr[p].to_numpy() + (f - 1.0) * o for p, o in zip(("pxx", "pxy", "pyy"), own))
    return _fuse(lab, centres["x"], centres["y"], tr["px"].to_numpy(), tr["py"].to_numpy(), pxx, pxy, pyy,
                 tr["trip"].to_numpy(), config)


def _merge(arrays, x, y, sxx, sxy, syy, ccls, n_trips, config):
    """Objects left after merging, of two objects of one class within ``reach_m``, the one
    seen by fewer trips into the other where

    - their positions agree within the gate (their covariances summed), or
    - it looks like the other's stray passes: ``MERGE_SHARE`` of its arrays fit the other within
      the gate, and at most ``TOGETHER_SHARE`` of its trips saw the other in the same pass too,
      apart (two real objects a few metres apart are seen together, each where it stands;
      pieces of one pass's track of one object sit together).

    ``arrays`` holds the kept tracks' arrays: object (lab), point (px, py) and covariance
    (pxx, pxy, pyy), covariance without the pose error (own_xx, own_xy, own_yy), trip and time
    span (t0, t1)."""
    alive = n_trips > 0
    live = np.flatnonzero(alive)
    if len(live) < 2:
        return alive
    i, j = (live[p] for p in _pairs_within(config.reach_m, x[live], y[live], ccls[live]))
    if len(i) == 0:
        return alive
    big = np.where(n_trips[i] >= n_trips[j], i, j)
    small = np.where(n_trips[i] >= n_trips[j], j, i)
    merge = _mahal2(x[i] - x[j], y[i] - y[j], sxx[i] + sxx[j], sxy[i] + sxy[j], syy[i] + syy[j]) <= config.gate_sigma**2
    f2 = config.floor_m**2
    rest = np.flatnonzero(~merge)
    merge[rest] = _strays(arrays, small[rest], big[rest], x, y, sxx + f2, sxy, syy + f2, config)
    small, big = small[merge], big[merge]
    for k in np.argsort(-n_trips[big], kind="stable"):
        if alive[big[k]] and alive[small[k]]:
            alive[small[k]] = False
    return alive


def _strays(arrays, small, big, x, y, cxx, cxy, cyy, config):
    """Per pair, whether the arrays of object ``small`` look like stray passes of object ``big``
    (covariance c..; see :func:`_merge`), in chunks of pairs of about ``CHUNK_TRACKS`` small
    objects' tracks (each pair's answer is its own)."""
    members = _members_of(arrays["lab"], len(x))
    has = arrays["lab"] >= 0
    size = np.bincount(arrays["lab"][has], minlength=len(x))[small]
    cut = np.unique(np.r_[0, np.searchsorted(np.cumsum(size), np.arange(CHUNK_TRACKS, size.sum(), CHUNK_TRACKS)),
                          len(small)])
    return np.concatenate([np.zeros(0, dtype=bool)] + [
        _strays_of(arrays, members, small[a:b], big[a:b], (x, y, cxx, cxy, cyy), config)
        for a, b in zip(cut[:-1], cut[1:])])


def _strays_of(arrays, members, small, big, fit, config):
    """:func:`_strays` of one chunk of pairs; ``members``: :func:`_members_of` the arrays'
    objects; ``fit``: the objects' (x, y, cxx, cxy, cyy)."""
    x, y, cxx, cxy, cyy = fit
    p_s, k_s = members(small)
    b = big[p_s]
    g = _mahal2(arrays["px"][k_s] - x[b], arrays["py"][k_s] - y[b], arrays["pxx"][k_s] + cxx[b],
                arrays["pxy"][k_s] + cxy[b], arrays["pyy"][k_s] + cyy[b])
    fits = np.bincount(p_s, weights=(g <= config.gate_sigma**2).astype(float), minlength=len(small)).astype(float)
    fits /= np.maximum(np.bincount(p_s, minlength=len(small)), 1)
    # the same trip on both, at overlapping times: seen together (each big object's tracks
    # listed once, not once per pair: a well-seen object near many holds a month's passes)
    k_b = np.flatnonzero(np.isin(arrays["lab"], big))
    mine = pd.DataFrame({"pair": p_s, "big": b, "trip": arrays["trip"][k_s], "t0": arrays["t0"][k_s],
                         "t1": arrays["t1"][k_s], "k": k_s})
    theirs = pd.DataFrame({"big": arrays["lab"][k_b], "trip": arrays["trip"][k_b], "u0": arrays["t0"][k_b],
                           "u1": arrays["t1"][k_b], "kb": k_b})
    both = mine.merge(theirs, on=["big", "trip"])
    gap = config.track_gap_s
    both = both[(both["t0"] <= both["u1"] + gap) & (both["u0"] <= both["t1"] + gap)]
    # where one pass has a track on each, do the two sit where the pass's own geometry says one
    # object is (its pieces, split), or apart (two objects)?
    k, kb = both["k"].to_numpy(), both["kb"].to_numpy()
    f2 = config.join_m**2
    same = _mahal2(arrays["px"][k] - arrays["px"][kb], arrays["py"][k] - arrays["py"][kb],
                   arrays["own_xx"][k] + arrays["own_xx"][kb] + f2, arrays["own_xy"][k] + arrays["own_xy"][kb],
                   arrays["own_yy"][k] + arrays["own_yy"][kb] + f2) <= config.gate_sigma**2
    both = both.assign(apart=~same)
    per_trip = both.groupby(["pair", "trip"])["apart"].all().reset_index()
    apart = per_trip[per_trip["apart"]].groupby("pair").size().reindex(range(len(small)), fill_value=0).to_numpy()
    trips = mine.groupby("pair")["trip"].nunique().reindex(range(len(small)), fill_value=0).to_numpy()
    return (fits >= MERGE_SHARE) & (apart <= TOGETHER_SHARE * trips)


def _members_of(lab, n_objects):
    """For the tracks' objects ``lab`` (0..n_objects-1; -1: none), a function giving, for an
    array of objects (one per pair), (pair, track) for every track of each pair's object."""
    by_obj = np.argsort(lab, kind="stable")
    ptr = np.searchsorted(lab[by_obj], np.arange(n_objects + 1))

    def members(objs):
        count = ptr[objs + 1] - ptr[objs]
        pair = np.repeat(np.arange(len(objs)), count)
        start = np.repeat(ptr[objs] - np.cumsum(np.r_[0, count[:-1]]), count)
        return pair, by_obj[np.arange(len(pair)) + start]

    return members


def _fold_pieces(lab, tr, passes, objects, config):
    """The tracks' objects ``lab`` with each object that is a piece of a bigger one of its
    identity folded into it; ``objects``: (x, y, identity, trips) per object.

    A pass whose pose or range lies in the tail of its errors puts its track of an object B a
    few metres beside B, and several such passes make an object S of their own, which the
    clustering and the mixture keep (each fits S better than B). Two real objects a few metres
    apart in one view are seen in the same frames, each where it stands; S and B are not. So S
    (within ``reach_m`` of B, fewer trips) folds into B where B is seen from S's sides (sector
    by sector of S's approaches, B's trips there up to S's, summed: at least ``SIDE_SHARE`` of
    S's) and at most ``TOGETHER_SHARE`` of S's trips saw B in one frame with S. (Poles facing
    different approaches are each seen from their own side: S's side is where B, too, must be
    seen. Sector by sector, because a piece of an object seen both ways of its street is seen
    both ways too, and the mean of its directions says nothing.) Measured on the simulated
    fleets of ``benchmarks/locate_sim.py`` (three cities, two placements, two seeds;
    ``benchmarks/results/locate_fold.txt``): precision +0.030 to +0.081, recall -0.001 to
    -0.025; by sector, on the kept scenes of ``benchmarks/diff_sim.py``:
    ``benchmarks/results/locate_fold_sides.txt``."""
    from mapdiff._kernels.locate import share_frames

    x, y, ident, n_trips = objects
    live = np.flatnonzero(n_trips > 0)
    if len(live) < 2:
        return lab
    i, j = (live[p] for p in _pairs_within(config.reach_m, x[live], y[live], ident[live]))
    small, big = np.where(n_trips[i] < n_trips[j], i, j), np.where(n_trips[i] < n_trips[j], j, i)
    members = _members_of(lab, len(x))
    ux, uy = tr["ux"].to_numpy(), tr["uy"].to_numpy()
    moving = (lab >= 0) & np.isfinite(ux)
    grid = _approach_grids(lab, ux, uy, len(x))

    def from_side(pairs):
        """Per pair, B's trips from S's sides, sector by sector of S's approaches: in each
        sector, the fewer of S's and B's trips there (so that B seen from every side S is seen
        from gives S's own count)."""
        from mapdiff._kernels.locate import trip_share

        def trips_by_sector(p, k, of):
            """(pairs, SECTORS) distinct trips of the tracks ``k`` of pair ``p``, on the grid of ``of``."""
            group = np.where(moving[k], p * SECTORS + _sectors(ux[k], uy[k], grid[of]), -1)
            return trip_share(group, passes.trip[k], len(pairs) * SECTORS)[1].reshape(len(pairs), SECTORS)

        p_s, k_s = members(small[pairs])
        p_b, k_b = members(big[pairs])
        n_s = trips_by_sector(p_s, k_s, small[pairs][p_s])
        n_b = trips_by_sector(p_b, k_b, small[pairs][p_b])
        return np.minimum(n_s, n_b).sum(axis=1), n_s.sum(axis=1)

    # (the pairs in chunks of about CHUNK_TRACKS of B's tracks)
    size = np.bincount(np.maximum(lab, 0), weights=(lab >= 0), minlength=len(x))[big]
    cut = np.searchsorted(np.cumsum(size), np.arange(CHUNK_TRACKS, size.sum() + CHUNK_TRACKS, CHUNK_TRACKS))
    chunks = np.split(np.arange(len(small)), np.unique(np.minimum(cut + 1, len(small))))
    sides = [from_side(c) for c in chunks if len(c)]
    seen_from_side = np.concatenate([a for a, _ in sides] or [np.zeros(0)])
    need = np.concatenate([b for _, b in sides] or [np.zeros(0)])
    # S's trips with a track that shares a frame with one of B's (B's tracks listed once)
    p_s, k_s = members(small)
    k_b = np.flatnonzero(np.isin(lab, big))
    both = pd.DataFrame({"pair": p_s, "big": big[p_s], "trip": passes.trip[k_s], "k": k_s}).merge(
        pd.DataFrame({"big": lab[k_b], "trip": passes.trip[k_b], "kb": k_b}), on=["big", "trip"])
    framed = share_frames(both["k"].to_numpy(np.int64), both["kb"].to_numpy(np.int64), passes) if len(both) else \
        np.zeros(0, dtype=bool)
    together = _trips_per_pair(both["pair"].to_numpy()[framed], both["trip"].to_numpy()[framed], len(small))
    # (a piece seen by standing observers only has no side to be seen from: it stays)
    fold = (need > 0) & (seen_from_side >= SIDE_SHARE * need) & (together <= TOGETHER_SHARE * n_trips[small])
    # a piece folds once, into the biggest object that takes it
    s_f, b_f = small[fold], big[fold]
    first = np.lexsort((-n_trips[b_f], s_f))
    first = first[np.r_[True, s_f[first][1:] != s_f[first][:-1]]] if len(first) else first
    to = np.arange(len(x))
    to[s_f[first]] = b_f[first]
    while (to[to] != to).any():  # a piece of a piece: into where its bigger one went
        to = to[to]
    return np.where(lab >= 0, to[np.maximum(lab, 0)], lab)


def _mean_directions(labels, ux, uy, n_objects):
    """Per object (0..n_objects-1), the mean of its tracks' directions of travel (``ux``,
    ``uy``: unit vectors, NaN for a track of a standing car; ``labels``: each track's object,
    -1: none): as long as one where they agree, short where it is seen from all sides."""
    moving = (labels >= 0) & np.isfinite(ux)
    lab = labels[moving]
    count = np.maximum(np.bincount(lab, minlength=n_objects), 1)
    return (np.bincount(lab, weights=ux[moving], minlength=n_objects) / count,
            np.bincount(lab, weights=uy[moving], minlength=n_objects) / count)


def _trips_per_pair(pair, trip, n_pairs):
    """The number of distinct trips of each pair (0..n_pairs-1)."""
    return pd.Series(trip).groupby(pair).nunique().reindex(range(n_pairs), fill_value=0).to_numpy()


def _pose_sigmas(tr, px, py, lab, x, y, n_trips, along_m, across_m):
    """The pose error along and across the direction of travel, from the scatter of the tracks'
    points (px, py) around their objects (those at least ``MIN_TRIPS_FOR_SCATTER`` trips saw),
    less the tracks' own error; the given values when too few tracks tell."""
    ok = (lab >= 0) & ~np.isnan(tr["ux"].to_numpy())
    ok[ok] = n_trips[lab[ok]] >= MIN_TRIPS_FOR_SCATTER
    if ok.sum() < 50:
        return along_m, across_m
    t = tr[ok]
    ux, uy = t["ux"].to_numpy(), t["uy"].to_numpy()
    dx, dy = px[ok] - x[lab[ok]], py[ok] - y[lab[ok]]
    out = []
    for vx, vy in ((ux, uy), (uy, -ux)):
        spread = 1.4826 * np.median(np.abs(dx * vx + dy * vy))
        own = np.median(t["xx"].to_numpy() * vx * vx + 2 * t["xy"].to_numpy() * vx * vy + t["yy"].to_numpy() * vy * vy)
        out.append(float(np.sqrt(max(spread**2 - own, MIN_POSE_SIGMA_M**2))))
    return out[0], out[1]


def _trip_votes(units, labels, names):
    """Per (object, value): how many trips voted for it (a trip votes its most frequent value,
    a trip that read none on the object votes None). ``units``: tracks or observations (trip,
    value code in ``names``, rows ``n_rows``), ``labels`` their objects."""
    if not len(names):
        return pd.DataFrame(columns=["label", "value", "trips"])
    has = labels >= 0
    v = pd.DataFrame({"label": labels[has], "trip": units["trip"].to_numpy()[has],
                      "value": units["value"].to_numpy()[has], "n": units["n_rows"].to_numpy()[has]})
    per = v.groupby(["label", "trip", "value"], sort=True)["n"].sum().reset_index()
    # a value read in any frame outvotes the frames that read none: a trip reads none when its
    # frames were too small to read; the codes sort as the names do: ties go to the first value
    # in text order
    per = per.assign(read=per["value"] >= 0)
    per = per.sort_values(["label", "trip", "read", "n", "value"], ascending=[True, True, False, False, True],
                          kind="stable")
    per = per.drop_duplicates(["label", "trip"])
    votes = per.groupby(["label", "value"], sort=True).size().rename("trips").reset_index()
    code = votes["value"].to_numpy()
    value = np.where(code >= 0, names[np.maximum(code, 0)].astype(str), None)
    return votes.assign(value=value)


def _folds(x, y, cls, n_trips, radius_m, split_share):
    """Per object, the object it folds into (-1: none): the nearest one within ``radius_m`` of
    its class but another identity (value) seen by so many more trips that it has less than
    ``split_share`` of their trips together."""
    from scipy.spatial import cKDTree

    into = np.full(len(x), -1, dtype=np.int64)
    live = np.flatnonzero(n_trips > 0)
    if len(live) < 2:
        return into
    pairs = cKDTree(np.c_[x[live], y[live]]).query_pairs(radius_m, output_type="ndarray")
    i, j = live[pairs[:, 0]], live[pairs[:, 1]]
    same = cls[i] == cls[j]
    i, j = i[same], j[same]
    small = np.where(n_trips[i] < n_trips[j], i, j)
    big = np.where(n_trips[i] < n_trips[j], j, i)
    fold = n_trips[small] < split_share * (n_trips[small] + n_trips[big])
    small, big = small[fold], big[fold]
    d = np.hypot(x[small] - x[big], y[small] - y[big])
    for k in np.argsort(-d, kind="stable"):  # the nearest is written last
        into[small[k]] = big[k]
    # a chain (a into b into c) ends at its last object
    while True:
        nxt = np.where(into >= 0, into[np.maximum(into, 0)], -1)
        step = np.where(nxt >= 0, nxt, into)
        if np.array_equal(step, into):
            return into
        into = step


def _rarely_seen(x, y, n_trips, tracks, labels, config, measurer):
    """Objects that fewer than ``rare_share`` of the trips a typical object is seen by saw, of
    the trips that located anything (of any identity) within ``reach_m`` of them travelling
    their way (within ``SAME_SIDE_DEG`` of their tracks' mean direction, where those agree: a
    sign facing a side street is seen by the cars that come from it, not by those that cross
    its view): such a trip had the object in view. The typical share is the median over the
    objects seen in at least ``MIN_TRIPS_FOR_SCATTER`` trips, each weighing by its trips (the
    objects of the rare passes are many but small). Objects of one trip are weak already and
    stay."""
    from mapdiff._kernels.locate import trips_near

    out = np.zeros(len(x), dtype=bool)
    ask = np.flatnonzero(n_trips >= 2)
    ok = tracks["kept"].to_numpy() & np.isfinite(tracks["x"].to_numpy())
    if not len(ask) or not ok.any():
        return out
    mx, my = _mean_directions(labels, tracks["ux"].to_numpy(), tracks["uy"].to_numpy(), len(x))
    norm = np.hypot(mx, my)
    # tracks that agree on a way: their mean direction is long (seen from all sides, it is short)
    one_way = norm >= np.cos(np.radians(SAME_SIDE_DEG))
    qux = np.where(one_way, mx / np.maximum(norm, 1e-12), 0.0)[ask]
    quy = np.where(one_way, my / np.maximum(norm, 1e-12), 0.0)[ask]
    t = tracks.loc[ok]
    near = trips_near((x[ask], y[ask], qux, quy),
                      (t["x"].to_numpy(), t["y"].to_numpy(), t["ux"].to_numpy(), t["uy"].to_numpy(),
                       t["trip"].to_numpy(np.int64)), config.reach_m, np.cos(np.radians(SAME_SIDE_DEG)))
    share = n_trips[ask] / np.maximum(near, n_trips[ask])

    def typical():
        weight = np.where(n_trips[ask] >= MIN_TRIPS_FOR_SCATTER, n_trips[ask], 0).astype(float)
        if weight.sum() == 0:
            return float("nan")
        order = np.argsort(share)
        return float(share[order][np.searchsorted(np.cumsum(weight[order]), 0.5 * weight.sum())])

    out[ask] = share < config.rare_share * measurer.take("typical_share", typical)
    return out


def _confusions(x, y, n_obs, n_trips, radius_m, ratio):
    """Objects within ``radius_m`` of an object (of any class) with more than 1/``ratio`` times
    their observations."""
    from scipy.spatial import cKDTree

    out = np.zeros(len(x), dtype=bool)
    live = np.flatnonzero(n_trips > 0)
    if len(live) < 2:
        return out
    pairs = cKDTree(np.c_[x[live], y[live]]).query_pairs(radius_m, output_type="ndarray")
    for a, c in pairs:
        i, j = live[a], live[c]
        if n_obs[i] < ratio * n_obs[j]:
            out[i] = True
        elif n_obs[j] < ratio * n_obs[i]:
            out[j] = True
    return out


def _objects(units, labels, value_names, classes, ccls, fit, proj, split_share):
    """The objects frame, and each unit's object_id (-1: none). ``units``: tracks or single
    observations (trip, time span t0-t1, rows ``n_rows``, summed detector ``score``, value
    code in ``value_names``), ``labels`` their objects (0..; -1: none); ``ccls`` each object's
    identity (class ``classes[ccls]``), ``fit`` its (x, y, sxx, syy, reduced chi-square,
    trips) in the metres of ``proj``."""
    x, y, sxx, syy, red, n_trips = fit
    has = labels >= 0
    live = np.flatnonzero(n_trips > 0)
    if len(live) == 0:
        return no_objects(), np.full(len(labels), -1, dtype=np.int64)
    rows = units["n_rows"].to_numpy()[has]
    n_obs = np.bincount(labels[has], weights=rows, minlength=len(x))
    grp = pd.DataFrame({"label": labels[has], "t0": units["t0"].to_numpy()[has], "t1": units["t1"].to_numpy()[has],
                        "score": units["score"].to_numpy()[has], "rows": rows})
    agg = grp.groupby("label").agg(t_first=("t0", "min"), t_last=("t1", "max"), score=("score", "sum"),
                                   rows=("rows", "sum"))
    agg = agg.reindex(live)
    agg["score"] /= agg["rows"]
    votes = _trip_votes(units, labels, value_names)
    value = pd.Series([None] * len(x), dtype=object)
    share = np.full(len(x), np.nan)
    summary = pd.Series([None] * len(x), dtype=object)
    if not votes.empty:
        total = votes.groupby("label")["trips"].sum()
        none = votes.loc[votes["value"].isna()].set_index("label")["trips"].reindex(total.index, fill_value=0)
        votes = votes.loc[votes["value"].notna()]
        votes = votes.sort_values(["label", "trips", "value"], ascending=[True, False, True], kind="stable")
        first = votes.drop_duplicates("label").set_index("label")
        top = first["trips"].reindex(total.index, fill_value=0)
        # the object has the most voted value, unless most trips read none and the value has less
        # than ``split_share`` of their trips: a detector's misreading, as _folds takes it
        read = (top > 0) & (top >= split_share * none)
        named = first["value"].reindex(total.index)
        labels_read = total.index[read.to_numpy()].to_numpy()
        value.iloc[labels_read] = named[read].to_numpy()
        # the share among the trips that read a value (or, for none, among all)
        share[total.index.to_numpy()] = np.where(read, top / np.maximum(total - none, 1), none / total)
        # "value:trips;..." per object (sorted by label: each object's rows are a run)
        label = votes["label"].to_numpy()
        cells = (votes["value"] + ":" + votes["trips"].astype(str)).tolist()
        starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]]) if len(label) else label
        ends = np.r_[starts[1:], len(label)]
        summary.iloc[label[starts]] = [";".join(cells[a:b]) for a, b in zip(starts, ends)]
    lon, lat = proj.to_lonlat(x[live], y[live])
    sigma = np.sqrt(0.5 * (sxx[live] + syy[live]) * np.maximum(red[live], 1.0))
    trips_live = n_trips[live]
    t_first = timestamps(agg["t_first"].to_numpy())
    t_last = timestamps(agg["t_last"].to_numpy())
    objects = pd.DataFrame({
        "object_id": np.arange(len(live), dtype=np.int64),
        "class": np.asarray(classes, dtype=object)[ccls[live]],
        "value": value.to_numpy()[live], "value_share": share[live], "value_votes": summary.to_numpy()[live],
        "lon": lon, "lat": lat, "sigma_m": sigma,
        "n_observations": n_obs[live].astype(np.int64), "n_trips": trips_live.astype(np.int64),
        "t_first": t_first, "t_last": t_last,
        # the detector's confidence, discounted when few trips agree
        "score": agg["score"].to_numpy() * (1.0 - np.exp(-trips_live / 2.0)),
        "weak": trips_live < 2,
    })
    remap = np.full(len(x) + 1, -1, dtype=np.int64)
    remap[live] = np.arange(len(live))
    out_labels = np.where(has, remap[np.where(has, labels, len(x))], -1)
    return objects, out_labels
