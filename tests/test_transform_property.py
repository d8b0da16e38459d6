"""No JSON input makes the transform fail other than by a dead-letter reason."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockerlink.errors import InputError
from lockerlink.registry import Store
from schemas.locker_order import EventType
from schemas.raw_order import DeleteMarker
from streams.transform import Reason, draft_order, finish, read_record

STORE = Store(store_id="prop", timezone="America/Vancouver")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        ["uber eats Joe", "DELIVERY 18:37", "e24 Ashley A", "Table 4", "BC953", " "]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.fixed_dictionaries({"elements": st.lists(inner, max_size=3)})
    ),
    max_leaves=25,
)
CLOVER_KEYS = [
    "id", "merchant", "currency", "total", "title", "note", "externalReferenceId",
    "state", "paymentState", "createdTime", "clientCreatedTime", "modifiedTime",
    "deleted", "voided", "orderType", "customers", "lineItems", "name", "price",
    "unitQty", "unitName", "modifications", "amount", "firstName", "lastName",
    "phoneNumbers", "phoneNumber", "emailAddresses", "label", "labelKey",
    "systemOrderTypeId", "refunded", "elements",
]  # fmt: skip
order_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(CLOVER_KEYS), inner, max_size=8)
    ),
    max_leaves=40,
)


def _transform(value: bytes) -> None:
    """The whole pure path; only InputError may escape it."""
    parsed = read_record(value)
    if isinstance(parsed, DeleteMarker):
        return
    drafted = draft_order(parsed, store=STORE, merchant_id="M", tz=STORE.zone())
    finish(
        drafted.draft,
        event_type=EventType.CREATED,
        pin=drafted.pin_plan.candidates[0],
        policy=drafted.pin_plan.policy,
    )


def _only_input_errors(value: bytes) -> None:
    try:
        _transform(value)
    except InputError as exc:
        assert exc.reason in set(Reason)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_transforms_or_gets_a_dead_letter_reason(value: Any) -> None:
    _only_input_errors(json.dumps(value).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order_like, st.integers(min_value=0, max_value=2**45))
def test_any_order_shaped_object_transforms_or_gets_a_reason(
    value: Any, modified_ms: int
) -> None:
    if isinstance(value, dict):
        value = {"id": "ORDER1", "modifiedTime": modified_ms, **value}
    _only_input_errors(json.dumps(value).encode())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_transform_or_get_a_reason(value: bytes) -> None:
    _only_input_errors(value)
