"""Clover's webhooks: a verification POST, then batched order notifications.

Each body names order changes across merchants, with no order data, and carries the
app's shared auth code in ``X-Clover-Auth``. Duplicate UPDATE bursts and dropped
notifications can be switched on (seeded), because Clover promises neither
uniqueness nor delivery. A failed delivery is not retried; a run of failures (the
receiver is down) is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sandbox.clover_orderbook import ChangeKind, OrderBook

log = logging.getLogger(__name__)

AUTH_HEADER = "X-Clover-Auth"


@dataclass
class WebhookConfig:
    """Where notifications go and how unreliable their delivery is."""

    url: str | None = None
    auth_code: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    batch_interval_s: float = 0.2
    duplicate_update_probability: float = 0.0
    duplicate_burst: int = 3
    drop_probability: float = 0.0
    seed: int = 0
    timeout_s: float = 5.0


@dataclass(frozen=True)
class Delivery:
    """One POST the sandbox made: its body and the receiver's status (None: failed)."""

    body: dict[str, Any]
    status: int | None


@dataclass(frozen=True)
class Notice:
    """One notification about one order change."""

    merchant_id: str
    object_id: str
    type: ChangeKind
    ts_ms: int

    def as_json(self) -> dict[str, Any]:
        return {"objectId": self.object_id, "type": self.type, "ts": self.ts_ms}


class WebhookSender:
    """Collects order changes and posts them in batches to the configured URL."""

    def __init__(self, config: WebhookConfig, app_id: str, book: OrderBook) -> None:
        self.config = config
        self._app_id = app_id
        self._random = random.Random(config.seed)  # noqa: S311 - simulation only
        self._pending: list[Notice] = []
        self.deliveries: list[Delivery] = []
        self.dropped: list[Notice] = []
        self.verification_code: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.failing = 0
        """Deliveries failed in a row; the current outage of the receiver."""
        book.on_change(self._changed)

    # -- collecting -----------------------------------------------------------------
    def _changed(
        self, merchant_id: str, order_id: str, kind: ChangeKind, ts_ms: int
    ) -> None:
        if self.config.url is None:
            return
        notice = Notice(merchant_id, f"O:{order_id}", kind, ts_ms)
        copies = 1
        if kind == "UPDATE" and self._chance(self.config.duplicate_update_probability):
            copies += self.config.duplicate_burst
        for _ in range(copies):
            if self._chance(self.config.drop_probability):
                self.dropped.append(notice)
            else:
                self._pending.append(notice)

    def _chance(self, probability: float) -> bool:
        # Always draw, so one seed gives one sequence whatever the probabilities.
        return self._random.random() < probability

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- sending --------------------------------------------------------------------
    async def start(self) -> None:
        """Send the verification code, then batches every interval."""
        if self.config.url is None:
            return
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        await self.send_verification()
        self._task = asyncio.create_task(self._run(), name="clover-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_verification(self) -> Delivery:
        """POST ``{"verificationCode": ...}`` as Clover does when a URL is set."""
        self.verification_code = secrets.token_hex(16)
        return await self._post({"verificationCode": self.verification_code}, {})

    async def flush(self) -> Delivery | None:
        """Send everything pending as one batch; None if nothing was pending."""
        if not self._pending:
            return None
        batch, self._pending = self._pending, []
        merchants: dict[str, list[dict[str, Any]]] = {}
        for notice in batch:
            merchants.setdefault(notice.merchant_id, []).append(notice.as_json())
        body = {"appId": self._app_id, "merchants": merchants}
        return await self._post(body, {AUTH_HEADER: self.config.auth_code})

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.batch_interval_s)
            await self.flush()

    async def _post(self, body: dict[str, Any], headers: dict[str, str]) -> Delivery:
        status: int | None = None
        url = self.config.url
        if self._session is not None and url is not None:
            try:
                async with self._session.post(url, json=body, headers=headers) as reply:
                    status = reply.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._failed(url, exc)
            else:
                self._delivered(url)
        delivery = Delivery(body, status)
        self.deliveries.append(delivery)
        return delivery

    def _failed(self, url: str, exc: BaseException) -> None:
        if not self.failing:
            log.warning(
                "webhook delivery to %s failed: %s; not logged again until one "
                "gets through",
                url,
                type(exc).__name__,
            )
        self.failing += 1

    def _delivered(self, url: str) -> None:
        if self.failing:
            log.info(
                "webhook delivery to %s works again after %d failed",
                url,
                self.failing,
            )
        self.failing = 0
