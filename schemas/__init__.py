"""Contracts every lockerlink component shares: topics, events, envelopes."""

from schemas.dead_letter import DeadLetter
from schemas.locker_order import (
    SCHEMA_VERSION,
    Channel,
    Customer,
    EventType,
    Item,
    LockerOrderEvent,
    Pickup,
    PinPolicyName,
    Platform,
    Source,
    make_event_id,
)
from schemas.raw_order import (
    DeleteMarker,
    RawOrderHeaders,
    RawOrderRecord,
    RawSource,
    delete_record,
    order_record,
)
from schemas.token_rotation import (
    MerchantState,
    RotationReason,
    TokenRotationEvent,
    token_fingerprint,
)
from schemas.topics import (
    CORE_TOPICS,
    DEAD_LETTER,
    RAW_ORDERS,
    STORE_TOPIC_PATTERN,
    TOKEN_ROTATIONS,
    TopicSpec,
    store_of_topic,
    store_topic,
)

__all__ = [
    "CORE_TOPICS",
    "DEAD_LETTER",
    "RAW_ORDERS",
    "SCHEMA_VERSION",
    "STORE_TOPIC_PATTERN",
    "TOKEN_ROTATIONS",
    "Channel",
    "Customer",
    "DeadLetter",
    "DeleteMarker",
    "EventType",
    "Item",
    "LockerOrderEvent",
    "MerchantState",
    "Pickup",
    "PinPolicyName",
    "Platform",
    "RawOrderHeaders",
    "RawOrderRecord",
    "RawSource",
    "RotationReason",
    "Source",
    "TokenRotationEvent",
    "TopicSpec",
    "delete_record",
    "make_event_id",
    "order_record",
    "store_of_topic",
    "store_topic",
    "token_fingerprint",
]
