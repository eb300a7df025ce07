"""Place from text (pure): find the names a complaint uses (街镇, 居村, road, compound, key place,
organisation) in a gazetteer and propose street / community / grid with a confidence.

Matching is dictionary lookup of every gazetteer name (and short aliases: 岳阳街道 -> 岳阳,
春晓居委会 -> 春晓) at every position of the normalised text, longest match first at each
position, indexed by the names' first two characters (the maximum-matching segmentation of
Liu & Liang 1986 / Wong & Chan 1996 applied to a name dictionary). Evidence is then summed per
street, community and grid with a weight per kind of name (a road that runs through several
streets splits its weight among them); the confidence of the winner is its share of the evidence,
shrunk by a pseudo-count (a single weak match gets a low score).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

# weight of one match by kind (a 街镇 name is the plainest statement of the street)
KIND_WEIGHT = {"street": 1.0, "community": 0.9, "compound": 0.9, "place": 0.9, "organisation": 0.6, "road": 0.7,
               "grid": 0.8, "alias_street": 0.7, "alias_community": 0.5}
PSEUDO = 0.35
STREET_SUFFIXES = ("街道", "镇", "乡")
COMMUNITY_SUFFIXES = ("居委会", "居委", "社区", "村委会", "村")


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str
    street_code: str
    community_code: str | None = None
    grid_code: str | None = None


@dataclass
class Gazetteer:
    entries: list[Entry]
    index: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # first 2 chars -> (name, entry)
    by_name: dict[str, list[int]] = field(default_factory=dict)


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


def build(areas: list[tuple[str, str, str, str | None]], places: list[tuple[str, str, str, str, str]]) -> Gazetteer:
    """A gazetteer from area names ((code, level, name, parent)) and base-data place names
    ((name, kind, grid, community, street))."""
    entries: list[Entry] = []
    parent = {code: p for code, _lvl, _n, p in areas}
    for code, level, name, _p in areas:
        if level == "street":
            entries.append(Entry(name, "street", code))
            for suf in STREET_SUFFIXES:
                if name.endswith(suf) and len(name) - len(suf) >= 2:
                    entries.append(Entry(name[:-len(suf)], "alias_street", code))
                    break
        elif level == "community":
            street = parent.get(code) or code[:9]
            entries.append(Entry(name, "community", street, code))
            for suf in COMMUNITY_SUFFIXES:
                if name.endswith(suf) and len(name) - len(suf) >= 2:
                    stem = name[:-len(suf)]
                    entries.append(Entry(stem, "alias_community", street, code))
                    if suf != "居委":
                        entries.append(Entry(stem + ("居委" if suf == "居委会" else suf), "community", street, code))
                    break
        elif level == "grid" and len(name) >= 4:
            comm = parent.get(code) or code[:12]
            entries.append(Entry(name, "grid", comm[:9], comm, code))
    for name, kind, grid, community, street in places:
        entries.append(Entry(name, kind, street, community, grid if kind != "road" else None))
    g = Gazetteer(entries)
    for i, e in enumerate(entries):
        n = _norm(e.name)
        if len(n) < 2:
            continue
        g.index.setdefault(n[:2], []).append((n, i))
        g.by_name.setdefault(n, []).append(i)
    for lst in g.index.values():
        lst.sort(key=lambda t: -len(t[0]))
    return g


def find(g: Gazetteer, text: str) -> list[tuple[str, int, int]]:
    """The names found in ``text``: (name, start, end), longest at each position, not overlapping."""
    t = _norm(text)
    out: list[tuple[str, int, int]] = []
    i = 0
    while i < len(t) - 1:
        cands = g.index.get(t[i:i + 2])
        hit = None
        if cands:
            for name, _e in cands:
                if t.startswith(name, i):
                    hit = name
                    break
        if hit:
            out.append((hit, i, i + len(hit)))
            i += len(hit)
        else:
            i += 1
    return out


def locate_text(g: Gazetteer, text: str) -> dict[str, Any]:
    """``{"street_code", "community_code", "grid_code", "score", "matched"}`` for one text; codes
    None when nothing matched (score 0)."""
    found = find(g, text)
    street_ev: dict[str, float] = {}
    comm_ev: dict[str, float] = {}
    grid_ev: dict[str, float] = {}
    matched: list[dict[str, Any]] = []
    for name, _s, _e in found:
        idx = g.by_name.get(name, [])
        ents = [g.entries[i] for i in idx]
        for e in ents:
            # an ambiguous name splits its weight: a road among its streets, a name among its entries
            w = KIND_WEIGHT.get(e.kind, 0.5) / max(1, len(ents))
            street_ev[e.street_code] = street_ev.get(e.street_code, 0.0) + w
            if e.community_code and e.kind != "road":
                comm_ev[e.community_code] = comm_ev.get(e.community_code, 0.0) + w
            if e.grid_code:
                grid_ev[e.grid_code] = grid_ev.get(e.grid_code, 0.0) + w
        kinds = sorted({e.kind for e in ents})
        matched.append({"text": name, "kind": kinds[0].replace("alias_", "") if kinds else "name",
                        "codes": sorted({e.grid_code or e.community_code or e.street_code for e in ents})[:5]})
    if not street_ev:
        return {"street_code": None, "community_code": None, "grid_code": None, "score": 0.0, "matched": []}
    total = sum(street_ev.values())
    street = max(sorted(street_ev), key=lambda k: street_ev[k])
    score = street_ev[street] / (total + PSEUDO)
    community = grid = None
    comms = {k: v for k, v in comm_ev.items() if k.startswith(street)}
    if comms:
        community = max(sorted(comms), key=lambda k: comms[k])
        grids = {k: v for k, v in grid_ev.items() if k.startswith(community)}
        if grids:
            grid = max(sorted(grids), key=lambda k: grids[k])
    return {"street_code": street, "community_code": community, "grid_code": grid, "score": round(float(score), 3),
            "matched": matched}
