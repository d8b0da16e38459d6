"""Faults a test or an operator injects into the Clover sandbox.

Outage windows (an error status, a connection reset, or a request that hangs until
the faults are cleared), either before the request is served or after it was
(``after_serving``: Clover did the work, say rotated a refresh token, and the answer
is lost on the way back), added latency, 429 storms, refusing every access token,
expiring every access token now (ahead of its stated expiration), and revoking a
merchant. Windows end after ``duration_s`` on the sandbox clock or after hitting
``requests`` requests, whichever comes first; neither means until ``clear()``.
``hanging_callers`` names each hanging request's caller (address, port), so a test
can tell which process waits, say to kill it between Clover's work and its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from sandbox.clover_rejection import Rejection
from sandbox.clover_tokens import TokenAuthority

OutageKind = Literal["error", "reset", "hang"]
LimitHeader = Literal[
    "X-RateLimit-tokenLimit",
    "X-RateLimit-crossTokenLimit",
    "X-RateLimit-tokenConcurrentLimit",
    "X-RateLimit-crossTokenConcurrentLimit",
]


@dataclass
class Window:
    """When a fault applies: until a clock time, for a number of requests, or both."""

    until_s: float | None = None
    remaining: int | None = None
    endpoints: frozenset[str] | None = None

    def hits(self, endpoint: str, now_s: float) -> bool:
        """Whether this request falls in the window; counts it if so."""
        if self.endpoints is not None and endpoint not in self.endpoints:
            return False
        if self.until_s is not None and now_s >= self.until_s:
            return False
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
        return True


@dataclass
class Outage:
    kind: OutageKind
    status: int
    window: Window
    after_serving: bool = False


@dataclass
class Storm:
    retry_after_s: int
    header: str
    limit: int
    window: Window


@dataclass
class _State:
    outages: list[Outage] = field(default_factory=list)
    storms: list[Storm] = field(default_factory=list)
    latency_s: float = 0.0
    released: asyncio.Event = field(default_factory=asyncio.Event)


class CloverFaults:
    """The faults in force; the sandbox consults them on every Clover request."""

    def __init__(self, tokens: TokenAuthority, clock: Callable[[], float]) -> None:
        self._tokens = tokens
        self._clock = clock
        self._state = _State()
        self.hanging_callers: list[tuple[str, int]] = []

    # -- injecting ------------------------------------------------------------------
    def outage(
        self,
        kind: OutageKind = "error",
        *,
        status: int = 503,
        duration_s: float | None = None,
        requests: int | None = None,
        endpoints: Iterable[str] | None = None,
        after_serving: bool = False,
    ) -> None:
        """Fail matching requests: an error status, a reset, or a hang.

        ``after_serving``: the request is served first (its effects stay) and only
        its answer is replaced by the fault.
        """
        window = self._window(duration_s, requests, endpoints)
        self._state.outages.append(Outage(kind, status, window, after_serving))

    def storm(
        self,
        *,
        retry_after_s: int = 1,
        header: LimitHeader = "X-RateLimit-crossTokenLimit",
        limit: int = 50,
        duration_s: float | None = None,
        requests: int | None = None,
        endpoints: Iterable[str] | None = None,
    ) -> None:
        """Answer 429 to matching requests whatever the real rate."""
        window = self._window(duration_s, requests, endpoints)
        self._state.storms.append(Storm(retry_after_s, header, limit, window))

    def latency(self, seconds: float) -> None:
        """Add this much time to every Clover request."""
        self._state.latency_s = seconds

    def reject_access_tokens(self, reject: bool = True) -> None:
        """Answer 401 to every access token, valid or not."""
        self._tokens.reject_all_access = reject

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now; new ones live normally."""
        self._tokens.expire_all_access()

    def revoke(self, merchant_id: str) -> None:
        """Revoke a merchant's authorization, as an uninstall does."""
        self._tokens.uninstall(merchant_id)

    @property
    def hanging(self) -> int:
        """How many requests hang now."""
        return len(self.hanging_callers)

    def clear(self) -> None:
        """End every fault; hanging requests get their answer now."""
        self._state.released.set()
        self._state = _State()
        self._tokens.reject_all_access = False

    def _window(
        self,
        duration_s: float | None,
        requests: int | None,
        endpoints: Iterable[str] | None,
    ) -> Window:
        until_s = None if duration_s is None else self._clock() + duration_s
        chosen = None if endpoints is None else frozenset(endpoints)
        return Window(until_s, requests, chosen)

    # -- applying -------------------------------------------------------------------
    async def before(self, request: web.Request, endpoint: str) -> None:
        """Apply outages and storms to a request before it is served."""
        state = self._state
        now_s = self._clock()
        for outage in state.outages:
            if not outage.after_serving and outage.window.hits(endpoint, now_s):
                await self._fail(request, outage, state.released)
        for storm in state.storms:
            if storm.window.hits(endpoint, now_s):
                raise Rejection(
                    "Too many requests",
                    status=429,
                    outcome="storm",
                    headers={
                        storm.header: str(storm.limit),
                        "Retry-After": str(storm.retry_after_s),
                    },
                )

    async def after(self, request: web.Request, endpoint: str) -> None:
        """Lose the answer of a request that was served, as ``after_serving`` says."""
        state = self._state
        now_s = self._clock()
        for outage in state.outages:
            if outage.after_serving and outage.window.hits(endpoint, now_s):
                await self._fail(request, outage, state.released)

    async def delay(self) -> None:
        """Added latency, spent while the request counts as in flight.

        Clearing the faults ends the wait early, so a sandbox can always stop.
        """
        state = self._state
        if state.latency_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.released.wait(), state.latency_s)

    async def _fail(
        self, request: web.Request, outage: Outage, released: asyncio.Event
    ) -> None:
        if outage.kind == "hang":
            caller = _caller(request)
            self.hanging_callers.append(caller)
            try:
                await released.wait()
            finally:
                self.hanging_callers.remove(caller)
        elif outage.kind == "reset":
            _reset(request)
        raise Rejection(
            "Service unavailable (injected fault)",
            status=outage.status,
            outcome="fault",
        )


def _caller(request: web.Request) -> tuple[str, int]:
    """The address and port a request came from."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport else None
    return (str(peer[0]), int(peer[1])) if peer else ("", 0)


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset instead of an answer."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 makes close() send RST instead of an orderly FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class OutageSpec(BaseModel):
    """An outage as the admin endpoint accepts it."""

    model_config = ConfigDict(extra="forbid")

    kind: OutageKind = "error"
    status: int = Field(503, ge=400, le=599)
    duration_s: float | None = Field(None, gt=0)
    requests: int | None = Field(None, ge=1)
    endpoints: list[str] | None = None
    after_serving: bool = False


class StormSpec(BaseModel):
    """A 429 storm as the admin endpoint accepts it."""

    model_config = ConfigDict(extra="forbid")

    retry_after_s: int = Field(1, ge=0)
    header: LimitHeader = "X-RateLimit-crossTokenLimit"
    limit: int = Field(50, ge=0)
    duration_s: float | None = Field(None, gt=0)
    requests: int | None = Field(None, ge=1)
    endpoints: list[str] | None = None


class FaultSpec(BaseModel):
    """Faults to add in one admin call; absent parts change nothing."""

    model_config = ConfigDict(extra="forbid")

    outage: OutageSpec | None = None
    storm: StormSpec | None = None
    latency_s: float | None = Field(None, ge=0)
    reject_access_tokens: bool | None = None
    expire_access_tokens: bool = False
    revoke: list[str] = Field(default_factory=list)

    def apply(self, faults: CloverFaults) -> None:
        if self.outage is not None:
            faults.outage(**self.outage.model_dump())
        if self.storm is not None:
            faults.storm(**self.storm.model_dump())
        if self.latency_s is not None:
            faults.latency(self.latency_s)
        if self.reject_access_tokens is not None:
            faults.reject_access_tokens(self.reject_access_tokens)
        if self.expire_access_tokens:
            faults.expire_access_tokens()
        for merchant_id in self.revoke:
            faults.revoke(merchant_id)
