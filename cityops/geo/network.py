"""Road network graph and travel times (pure: NumPy, SciPy sparse graphs, no database).

A road network is a set of polylines (WGS-84 lon/lat) with a speed (km/h) and a one-way flag
(OSM convention: 0 both ways, 1 in the drawing direction, -1 against it). Topology follows
OpenStreetMap: two roads are connected only where they share a vertex (identical coordinates
after rounding to 1e-7 degree, about 1 cm); a road crossing another without a shared vertex is a
bridge or tunnel.

The graph's nodes are the *junctions*: the line end points and every vertex that occurs more than
once (shared by two roads, or twice in one). The chain of segments between two consecutive
junctions of one line is one directed edge (two for a two-way road) weighted by its travel time
in seconds (segment lengths measured in UTM 51N, EPSG:32651). Parallel edges keep the fastest.

Travel time between two points (``travel_seconds``) = access leg + network path + access leg:

* each point is snapped to the nearest road vertex (``scipy.spatial.cKDTree``) of the largest
  strongly connected component; the access leg is the straight line to it x ``ACCESS_FACTOR``
  at ``ACCESS_SPEED_KMH`` (driveways, yards, roads not mapped);
* a snapped vertex lies on a chain between junctions *a* and *b*; the time from it to *a* / *b*
  along the chain is allowed only in the directions the road may be driven;
* the network part is the shortest of the four junction-to-junction combinations, from
  ``scipy.sparse.csgraph.dijkstra`` run from the distinct junctions of the side with fewer of them
  (on the transposed graph when that is the destination side); two points on the same chain may
  also go along it directly.

Without a network, ``straight_seconds`` is the straight line x ``STRAIGHT_FACTOR`` at
``STRAIGHT_SPEED_KMH``.

References: E. W. Dijkstra, "A note on two problems in connexion with graphs", Numerische
Mathematik 1 (1959) 269-271 (the algorithm of ``scipy.sparse.csgraph.dijkstra``, there with a
Fibonacci heap, Fredman & Tarjan 1987); OpenStreetMap wiki, "Key:oneway" and "Way" (topology by
shared nodes); J. L. Bentley, "Multidimensional binary search trees used for associative
searching", CACM 18 (1975) 509-517 (the k-d tree of ``cKDTree``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from cityops.geo.geom import TO_UTM

ACCESS_SPEED_KMH = 20.0
ACCESS_FACTOR = 1.3
STRAIGHT_SPEED_KMH = 30.0
STRAIGHT_FACTOR = 1.3
_EPS_S = 1e-6  # smallest edge weight (scipy drops explicit zeros of a sparse graph)
_CHUNK = 256  # dijkstra sources per call (bounds the memory of the distance rows)


def lonlat_to_utm(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    x, y = TO_UTM.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])


@dataclass(frozen=True)
class RoadGraph:
    """Junction graph plus what snapping needs (see the module docstring)."""

    node_xy: np.ndarray  # (n, 2) UTM metres of the junctions
    csr: sp.csr_matrix  # (n, n) directed travel seconds
    csr_t: sp.csr_matrix  # its transpose (paths towards a node)
    main: np.ndarray  # bool (n,): junction in the largest strongly connected component
    v_xy: np.ndarray  # (m, 2) UTM of the snappable vertices
    v_a: np.ndarray  # (m,) junction at the chain's start
    v_b: np.ndarray  # (m,) junction at the chain's end
    v_dep: np.ndarray  # (m, 2) seconds from the vertex to a / b (inf where not allowed)
    v_arr: np.ndarray  # (m, 2) seconds from a / b to the vertex (inf where not allowed)
    v_chain: np.ndarray  # (m,) chain id
    v_pos: np.ndarray  # (m,) seconds from the chain's start
    v_dir: np.ndarray  # (m, 2) bool: chain drivable forward / backward
    tree: cKDTree
    n_vertices: int
    n_edges: int

    @property
    def n_nodes(self) -> int:
        return int(self.node_xy.shape[0])

    def stats(self) -> dict[str, float | int]:
        return {"nodes": self.n_nodes, "edges": self.n_edges, "vertices": self.n_vertices,
                "main_component_nodes": int(self.main.sum()), "snappable_vertices": int(self.v_xy.shape[0])}


def _keys(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """One int64 per position rounded to 1e-7 degree (identity of vertices)."""
    ix = np.round(lon * 1e7).astype(np.int64) + (1 << 31)
    iy = np.round(lat * 1e7).astype(np.int64) + (1 << 30)
    return (ix << 32) | iy


def build_graph(lines: Sequence[np.ndarray], speed_kmh: np.ndarray, oneway: np.ndarray) -> RoadGraph:
    """Graph of ``lines`` (each an (k, 2) array of lon/lat, k >= 2), ``speed_kmh`` (> 0) and
    ``oneway`` (0, 1, -1) per line. Vectorized over all vertices."""
    lens = np.fromiter((len(a) for a in lines), dtype=np.int64, count=len(lines))
    if len(lines) == 0 or lens.sum() == 0:
        raise ValueError("no road lines")
    ll = np.concatenate([np.asarray(a, dtype=float)[:, :2] for a in lines])
    line = np.repeat(np.arange(len(lines)), lens)
    key = _keys(ll[:, 0], ll[:, 1])
    # drop repeated consecutive positions within a line
    keep = np.ones(len(key), dtype=bool)
    keep[1:] = ~((key[1:] == key[:-1]) & (line[1:] == line[:-1]))
    ll, line, key = ll[keep], line[keep], key[keep]
    # lines reduced to a single position are not roads
    counts = np.bincount(line, minlength=len(lines))
    ok = counts[line] >= 2
    ll, line, key = ll[ok], line[ok], key[ok]
    xy = lonlat_to_utm(ll[:, 0], ll[:, 1])
    uniq, uid, occ = np.unique(key, return_inverse=True, return_counts=True)
    m = len(key)
    first = np.ones(m, dtype=bool)
    first[1:] = line[1:] != line[:-1]
    last = np.ones(m, dtype=bool)
    last[:-1] = line[1:] != line[:-1]
    junction = first | last | (occ[uid] >= 2)

    speed = np.asarray(speed_kmh, dtype=float)[line] / 3.6  # m/s of each vertex's line
    seg = np.zeros(m)
    same = ~first
    seg[1:] = np.where(same[1:], np.hypot(*(xy[1:] - xy[:-1]).T) / speed[1:], 0.0)
    ctime = np.cumsum(seg)
    idx = np.arange(m)
    prev_j = np.maximum.accumulate(np.where(junction, idx, 0))
    next_j = np.minimum.accumulate(np.where(junction, idx, m - 1)[::-1])[::-1]

    # junction node numbering
    jnode_of_uid = np.full(len(uniq), -1, dtype=np.int64)
    ju = np.unique(uid[junction])
    jnode_of_uid[ju] = np.arange(len(ju))
    node = jnode_of_uid[uid]  # -1 for interior vertices
    node_xy = np.zeros((len(ju), 2))
    node_xy[node[junction]] = xy[junction]

    ow = np.asarray(oneway, dtype=np.int64)[line]
    fwd_ok = ow >= 0
    back_ok = ow <= 0
    jidx = idx[junction]
    pair = line[jidx[1:]] == line[jidx[:-1]]
    a_i, b_i = jidx[:-1][pair], jidx[1:][pair]
    w = np.maximum(ctime[b_i] - ctime[a_i], _EPS_S)
    f = fwd_ok[a_i]
    r = back_ok[a_i]
    src = np.concatenate([node[a_i][f], node[b_i][r]])
    dst = np.concatenate([node[b_i][f], node[a_i][r]])
    wt = np.concatenate([w[f], w[r]])
    loops = src == dst
    src, dst, wt = src[~loops], dst[~loops], wt[~loops]
    order = np.lexsort((wt, dst, src))
    src, dst, wt = src[order], dst[order], wt[order]
    firstpair = np.ones(len(src), dtype=bool)
    firstpair[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    src, dst, wt = src[firstpair], dst[firstpair], wt[firstpair]
    n = len(ju)
    csr = sp.csr_matrix((wt, (src, dst)), shape=(n, n))
    ncomp, labels = csgraph.connected_components(csr, directed=True, connection="strong")
    biggest = np.argmax(np.bincount(labels)) if ncomp else 0
    main = labels == biggest

    # snapping data per vertex: its chain runs from prev_j to next_j (a junction is its own chain start)
    a_v = node[prev_j]
    b_v = node[next_j]
    pos = ctime - ctime[prev_j]
    total = ctime[next_j] - ctime[prev_j]
    inf = np.inf
    dep = np.column_stack([np.where(back_ok, pos, inf), np.where(fwd_ok, total - pos, inf)])
    arr = np.column_stack([np.where(fwd_ok, pos, inf), np.where(back_ok, total - pos, inf)])
    at_j = junction
    dep[at_j] = 0.0
    arr[at_j] = 0.0
    b_v = np.where(at_j, a_v, b_v)
    snappable = main[a_v] & main[b_v]
    sel = np.flatnonzero(snappable)
    v_xy = xy[sel]
    return RoadGraph(
        node_xy=node_xy, csr=csr, csr_t=csr.T.tocsr(), main=main, v_xy=v_xy, v_a=a_v[sel], v_b=b_v[sel],
        v_dep=dep[sel], v_arr=arr[sel], v_chain=prev_j[sel], v_pos=pos[sel],
        v_dir=np.column_stack([fwd_ok[sel], back_ok[sel]]), tree=cKDTree(v_xy) if len(sel) else cKDTree(np.zeros((1, 2))),
        n_vertices=m, n_edges=int(csr.nnz))


@dataclass(frozen=True)
class Snap:
    vertex: np.ndarray  # index into the graph's snappable vertices
    access_s: np.ndarray  # seconds of the access leg
    distance_m: np.ndarray  # straight distance to the vertex


def snap(graph: RoadGraph, xy: np.ndarray) -> Snap:
    """Nearest snappable road vertex of each UTM point and the access leg to it."""
    if graph.v_xy.shape[0] == 0:
        raise ValueError("the road network has no connected part to snap to")
    d, i = graph.tree.query(np.asarray(xy, dtype=float), k=1)
    d = np.asarray(d, dtype=float)
    return Snap(np.asarray(i, dtype=np.int64), d * ACCESS_FACTOR / (ACCESS_SPEED_KMH / 3.6), d)


def _dijkstra_rows(matrix: sp.csr_matrix, sources: np.ndarray) -> np.ndarray:
    out = np.empty((len(sources), matrix.shape[0]))
    for s in range(0, len(sources), _CHUNK):
        out[s:s + _CHUNK] = csgraph.dijkstra(matrix, directed=True, indices=sources[s:s + _CHUNK])
    return out


def network_seconds(graph: RoadGraph, src: Snap, dst: Snap) -> np.ndarray:
    """(S, T) seconds along the network between snapped vertices (access legs excluded)."""
    sa, sb = graph.v_a[src.vertex], graph.v_b[src.vertex]
    ta, tb = graph.v_a[dst.vertex], graph.v_b[dst.vertex]
    s_nodes = np.unique(np.concatenate([sa, sb]))
    t_nodes = np.unique(np.concatenate([ta, tb]))
    if len(s_nodes) <= len(t_nodes):
        rows = _dijkstra_rows(graph.csr, s_nodes)  # (|s_nodes|, n)
        def dist(si: np.ndarray, ti: np.ndarray) -> np.ndarray:
            out: np.ndarray = rows[np.ix_(np.searchsorted(s_nodes, si), ti)]
            return out
    else:
        rows = _dijkstra_rows(graph.csr_t, t_nodes)  # rows[t, s] = d(s -> t)
        def dist(si: np.ndarray, ti: np.ndarray) -> np.ndarray:
            out: np.ndarray = rows[np.ix_(np.searchsorted(t_nodes, ti), si)].T
            return out
    dep = graph.v_dep[src.vertex]
    arr = graph.v_arr[dst.vertex]
    best = np.full((len(sa), len(ta)), np.inf)
    for i, s_end in enumerate((sa, sb)):
        for j, t_end in enumerate((ta, tb)):
            cand = dep[:, i][:, None] + dist(s_end, t_end) + arr[:, j][None, :]
            np.minimum(best, cand, out=best)
    # two points on the same chain may go along it without reaching a junction
    sc, tc = graph.v_chain[src.vertex], graph.v_chain[dst.vertex]
    same = sc[:, None] == tc[None, :]
    if same.any():
        si, ti = np.nonzero(same)
        dpos = graph.v_pos[dst.vertex][ti] - graph.v_pos[src.vertex][si]
        fwd = graph.v_dir[src.vertex][si, 0]
        back = graph.v_dir[src.vertex][si, 1]
        direct = np.where((dpos >= 0) & fwd, dpos, np.where((dpos <= 0) & back, -dpos, np.inf))
        best[si, ti] = np.minimum(best[si, ti], direct)
    return best


def travel_seconds(graph: RoadGraph, src_xy: np.ndarray, dst_xy: np.ndarray) -> np.ndarray:
    """(S, T) door-to-door seconds between UTM points: access + network + access (inf when the
    network does not connect them, which cannot happen inside the main component)."""
    s, t = snap(graph, src_xy), snap(graph, dst_xy)
    out: np.ndarray = s.access_s[:, None] + network_seconds(graph, s, t) + t.access_s[None, :]
    return out


def straight_seconds(src_xy: np.ndarray, dst_xy: np.ndarray, *, factor: float = STRAIGHT_FACTOR,
                     speed_kmh: float = STRAIGHT_SPEED_KMH) -> np.ndarray:
    """(S, T) seconds of the straight line x ``factor`` at ``speed_kmh`` between UTM points."""
    d = np.hypot(src_xy[:, None, 0] - dst_xy[None, :, 0], src_xy[:, None, 1] - dst_xy[None, :, 1])
    out: np.ndarray = d * factor / (speed_kmh / 3.6)
    return out


def node_paths(graph: RoadGraph, sources: np.ndarray) -> np.ndarray:
    """Shortest seconds from junctions ``sources`` to every junction (rows), for tests and tools."""
    return _dijkstra_rows(graph.csr, np.asarray(sources, dtype=np.int64))


def line_components(lines: Sequence[np.ndarray]) -> np.ndarray:
    """Connected-component label of every line (lines touching through a shared vertex, any
    direction), e.g. to drop pieces of a network that connect to nothing."""
    lens = np.fromiter((len(a) for a in lines), dtype=np.int64, count=len(lines))
    if len(lines) == 0:
        return np.zeros(0, dtype=np.int64)
    ll = np.concatenate([np.asarray(a, dtype=float).reshape(-1, 2)[:, :2] for a in lines])
    line = np.repeat(np.arange(len(lines)), lens)
    _, uid = np.unique(_keys(ll[:, 0], ll[:, 1]), return_inverse=True)
    nu = int(uid.max()) + 1 if len(uid) else 0
    same = line[1:] == line[:-1]
    a, b = uid[:-1][same], uid[1:][same]
    g = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(nu, nu)).tocsr()
    _, labels = csgraph.connected_components(g, directed=False)
    first = np.concatenate([[0], np.cumsum(lens)[:-1]])
    out = np.full(len(lines), -1, dtype=np.int64)
    has = lens > 0
    out[has] = labels[uid[first[has]]]
    return out
