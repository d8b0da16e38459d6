"""Clover's list query language: ``filter=``, ``orderBy=``, ``expand=``, ``limit``
and ``offset``."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.clover_rejection import Rejection

Doc = dict[str, Any]
Predicate = Callable[[Doc], bool]

ALLOWED_FILTER_FIELDS = ("id", "modifiedTime")
ORDER_EXPANSIONS = frozenset(
    {"lineItems", "lineItems.modifications", "orderType", "customers", "payments"}
)

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_TIME_FILTER = re.compile(r"^\s*modifiedTime\s*(>=|<=|>|<|=)\s*(-?\d{1,18})\s*$")
# Clover documents ``id in ('ID1','ID2')``: each id in single quotes. Unquoted ids
# are refused here, so nothing that works only against the sandbox slips through.
_ID_IN_FILTER = re.compile(r"^\s*id\s+in\s*\(([^()]*)\)\s*$", re.IGNORECASE)
_QUOTED_ID = re.compile(r"^\s*'([A-Za-z0-9]+)'\s*$")
_ID_EQ_FILTER = re.compile(r"^\s*id\s*=\s*([A-Za-z0-9]+)\s*$")


def _bad(message: str) -> Rejection:
    return Rejection(message, status=400, outcome="bad_request")


@dataclass(frozen=True)
class Selection:
    """What a list request's filters select: a predicate, and the lowest
    modifiedTime it can accept (None when unbounded), to start a scan from."""

    keep: Predicate
    since_ms: int | None = None


def parse_filter(text: str) -> Selection:
    """One ``filter=`` value as a selection of orders; 400 for anything else."""
    time_match = _TIME_FILTER.match(text)
    if time_match:
        op, bound_ms = time_match.group(1), int(time_match.group(2))
        compare = _COMPARISONS[op]
        since_ms = {">=": bound_ms, "=": bound_ms, ">": bound_ms + 1}.get(op)
        return Selection(
            lambda doc: bool(compare(doc["modifiedTime"], bound_ms)), since_ms
        )
    in_match = _ID_IN_FILTER.match(text)
    if in_match:
        wanted = _quoted_ids(in_match.group(1))
        return Selection(lambda doc: doc["id"] in wanted)
    eq_match = _ID_EQ_FILTER.match(text)
    if eq_match:
        only = eq_match.group(1)
        return Selection(lambda doc: bool(doc["id"] == only))
    allowed = ", ".join(ALLOWED_FILTER_FIELDS)
    raise _bad(f"Unsupported filter {text!r}; filterable fields: {allowed}")


def _quoted_ids(text: str) -> frozenset[str]:
    """The ids of an ``in`` list, each in single quotes; 400 otherwise."""
    ids = []
    for part in text.split(","):
        match = _QUOTED_ID.match(part)
        if match is None:
            raise _bad(f"Bad id list in filter: ids go in single quotes, got {part!r}")
        ids.append(match.group(1))
    return frozenset(ids)


def parse_filters(values: Iterable[str]) -> Selection:
    """Every ``filter=`` of a request, ANDed."""
    parts = [parse_filter(value) for value in values]
    bounds = [part.since_ms for part in parts if part.since_ms is not None]
    predicates = [part.keep for part in parts]
    return Selection(
        lambda doc: all(predicate(doc) for predicate in predicates),
        max(bounds) if bounds else None,
    )


def parse_expand(values: Iterable[str], allowed: frozenset[str]) -> frozenset[str]:
    """The expansions asked for (comma-separated, repeatable); 400 for unknown ones."""
    asked = {part.strip() for value in values for part in value.split(",")}
    asked.discard("")
    unknown = asked - allowed
    if unknown:
        raise _bad(f"Unknown expand {', '.join(sorted(unknown))}")
    return frozenset(asked)


ORDER_BY_FIELDS = ("createdTime", "modifiedTime", "id")
_ORDER_TERM = re.compile(r"^\s*([A-Za-z]+)(?:\s+(ASC|DESC))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Ordering:
    """How a listing is sorted: (field, descending) terms, most significant first."""

    terms: tuple[tuple[str, bool], ...]

    @property
    def by_modified_time(self) -> bool:
        """Ascending modifiedTime first: the order the book keeps (no two orders of
        a merchant share a modifiedTime, so later terms change nothing)."""
        return bool(self.terms) and self.terms[0] == ("modifiedTime", False)

    def sort(self, docs: list[Doc]) -> list[Doc]:
        if self.by_modified_time:
            return docs
        ordered = docs
        # Stable sorts from the least significant term up give the whole ordering.
        for field, descending in reversed(self.terms):
            ordered = sorted(ordered, key=_sort_key(field), reverse=descending)
        return ordered


def _sort_key(field: str) -> Callable[[Doc], Any]:
    missing = "" if field == "id" else 0
    return lambda doc: doc.get(field) or missing


# Clover: "The default sort order is descending by creation time."
DEFAULT_ORDERING = Ordering((("createdTime", True), ("id", False)))


def parse_order_by(values: Iterable[str]) -> Ordering:
    """``orderBy=field [ASC|DESC], ...`` (ascending when no direction); 400 else."""
    terms: list[tuple[str, bool]] = []
    for value in values:
        for part in value.split(","):
            match = _ORDER_TERM.match(part)
            if match is None or match.group(1) not in ORDER_BY_FIELDS:
                allowed = ", ".join(ORDER_BY_FIELDS)
                raise _bad(f"Unsupported orderBy {part!r}; sortable fields: {allowed}")
            terms.append((match.group(1), (match.group(2) or "").upper() == "DESC"))
    return Ordering(tuple(terms)) if terms else DEFAULT_ORDERING


@dataclass(frozen=True)
class Page:
    """Which slice of a listing a request asked for."""

    limit: int
    offset: int


def parse_page(
    limit_text: str | None, offset_text: str | None, default: int, maximum: int
) -> Page:
    """``limit`` (clamped to the maximum, as Clover does) and ``offset``."""
    limit = _non_negative("limit", limit_text, default)
    if limit == 0:
        raise _bad("limit must be at least 1")
    return Page(min(limit, maximum), _non_negative("offset", offset_text, 0))


def _non_negative(name: str, text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad(f"{name} must be an integer") from None
    if value < 0:
        raise _bad(f"{name} must not be negative")
    return value
