"""Topic names and key rules, the one place they are spelled."""

from __future__ import annotations

import re
from dataclasses import dataclass

RAW_ORDERS = "clover.orders.raw"
"""Clover orders as fetched, key = merchant id."""

TOKEN_ROTATIONS = "clover.token-rotations"  # noqa: S105 - a topic name
"""Token rotation and merchant state events (compacted), key = merchant id."""

DEAD_LETTER = "lockers.dead-letter"
"""Records that could not be transformed or delivered, with the reason."""

STORE_TOPIC_PATTERN = r"^lockers\.(?P<store>[a-z0-9][a-z0-9_-]{0,62})\.orders$"
"""Every store's order topic; the central delivery service subscribes by it."""

_STORE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def store_topic(store_id: str) -> str:
    """The topic of one store's locker order events (key = store id)."""
    if not _STORE_ID.fullmatch(store_id):
        raise ValueError(
            f"store id {store_id!r} must be 1-63 of a-z, 0-9, '-' or '_', "
            "starting with a letter or digit"
        )
    return f"lockers.{store_id}.orders"


def store_of_topic(topic: str) -> str | None:
    """The store id a store topic belongs to, or None for any other topic."""
    match = re.fullmatch(STORE_TOPIC_PATTERN, topic)
    return match.group("store") if match else None


def is_valid_store_id(store_id: str) -> bool:
    return _STORE_ID.fullmatch(store_id) is not None


@dataclass(frozen=True)
class TopicSpec:
    """A topic lockerlink creates at start-up."""

    name: str
    compacted: bool = False

    def configs(self) -> dict[str, str]:
        return {"cleanup.policy": "compact"} if self.compacted else {}


CORE_TOPICS = (
    TopicSpec(RAW_ORDERS),
    TopicSpec(TOKEN_ROTATIONS, compacted=True),
    TopicSpec(DEAD_LETTER),
)
