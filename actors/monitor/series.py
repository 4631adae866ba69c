"""Series keys: a metric name plus labels, written Prometheus-style as ``name{k="v",...}``.

The sample source hands the monitor a flat ``Mapping[str, float]``; labelled series use this key format
(``queue_depth{priority="5"}``), and rules match on the name plus optional label equality matchers.
Keys are canonical: labels sorted by name, values escaped, so one series always has one key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:.]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


class SeriesKeyError(ValueError):
    """A series key or label set that cannot be parsed or written."""


def series_key(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The canonical key of ``name`` with ``labels`` (sorted, escaped)."""
    if not _NAME.match(name):
        raise SeriesKeyError(f"bad metric name {name!r}")
    if not labels:
        return name
    parts = []
    for label in sorted(labels):
        if not _LABEL.match(label):
            raise SeriesKeyError(f"bad label name {label!r}")
        value = labels[label].replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{label}="{value}"')
    return f"{name}{{{','.join(parts)}}}"


def parse_series(key: str) -> tuple[str, dict[str, str]]:
    """Split a key into its metric name and labels; raises `SeriesKeyError` on malformed input."""
    name, brace, rest = key.partition("{")
    if not _NAME.match(name):
        raise SeriesKeyError(f"bad metric name in {key!r}")
    if not brace:
        return name, {}
    if not rest.endswith("}"):
        raise SeriesKeyError(f"unterminated labels in {key!r}")
    return name, _parse_labels(rest[:-1], key)


def _parse_labels(text: str, key: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    i = 0
    while i < len(text):
        eq = text.find('="', i)
        if eq < 0:
            raise SeriesKeyError(f"bad label in {key!r}")
        label = text[i:eq]
        if not _LABEL.match(label):
            raise SeriesKeyError(f"bad label name {label!r} in {key!r}")
        value, i = _read_quoted(text, eq + 2, key)
        labels[label] = value
        if i < len(text):
            if text[i] != ",":
                raise SeriesKeyError(f"expected ',' in {key!r}")
            i += 1
    return labels


def _read_quoted(text: str, i: int, key: str) -> tuple[str, int]:
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    raise SeriesKeyError(f"unterminated label value in {key!r}")


def matches(labels: Mapping[str, str], matchers: Mapping[str, str]) -> bool:
    """True when every matcher label is present in ``labels`` with exactly that value."""
    return all(labels.get(k) == v for k, v in matchers.items())
