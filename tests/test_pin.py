"""PIN plans: what a courier can type, and unguessable PINs for in-store orders."""

from __future__ import annotations

from lockerlink.registry import Keypad, PinRule
from schemas.locker_order import Channel, PinPolicyName, Platform
from streams.origin import Origin
from streams.pin import CANDIDATES, on_keypad, plan_pin, random_pins

CODE_RULE = PinRule(source=PinPolicyName.PLATFORM_CODE, length=5)


def _delivery(code: str | None = None, phone: str | None = None) -> Origin:
    return Origin(Channel.DELIVERY, Platform.UBER_EATS, code, None, phone, None)


def test_numeric_keypad_maps_letters_to_phone_keys() -> None:
    assert on_keypad("BC953", Keypad.NUMERIC) == "22953"
    assert on_keypad("pqrs-wxyz", Keypad.NUMERIC) == "77779999"
    assert on_keypad("bc953", Keypad.ALPHANUMERIC) == "BC953"


def test_platform_code_comes_first_then_deterministic_alternatives() -> None:
    one = plan_pin(CODE_RULE, _delivery("BC953"), store_id="s", order_id="O1")
    two = plan_pin(CODE_RULE, _delivery("BC953"), store_id="s", order_id="O1")
    other = plan_pin(CODE_RULE, _delivery("BC953"), store_id="s", order_id="O2")
    assert one.policy is PinPolicyName.PLATFORM_CODE
    assert one.candidates[0] == "22953"
    assert one == two
    assert other.candidates[0] == "22953"
    assert other.candidates[1:] != one.candidates[1:]
    assert len(one.candidates) == CANDIDATES
    assert all(len(pin) == 5 and pin.isdigit() for pin in one.candidates)


def test_missing_code_falls_back_to_phone_then_random() -> None:
    phone = plan_pin(
        CODE_RULE, _delivery(phone="14165550199"), store_id="s", order_id="O"
    )
    assert phone.policy is PinPolicyName.PHONE_DIGITS
    assert phone.candidates[0] == "50199"
    nothing = plan_pin(CODE_RULE, _delivery(), store_id="s", order_id="O")
    assert nothing.policy is PinPolicyName.RANDOM


def test_in_store_orders_always_get_random_pins() -> None:
    origin = Origin(Channel.IN_STORE, None, "BC953", "Joe M.", "4165550199", None)
    rule = PinRule(source=PinPolicyName.PHONE_DIGITS, length=6)
    plan = plan_pin(rule, origin, store_id="s", order_id="O")
    assert plan.policy is PinPolicyName.RANDOM
    assert "550199" not in plan.candidates


def test_random_pins_have_the_rule_shape_and_differ() -> None:
    numeric = random_pins(PinRule(source=PinPolicyName.RANDOM, length=8), 200)
    assert all(len(p) == 8 and p.isdigit() for p in numeric)
    assert len(set(numeric)) > 190
    alnum = random_pins(
        PinRule(source=PinPolicyName.RANDOM, keypad=Keypad.ALPHANUMERIC, length=6), 50
    )
    assert all(len(p) == 6 and p.isalnum() and p == p.upper() for p in alnum)
    assert not any(ch in p for p in alnum for ch in "01IO")
