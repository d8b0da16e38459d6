"""Delivery platform names as staff and integrators really write them.

Finds a platform in free text: "uber eats", "UberEats", "uber", "grub hub", "e24"
(Eat24, now Grubhub), "DoorDash", "door dash", small misspellings ("grubhb",
"postmats"), any case, with any punctuation around. Text is cut into lower-case words
first, so a match is always on whole words and never inside a customer's name.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from schemas.locker_order import Platform

_ALIASES: dict[str, Platform] = {
    # Uber Eats
    "ubereats": Platform.UBER_EATS,
    "ubereat": Platform.UBER_EATS,
    "ubereatz": Platform.UBER_EATS,
    "uber": Platform.UBER_EATS,
    "ue": Platform.UBER_EATS,
    "ubr": Platform.UBER_EATS,
    "ubreats": Platform.UBER_EATS,
    # DoorDash
    "doordash": Platform.DOORDASH,
    "dd": Platform.DOORDASH,
    "ddash": Platform.DOORDASH,
    # Grubhub, with Eat24 and Seamless, which it absorbed
    "grubhub": Platform.GRUBHUB,
    "grub": Platform.GRUBHUB,
    "gh": Platform.GRUBHUB,
    "eat24": Platform.GRUBHUB,
    "e24": Platform.GRUBHUB,
    "eat24hours": Platform.GRUBHUB,
    "seamless": Platform.GRUBHUB,
    # SkipTheDishes
    "skipthedishes": Platform.SKIP_THE_DISHES,
    "skipdishes": Platform.SKIP_THE_DISHES,
    "skip": Platform.SKIP_THE_DISHES,
    "std": Platform.SKIP_THE_DISHES,
    # Postmates
    "postmates": Platform.POSTMATES,
    "postmate": Platform.POSTMATES,
    # Others a locker can still serve; their codes follow the generic rule.
    "caviar": Platform.OTHER,
    "chownow": Platform.OTHER,
    "waitr": Platform.OTHER,
    "ezcater": Platform.OTHER,
    "deliveroo": Platform.OTHER,
    "justeat": Platform.OTHER,
    "bitesquad": Platform.OTHER,
}

# Long names that tolerate a typo or two; short aliases must match exactly.
_FUZZY_NAMES: dict[str, Platform] = {
    "ubereats": Platform.UBER_EATS,
    "doordash": Platform.DOORDASH,
    "grubhub": Platform.GRUBHUB,
    "postmates": Platform.POSTMATES,
    "skipthedishes": Platform.SKIP_THE_DISHES,
    "eat24hours": Platform.GRUBHUB,
}

_MAX_WINDOW = 3
# A word as typed: letters and digits, with inner apostrophes, hyphens or periods
# ("O'Neil", "Uber-Eats"), and an optional closing period ("M.").
_TYPED_WORD = re.compile(r"[^\W_](?:[\w'\u2019.-]*[^\W_])?\.?", re.UNICODE)
_NOT_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class PlatformMatch:
    """A platform named in a list of words, and which words named it."""

    platform: Platform
    start: int
    end: int


def typed_words(text: str) -> list[str]:
    """The words of ``text`` as typed, without the punctuation around them."""
    return _TYPED_WORD.findall(text)


@functools.lru_cache(maxsize=16384)
def folded(word: str) -> str:
    """A word lower-cased, without accents or punctuation: 'Uber-Eats' -> 'ubereats'."""
    if not word.isascii():
        decomposed = unicodedata.normalize("NFKD", word)
        word = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_ALNUM.sub("", word.lower())


def _typo_distance(a: str, b: str, limit: int) -> int:
    """Edit distance with transpositions, giving up above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost
            )
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _fuzzy(compact: str) -> Platform | None:
    if len(compact) < 6 or not compact.isalpha():
        return None
    for name, platform in _FUZZY_NAMES.items():
        if compact[0] != name[0]:
            continue
        limit = 2 if len(name) >= 9 else 1
        if _typo_distance(compact, name, limit) <= limit:
            return platform
    return None


@functools.lru_cache(maxsize=8192)
def _window_platform(compact: str) -> Platform | None:
    return _ALIASES.get(compact) or _fuzzy(compact)


def find_platform(tokens: list[str]) -> PlatformMatch | None:
    """The first platform named in ``tokens``, preferring the longest wording."""
    return _find_platform(tuple(tokens))


@functools.lru_cache(maxsize=4096)
def _find_platform(tokens: tuple[str, ...]) -> PlatformMatch | None:
    for start in range(len(tokens)):
        for size in range(min(_MAX_WINDOW, len(tokens) - start), 0, -1):
            compact = "".join(tokens[start : start + size])
            platform = _window_platform(compact)
            if platform is not None:
                return PlatformMatch(platform, start, start + size)
    return None


@functools.lru_cache(maxsize=1024)
def platform_in(text: str | None) -> Platform | None:
    """The platform named anywhere in ``text``, if any."""
    if not text:
        return None
    match = find_platform([folded(word) for word in typed_words(text)])
    return match.platform if match else None


_EMAIL_DOMAINS: dict[str, Platform] = {
    "uber.com": Platform.UBER_EATS,
    "ubereats.com": Platform.UBER_EATS,
    "doordash.com": Platform.DOORDASH,
    "grubhub.com": Platform.GRUBHUB,
    "eat24.com": Platform.GRUBHUB,
    "skipthedishes.com": Platform.SKIP_THE_DISHES,
    "postmates.com": Platform.POSTMATES,
}


def platform_of_email(address: str | None) -> Platform | None:
    """The platform whose relay address this is (e.g. ``x@doordash.com``)."""
    if not address or "@" not in address:
        return None
    domain = address.rsplit("@", 1)[1].strip().lower()
    for known, platform in _EMAIL_DOMAINS.items():
        if domain == known or domain.endswith("." + known):
            return platform
    return None
