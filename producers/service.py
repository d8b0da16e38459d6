"""The poller process: leases, one task per held merchant, wake-ups from webhooks.

Each held merchant has one asyncio task that polls it every interval and, when a
webhook names one of its orders, fetches that order at once (after a short debounce
that folds bursts). The interval adapts to the app's request budget: polling N
merchants cannot go faster than the budget allows, so with many merchants webhooks
carry freshness and polling is the backstop. Failures back off per merchant with
jitter; the Clover-wide breaker lives in the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.errors import LockerlinkError
from lockerlink.status import StatusBoard
from producers import metrics
from producers.clover_client import CloverClient
from producers.cursor import LeaseLost
from producers.health import AlertHook, Backoff, MerchantBreaker
from producers.inbox import WebhookInbox
from producers.lease import LeaseTable, fair_share, preference
from producers.poller import MerchantPoller

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 30.0
"""How often a poll also looks for missed webhook notices and updates the board."""


@dataclass(frozen=True)
class Cadence:
    """How often merchants are polled and how the process paces itself."""

    interval_s: float = 5.0
    debounce_s: float = 0.05
    rebalance_s: float = 5.0
    app_requests_per_s: float = 32.0
    """The per-second budget polls may use, across every poller process."""
    stop_timeout_s: float = 10.0
    delete_sweep_s: float = 300.0
    busy_merchants: int = 64
    """Merchants mid-poll at once in one process; the others wait their turn."""


class _Worker:
    """The task polling one merchant, and what wakes or stops it."""

    def __init__(self, merchant_id: str) -> None:
        self.merchant_id = merchant_id
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.housekeeping_at = 0.0
        self.sweep_at = 0.0


class PollerService:
    """Runs the merchants this process holds, until stopped."""

    def __init__(
        self,
        poller: MerchantPoller,
        client: CloverClient,
        leases: LeaseTable,
        inbox: WebhookInbox,
        redis: aioredis.Redis,
        merchants: Callable[[], Awaitable[Collection[str]]],
        cadence: Cadence,
        alert_hook: AlertHook,
        backoff: Backoff,
        board: StatusBoard | None = None,
    ) -> None:
        self._poller = poller
        self._client = client
        self._leases = leases
        self._inbox = inbox
        self._redis = redis
        self._merchants = merchants
        self._cadence = cadence
        self._hook = alert_hook
        self._backoff = backoff
        self._board = board
        self._workers: dict[str, _Worker] = {}
        self._requests_per_poll = 1.0
        self._stopped = asyncio.Event()
        self._busy = asyncio.Semaphore(cadence.busy_merchants)
        self.known: frozenset[str] = frozenset()
        """Every merchant to poll, as last read from the merchant source."""
        self.rebalanced = asyncio.Event()

    @property
    def held(self) -> frozenset[str]:
        """Merchants whose lease this process holds right now."""
        return frozenset(self._workers)

    def interval_s(self) -> float:
        """The polling interval: configured, or longer when the budget demands."""
        merchants = max(1, len(self.known))
        budget_s = (
            merchants * self._requests_per_poll / self._cadence.app_requests_per_s
        )
        return max(self._cadence.interval_s, budget_s)

    async def run(self) -> None:
        """Hold leases and poll until `stop` is called; then hand everything back."""
        listener = asyncio.create_task(self._listen_for_wakes())
        try:
            while not self._stopped.is_set():
                try:
                    await self._rebalance()
                except LockerlinkError as exc:
                    log.warning("rebalance failed", extra={"error": exc.message})
                except Exception:  # keep holding leases whatever went wrong
                    log.exception("rebalance crashed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopped.wait(), self._cadence.rebalance_s
                    )
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self._hand_back(list(self._workers))
            with contextlib.suppress(LockerlinkError):
                await self._leases.leave()

    def stop(self) -> None:
        self._stopped.set()

    async def _rebalance(self) -> None:
        # Leases first: reading the merchant list may take a while under load.
        members = await self._leases.heartbeat()
        lost = await self._leases.renew(list(self._workers))
        for merchant_id in lost:
            log.warning("merchant lease lost", extra={"merchant_id": merchant_id})
            await self._stop_worker(merchant_id)
        wanted = set(await self._merchants())
        self.known = frozenset(wanted)
        gone = [m for m in self._workers if m not in wanted]
        target = fair_share(len(wanted), members)
        surplus = len(self._workers) - len(gone) - target
        extra = preference(self._leases.owner, set(self._workers) - set(gone))
        await self._hand_back(gone + (extra[-surplus:] if surplus > 0 else []))
        if len(self._workers) < target:
            free = await self._leases.unheld(wanted - set(self._workers))
            mine = preference(self._leases.owner, free)
            taken = await self._leases.acquire(mine[: target - len(self._workers)])
            for merchant_id in taken:
                self._start_worker(merchant_id)
        self.rebalanced.set()

    async def _hand_back(self, merchant_ids: list[str]) -> None:
        """Stop polling these merchants, then release their leases."""
        if not merchant_ids:
            return
        await asyncio.gather(*(self._stop_worker(m) for m in merchant_ids))
        try:
            await self._leases.release(merchant_ids)
        except LockerlinkError as exc:
            log.warning("leases not released", extra={"error": exc.message})
        log.info("merchants handed back", extra={"merchants": len(merchant_ids)})

    def _start_worker(self, merchant_id: str) -> None:
        worker = _Worker(merchant_id)
        # Spread the merchants' deletion sweeps over the sweep interval.
        worker.sweep_at = time.monotonic() + self._cadence.delete_sweep_s * (
            random.random()  # noqa: S311 - spreading, not secrecy
        )
        worker.task = asyncio.create_task(self._run_merchant(worker))
        self._workers[merchant_id] = worker

    async def _stop_worker(self, merchant_id: str) -> None:
        worker = self._workers.pop(merchant_id, None)
        if worker is None or worker.task is None:
            return
        worker.stopping.set()
        worker.wake.set()
        try:
            await asyncio.wait_for(
                asyncio.shield(worker.task), self._cadence.stop_timeout_s
            )
        except TimeoutError:
            worker.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.task
        self._poller.forget(merchant_id)
        self._client.forget(merchant_id)
        metrics.POLL_LAG.forget(merchant_id)

    async def _listen_for_wakes(self) -> None:
        """Wake the worker of each merchant a webhook named; reconnects on failure."""
        while True:
            try:
                await self._listen_once()
            except RedisError as exc:
                log.warning("wake-up channel lost", extra={"error": str(exc)})
                await asyncio.sleep(1.0)

    async def _listen_once(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._inbox.channel)
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                data = message.get("data")
                merchant_id = data.decode() if isinstance(data, bytes) else str(data)
                worker = self._workers.get(merchant_id)
                if worker is not None:
                    worker.wake.set()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed in newer redis

    async def _run_merchant(self, worker: _Worker) -> None:
        """Poll one merchant until stopped; a long loop because it owns the cadence."""
        merchant_id = worker.merchant_id
        breaker = MerchantBreaker(merchant_id, self._hook, self._backoff)
        # Spread first polls so a process taking many merchants does not burst.
        next_poll = time.monotonic() + random.uniform(  # noqa: S311 - spreading
            0, min(self.interval_s(), 1.0)
        )
        settled = False
        while not worker.stopping.is_set():
            woke = await self._sleep(worker, next_poll)
            if worker.stopping.is_set():
                return
            if woke:
                await asyncio.sleep(self._cadence.debounce_s)
            try:
                async with self._busy:
                    if not settled:
                        # Nothing goes out before a predecessor's publish is settled.
                        await self._poller.recover(merchant_id)
                        settled = True
                    if woke:
                        await self._poller.fetch_pending(merchant_id)
                    if time.monotonic() >= next_poll:
                        await self._poll_once(worker)
                        next_poll = time.monotonic() + self.interval_s()
                await breaker.succeeded()
            except LeaseLost:
                log.warning("lease lost mid-poll", extra={"merchant_id": merchant_id})
                return
            except LockerlinkError as exc:
                next_poll = time.monotonic() + await breaker.failed(exc.message)
                self._log_failure(merchant_id, exc, breaker)
            except Exception as exc:  # a bug must not stop the other merchants
                log.exception("poll crashed", extra={"merchant_id": merchant_id})
                next_poll = time.monotonic() + await breaker.failed(repr(exc))

    async def _sleep(self, worker: _Worker, until: float) -> bool:
        """Wait until ``until`` or a wake-up; True when woken by a webhook."""
        if not worker.wake.is_set():
            # A timer on the loop, not a task per wait: thousands of merchants sleep.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(
                    asyncio.get_running_loop().time() + until - time.monotonic()
                ):
                    await worker.wake.wait()
        if not worker.wake.is_set():
            return False
        worker.wake.clear()
        return True

    async def _poll_once(self, worker: _Worker) -> None:
        merchant_id = worker.merchant_id
        before = self._client.requests
        started_s = time.time()
        housekeeping = time.monotonic() >= worker.housekeeping_at
        if housekeeping:
            # Polls find every change but deletions; a notice whose wake-up was
            # missed (no holder at the time) is picked up here.
            await self._poller.fetch_pending(merchant_id)
        await self._poller.poll(merchant_id)
        metrics.POLL_LAG.mark(merchant_id, started_s)
        if time.monotonic() >= worker.sweep_at:
            worker.sweep_at = time.monotonic() + self._cadence.delete_sweep_s
            await self._poller.sweep_deletes(merchant_id)
        if housekeeping:
            worker.housekeeping_at = time.monotonic() + HOUSEKEEPING_S
            if self._board is not None:
                with contextlib.suppress(RedisError):
                    await self._board.record_poll(merchant_id)
        spent = max(1, self._client.requests - before)
        self._requests_per_poll = 0.9 * self._requests_per_poll + 0.1 * spent

    @staticmethod
    def _log_failure(
        merchant_id: str, exc: LockerlinkError, breaker: MerchantBreaker
    ) -> None:
        log.info(
            "poll failed; backing off",
            extra={
                "merchant_id": merchant_id,
                "failures": breaker.failures,
                "error": exc.message,
            },
        )
