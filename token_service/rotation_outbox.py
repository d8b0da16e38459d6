"""Rotation events kept in Redis until Kafka acknowledged them.

Every event is put in the outbox (a Redis hash, one entry per merchant) before it
is published, and taken out only when the publish succeeded and the entry is still
that event. A failed publish (broker down, bootstrap unreachable) leaves it there;
the proactive refresher drains the outbox every few seconds, so the event goes out
once Kafka is back, even from another process after a crash.

One entry per merchant, because the topic is compacted by merchant: a newer event
replaces an older one still waiting, and only the newest matters.

The newest event is also the last one published for its merchant, so that compaction
keeps it. Two publishes can cross (a drain sending an older event while a rotation
sends a newer one, or two processes' background sends), so every publish ends by
comparing what it sent with the merchant's newest event, kept in a second hash; if
they differ, it sends the newest again, after its own. A repeat of the newest event
is harmless: consumers keep the event with the highest ``token_version``.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from pydantic import ValidationError

from lockerlink.errors import LockerlinkError
from lockerlink.keys import KeySpace
from schemas.token_rotation import TokenRotationEvent
from token_service import metrics
from token_service.rotation_events import RotationPublisher

log = logging.getLogger(__name__)

# KEYS[1] outbox; ARGV: merchant id, the event published. Deletes it only if unchanged.
_TAKE_IF_SAME = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


# A merchant rotating again while its previous event goes out is rare; rotating
# faster than events publish would be a fault of its own, and the drain follows up.
_MAX_CATCH_UPS = 3


class RotationOutbox:
    """Publishes rotation events, keeping each in Redis until it is published."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keyspace: KeySpace,
        publisher: RotationPublisher,
    ) -> None:
        self._redis = redis
        self._key = keyspace.rotation_outbox()
        self._latest_key = keyspace.rotation_latest()
        self._publisher = publisher
        self._take_if_same = redis.register_script(_TAKE_IF_SAME)

    async def put(self, event: TokenRotationEvent) -> bytes:
        """Keep ``event`` until published; returns it as published."""
        payload = event.model_dump_json().encode()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key, event.merchant_id, payload)
            pipe.hset(self._latest_key, event.merchant_id, payload)
            await pipe.execute()
        return payload

    async def publish(self, event: TokenRotationEvent, payload: bytes) -> bool:
        """Publish one event put before; True if Kafka acknowledged it.

        Then, if a newer event of the merchant was put meanwhile, that one again,
        so the newest is the last on the topic.
        """
        for _ in range(_MAX_CATCH_UPS + 1):
            if not await self._publish_one(event, payload):
                return False
            found = await self._redis.hget(self._latest_key, event.merchant_id)
            if found is None:
                return True
            newest = found if isinstance(found, bytes) else found.encode()
            if newest == payload:
                return True
            try:
                event = TokenRotationEvent.model_validate_json(newest)
            except ValidationError:
                log.error(
                    "unreadable newest rotation event; not sent again",
                    extra={"merchant_id": event.merchant_id},
                )
                return True
            payload = newest
        return True

    async def _publish_one(self, event: TokenRotationEvent, payload: bytes) -> bool:
        try:
            await self._publisher.publish(event)
        except LockerlinkError as exc:
            metrics.EVENTS_LOST.inc()
            log.warning(
                "rotation event not published yet; kept for a retry",
                extra={"merchant_id": event.merchant_id, "error": exc.message},
            )
            return False
        await self._take_if_same(keys=[self._key], args=[event.merchant_id, payload])
        return True

    async def pending(self) -> list[TokenRotationEvent]:
        """The events waiting to be published (unreadable entries skipped)."""
        return [event for event, _ in await self._entries()]

    async def drain(self) -> int:
        """Publish every waiting event; returns how many went out."""
        published = 0
        for event, payload in await self._entries():
            if not await self.publish(event, payload):
                break  # Kafka is still away: try again at the next drain
            published += 1
        return published

    async def _entries(self) -> list[tuple[TokenRotationEvent, bytes]]:
        entries = []
        for merchant_id, raw in (await self._redis.hgetall(self._key)).items():
            payload = raw if isinstance(raw, bytes) else raw.encode()
            try:
                event = TokenRotationEvent.model_validate_json(payload)
                entries.append((event, payload))
            except ValidationError:
                log.error(
                    "unreadable rotation event in the outbox; dropped",
                    extra={"merchant_id": _text(merchant_id)},
                )
                await self._redis.hdel(self._key, merchant_id)
        return entries


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
