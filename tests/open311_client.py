"""A small Open311 GeoReport v2 client written from the specification (wiki.open311.org/GeoReport_v2,
summarised in shared/domain/standards-open311-cap.md Part A). It shares no code with the server:
only httpx and xml.etree. Works over any ``httpx.Client`` (a real server or the app's TestClient).

    c = Open311Client(httpx.Client(base_url="http://127.0.0.1:8000"), "/open311/v2")
    c.services("xml"); c.post_request("json", api_key, "206010", lat=31.0, long=121.2)
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

import httpx

# XML: which elements are lists of which items (a single <service> is still a list)
_LISTS = {"services": "service", "service_requests": "request", "attributes": "attribute", "values": "value",
          "endpoints": "endpoint", "formats": "format", "errors": "error", "notes": "note"}
_BOOLS = {"metadata", "variable", "required"}
_INTS = {"order"}
_FLOATS = {"lat", "long"}
XML_TYPE = "text/xml"
JSON_TYPE = "application/json"


class Open311Error(Exception):
    def __init__(self, status: int, errors: list[dict[str, Any]], content_type: str) -> None:
        self.status = status
        self.errors = errors
        self.content_type = content_type
        super().__init__(f"HTTP {status}: " + "; ".join(str(e.get("description")) for e in errors))


def _scalar(name: str, text: str | None) -> Any:
    if text is None or text == "":
        return None
    if name in _BOOLS:
        if text not in ("true", "false"):
            raise ValueError(f"<{name}> must be true or false, got {text!r}")
        return text == "true"
    if name in _INTS:
        return int(text)
    if name in _FLOATS:
        return float(text)
    return text


def _element(el: ET.Element) -> Any:
    """XML element -> Python, per the spec's shapes (lists by container name, objects otherwise)."""
    if el.tag in _LISTS:
        item = _LISTS[el.tag]
        out = []
        for child in el:
            if child.tag != item:
                raise ValueError(f"<{el.tag}> may only hold <{item}>, found <{child.tag}>")
            out.append(_element(child) if len(child) or child.tag in _LISTS else _scalar(child.tag, child.text))
        return out
    if len(el) == 0:
        return _scalar(el.tag, el.text)
    return {child.tag: _element(child) for child in el}


def parse_xml(body: bytes) -> Any:
    root = ET.fromstring(body)
    return _element(root)


def form_body(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """application/x-www-form-urlencoded pairs; lists repeat the key (attribute[code][]=a&...=b)."""
    pairs: list[tuple[str, str]] = []
    for k, v in fields.items():
        if v is None:
            continue
        if isinstance(v, list | tuple):
            pairs += [(k, str(x)) for x in v]
        else:
            pairs.append((k, str(v)))
    return pairs


class Open311Client:
    def __init__(self, http: httpx.Client, endpoint: str = "/open311/v2", jurisdiction_id: str | None = None) -> None:
        self.http = http
        self.endpoint = endpoint.rstrip("/")
        self.jurisdiction_id = jurisdiction_id
        self.last: httpx.Response | None = None

    # -------------------------------------------------------------- plumbing

    def _check(self, r: httpx.Response, fmt: str) -> Any:
        self.last = r
        ctype = r.headers.get("content-type", "")
        want = XML_TYPE if fmt == "xml" else JSON_TYPE
        if r.status_code >= 400:
            if r.status_code not in (400, 403, 404):
                raise AssertionError(f"the spec allows only HTTP 400/403/404 errors, got {r.status_code}")
            if ctype.startswith(XML_TYPE):
                root = ET.fromstring(r.content)
                if root.tag != "errors":
                    raise AssertionError(f"XML error document must be <errors>, got <{root.tag}>")
                errors = [{"code": int(e.findtext("code") or 0), "description": e.findtext("description")}
                          for e in root.findall("error")]
            else:
                errors = r.json()
                if not isinstance(errors, list):
                    raise AssertionError("a JSON error document must be an array")
            raise Open311Error(r.status_code, errors, ctype)
        if not ctype.startswith(want):
            raise AssertionError(f"expected {want}, got {ctype!r}")
        if "charset=utf-8" not in ctype.replace(" ", "").lower():
            raise AssertionError(f"responses are UTF-8 (content-type {ctype!r})")
        return parse_xml(r.content) if fmt == "xml" else r.json()

    def _get(self, path: str, fmt: str, params: dict[str, Any] | None = None) -> Any:
        q = {k: v for k, v in (params or {}).items() if v is not None}
        if self.jurisdiction_id:
            q.setdefault("jurisdiction_id", self.jurisdiction_id)
        return self._check(self.http.get(f"{self.endpoint}/{path}.{fmt}", params=q), fmt)

    # -------------------------------------------------------------- the API

    def discovery(self, fmt: str = "xml") -> dict[str, Any]:
        return self._check(self.http.get(f"{self.endpoint}/discovery.{fmt}"), fmt)  # type: ignore[no-any-return]

    def services(self, fmt: str = "xml") -> list[dict[str, Any]]:
        return self._get("services", fmt)  # type: ignore[no-any-return]

    def service_definition(self, service_code: str, fmt: str = "xml") -> dict[str, Any]:
        return self._get(f"services/{service_code}", fmt)  # type: ignore[no-any-return]

    def post_request(self, fmt: str, api_key: str | None, service_code: str, *, lat: float | None = None,
                     long: float | None = None, address_string: str | None = None, address_id: str | None = None,
                     attributes: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                     key_in_query: bool = False, **fields: Any) -> list[dict[str, Any]]:
        """``key_in_query``: the api_key in the URL's query string (open311.org's swagger) instead of the form."""
        query = {"api_key": api_key} if key_in_query and api_key is not None else None
        body: dict[str, Any] = {"api_key": None if key_in_query else api_key, "service_code": service_code, "lat": lat, "long": long,
                                "address_string": address_string, "address_id": address_id,
                                "jurisdiction_id": self.jurisdiction_id, **fields}
        for code, v in (attributes or {}).items():
            if isinstance(v, list | tuple):
                body[f"attribute[{code}][]"] = list(v)
            else:
                body[f"attribute[{code}]"] = v
        r = self.http.post(f"{self.endpoint}/requests.{fmt}", params=query, content=httpx.QueryParams(form_body(body)).__str__(),
                           headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                                    **(headers or {})})
        return self._check(r, fmt)  # type: ignore[no-any-return]

    def requests(self, fmt: str = "xml", **params: Any) -> list[dict[str, Any]]:
        return self._get("requests", fmt, params)  # type: ignore[no-any-return]

    def request(self, service_request_id: str, fmt: str = "xml") -> dict[str, Any]:
        got = self._get(f"requests/{service_request_id}", fmt)
        if not isinstance(got, list) or len(got) != 1:
            raise AssertionError(f"GET requests/{{id}} answers a service_requests list of one, got {got!r}")
        return got[0]  # type: ignore[no-any-return]

    def token(self, token: str, fmt: str = "xml") -> dict[str, Any]:
        got = self._get(f"tokens/{token}", fmt)
        if not isinstance(got, list) or len(got) != 1:
            raise AssertionError(f"GET tokens/{{token}} answers a service_requests list of one, got {got!r}")
        return got[0]  # type: ignore[no-any-return]
