"""What the poller tests share: the real vault, topic reading, waits."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

from lockerlink.broker import ensure_topics, make_consumer
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from sandbox.clover import CloverSandbox
from schemas.raw_order import RawOrderHeaders
from schemas.token_rotation import TokenRotationEvent
from schemas.topics import TopicSpec
from token_service.pair import TokenPair
from token_service.rotation_events import CallbackRotationPublisher
from token_service.vault import Vault

AUTH = "webhook-secret-for-tests"


def poller_settings(
    base: Settings, sandbox: CloverSandbox, **overrides: Any
) -> Settings:
    """``base`` pointed at the sandbox, with test-sized intervals and timeouts."""
    values: dict[str, Any] = {
        "clover_api_base_url": sandbox.base_url,
        "clover_authorize_base_url": sandbox.base_url,
        "clover_timeout_s": 2.0,
        "token_refresh_lease_s": 5.0,
        "clover_webhook_auth_code": SecretStr(AUTH),
        "poller_interval_s": 0.2,
        "poller_lookback_s": 1.0,
        "poller_safety_lag_s": 0.1,
        "poller_lease_ttl_s": 1.5,
        "poller_webhook_port": 0,
        "poller_webhook_debounce_s": 0.02,
        "poller_page_size": 20,
        "poller_backoff_max_s": 0.5,
        **overrides,
    }
    return base.model_copy(update=values)


def create_orders(sandbox: CloverSandbox, merchant_id: str, count: int) -> list[str]:
    return [
        sandbox.orders.create(
            merchant_id,
            {"title": f"order {i}", "lineItems": [{"name": "pho", "price": 1200}]},
        )["id"]
        for i in range(count)
    ]


async def connected_vault(
    settings: Settings,
    redis: aioredis.Redis,
    keyspace: KeySpace,
    sandbox: CloverSandbox,
    merchant_ids: list[str],
) -> Vault:
    """The token service's vault with ``merchant_ids`` connected through the sandbox."""

    async def drop(event: TokenRotationEvent) -> None:
        return None

    vault = Vault(settings, redis, keyspace, publisher=CallbackRotationPublisher(drop))
    for index, merchant_id in enumerate(merchant_ids):
        issued = dict(sandbox.connect_merchant(merchant_id))
        await vault.connect(
            merchant_id, f"store-{index}", TokenPair.from_clover(issued)
        )
    return vault


@dataclass(frozen=True)
class SeenRecord:
    key: str
    order_id: str
    modified_ms: int | None
    deleted: bool
    source: str | None
    headers: RawOrderHeaders


async def make_topic(bootstrap: str, name: str) -> str:
    await ensure_topics(bootstrap, [TopicSpec(name)], 3)
    return name


async def read_topic(
    bootstrap: str,
    topic: str,
    expected: int,
    settle_s: float = 0.5,
    keys: Collection[str] | None = None,
) -> list[SeenRecord]:
    """Every record on ``topic`` (only those keyed by ``keys`` when given): waits
    for ``expected``, then a little for extras. The shared raw topic also holds
    other tests' records, of other shapes."""
    consumer = make_consumer(bootstrap, None)
    consumer.subscribe([topic])
    await consumer.start()
    seen: list[SeenRecord] = []
    try:
        deadline = time.monotonic() + 30
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                seen.extend(
                    _seen(r)
                    for r in records
                    if keys is None or (r.key or b"").decode() in keys
                )
            if len(seen) >= expected and quiet_until is None:
                quiet_until = time.monotonic() + settle_s
            if quiet_until is not None and time.monotonic() >= quiet_until:
                break
    finally:
        await consumer.stop()
    return seen


def _seen(record: Any) -> SeenRecord:
    value = json.loads(record.value)
    deleted = bool(value.get("deleted"))
    modified = None if deleted else value.get("modifiedTime")
    headers = RawOrderHeaders.from_kafka(record.headers)
    return SeenRecord(
        record.key.decode(),
        value["id"],
        modified,
        deleted,
        headers.source.value if headers.source else None,
        headers,
    )


def duplicates(records: list[SeenRecord]) -> list[tuple[str, int | None, bool]]:
    """Order versions that appear more than once."""
    counts = Counter((r.order_id, r.modified_ms, r.deleted) for r in records)
    return [version for version, n in counts.items() if n > 1]


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout_s: float = 20.0
) -> None:
    """Wait until ``check`` holds; a bound on waiting, not a timing assertion."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def latest_versions(sandbox: CloverSandbox) -> set[tuple[str, int]]:
    """(order id, modifiedTime) of every live order's newest version."""
    return {
        (order_id, version.modified_time_ms)
        for (_, order_id), version in sandbox.orders.latest_versions().items()
        if version.kind != "DELETE"
    }


async def all_in_ledger(
    redis: aioredis.Redis, keyspace: KeySpace, sandbox: CloverSandbox
) -> bool:
    """Whether the published-versions ledger holds every live order's newest version."""
    for merchant_id in sandbox.merchant_ids:
        wanted = [
            (order_id, version.modified_time_ms)
            for (owner, order_id), version in sandbox.orders.latest_versions().items()
            if owner == merchant_id and version.kind != "DELETE"
        ]
        if not wanted:
            continue
        scores = await redis.zmscore(
            keyspace.published_versions(merchant_id), [o for o, _ in wanted]
        )
        if any(s is None or s < v for (_, v), s in zip(wanted, scores, strict=True)):
            return False
    return True
