"""The road network model: a map GeoPackage compiled once into arrays for the kernels.

Any GeoPackage with an ``edges`` layer in the osmnx layout (u, v, key, geometry; osmid,
highway, oneway, length optional) is a valid map, whatever built it. Each row is one directed
edge whose geometry runs from u to v, as osmnx writes it. ``edge_id`` is the layer's own
column when present, otherwise the row number, so it is stable for a given file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from mapdiff.errors import InputError
from mapdiff.projection import LocalProjection

#: free-flow speed by OSM highway class when an edge has no usable maxspeed (km/h)
CLASS_SPEED_KMH = {
    "motorway": 100, "motorway_link": 60, "trunk": 80, "trunk_link": 50, "primary": 50, "primary_link": 40,
    "secondary": 50, "secondary_link": 40, "tertiary": 40, "tertiary_link": 30, "residential": 30,
    "living_street": 15, "unclassified": 40,
}
DEFAULT_SPEED_KMH = 30

#: cells of the candidate grid (metres); capped so the grid stays a few MB on any extent
GRID_CELL_M = 25.0
MAX_GRID_CELLS = 4_000_000


@dataclass(frozen=True, eq=False)
class Network:
    """A directed road graph in local metres, with a CSR adjacency and a segment grid.

    Build it once per map with :func:`load_network` (or :meth:`from_edges`) and pass it to
    every matching call.
    """

    edges: pd.DataFrame  # edge_id, u, v, key (+ osmid, highway, oneway when present), no geometry
    proj: LocalProjection
    # kernel edges: the rows of ``edges`` first, then one wrong-way twin per one-way edge
    edge_u: np.ndarray  # compact node index of each edge's start
    edge_v: np.ndarray
    edge_len: np.ndarray  # metres, measured on the projected geometry
    edge_base: np.ndarray  # the row of ``edges`` each kernel edge drives along
    edge_against: np.ndarray  # True for a wrong-way twin (driving a one-way edge backwards)
    twin_of: np.ndarray  # per kernel edge: its wrong-way twin, or -1
    n_nodes: int
    out_ptr: np.ndarray  # CSR: edges leaving node i are out_edge[out_ptr[i]:out_ptr[i+1]]
    out_edge: np.ndarray
    vx: np.ndarray  # all edge vertices, edge after edge
    vy: np.ndarray
    vcum: np.ndarray  # distance from the edge's start to each vertex
    vptr: np.ndarray  # vertices of edge e are vptr[e]:vptr[e+1]
    seg_edge: np.ndarray  # the edge each vertex (as segment start) belongs to
    grid: tuple = field(repr=False)  # (x0, y0, cell_m, nx, ny, cell_ptr, cell_seg, cell_xy)

    @property
    def geom(self) -> tuple:
        """What the spatial kernels take: vertices, twins and the segment grid, in one tuple."""
        return (self.vx, self.vy, self.vcum, self.seg_edge, self.twin_of, self.edge_len, *self.grid)

    @property
    def n_edges(self) -> int:
        """Edges of the map (rows of ``edges``), without the wrong-way twins."""
        return len(self.edges)

    def edge_weights(self, wrong_way_cost_m: float) -> np.ndarray:
        """Shortest-path weights: the length, plus ``wrong_way_cost_m`` on wrong-way twins."""
        return self.edge_len + np.where(self.edge_against, wrong_way_cost_m, 0.0)

    @classmethod
    def from_edges(cls, edges, *, source: str = "edges") -> Network:
        """Compile a GeoDataFrame of directed edges (osmnx layout) into a network."""
        import shapely

        from mapdiff._kernels.geometry import build_grid

        _check_edges(edges, source)
        if "edge_id" in edges.columns:
            edge_id = edges["edge_id"].to_numpy()
            if pd.api.types.is_float_dtype(edge_id) and np.isfinite(edge_id).all() and (edge_id % 1 == 0).all():
                edge_id = edge_id.astype(np.int64)  # integral floats, as some tools write them
            if not pd.api.types.is_integer_dtype(edge_id) or pd.Series(edge_id).duplicated().any():
                msg = f"{source}: column 'edge_id' must hold unique integers"
                raise InputError(msg)
        else:
            edge_id = np.arange(len(edges), dtype=np.int64)
        wgs = edges.geometry.to_crs(4326)
        minx, miny, maxx, maxy = wgs.total_bounds
        proj = LocalProjection.around((minx + maxx) / 2, (miny + maxy) / 2)
        geom = edges.geometry.to_crs(proj.crs)
        coords, index = shapely.get_coordinates(geom.values, return_index=True)
        n_edges = len(edges)
        counts = np.bincount(index, minlength=n_edges)
        if (counts < 2).any():
            row = int(np.flatnonzero(counts < 2)[0])
            msg = f"{source}: edge at row {row} has an empty or one-point geometry"
            raise InputError(msg)
        codes, _ = pd.factorize(pd.concat([edges["u"], edges["v"]], ignore_index=True))
        real_u = codes[:n_edges].astype(np.int64)
        real_v = codes[n_edges:].astype(np.int64)
        # a one-way edge (no edge back between its nodes) gets a wrong-way twin, so that a car
        # driving it backwards is matched (at a price) and reported, not forced onto a detour
        back = pd.MultiIndex.from_arrays([real_v, real_u])
        has_twin = back.isin(pd.MultiIndex.from_arrays([real_u, real_v]))
        twins = np.flatnonzero(~has_twin & (real_u != real_v))
        base = np.r_[np.arange(n_edges), twins].astype(np.int64)
        against = np.r_[np.zeros(n_edges, bool), np.ones(len(twins), bool)]
        # vertices: every real edge in order, then each twin's vertices reversed
        order = [np.arange(len(index))]
        starts = np.r_[0, np.cumsum(counts)]
        for e in twins:
            order.append(np.arange(starts[e + 1] - 1, starts[e] - 1, -1))
        order = np.concatenate(order)
        vx = np.ascontiguousarray(coords[order, 0])
        vy = np.ascontiguousarray(coords[order, 1])
        counts = counts[base]
        index = np.repeat(np.arange(len(base)), counts)
        vptr = np.zeros(len(base) + 1, dtype=np.int64)
        np.cumsum(counts, out=vptr[1:])
        step = np.hypot(np.diff(vx), np.diff(vy))
        seg_valid = index[:-1] == index[1:]
        step[~seg_valid] = 0.0
        cum = np.concatenate([[0.0], np.cumsum(step)])
        vcum = cum - cum[vptr[:-1]].repeat(counts)
        edge_len = vcum[vptr[1:] - 1].copy()
        edge_u = np.where(against, real_v[base], real_u[base])
        edge_v = np.where(against, real_u[base], real_v[base])
        n_nodes = int(codes.max()) + 1 if n_edges else 0
        out_edge = np.argsort(edge_u, kind="stable").astype(np.int64)
        out_ptr = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(edge_u, minlength=n_nodes), out=out_ptr[1:])

        x0, y0 = vx.min() - 1.0, vy.min() - 1.0
        cell = GRID_CELL_M
        while ((vx.max() - x0) / cell + 1) * ((vy.max() - y0) / cell + 1) > MAX_GRID_CELLS:
            cell *= 2
        nx = int((vx.max() - x0) / cell) + 1
        ny = int((vy.max() - y0) / cell) + 1
        # the grid holds the map's own segments; a query adds the twins (same line, other way)
        seg_valid_v = np.zeros(len(vx), dtype=np.bool_)
        seg_valid_v[:-1] = seg_valid & ~against[index[:-1]]
        twin_of = np.full(len(base), -1, dtype=np.int64)
        twin_of[twins] = np.arange(n_edges, len(base))
        cell_ptr, cell_seg = build_grid(vx, vy, seg_valid_v, x0, y0, cell, nx, ny)
        cell_xy = np.stack([vx[cell_seg], vy[cell_seg], vx[cell_seg + 1], vy[cell_seg + 1]], axis=1)

        keep = [c for c in ("u", "v", "key", "osmid", "highway", "oneway", "maxspeed", "tunnel") if c in edges.columns]
        table = pd.DataFrame(edges[keep]).reset_index(drop=True)
        if "key" not in table:
            table["key"] = 0
        table.insert(0, "edge_id", edge_id.astype(np.int64))
        return cls(
            edges=table,
            proj=proj,
            edge_u=edge_u,
            edge_v=edge_v,
            edge_len=edge_len,
            edge_base=base,
            edge_against=against,
            twin_of=twin_of,
            n_nodes=n_nodes,
            out_ptr=out_ptr,
            out_edge=out_edge,
            vx=vx,
            vy=vy,
            vcum=vcum,
            vptr=vptr,
            seg_edge=index.astype(np.int64),
            grid=(float(x0), float(y0), float(cell), nx, ny, cell_ptr, cell_seg, cell_xy),
        )

    def node_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Local x, y in metres of each compact node (the ends of its edges)."""
        n = self.n_edges
        x, y = np.zeros(self.n_nodes), np.zeros(self.n_nodes)
        x[self.edge_u[:n]], y[self.edge_u[:n]] = self.vx[self.vptr[:n]], self.vy[self.vptr[:n]]
        x[self.edge_v[:n]], y[self.edge_v[:n]] = self.vx[self.vptr[1:n + 1] - 1], self.vy[self.vptr[1:n + 1] - 1]
        return x, y

    def bounds_lonlat(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) of the network."""
        lon, lat = self.proj.to_lonlat(
            np.array([self.vx.min(), self.vx.max()]), np.array([self.vy.min(), self.vy.max()])
        )
        return float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1])


def _check_edges(edges, source: str) -> None:
    missing = [c for c in ("u", "v") if c not in edges.columns]
    if missing:
        msg = f"{source}: edges layer lacks column(s) {missing}; found {list(edges.columns)}"
        raise InputError(msg)
    if len(edges) == 0:
        msg = f"{source}: edges layer is empty"
        raise InputError(msg)
    if getattr(edges, "crs", None) is None:
        msg = f"{source}: edges layer has no CRS"
        raise InputError(msg)
    for c in ("u", "v"):  # node ids: any values, but none missing
        if edges[c].isna().any():
            msg = f"{source}: edges layer column {c!r} has {int(edges[c].isna().sum())} missing node ids"
            raise InputError(msg)
    bad = edges.geometry.isna() | edges.geometry.is_empty
    if bad.any():
        msg = f"{source}: {int(bad.sum())} edges have no geometry (first at row {int(np.flatnonzero(bad)[0])})"
        raise InputError(msg)


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float, size: int) -> Network:
    from mapdiff.io import read_gpkg_layer

    edges = read_gpkg_layer(path, "edges")
    return Network.from_edges(edges, source=f"{path} (layer 'edges')")


def load_network(path) -> Network:
    """Load and compile a map GeoPackage; compiled once per file version within a process."""
    from mapdiff.io import read_gpkg_layer

    path = str(path)
    if "://" in path:
        edges = read_gpkg_layer(path, "edges")
        return Network.from_edges(edges, source=f"{path} (layer 'edges')")
    if not os.path.exists(path):
        msg = f"{path}: map file not found"
        raise InputError(msg)
    st = os.stat(path)
    return _load_cached(os.path.abspath(path), st.st_mtime, st.st_size)


def tunnel_edges(edges: pd.DataFrame) -> np.ndarray:
    """Per edge, whether OSM tags it a tunnel (any ``tunnel`` value but no/false): no GPS fix
    is ever taken there."""
    if "tunnel" not in edges:
        return np.zeros(len(edges), dtype=bool)
    tag = edges["tunnel"].astype(object).to_numpy()
    return np.array([t is not None and str(t).lower() not in ("no", "nan", "none", "false", "") for t in tag],
                    dtype=bool)


def free_flow_speed_mps(edges: pd.DataFrame) -> np.ndarray:
    """Free-flow speed of each edge: its maxspeed (the lowest number when several), else the
    class default."""
    def one(maxspeed, highway):
        nums = re.findall(r"\d+(?:\.\d+)?", str(maxspeed)) if maxspeed is not None else []
        if nums:
            kmh = min(float(n) for n in nums)
            if "mph" in str(maxspeed):
                kmh *= 1.609344
        else:
            hw = str(highway).strip("[]'\" ").split("'")[0] if highway is not None else ""
            kmh = CLASS_SPEED_KMH.get(hw, DEFAULT_SPEED_KMH)
        return max(kmh, 10.0) / 3.6

    maxspeed = edges["maxspeed"] if "maxspeed" in edges else pd.Series([None] * len(edges))
    highway = edges["highway"] if "highway" in edges else pd.Series([None] * len(edges))
    return np.array([one(m if isinstance(m, str) or pd.notna(m) else None, h)
                     for m, h in zip(maxspeed, highway)], dtype=np.float64)


#: two edges between the same two nodes whose lengths differ by at most this are the two
#: directions of one OSM way (each is the other's geometry reversed: equal to float error);
#: two ways between one pair of nodes are two roads, each closed or reversed on its own, even
#: when they carry one name and differ by centimetres (the two carriageways of a split street)
SAME_STREET_M = 1e-3


def street_ids(u: np.ndarray, v: np.ndarray, length_m: np.ndarray) -> np.ndarray:
    """A street id per edge, numbered in order of first appearance: the edges that join the same
    two nodes, either way, with the same length (within ``SAME_STREET_M``: one way's two
    directions) share it. Nodes alone do not tell a street: OSM joins some pairs of nodes by two
    ways (Helsinki's 256 m one-way Paasivuorenkatu and the 43 m Saariniemenkatu), and taken as
    one street the one closed would count as driven by the other's traffic."""
    u, v, length_m = np.asarray(u), np.asarray(v), np.asarray(length_m, dtype=float)
    a, b = np.minimum(u, v), np.maximum(u, v)
    order = np.lexsort((length_m, b, a))
    a, b, s = a[order], b[order], length_m[order]
    new = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1]) | (np.diff(s) > SAME_STREET_M)]
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.cumsum(new)
    return pd.factorize(group)[0]
