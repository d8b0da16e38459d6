"""Outages: backoff per merchant, a breaker per merchant, and one for Clover as a whole.

An outage is reported once when it starts and once when it ends, to the log and to an
alert hook (the operations side wires that hook to e-mail and Sentry), never once
per failed request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lockerlink.alerts import Alert, Alerter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutageEvent:
    """The start or the end of an outage, for people to hear about once."""

    started: bool
    merchant_id: str | None
    """None when Clover as a whole is down; else the one merchant that fails."""
    failures: int
    duration_s: float
    detail: str


AlertHook = Callable[[OutageEvent], Awaitable[None]]


async def log_only(event: OutageEvent) -> None:
    """The alert hook used when nobody wired another one."""


async def _report(hook: AlertHook, event: OutageEvent) -> None:
    scope = event.merchant_id or "clover"
    if event.started:
        log.warning(
            "outage started",
            extra={"scope": scope, "failures": event.failures, "detail": event.detail},
        )
    else:
        log.warning(
            "outage ended",
            extra={"scope": scope, "duration_s": round(event.duration_s, 3)},
        )
    try:
        await hook(event)
    except Exception:  # an alerting failure must never stop polling
        log.exception("alert hook failed", extra={"scope": scope})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped."""

    base_s: float = 0.5
    max_s: float = 60.0

    def delay_s(self, failures: int) -> float:
        ceiling = min(self.max_s, self.base_s * 2 ** max(0, failures - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not secrecy


class MerchantBreaker:
    """Consecutive failures of one merchant: how long to wait, and whether it is out."""

    def __init__(
        self,
        merchant_id: str,
        hook: AlertHook,
        backoff: Backoff,
        open_after: int = 3,
    ) -> None:
        self.merchant_id = merchant_id
        self._hook = hook
        self._backoff = backoff
        self._open_after = open_after
        self.failures = 0
        self._since = 0.0

    @property
    def is_open(self) -> bool:
        return self.failures >= self._open_after

    async def failed(self, detail: str) -> float:
        """Count a failure; returns the seconds to wait before the next try."""
        self.failures += 1
        if self.failures == 1:
            self._since = time.monotonic()
        if self.failures == self._open_after:
            event = OutageEvent(True, self.merchant_id, self.failures, 0.0, detail)
            await _report(self._hook, event)
        return self._backoff.delay_s(self.failures)

    async def succeeded(self) -> None:
        if self.is_open:
            duration_s = time.monotonic() - self._since
            event = OutageEvent(False, self.merchant_id, self.failures, duration_s, "")
            await _report(self._hook, event)
        self.failures = 0


class CloverBreaker:
    """Stops every request while Clover as a whole is down, probing until it is back.

    It opens after ``open_after`` failed requests in a row (network errors and 5xx,
    any merchant, no success between). While open, one request at a time goes
    through as a probe, spaced by the backoff; the first success closes it.
    """

    def __init__(self, hook: AlertHook, backoff: Backoff, open_after: int = 5) -> None:
        self._hook = hook
        self._backoff = backoff
        self._open_after = open_after
        self._failures = 0
        self._since = 0.0
        self._closed = asyncio.Event()
        self._closed.set()
        self._probe = asyncio.Lock()
        self._next_probe_at = 0.0
        self.outages = 0

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    async def admit(self) -> bool:
        """Wait until a request may go; True when it goes as the outage's probe."""
        while self.is_open:
            if self._probe.locked():
                await self._wait_closed(self._backoff.max_s)
                continue
            await self._probe.acquire()
            if not self.is_open:
                self._probe.release()
                break
            await asyncio.sleep(max(0.0, self._next_probe_at - time.monotonic()))
            return True
        return False

    async def _wait_closed(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), timeout_s)

    def _end_probe(self, probing: bool) -> None:
        if probing and self._probe.locked():
            self._probe.release()

    def abandon(self, probing: bool) -> None:
        """The probe never reached Clover (a local error): let another one go."""
        self._end_probe(probing)

    async def failed(self, detail: str, probing: bool) -> None:
        self._failures += 1
        if self._failures == 1:
            self._since = time.monotonic()
        if self._failures >= self._open_after:
            self._next_probe_at = time.monotonic() + self._backoff.delay_s(
                self._failures - self._open_after + 1
            )
            if not self.is_open:
                self._closed.clear()
                self.outages += 1
                await _report(
                    self._hook, OutageEvent(True, None, self._failures, 0.0, detail)
                )
        self._end_probe(probing)

    async def succeeded(self, probing: bool) -> None:
        if self.is_open:
            duration_s = time.monotonic() - self._since
            self._closed.set()
            await _report(
                self._hook, OutageEvent(False, None, self._failures, duration_s, "")
            )
        self._failures = 0
        self._end_probe(probing)


def alerter_hook(alerter: Alerter) -> AlertHook:
    """An alert hook that mails (and, through the ERROR log line, tells Sentry).

    The alerter keeps the state in Redis, so an outage every poller process sees is
    still one mail when it starts and one when it ends.
    """

    async def hook(event: OutageEvent) -> None:
        key = f"clover-outage:{event.merchant_id or 'all'}"
        if event.started:
            who = f"merchant {event.merchant_id}" if event.merchant_id else "Clover"
            await alerter.raise_alert(
                Alert(
                    key,
                    f"Clover unreachable for {who}",
                    f"{event.failures} failures in a row; last: {event.detail}. "
                    "Polling keeps retrying; no order is lost.",
                )
            )
        else:
            await alerter.clear_alert(
                key, f"Clover answers again after {event.duration_s:.0f} s."
            )

    return hook
