"""Road graph and travel times against an independent shortest-path implementation: a plain
heapq Dijkstra over every segment of every line (no junction contraction, no SciPy), with its
own projection and its own reachability test."""

from __future__ import annotations

import heapq
from collections import defaultdict

import numpy as np
import pyproj
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityops.geo import network

_UTM = pyproj.Transformer.from_crs(4326, 32651, always_xy=True)


def vertex_graph(lines, speeds, oneways):
    adj = defaultdict(list)
    for line, v, ow in zip(lines, speeds, oneways, strict=True):
        keys = [(round(x * 1e7), round(y * 1e7)) for x, y in line]
        xs, ys = _UTM.transform([p[0] for p in line], [p[1] for p in line])
        for i in range(len(keys) - 1):
            if keys[i] == keys[i + 1]:
                continue
            t = float(np.hypot(xs[i + 1] - xs[i], ys[i + 1] - ys[i])) / (v / 3.6)
            if ow >= 0:
                adj[keys[i]].append((keys[i + 1], t))
            if ow <= 0:
                adj[keys[i + 1]].append((keys[i], t))
    return adj


def dijkstra(adj, src):
    dist = {src: 0.0}
    heap = [(0.0, src)]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist.get(u, np.inf):
            continue
        for v, w in adj[u]:
            nd = d + w
            if nd < dist.get(v, np.inf):
                dist[v] = nd
                heapq.heappush(heap, (nd, v))
    return dist


def lattice(rng, n=6, step=0.004, oneway_share=0.3):
    """Rows and columns of a jittered lattice near Songjiang, each split into random pieces."""
    base = np.array([121.2, 31.0])
    pts = base + np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1) * step
    pts = np.round(pts + rng.uniform(-0.3, 0.3, pts.shape) * step, 7)
    lines, speeds, oneways = [], [], []
    for axis in (0, 1):
        grid = pts if axis == 0 else pts.transpose(1, 0, 2)
        for b in range(n):
            cut = sorted(set(rng.integers(1, n - 1, 2).tolist()))
            for a0, a1 in zip([0, *cut], [*cut, n - 1], strict=True):
                if a1 > a0:
                    seg = grid[a0:a1 + 1, b]
                    # an extra interior vertex halfway along every segment (curves)
                    mid = (seg[:-1] + seg[1:]) / 2 + rng.uniform(-0.1, 0.1, (len(seg) - 1, 2)) * step
                    line = np.empty((2 * len(seg) - 1, 2))
                    line[0::2], line[1::2] = seg, np.round(mid, 7)
                    lines.append(line)
                    speeds.append(float(rng.choice([20.0, 30.0, 50.0])))
                    oneways.append(int(rng.choice([1, -1])) if rng.random() < oneway_share else 0)
    return lines, np.array(speeds), np.array(oneways)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), share=st.sampled_from([0.0, 0.3, 0.6]))
def test_shortest_paths_match_heapq_dijkstra(seed, share):
    rng = np.random.default_rng(seed)
    lines, speeds, oneways = lattice(rng, oneway_share=share)
    g = network.build_graph(lines, speeds, oneways)
    adj = vertex_graph(lines, speeds, oneways)
    verts = sorted({(round(x * 1e7), round(y * 1e7)) for line in lines for x, y in line})
    # the strongly connected part, found independently: reachable from a root both ways
    root = verts[0]
    fwd = set(dijkstra(adj, root))
    radj = defaultdict(list)
    for u, es in adj.items():
        for v, w in es:
            radj[v].append((u, w))
    scc = fwd & set(dijkstra(radj, root))
    if len(scc) < len(verts) / 2:  # the root fell in a small component: take the largest
        best = scc
        for v in verts:
            s = set(dijkstra(adj, v)) & set(dijkstra(radj, v))
            if len(s) > len(best):
                best = s
        scc = best
    pick = [verts[i] for i in rng.choice(len(verts), 12, replace=False) if verts[i] in scc]
    if len(pick) < 2:
        return
    ll = np.array(pick, dtype=float) / 1e7
    xy = np.column_stack(_UTM.transform(ll[:, 0], ll[:, 1]))
    got = network.travel_seconds(g, xy, xy)
    for i, s in enumerate(pick):
        dist = dijkstra(adj, s)
        for j, t in enumerate(pick):
            assert got[i, j] == pytest.approx(dist[t], rel=1e-9, abs=1e-6), (i, j)


def _line(*pts):
    return np.array(pts, dtype=float)


def test_oneway_and_bridges():
    a, b, c, d = (121.20, 31.00), (121.21, 31.00), (121.21, 31.01), (121.20, 31.01)
    # a square: a->b one way, the rest two-way
    lines = [_line(a, b), _line(b, c), _line(c, d), _line(d, a)]
    g = network.build_graph(lines, np.array([36.0] * 4), np.array([1, 0, 0, 0]))
    ll = np.array([a, b])
    xy = np.column_stack(_UTM.transform(ll[:, 0], ll[:, 1]))
    t = network.travel_seconds(g, xy, xy)
    side = float(np.hypot(*np.diff(xy, axis=0)[0]))
    assert t[0, 1] == pytest.approx(side / 10.0, rel=1e-6)  # 36 km/h = 10 m/s
    assert t[1, 0] > 2.5 * t[0, 1]  # the long way round (three sides)
    # a road crossing the square's middle without a shared vertex (a bridge) is not connected to it
    bridge = _line((121.205, 30.995), (121.205, 31.015))
    g2 = network.build_graph([*lines, bridge], np.array([36.0] * 5), np.zeros(5, dtype=int))
    assert g2.main.sum() == 4  # the bridge's two end points form their own component


def test_access_legs_and_straight_line():
    lines = [_line((121.20, 31.00), (121.21, 31.00), (121.22, 31.00))]  # the middle vertex is interior
    g = network.build_graph(lines, np.array([40.0]), np.array([0]))
    ll = np.array([[121.20, 31.00], [121.21, 31.00]])
    xy = np.column_stack(_UTM.transform(ll[:, 0], ll[:, 1]))
    off = xy + np.array([[0.0, 100.0], [0.0, 0.0]])  # 100 m north of the road's west end
    t = network.travel_seconds(g, off, xy)
    along = float(np.hypot(*(xy[1] - xy[0])))
    access = 100.0 * network.ACCESS_FACTOR / (network.ACCESS_SPEED_KMH / 3.6)
    assert t[0, 1] == pytest.approx(access + along / (40 / 3.6), rel=1e-6)
    assert t[0, 0] == pytest.approx(access, rel=1e-6)
    s = network.straight_seconds(xy[:1], xy[1:])
    assert s[0, 0] == pytest.approx(along * network.STRAIGHT_FACTOR / (network.STRAIGHT_SPEED_KMH / 3.6))


def test_demo_network_is_connected_and_plausible():
    from cityops.geo import demo, roadgen

    district = demo.generate(small=True)
    feats = roadgen.generate_basemap(district)
    roads = [f for f in feats if f.layer == "roads"]
    assert {f.kind for f in roads} >= {"motorway", "trunk", "primary", "secondary", "residential"}
    assert any(f.oneway for f in roads) and all(f.name for f in roads if f.kind != "unclassified")
    lines = [np.asarray(f.geom.coords) for f in roads]
    assert len(set(network.line_components(lines).tolist())) == 1
    g = network.build_graph(lines, np.array([f.speed_kmh for f in roads]), np.array([f.oneway for f in roads]))
    assert g.main.mean() > 0.95
    towns = [f for f in feats if f.layer == "places" and f.kind in ("town", "suburb")]
    assert len(towns) == 17
    ll = np.array([t.geom.coords[0] for t in towns])
    xy = np.column_stack(_UTM.transform(ll[:, 0], ll[:, 1]))
    minutes = network.travel_seconds(g, xy, xy) / 60
    assert np.isfinite(minutes).all() and minutes.max() < 90
    straight = network.straight_seconds(xy, xy) / network.STRAIGHT_FACTOR * (network.STRAIGHT_SPEED_KMH / 3.6)
    off = ~np.eye(len(towns), dtype=bool)
    speed = straight[off] / (minutes[off] * 60) * 3.6  # km/h as the crow flies
    assert 10 < np.median(speed) < 80
    # the same seed gives the same map
    again = roadgen.generate_basemap(district)
    assert [f.geom.wkb for f in again] == [f.geom.wkb for f in feats]
