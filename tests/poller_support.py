"""What the poller tests share: a token source over the sandbox, topic reading, waits.

`SandboxTokens` stands at our own seam (the poller's `TokenSource`): it keeps each
merchant's pair and refreshes over the sandbox's real OAuth endpoint, as the vault
does, so rejected and expired tokens behave as they do with Clover.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from lockerlink.broker import ensure_topics, make_consumer
from sandbox.clover import CloverSandbox
from schemas.raw_order import RawOrderHeaders
from schemas.token_rotation import token_fingerprint
from schemas.topics import TopicSpec


@dataclass(frozen=True)
class Token:
    token: str
    expires_at_ms: int
    fingerprint: str


class SandboxTokens:
    """A `TokenSource` that refreshes through the sandbox's OAuth endpoint."""

    def __init__(self, sandbox: CloverSandbox) -> None:
        self._sandbox = sandbox
        self._pairs: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self.refreshes = 0
        self.rejections = 0

    def connect(self, merchant_id: str) -> None:
        self._pairs[merchant_id] = dict(self._sandbox.connect_merchant(merchant_id))

    def _current(self, merchant_id: str) -> Token:
        pair = self._pairs[merchant_id]
        token = pair["access_token"]
        expires_ms = int(pair["access_token_expiration"]) * 1000
        return Token(token, expires_ms, token_fingerprint(token))

    async def get_access_token(
        self, merchant_id: str, min_validity_s: float = 60.0
    ) -> Token:
        async with self._lock:
            current = self._current(merchant_id)
            left_s = current.expires_at_ms / 1000 - self._sandbox.clock()
            if left_s < min_validity_s:
                await self._refresh(merchant_id)
            return self._current(merchant_id)

    async def report_rejected(self, merchant_id: str, fingerprint: str) -> None:
        async with self._lock:
            self.rejections += 1
            if self._current(merchant_id).fingerprint == fingerprint:
                await self._refresh(merchant_id)

    async def _refresh(self, merchant_id: str) -> None:
        body = {
            "client_id": self._sandbox.config.app_id,
            "refresh_token": self._pairs[merchant_id]["refresh_token"],
        }
        url = f"{self._sandbox.base_url}/oauth/v2/refresh"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=body) as response,
        ):
            response.raise_for_status()
            self._pairs[merchant_id] = await response.json()
        self.refreshes += 1


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
    bootstrap: str, topic: str, expected: int, settle_s: float = 0.5
) -> list[SeenRecord]:
    """Every record on ``topic``: waits for ``expected``, then a little for extras."""
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
                seen.extend(_seen(r) for r in records)
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
