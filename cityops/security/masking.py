"""Masking (脱敏) of personal data, following the widely used defaults
(see shared/domain/vital-signs-and-security.md §2.3). Pure functions; None passes through."""

from __future__ import annotations

import re

ID_MASK_MODES = {"6+4": (6, 4), "1+2": (1, 2), "3+4": (3, 4)}


def _keep(s: str, head: int, tail: int, star: str = "*") -> str:
    if len(s) <= head + tail:
        return star * len(s)
    return s[:head] + star * (len(s) - head - tail) + (s[-tail:] if tail else "")


def mask_name(v: str | None) -> str | None:
    if not v:
        return v
    return v[0] + "*" * max(1, len(v) - 1) if len(v) > 1 else "*"


def mask_id_number(v: str | None, mode: str = "6+4") -> str | None:
    if not v:
        return v
    head, tail = ID_MASK_MODES.get(mode, (6, 4))
    return _keep(v, head, tail)


def mask_phone(v: str | None) -> str | None:
    if not v:
        return v
    digits = re.sub(r"\D", "", v)
    if len(digits) == 11 and digits.startswith("1"):
        return digits[:3] + "****" + digits[-4:]
    return _keep(digits, 4, 2)  # landline: first 4 + last 2


def mask_plate(v: str | None) -> str | None:
    if not v:
        return v
    if len(v) >= 8:  # new-energy plate
        return v[:4] + "*" * (len(v) - 5) + v[-1]
    return _keep(v, 3, 1)


def mask_bank_card(v: str | None) -> str | None:
    if not v:
        return v
    d = re.sub(r"\D", "", v)
    tail = 4 if len(d) % 4 == 0 else len(d) % 4
    body = d[:4] + "*" * (len(d) - 4 - tail) + d[-tail:]
    return " ".join(body[i:i + 4] for i in range(0, len(body), 4))


def mask_email(v: str | None) -> str | None:
    if not v or "@" not in v:
        return v
    local, domain = v.split("@", 1)
    return local[:1] + "*" * max(1, len(local) - 1) + "@" + domain


def mask_address(v: str | None, keep: str | None = None) -> str | None:
    """Cut an address to community level: keep the given prefix (e.g. the community's full
    name) when it matches, otherwise keep the district/street part before the road name."""
    if not v:
        return v
    if keep and v.startswith(keep):
        return keep + "****"
    m = re.match(r"^(.*?(?:区|县))(.*?(?:街道|镇|乡))?", v)
    if m:
        return (m.group(1) + (m.group(2) or "")) + "****"
    return v[: max(0, len(v) - 8)] + "*" * min(8, len(v))


def mask_ip(v: str | None) -> str | None:
    if not v:
        return v
    parts = v.split(".")
    return parts[0] + ".*.*.*" if len(parts) == 4 else v
