"""Where an order came from: in the store, or from which delivery platform.

Real orders say it in many places, none of them reliable alone: the order type's
label, the external reference id an integrator set, a multi-line note
("Joe M / UBER EATS / DELIVERY 18:37"), a title staff typed ("uber eats Rebecca",
"connor uber", "e24 Ashley A"), and the customer record an integrator created. Each
place is read on its own; `find_origin` then weighs them, the more structured first.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import NamedTuple

from schemas.clover import CloverCustomer, CloverOrder, CloverOrderType
from schemas.locker_order import Channel, Platform
from streams.customer import display_name, name_from_words
from streams.platform import (
    find_platform,
    folded,
    platform_in,
    platform_of_email,
    typed_words,
)

_DELIVERY_TYPES = frozenset({"delivery", "deliverytype", "delivery3p", "thirdparty"})
_UUID = re.compile(
    r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I
)
_CODE = re.compile(r"^[A-Za-z0-9]{3,12}$")
_REFERENCE_PART = re.compile(r"[A-Za-z0-9]+")
_NOT_DIGIT = re.compile(r"[^0-9]+")
_UBER_CODE_LENGTH = 5
# A clock time: "18:37", "6.30 pm", "6:30PM", "7 pm".
_CLOCK = re.compile(
    r"\b(?P<h>[01]?\d|2[0-3])(?:[:.h](?P<m>[0-5]\d))?\s*(?P<ampm>[ap]\.?m\.?)?(?!\w)",
    re.I,
)
_TIME_WORDS = frozenset(
    {"delivery", "deliver", "pickup", "pick", "ready", "due", "eta", "pu", "by", "at"}
)
_CODE_WORDS = frozenset({"code", "confirmation", "conf", "pin"})
_REFERENCE_WORDS = frozenset({"ref", "reference", "id", "tracking"})
_LABELS = re.compile(r"^\s*(?:customer|name|for|client)\s*[:=-]\s*(?P<name>.+)$", re.I)
_NOTE_SPLIT = re.compile(r"[\r\n|/;]+")
_MAX_NOTE_LINES = 20
_FILLER = frozenset(
    {"order", "delivery", "pickup", "pick", "up", "for", "customer", "from", "via"}
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Channel, platform and what the order's text says about its customer."""

    channel: Channel
    platform: Platform | None
    platform_order_code: str | None
    customer_name: str | None
    phone_digits: str | None
    ready_clock: tuple[int, int] | None


class _Clue(NamedTuple):
    """What one place of the order says; every part may be missing.

    A named tuple: an order makes several, and a tuple is built several times
    faster than a frozen dataclass.
    """

    platform: Platform | None = None
    delivery: bool = False
    code: str | None = None
    name: str | None = None
    clock: tuple[int, int] | None = None


# A clue says nothing more often than not; one shared instance serves all of those.
_NO_CLUE = _Clue()


def _uuid_code(uuid: str) -> str:
    """The courier-facing code of a stripped UUID: its last five, upper-case."""
    return uuid.replace("-", "")[-_UBER_CODE_LENGTH:].upper()


def platform_code(reference: str | None) -> str | None:
    """The courier-facing code in a reference id: a UUID's last five, upper-case."""
    if not reference:
        return None
    compact = reference.strip()
    if _UUID.match(compact):
        return _uuid_code(compact)
    if _CODE.match(compact):
        return compact.upper()
    return None


def _order_type_clue(order_type: CloverOrderType | None) -> _Clue:
    if order_type is None:
        return _NO_CLUE
    return _order_type_texts_clue(
        order_type.label, order_type.label_key, order_type.system_order_type_id
    )


@functools.lru_cache(maxsize=4096)
def _order_type_texts_clue(*texts: str | None) -> _Clue:
    # A merchant has a handful of order types, so their clues repeat.
    for text in texts:
        platform = platform_in(text)
        if platform is not None:
            return _Clue(platform=platform, delivery=True)
    for text in texts:
        words = {folded(w) for w in typed_words(text or "")}
        if words & _DELIVERY_TYPES:
            return _Clue(delivery=True)
    return _NO_CLUE


def _reference_clue(reference: str | None) -> _Clue:
    if not reference:
        return _NO_CLUE
    compact = reference.strip()
    if _UUID.match(compact):
        return _Clue(code=_uuid_code(compact))
    words = _REFERENCE_PART.findall(reference)
    match = find_platform([w.lower() for w in words])
    if match is None:
        # An integrator's own id says nothing a courier could type.
        return _NO_CLUE
    rest = "-".join(words[match.end :]) or "-".join(words[: match.start])
    return _Clue(platform=match.platform, delivery=True, code=platform_code(rest))


def _clock(text: str) -> tuple[int, int] | None:
    match = _CLOCK.search(text)
    if match is None or (match.group("m") is None and match.group("ampm") is None):
        return None
    hour = int(match.group("h"))
    minute = int(match.group("m") or 0)
    ampm = (match.group("ampm") or "").lower().replace(".", "")
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    return hour, minute


def _code_in_line(words: list[str], keys: list[str]) -> str | None:
    if not set(keys) & _CODE_WORDS or set(keys) & _REFERENCE_WORDS:
        return None
    for word in reversed(words):
        if _CODE.match(word) and any(ch.isdigit() for ch in word):
            return word.upper()
    return None


@dataclass(frozen=True, slots=True)
class _LineFacts:
    """What one line of a note says."""

    platform: Platform | None
    delivery: bool
    clock: tuple[int, int] | None
    code: str | None
    labelled: str | None


@functools.lru_cache(maxsize=8192)
def _line_facts(line: str) -> _LineFacts:
    words = typed_words(line)
    keys = [folded(w) for w in words]
    match = find_platform(keys)
    label = _LABELS.match(line)
    return _LineFacts(
        platform=match.platform if match else None,
        delivery=bool(keys) and keys[0] in {"delivery", "deliver"},
        clock=_clock(line) if set(keys) & _TIME_WORDS else None,
        code=_code_in_line(words, keys),
        labelled=name_from_words(typed_words(label.group("name"))) if label else None,
    )


@functools.lru_cache(maxsize=8192)
def _line_name(line: str) -> str | None:
    """The name a note's first line spells ("Joe Martin"), if it is one."""
    return name_from_words(typed_words(line))


def _note_clue(note: str | None) -> _Clue:
    if not note:
        return _NO_CLUE
    lines = [ln for ln in map(str.strip, _NOTE_SPLIT.split(note)) if ln]
    facts = [_line_facts(line) for line in lines[:_MAX_NOTE_LINES]]
    # Each part is the first line's that says it (one pass, no generators).
    platform: Platform | None = None
    code: str | None = None
    clock: tuple[int, int] | None = None
    name: str | None = None
    delivery = False
    for fact in facts:
        if platform is None and fact.platform:
            platform = fact.platform
        if code is None and fact.code:
            code = fact.code
        if clock is None and fact.clock:
            clock = fact.clock
        if name is None and fact.labelled:
            name = fact.labelled
        delivery = delivery or fact.delivery
    delivery = delivery or platform is not None
    if name is None and delivery and facts and facts[0].platform is None:
        name = _line_name(lines[0])
    return _Clue(platform, delivery, code, name, clock)


def _title_clue(title: str | None) -> _Clue:
    if not title:
        return _NO_CLUE
    words = typed_words(title)
    keys = [folded(w) for w in words]
    match = find_platform(keys)
    if match is None:
        return _Clue(name=name_from_words(words))
    rest = words[: match.start] + words[match.end :]
    rest = [w for w in rest if folded(w) not in _FILLER]
    codes = [w for w in rest if _CODE.match(w) and any(ch.isdigit() for ch in w)]
    name_words = [w for w in rest if w not in codes]
    return _Clue(
        platform=match.platform,
        delivery=True,
        code=codes[-1].upper() if codes else None,
        name=name_from_words(name_words),
    )


def _digits(text: str) -> str:
    """The digits of ``text`` (any script's, as `str.isdigit` sees them)."""
    if text.isascii():
        return _NOT_DIGIT.sub("", text)
    return "".join(ch for ch in text if ch.isdigit())


def _customer_clue(customers: list[CloverCustomer]) -> tuple[_Clue, str | None]:
    """What the customer records say, and the first phone number's digits."""
    phone: str | None = None
    for customer in customers:
        for number in customer.phone_numbers:
            digits = _digits(number.phone_number or "")
            if digits and phone is None:
                phone = digits
    for customer in customers:
        full = " ".join(filter(None, (customer.first_name, customer.last_name)))
        platform = platform_in(full)
        for email in customer.email_addresses:
            platform = platform or platform_of_email(email.email_address)
        if platform is not None:
            # An integrator's placeholder ("DoorDash Customer") names no person.
            return _Clue(platform=platform, delivery=True), phone
        name = display_name(customer.first_name, customer.last_name)
        if name is not None:
            return _Clue(name=name), phone
    return _NO_CLUE, phone


def find_origin(order: CloverOrder) -> Origin:
    """Weigh every clue of ``order`` into one channel, platform and customer."""
    by_type = _order_type_clue(order.order_type)
    by_reference = _reference_clue(order.external_reference_id)
    by_note = _note_clue(order.note)
    by_customer, phone = _customer_clue(order.customers)
    # Platforms are non-empty text, so `or` takes the first one found.
    platform = by_type.platform or by_reference.platform or by_note.platform
    name = by_customer.name or by_note.name
    code = by_reference.code or by_note.code
    # The title is read only when the clues above leave something open.
    known = platform is not None and name is not None and code is not None
    by_title = _NO_CLUE if known else _title_clue(order.title)

    platform = platform or by_title.platform or by_customer.platform
    delivery = (
        platform is not None
        or by_type.delivery
        or by_reference.delivery
        or by_note.delivery
        or by_title.delivery
        or by_customer.delivery
    )
    name = name or by_title.name
    clock = by_note.clock
    if not delivery:
        return Origin(Channel.IN_STORE, None, None, name, phone, clock)
    code = code or by_title.code
    return Origin(
        Channel.DELIVERY, platform or Platform.OTHER, code, name, phone, clock
    )
