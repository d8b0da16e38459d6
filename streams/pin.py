"""Which PINs an order may get, best first; the ledger then picks a free one.

A delivery PIN is built from what the courier already has: the platform's order code
(Uber Eats shows the last five characters of its order UUID), or the last digits of
the customer's phone. On a numeric keypad letters become the digit of their
phone-keypad key, so "BC953" is typed as 22953. When the preferred PIN is taken by
another active order, the alternatives follow from a hash of the store, the order and
the PIN, so the same collision is always resolved the same way. In-store orders
always get a random PIN from the operating system's cryptographic source.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from lockerlink.registry import Keypad, PinRule
from schemas.locker_order import Channel, PinPolicyName
from streams.origin import Origin

CANDIDATES = 6
MIN_PIN_LENGTH = 3

_KEYPAD = {
    letter: digit
    for digit, letters in {
        "2": "ABC",
        "3": "DEF",
        "4": "GHI",
        "5": "JKL",
        "6": "MNO",
        "7": "PQRS",
        "8": "TUV",
        "9": "WXYZ",
    }.items()
    for letter in letters
}
_KEYPAD_TABLE = str.maketrans(_KEYPAD)
_DIGITS = "0123456789"
# No 0/O or 1/I: a courier reads these off a phone screen.
_LETTERS_AND_DIGITS = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
# Every byte value to one of the 32 characters, evenly (256 = 8 x 32).
_ALNUM_TABLE = bytes(ord(_LETTERS_AND_DIGITS[b % 32]) for b in range(256))
# Alternatives only need to be repeatable, not uniform: a byte modulo 10 will do.
_DIGIT_TABLE = bytes(ord(_DIGITS[b % 10]) for b in range(256))


@dataclass(frozen=True, slots=True)
class PinPlan:
    """The PINs an order may get, in order of preference, and what they are made of."""

    policy: PinPolicyName
    candidates: tuple[str, ...]


def on_keypad(code: str, keypad: Keypad) -> str:
    """``code`` as typed on ``keypad``: upper-case, letters as digits if numeric."""
    upper = code.upper()
    if not (upper.isascii() and upper.isalnum()):
        upper = "".join(ch for ch in upper if ch.isascii() and ch.isalnum())
    if keypad is Keypad.ALPHANUMERIC:
        return upper
    return upper.translate(_KEYPAD_TABLE)


def _alphabet(keypad: Keypad) -> str:
    return _DIGITS if keypad is Keypad.NUMERIC else _LETTERS_AND_DIGITS


def random_pins(rule: PinRule, count: int) -> tuple[str, ...]:
    """``count`` unguessable PINs of the rule's length and keypad.

    One read of the OS source serves them all. A numeric PIN is an 8-byte random
    number modulo 10**length (leftover bias below one in ten million); an
    alphanumeric one takes 5 random bits per character from a 32-letter alphabet.
    """
    if rule.keypad is Keypad.NUMERIC:
        entropy = secrets.token_bytes(8 * count)
        modulus = 10**rule.length
        return tuple(
            str(int.from_bytes(entropy[i : i + 8], "big") % modulus).zfill(rule.length)
            for i in range(0, 8 * count, 8)
        )
    letters = secrets.token_bytes(rule.length * count).translate(_ALNUM_TABLE).decode()
    return tuple(
        letters[i : i + rule.length] for i in range(0, rule.length * count, rule.length)
    )


def _alternates(base: str, keypad: Keypad, seed: str, count: int) -> list[str]:
    """PINs like ``base`` (same length and keypad) derived from ``seed``."""
    table = _DIGIT_TABLE if keypad is Keypad.NUMERIC else _ALNUM_TABLE
    size = len(base)
    stream = hashlib.shake_256(f"{seed}\x1f{base}".encode()).digest(size * count)
    chars = stream.translate(table).decode()
    return [chars[i : i + size] for i in range(0, size * count, size)]


def _from_code(origin: Origin, rule: PinRule) -> str | None:
    if origin.platform_order_code is None:
        return None
    typed = on_keypad(origin.platform_order_code, rule.keypad)[-rule.length :]
    return typed if len(typed) >= MIN_PIN_LENGTH else None


def _from_phone(origin: Origin, rule: PinRule) -> str | None:
    digits = origin.phone_digits or ""
    return digits[-rule.length :] if len(digits) >= rule.length else None


def plan_pin(rule: PinRule, origin: Origin, *, store_id: str, order_id: str) -> PinPlan:
    """The PINs ``rule`` allows for this order, best first.

    A platform code falls back to the phone's digits, and those to a random PIN, when
    the order does not carry them.
    """
    base: str | None = None
    policy = PinPolicyName.RANDOM
    if origin.channel is Channel.DELIVERY:
        if rule.source is PinPolicyName.PLATFORM_CODE:
            base = _from_code(origin, rule)
            policy = PinPolicyName.PLATFORM_CODE
        if base is None and rule.source is not PinPolicyName.RANDOM:
            base = _from_phone(origin, rule)
            policy = PinPolicyName.PHONE_DIGITS
    if base is None:
        return PinPlan(PinPolicyName.RANDOM, random_pins(rule, CANDIDATES))
    seed = f"{store_id}\x1f{order_id}"
    return PinPlan(
        policy, (base, *_alternates(base, rule.keypad, seed, CANDIDATES - 1))
    )
