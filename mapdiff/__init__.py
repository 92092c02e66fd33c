"""mapdiff: find where the road map is wrong, from a fleet's GPS traces and dashcam detections.

The public API, imported lazily so that ``import mapdiff`` (and the CLI's ``--help``) stays fast:

- :func:`match`, :class:`MatchConfig`: HMM map matching of traces to a network;
- :func:`load_network`, :class:`Network`: a map GeoPackage compiled for the kernels;
- :func:`build_map`: an OpenStreetMap extract to a map GeoPackage;
- :class:`MapdiffError`: the root of every error mapdiff raises on purpose.
"""

from importlib import import_module

__version__ = "0.1.0"

_API = {
    "match": "mapdiff.matching",
    "MatchConfig": "mapdiff.matching",
    "load_network": "mapdiff.network",
    "Network": "mapdiff.network",
    "build_map": "mapdiff.osm",
    "MapdiffError": "mapdiff.errors",
    "InputError": "mapdiff.errors",
}

__all__ = list(_API)


def __getattr__(name):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    msg = f"module 'mapdiff' has no attribute {name!r}"
    raise AttributeError(msg)
