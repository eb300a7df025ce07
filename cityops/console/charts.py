"""Small server-rendered SVG charts and maps (bars, lines, a choropleth map of our own areas).

Rendered from data in Python so that the evaluation page and the daily briefing print and turn
into PDF without any script; only SVG presentation attributes are used (no inline CSS), so the
console's strict Content-Security-Policy holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

TEXT = "#e8f0fb"
MUTED = "#9fb3cc"
AXIS = "#3b5b82"
BAR = "#3cc8ff"
PALETTE = ["#3cc8ff", "#2ecc71", "#f5c542", "#ff8787", "#c58cff", "#ffa94d", "#63e6be", "#74c0fc", "#e599f7", "#ffd43b"]
CHORO = ["#0b2a4a", "#114b7a", "#1b6fa8", "#3f8fc9", "#f0b429", "#f76707", "#e03131"]
CHORO_LIGHT = ["#dbe9f6", "#b7d3ec", "#86b6dd", "#5495c9", "#fdae6b", "#f16913", "#c2410c"]
SLA = {"green": "#2ecc71", "yellow": "#f5c542", "red": "#ff5c5c", "none": "#8fa3bf"}


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.1f}"


def _svg(width: int, height: int, body: list[str], title: str, light: bool) -> str:
    text = "#1a2433" if light else TEXT
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}" font-family="WenQuanYi Micro Hei, sans-serif" fill="{text}">'
            f"<title>{escape(title)}</title>{''.join(body)}</svg>")


def hbar_chart(items: Sequence[tuple[str, float]], title: str, *, width: int = 420, value_fmt: Any = None,
               max_value: float | None = None, light: bool = False, color: str = BAR) -> str:
    """Horizontal bars, one row per (label, value)."""
    if not items:
        return _svg(width, 40, [f'<text x="8" y="24" fill="{MUTED}">—</text>'], title, light)
    row = 22
    label_w = 110
    val_w = 60
    height = row * len(items) + 8
    top = max_value if max_value is not None else max((v for _, v in items), default=0) or 1
    fmt = value_fmt or _fmt
    body = []
    for i, (label, v) in enumerate(items):
        y = 4 + i * row
        w = max(0.0, (width - label_w - val_w - 8) * (v or 0) / top)
        body.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">{escape(str(label)[:10])}</text>')
        body.append(f'<rect x="{label_w}" y="{y + 4}" width="{width - label_w - val_w - 8}" height="13" rx="3" '
                    f'fill="{"#e6edf5" if light else "#0a1a2e"}"/>')
        body.append(f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="13" rx="3" fill="{color}"/>')
        body.append(f'<text x="{width - 4}" y="{y + 15}" text-anchor="end" font-size="12">{escape(fmt(v))}</text>')
    return _svg(width, height, body, title, light)


def column_chart(items: Sequence[tuple[str, float]], title: str, *, width: int = 520, height: int = 200,
                 light: bool = False, color: str = BAR) -> str:
    """Vertical columns (e.g. intake by hour)."""
    n = max(len(items), 1)
    pad_l, pad_b, pad_t = 34, 22, 10
    plot_w, plot_h = width - pad_l - 6, height - pad_b - pad_t
    top = max((v for _, v in items), default=0) or 1
    step = plot_w / n
    axis = "#9aa8b8" if light else AXIS
    body = [f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 4}" y2="{pad_t + plot_h}" stroke="{axis}"/>',
            f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end" font-size="10">{escape(_fmt(top))}</text>',
            f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" text-anchor="end" font-size="10">0</text>']
    every = max(1, math.ceil(n / 12))
    for i, (label, v) in enumerate(items):
        h = plot_h * (v or 0) / top
        x = pad_l + i * step + step * 0.15
        body.append(f'<rect x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                    f'fill="{color}"><title>{escape(str(label))}: {escape(_fmt(v))}</title></rect>')
        if i % every == 0:
            body.append(f'<text x="{x + step * 0.35:.1f}" y="{height - 6}" text-anchor="middle" font-size="10">'
                        f"{escape(str(label))}</text>")
    return _svg(width, height, body, title, light)


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], title: str, *,
               width: int = 520, height: int = 220, percent: bool = False, light: bool = False) -> str:
    """Lines over shared x labels; ``None`` values leave gaps."""
    pad_l, pad_b, pad_t, pad_r = 40, 24, 12, 8
    plot_w, plot_h = width - pad_l - pad_r, height - pad_b - pad_t
    vals = [v for _, s in series for v in s if v is not None]
    lo = 0.0
    hi = (1.0 if percent else (max(vals) if vals else 1.0)) or 1.0
    if percent and vals:
        lo = max(0.0, math.floor(min(vals) * 10) / 10 - 0.1)
    n = max(len(labels), 2)
    axis = "#9aa8b8" if light else AXIS

    def xy(i: int, v: float) -> tuple[float, float]:
        return pad_l + plot_w * i / (n - 1), pad_t + plot_h * (1 - (v - lo) / ((hi - lo) or 1))

    body = []
    for frac in (0, 0.5, 1):
        v = lo + (hi - lo) * frac
        _, y = xy(0, v)
        body.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}" stroke="{axis}" '
                    f'stroke-dasharray="{"" if frac == 0 else "3 3"}"/>')
        body.append(f'<text x="{pad_l - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">'
                    f'{f"{v * 100:.0f}%" if percent else escape(_fmt(v))}</text>')
    every = max(1, math.ceil(len(labels) / 8))
    for i, lab in enumerate(labels):
        last = i == len(labels) - 1 and i % every >= max(1, every // 2 + 1)
        if i % every == 0 or last:
            x, _ = xy(i, lo)
            body.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" font-size="10">{escape(lab)}</text>')
    for k, (name, s) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        parts: list[str] = []
        pen = "M"
        for i, val in enumerate(s):
            if val is None:
                pen = "M"
                continue
            v = float(val)
            x, y = xy(i, v)
            parts.append(f"{pen}{x:.1f},{y:.1f}")
            pen = "L"
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"><title>{escape(labels[i])}: '
                        f'{f"{v * 100:.1f}%" if percent else escape(_fmt(v))}</title></circle>')
        if parts:
            body.append(f'<path d="{" ".join(parts)}" fill="none" stroke="{color}" stroke-width="2"/>')
        if len(series) > 1:
            body.append(f'<text x="{pad_l + 8 + k * 110}" y="{pad_t + 10}" font-size="11" fill="{color}">■ {escape(name)}</text>')
    return _svg(width, height, body, title, light)


def breaks(values: Sequence[float], k: int = 6) -> list[float]:
    """Quantile class breaks (upper bounds) for a choropleth; empty when nothing is above zero."""
    vals = sorted(v for v in values if v and v > 0)
    if not vals:
        return []
    out: list[float] = []
    for i in range(1, k + 1):
        q = vals[min(len(vals) - 1, max(0, math.ceil(len(vals) * i / k) - 1))]
        if not out or q > out[-1]:
            out.append(float(q))
    return out


def class_color(v: float | None, brks: Sequence[float], palette: Sequence[str] = CHORO) -> str | None:
    if v is None or v <= 0 or not brks:
        return None
    i = 0
    while i < len(brks) and v > brks[i]:
        i += 1
    return palette[min(i, len(palette) - 1)]


def map_svg(areas: Sequence[tuple[str, str, BaseGeometry]], values: dict[str, float], points: Sequence[tuple[float, float, str]],
            title: str, *, width: int = 640, height: int = 520, light: bool = False, labels: bool = True) -> str:
    """A choropleth of ``areas`` (code, name, geometry in WGS-84) by ``values`` with case points
    (lon, lat, sla) on top, in an equirectangular projection scaled by cos(latitude)."""
    if not areas:
        return _svg(width, 40, [f'<text x="8" y="24" fill="{MUTED}">—</text>'], title, light)
    minx, miny, maxx, maxy = shapely.total_bounds([g for _, _, g in areas])
    kx = math.cos(math.radians((miny + maxy) / 2))
    sx = (width - 20) / max((maxx - minx) * kx, 1e-9)
    sy = (height - 20) / max(maxy - miny, 1e-9)
    s = min(sx, sy)
    ox = (width - (maxx - minx) * kx * s) / 2
    oy = (height - (maxy - miny) * s) / 2

    def px(lon: float, lat: float) -> tuple[float, float]:
        return ox + (lon - minx) * kx * s, oy + (maxy - lat) * s

    brks = breaks(list(values.values()))
    stroke = "#3c5a7a" if light else "#4fd1ff"
    empty = "#eef2f6" if light else "#0b1a2e"
    body = []
    tol = 0.6 / s  # drop detail below ~0.6 px
    for code, name, geom in areas:
        g = shapely.simplify(geom, tol, preserve_topology=True)
        polys = list(getattr(g, "geoms", [g]))
        d = []
        for poly in polys:
            for ring in [poly.exterior, *poly.interiors]:
                pts = [px(x, y) for x, y in ring.coords]
                d.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts) + " Z")
        fill = class_color(values.get(code), brks, CHORO_LIGHT if light else CHORO) or empty
        body.append(f'<path d="{" ".join(d)}" fill="{fill}" fill-opacity="0.85" stroke="{stroke}" stroke-width="0.8" '
                    f'fill-rule="evenodd"><title>{escape(name)}: {escape(_fmt(values.get(code, 0)))}</title></path>')
    for lon, lat, sla in points:
        x, y = px(lon, lat)
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{SLA.get(sla, SLA["none"])}" fill-opacity="0.9"/>')
    if labels:
        for _code, name, geom in areas:
            c = geom.representative_point()
            x, y = px(c.x, c.y)
            body.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" font-size="11" '
                        f'stroke="{"#ffffff" if light else "#000000"}" stroke-width="2.5" paint-order="stroke">'
                        f"{escape(name)}</text>")
    if brks:
        lx, ly = 10, height - 16
        body.append(f'<text x="{lx}" y="{ly - 6}" font-size="10">{escape(title)}</text>')
        for i, _b in enumerate(brks):
            pal = CHORO_LIGHT if light else CHORO
            body.append(f'<rect x="{lx + i * 22}" y="{ly}" width="22" height="8" fill="{pal[min(i, len(pal) - 1)]}"/>')
        body.append(f'<text x="{lx + len(brks) * 22 + 4}" y="{ly + 8}" font-size="10">≤ {escape(_fmt(brks[-1]))}</text>')
    return _svg(width, height, body, title, light)
