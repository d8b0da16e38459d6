"""Proactive refresh: the loop that refreshes merchants as their schedule comes due.

Beside it, a slower loop publishes rotation events a failed publish left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback

from redis.exceptions import RedisError

from lockerlink.errors import LockerlinkError
from token_service.vault import Vault

log = logging.getLogger(__name__)


class ProactiveRefresher:
    """Claims due merchants and refreshes them, a few at a time."""

    def __init__(
        self,
        vault: Vault,
        concurrency: int,
        idle_s: float = 1.0,
        drain_every_s: float = 5.0,
    ) -> None:
        self.vault = vault
        self.idle_s = idle_s
        self.drain_every_s = drain_every_s
        self._limit = asyncio.Semaphore(concurrency)
        self.batch_size = concurrency * 4

    async def run_once(self) -> int:
        """Refresh every merchant due now (one batch); returns how many were claimed."""
        due = await self.vault.schedule.claim_due(self.batch_size)
        await asyncio.gather(*(self._refresh(merchant_id) for merchant_id in due))
        return len(due)

    async def run(self, stopping: asyncio.Event) -> None:
        """Run until ``stopping`` is set; Redis trouble is logged and retried."""
        draining = asyncio.create_task(self._drain_events(stopping))
        try:
            await self._refresh_rounds(stopping)
        finally:
            if not stopping.is_set():
                draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await draining

    async def _refresh_rounds(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                claimed = await self.run_once()
            except LockerlinkError as exc:
                log.warning("proactive refresh round failed: %s", exc.message)
                claimed = 0
            except (OSError, RedisError) as exc:
                log.warning("proactive refresh round failed: %s", exc)
                claimed = 0
            except Exception as exc:
                # A defect must not end proactive refresh for every merchant.
                log.error("proactive refresh round failed: %s", _what(exc))
                claimed = 0
            if claimed < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=self.idle_s)

    async def _drain_events(self, stopping: asyncio.Event) -> None:
        """Publish rotation events a failed publish left in the outbox.

        Its own loop: a broker that is down must not hold up refreshes.
        """
        while not stopping.is_set():
            try:
                await self.vault.events.drain()
            except (OSError, RedisError) as exc:
                log.warning("rotation outbox drain failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self.drain_every_s)

    async def _refresh(self, merchant_id: str) -> None:
        async with self._limit:
            try:
                await self.vault.refresh_if_due(merchant_id)
            except LockerlinkError as exc:
                log.warning(
                    "proactive refresh failed: %s",
                    exc.message,
                    extra={"merchant_id": merchant_id},
                )
            except Exception as exc:
                # One merchant's odd record must not stop the others' refreshes.
                log.error(
                    "proactive refresh failed: %s",
                    _what(exc),
                    extra={"merchant_id": merchant_id},
                )


def _what(exc: BaseException) -> str:
    """The exception's class and where it was raised, never its message (which
    could quote a token from a Clover answer)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where}"
