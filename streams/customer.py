"""Customer display names for the locker screen: "Joe M.", never a table name."""

from __future__ import annotations

import re

# Words staff type in a title that are about the order, not the person.
_NOT_NAMES = frozenset(
    """
    table tbl tab bar booth patio seat counter window terrace deck room
    dine in here dinein takeout take out togo to go pickup pick up carryout carry
    curbside drive thru thru drivethru walk walkin online order orders web phone call
    delivery deliver courier driver guest guests customer cust client party
    asap ready now today tonight lunch dinner breakfast catering staff employee
    the for and of with no extra please
    """.split()  # noqa: SIM905 - a word list reads better as text
)

# Letters only, with inner apostrophes or hyphens and an optional closing period.
_NAME_WORD = re.compile(
    r"^[^\W\d_][^\W\d_'\u2019.-]*(?:['\u2019-][^\W\d_]+)*\.?$", re.UNICODE
)
_MAX_NAME_WORDS = 4


def _capitalised(word: str) -> str:
    """'joe' or 'JOE' becomes 'Joe'; 'McKay' keeps its inner capital."""
    if word.islower() or word.isupper():
        return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))
    return "-".join(part[:1].upper() + part[1:] for part in word.split("-"))


def display_name(first: str | None, last: str | None) -> str | None:
    """First name, then the last initial with a period when a last name is known."""
    first_words = (first or "").split()
    last_words = (last or "").split()
    if not first_words and not last_words:
        return None
    if not first_words:
        first_words, last_words = last_words[:1], last_words[1:]
    given = _capitalised(first_words[0].rstrip("."))
    if not last_words:
        return given
    initial = last_words[-1].strip(".'\u2019-")[:1].upper()
    return f"{given} {initial}." if initial else given


def name_from_words(words: list[str]) -> str | None:
    """The display name that staff-typed words spell, or None if they are no name.

    Words are as typed (case kept). A table, a seat, an order number or any word
    with a digit makes the whole text not a name.
    """
    cleaned = [w.strip(',;:()[]"') for w in words]
    cleaned = [w for w in cleaned if w and w not in {"-", "/", "|", "&", "#"}]
    if not cleaned or len(cleaned) > _MAX_NAME_WORDS:
        return None
    for word in cleaned:
        if not _NAME_WORD.match(word) or word.lower().rstrip(".") in _NOT_NAMES:
            return None
    if len(cleaned) == 1:
        return display_name(cleaned[0], None)
    return display_name(cleaned[0], cleaned[-1])
