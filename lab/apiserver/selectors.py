"""Label and field selectors of list and watch requests, parsed and matched as the server does.

Label selectors are parsed into ``ironlb.model.LabelSelectorRequirement`` (the schema's own
matchExpressions entry, whose ``matches`` is the one label-matching rule in the project):
equality-based (``a=b``, ``a==b``, ``a!=b``) and set-based (``a in (x,y)``,
``a notin (x)``, ``a``, ``!a``), comma-joined; ``!=`` and ``notin`` also match objects
without the label.  Field selectors: ``metadata.name`` and ``metadata.namespace`` with
``=``, ``==`` or ``!=``; any other field label is a 400 ("field label not supported"),
which is what the real server says for a field a resource does not index.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ironlb.model import LabelSelectorRequirement
from lab.apiserver.status import ApiError, bad_request

Matcher = Callable[[Mapping[str, Any]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def parse_labels(text: str) -> list[LabelSelectorRequirement]:
    """Parse a labelSelector query value (400 when it cannot be parsed)."""
    out = []
    for part in _split(text):
        try:
            if m := _SET.match(part):
                values = tuple(v.strip() for v in m["values"].split(",") if v.strip())
                operator = "In" if m["op"] == "in" else "NotIn"
                out.append(LabelSelectorRequirement(key=m["key"], operator=operator, values=values))
            elif m := _EQ.match(part):
                operator = "NotIn" if m["op"] == "!=" else "In"
                out.append(LabelSelectorRequirement(key=m["key"], operator=operator, values=(m["value"],)))
            elif m := _EXISTS.match(part):
                operator = "DoesNotExist" if m["neg"] else "Exists"
                out.append(LabelSelectorRequirement(key=m["key"], operator=operator))
            else:
                raise ValueError("invalid label selector")
        except ValueError as exc:  # pydantic's ValidationError is one
            raise bad_request(f"unable to parse requirement: {part.strip()!r}: {exc}") from exc
    return out


_FIELD = re.compile(r"^\s*(?P<field>[A-Za-z0-9_.]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^,]*?)\s*$")
FIELDS = ("metadata.name", "metadata.namespace")


def parse_fields(text: str) -> list[tuple[str, bool, str]]:
    """Parse a fieldSelector: [(field, equal?, value)]."""
    out = []
    for part in _split(text):
        m = _FIELD.match(part)
        if m is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part.strip()}'")
        if m["field"] not in FIELDS:
            raise bad_request(
                f'"{m["field"]}" is not a known field selector: only "{FIELDS[0]}", "{FIELDS[1]}"'
            )
        out.append((m["field"], m["op"] != "!=", m["value"]))
    return out


def single_name(field_selector: str) -> str:
    """The name a ``metadata.name=X`` field selector pins a list/watch to ("" if none)."""
    try:
        fields = parse_fields(field_selector) if field_selector else []
    except ApiError:
        return ""
    names = [v for f, eq, v in fields if f == "metadata.name" and eq]
    return names[0] if len(names) == 1 else ""


def matcher(label_selector: str = "", field_selector: str = "") -> Matcher:
    """One predicate over an object's metadata for both selectors (raises 400 on bad syntax)."""
    labels = parse_labels(label_selector) if label_selector else []
    fields = parse_fields(field_selector) if field_selector else []

    def match(obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        have = meta.get("labels") or {}
        if not all(r.matches(have) for r in labels):
            return False
        for name, equal, value in fields:
            actual = str(meta.get(name.split(".", 1)[1]) or "")
            if (actual == value) != equal:
                return False
        return True

    return match
