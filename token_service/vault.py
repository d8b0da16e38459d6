"""The vault: Clover access tokens on demand, each refresh token spent exactly once.

`Vault` is the in-process way to get a merchant's access token; the token service's
HTTP API and the Clover poller both use it::

    vault = Vault(settings, redis, keyspace)
    token = await vault.get_access_token(merchant_id, min_validity_s=60)
    ...  # Clover answered 401 to token.token:
    token = await vault.report_rejected(merchant_id, token.fingerprint)
    await vault.close()

How one refresh per merchant is kept, across every process:

1. In one process, concurrent callers for a merchant share one in-flight refresh
   (an asyncio task). They are answered as soon as the new pair is durable in
   Redis; the task finishes its bookkeeping (schedule, event, lock) after that.
2. Across processes, the task takes the merchant's Redis lock (owner token, lease
   longer than two Clover calls) and re-reads the stored pair: if its version moved
   since the caller looked, another process already rotated and that pair is the
   answer. Callers that do not get the lock poll the pair until its version moves
   or the lock is free; they never call Clover while someone else may be.
3. Before calling Clover the holder marks the rotation in flight with the
   fingerprint of the refresh token it spends; the new pair is written only if the
   stored refresh token is still that one (compare-and-set, which also clears the
   mark). A mark that names the stored refresh token means a process died after
   spending it, so the next refresh asks Clover's recovery endpoint first.

A dead refresh token (Clover answers 400, 401 or 403) marks the merchant
``reauth_required``: one alert, a state event, and no more Clover calls until the
merchant authorizes again. Timeouts, 429 and 5xx back off with jitter while the
current token keeps being served until it really expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.errors import (
    CloverError,
    ConfigError,
    TokenUnavailable,
)
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from schemas.token_rotation import MerchantState, RotationReason, TokenRotationEvent
from token_service import metrics
from token_service.alerts import ReauthAlerts
from token_service.clover_oauth import CloverOAuth
from token_service.keyring import VaultKeys
from token_service.merchants import Merchant, MerchantRegistry
from token_service.pair import AccessToken, TokenPair
from token_service.pair_store import PairStore, Snapshot
from token_service.refresh_lock import RefreshLock
from token_service.refresh_schedule import RefreshSchedule
from token_service.rotation_events import KafkaRotationPublisher, RotationPublisher
from token_service.rotation_outbox import RotationOutbox

__all__ = ["AccessToken", "Vault"]

log = logging.getLogger(__name__)

# A token younger than this is not replaced for "minimum validity" or "forced"
# requests: it is what Clover would hand out again, and it bounds how fast callers
# can make us spend Clover's rate limit.
MIN_ROTATION_INTERVAL_MS = 5_000
_POLL_FIRST_S = 0.005
_POLL_MAX_S = 0.05


class Vault:
    """Clover access tokens for merchants, refreshed once, crash-safe, in Redis.

    ``publisher`` receives every rotation and state event (default: Kafka at
    ``settings.kafka_bootstrap_servers``); ``alerts`` raises the reauth alert (by
    default only to the log at ERROR);
    ``after_clover_answer`` is called right after Clover returns a new pair and
    before it is stored (crash-safety tests make the process exit there).
    """

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        keyspace: KeySpace,
        *,
        publisher: RotationPublisher | None = None,
        clover: CloverOAuth | None = None,
        keys: VaultKeys | None = None,
        alerts: ReauthAlerts | None = None,
        after_clover_answer: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_lease(settings)
        self.settings = settings
        self.redis = redis
        self.keyspace = keyspace
        self.keys = keys or VaultKeys.from_settings(settings)
        self.pairs = PairStore(redis, keyspace, self.keys, clock)
        self.merchants = MerchantRegistry(redis, keyspace, clock)
        self.schedule = RefreshSchedule(redis, keyspace, settings, clock)
        self.clover = clover or CloverOAuth(settings)
        self._lock = RefreshLock(redis, keyspace, settings.token_refresh_lease_s)
        self._publisher = publisher or KafkaRotationPublisher(
            settings.kafka_bootstrap_servers
        )
        self.events = RotationOutbox(redis, keyspace, self._publisher)
        self.alerts = alerts or ReauthAlerts()
        self._after_clover_answer = after_clover_answer
        self._clock = clock
        self._flights: dict[str, asyncio.Future[Snapshot]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._wait_limit_s = settings.token_refresh_lease_s + settings.clover_timeout_s

    # -- what callers use ----------
    async def get_access_token(
        self,
        merchant_id: str,
        min_validity_s: float = 0.0,
        *,
        just_read: Snapshot | None = None,
    ) -> AccessToken:
        """The merchant's access token, valid for at least ``min_validity_s``.

        Refreshes (once, shared with every concurrent caller) when the stored token
        is shorter than that. While Clover fails transiently the current token is
        served until it expires. Raises `TokenUnavailable` when there is none.
        ``just_read`` is a snapshot the caller read from Redis a moment ago (to
        save a round trip); it is trusted as current.
        """
        snapshot = just_read or await self._current(merchant_id)
        now_ms = self._now_ms()
        metrics.ACCESS_EXPIRY.mark(
            merchant_id, snapshot.pair.access_expires_at_ms / 1000
        )
        remaining_ms = snapshot.pair.access_expires_at_ms - now_ms
        if remaining_ms > max(min_validity_s * 1000, 0):
            return snapshot.access()
        if remaining_ms > 0 and self._young(snapshot, now_ms):
            return snapshot.access()
        refreshed = await self._refresh(
            merchant_id, snapshot.version, RotationReason.PROACTIVE
        )
        return refreshed.access()

    async def report_rejected(self, merchant_id: str, fingerprint: str) -> AccessToken:
        """Clover refused the token with ``fingerprint``: a token that works.

        Refreshes only if that token is still the current one; otherwise the newer
        token is returned at once.
        """
        snapshot = await self._current(merchant_id)
        if snapshot.pair.access_fingerprint != fingerprint:
            return snapshot.access()
        refreshed = await self._refresh(
            merchant_id, snapshot.version, RotationReason.REJECTED
        )
        return refreshed.access()

    async def force_refresh(self, merchant_id: str) -> AccessToken:
        """A new access token, unless the current one was issued moments ago."""
        snapshot = await self._current(merchant_id)
        if self._young(snapshot, self._now_ms()):
            return snapshot.access()
        refreshed = await self._refresh(
            merchant_id, snapshot.version, RotationReason.FORCED
        )
        return refreshed.access()

    async def connect(
        self, merchant_id: str, store_id: str, pair: TokenPair
    ) -> AccessToken:
        """Store the first pair of a new authorization of ``merchant_id``."""
        version = await self.pairs.write_if(merchant_id, pair, None)
        assert version is not None
        merchant = await self.merchants.connect(merchant_id, store_id)
        await self.alerts.clear_for(merchant_id)
        await self.schedule.plan(merchant_id, pair.access_expires_at_ms)
        snapshot = Snapshot(merchant_id, pair, version, self.keys.current_id, 0)
        metrics.ROTATIONS.labels(RotationReason.CONNECT.value).inc()
        metrics.ACCESS_EXPIRY.mark(merchant_id, pair.access_expires_at_ms / 1000)
        log.info(
            "merchant connected",
            extra={"merchant_id": merchant_id, "store_id": store_id},
        )
        await self._publish(merchant, snapshot, RotationReason.CONNECT)
        return snapshot.access()

    async def refresh_if_due(self, merchant_id: str) -> AccessToken | None:
        """Refresh a merchant the schedule says is due; None if nothing to do."""
        snapshot = await self.pairs.read(merchant_id)
        merchant = await self.merchants.get(merchant_id)
        if snapshot is None or merchant is None:
            await self.schedule.drop(merchant_id)
            return None
        if merchant.state is MerchantState.REAUTH_REQUIRED:
            await self.schedule.drop(merchant_id)
            return None
        expires_ms = snapshot.pair.access_expires_at_ms
        if not self.schedule.in_window(expires_ms):
            # Another process rotated since this one was scheduled.
            await self.schedule.plan(merchant_id, expires_ms)
            return None
        with contextlib.suppress(TokenUnavailable):
            refreshed = await self._refresh(
                merchant_id, snapshot.version, RotationReason.PROACTIVE
            )
            return refreshed.access()
        return None

    async def reseal_all(self) -> int:
        """Seal every stored pair with the newest key; returns how many changed."""
        changed = 0
        for merchant in await self.merchants.all():
            snapshot = await self.pairs.read(merchant.merchant_id)
            if snapshot is None or snapshot.key_id == self.keys.current_id:
                continue
            # A rotation meanwhile writes with the newest key anyway.
            if await self.pairs.reseal(snapshot):
                changed += 1
        return changed

    async def close(self) -> None:
        """Wait for pending events, then close Clover's session and the publisher."""
        await self.settle_events()
        await self.clover.close()
        await self._publisher.close()

    # -- one refresh at a time ----------
    async def _refresh(
        self, merchant_id: str, seen_version: int, reason: RotationReason
    ) -> Snapshot:
        answer = self._flights.get(merchant_id)
        if answer is None:
            answer = asyncio.get_running_loop().create_future()
            answer.add_done_callback(_retrieved)
            self._flights[merchant_id] = answer
            flight = asyncio.create_task(
                self._fly(answer, merchant_id, seen_version, reason)
            )
            self._background.add(flight)
            flight.add_done_callback(self._landed(merchant_id, answer))
        return await asyncio.shield(answer)

    async def _fly(
        self,
        answer: asyncio.Future[Snapshot],
        merchant_id: str,
        seen_version: int,
        reason: RotationReason,
    ) -> None:
        """One refresh; ``answer`` gets its result, early if it rotates."""
        try:
            snapshot = await self._refresh_across_processes(
                merchant_id, seen_version, reason
            )
        except asyncio.CancelledError:
            answer.cancel()
            raise
        except Exception as exc:
            if not answer.done():
                answer.set_exception(exc)
                return
            # Callers already have the new token; only the bookkeeping failed.
            log.warning(
                "token rotated, but its bookkeeping failed: %s",
                type(exc).__name__,
                extra={"merchant_id": merchant_id},
            )
            return
        if not answer.done():
            answer.set_result(snapshot)

    def _landed(
        self, merchant_id: str, answer: asyncio.Future[Snapshot]
    ) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self._background.discard(task)
            if self._flights.get(merchant_id) is answer:
                del self._flights[merchant_id]

        return done

    def _answer_waiters(self, rotated: Snapshot) -> None:
        """Hand a durable new pair to this process's callers waiting for it."""
        answer = self._flights.get(rotated.merchant_id)
        if answer is not None and not answer.done():
            answer.set_result(rotated)

    async def _refresh_across_processes(
        self, merchant_id: str, seen_version: int, reason: RotationReason
    ) -> Snapshot:
        deadline = time.monotonic() + self._wait_limit_s
        pause_s = _POLL_FIRST_S
        while True:
            owner = await self._lock.acquire(merchant_id)
            if owner is not None:
                try:
                    snapshot = await self._current(merchant_id)
                    if snapshot.version != seen_version:
                        return snapshot
                    return await self._rotate_locked(snapshot, reason)
                finally:
                    await self._lock.release(merchant_id, owner)
            snapshot = await self._current(merchant_id)
            if snapshot.version != seen_version:
                return snapshot
            if time.monotonic() > deadline:
                raise TokenUnavailable(
                    f"refresh of merchant {merchant_id} by another process "
                    "did not finish in time",
                    merchant_id=merchant_id,
                    reason="refresh_failing",
                    retry_after_s=1.0,
                )
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, _POLL_MAX_S)

    async def _rotate_locked(
        self, snapshot: Snapshot, reason: RotationReason
    ) -> Snapshot:
        merchant_id = snapshot.merchant_id
        merchant = await self.merchants.get(merchant_id)
        now_ms = self._now_ms()
        if merchant is not None and merchant.state is MerchantState.REAUTH_REQUIRED:
            raise _reauth_required(merchant_id)
        if merchant is not None and merchant.backing_off(now_ms):
            return self._serve_while_failing(snapshot, merchant.retry_at_ms, now_ms)

        in_flight = await self.pairs.in_flight(merchant_id)
        lost_answer = (
            in_flight is not None
            and in_flight.refresh_fingerprint == snapshot.refresh_fingerprint
        )
        await self.pairs.mark_in_flight(
            merchant_id, snapshot.refresh_fingerprint, reason.value
        )
        try:
            if lost_answer:
                pair, reason = await self._recover(snapshot, reason)
            else:
                pair = await self.clover.refresh(
                    snapshot.pair.refresh_token, merchant_id
                )
        except CloverError as exc:
            return await self._on_failure(snapshot, merchant, exc)
        if self._after_clover_answer is not None:
            self._after_clover_answer(merchant_id)
        return await self._store_rotation(snapshot, merchant, pair, reason)

    async def _recover(
        self, snapshot: Snapshot, reason: RotationReason
    ) -> tuple[TokenPair, RotationReason]:
        """A process died after spending the stored refresh token: recover the pair.

        If Clover never received that spend, the token is still current and
        recovery refuses it (nothing spent); then a plain refresh is right.
        """
        merchant_id = snapshot.merchant_id
        log.warning(
            "previous rotation did not finish; trying Clover recovery",
            extra={"merchant_id": merchant_id},
        )
        try:
            pair = await self.clover.recover(snapshot.pair.refresh_token, merchant_id)
        except CloverError as exc:
            if exc.retriable:
                raise
            log.info(
                "recovery refused, the stored refresh token is still current",
                extra={"merchant_id": merchant_id, "status": exc.status},
            )
            return await self.clover.refresh(
                snapshot.pair.refresh_token, merchant_id
            ), (reason)
        return pair, RotationReason.RECOVERY

    async def _store_rotation(
        self,
        snapshot: Snapshot,
        merchant: Merchant | None,
        pair: TokenPair,
        reason: RotationReason,
    ) -> Snapshot:
        merchant_id = snapshot.merchant_id
        version = await self.pairs.write_if(
            merchant_id, pair, snapshot.refresh_fingerprint
        )
        if version is None:
            # Only a new authorization replaces the pair under a held lock; it wins.
            log.warning(
                "pair replaced during refresh; keeping the newer authorization",
                extra={"merchant_id": merchant_id},
            )
            return await self._current(merchant_id)
        rotated = Snapshot(
            merchant_id, pair, version, self.keys.current_id, self._now_ms()
        )
        # Durable now: the waiting callers need nothing of what follows.
        self._answer_waiters(rotated)
        await self.merchants.record_refresh(merchant_id)
        await self.schedule.plan(merchant_id, pair.access_expires_at_ms)
        metrics.ROTATIONS.labels(reason.value).inc()
        metrics.ACCESS_EXPIRY.mark(merchant_id, pair.access_expires_at_ms / 1000)
        log.info(
            "token rotated",
            extra={
                "merchant_id": merchant_id,
                "reason": reason.value,
                "version": version,
                "fingerprint": pair.access_fingerprint,
            },
        )
        if merchant is not None:
            await self._publish(merchant, rotated, reason, MerchantState.CONNECTED)
        return rotated

    async def _on_failure(
        self, snapshot: Snapshot, merchant: Merchant | None, exc: CloverError
    ) -> Snapshot:
        merchant_id = snapshot.merchant_id
        previous = merchant.state if merchant else MerchantState.CONNECTED
        if not exc.retriable:
            metrics.REFRESH_FAILURES.labels("permanent").inc()
            await self.pairs.clear_in_flight(merchant_id)
            await self.merchants.record_failure(
                merchant_id, MerchantState.REAUTH_REQUIRED, 0, exc.message
            )
            await self.schedule.drop(merchant_id)
            if previous is not MerchantState.REAUTH_REQUIRED:
                await self._raise_reauth_alert(merchant, snapshot, exc)
            raise _reauth_required(merchant_id) from exc

        metrics.REFRESH_FAILURES.labels("transient").inc()
        failures = (merchant.failures if merchant else 0) + 1
        now_ms = self._now_ms()
        retry_at_ms = now_ms + int(self._backoff_s(failures) * 1000)
        await self.merchants.record_failure(
            merchant_id, MerchantState.REFRESH_FAILING, retry_at_ms, exc.message
        )
        await self.schedule.plan_at(merchant_id, retry_at_ms)
        log.warning(
            "token refresh failed, will retry",
            extra={
                "merchant_id": merchant_id,
                "failures": failures,
                "retry_in_s": round((retry_at_ms - now_ms) / 1000, 1),
                "error": exc.message,
            },
        )
        if merchant is not None and previous is MerchantState.CONNECTED:
            await self._publish(
                merchant,
                snapshot,
                RotationReason.STATE_CHANGE,
                MerchantState.REFRESH_FAILING,
            )
        return self._serve_while_failing(snapshot, retry_at_ms, now_ms)

    async def _raise_reauth_alert(
        self, merchant: Merchant | None, snapshot: Snapshot, exc: CloverError
    ) -> None:
        stores = merchant.store_ids if merchant else ()
        await self.alerts.raise_for(snapshot.merchant_id, stores, exc.message)
        if merchant is not None:
            await self._publish(
                merchant,
                snapshot,
                RotationReason.STATE_CHANGE,
                MerchantState.REAUTH_REQUIRED,
            )

    def _serve_while_failing(
        self, snapshot: Snapshot, retry_at_ms: int, now_ms: int
    ) -> Snapshot:
        if snapshot.pair.access_expires_at_ms > now_ms:
            return snapshot
        raise TokenUnavailable(
            f"merchant {snapshot.merchant_id}: Clover refresh is failing and the "
            "access token has expired",
            merchant_id=snapshot.merchant_id,
            reason="refresh_failing",
            retry_after_s=max(1.0, (retry_at_ms - now_ms) / 1000),
        )

    def _backoff_s(self, failures: int) -> float:
        ceiling = min(
            self.settings.token_retry_max_s,
            self.settings.token_retry_base_s * 2 ** min(failures - 1, 20),
        )
        # Half fixed, half random: spreads retries without ever retrying at once.
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311

    # -- events ----------
    async def _publish(
        self,
        merchant: Merchant,
        snapshot: Snapshot,
        reason: RotationReason,
        state: MerchantState = MerchantState.CONNECTED,
    ) -> None:
        event = TokenRotationEvent(
            merchant_id=merchant.merchant_id,
            store_ids=merchant.store_ids,
            state=state,
            token_version=snapshot.version,
            fingerprint=snapshot.pair.access_fingerprint,
            access_token_expires_at=datetime.fromtimestamp(
                snapshot.pair.access_expires_at_ms / 1000, UTC
            ),
            reason=reason,
            at=datetime.fromtimestamp(self._clock(), UTC),
        )
        # Kept in Redis first, so a failed publish or a crash loses nothing; then
        # published off the request path: callers wait for Redis, not for Kafka.
        payload = await self.events.put(event)
        task = asyncio.create_task(self._send(event, payload))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send(self, event: TokenRotationEvent, payload: bytes) -> None:
        with contextlib.suppress(RedisError, OSError):  # the drain retries it
            await self.events.publish(event, payload)

    async def settle_events(self) -> None:
        """Wait until this process's rotations and publishes in progress finish."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # -- reading ----------
    async def _current(self, merchant_id: str) -> Snapshot:
        snapshot = await self.pairs.read(merchant_id)
        if snapshot is None:
            raise TokenUnavailable(
                f"merchant {merchant_id} is not connected",
                merchant_id=merchant_id,
                reason="not_connected",
            )
        return snapshot

    def _young(self, snapshot: Snapshot, now_ms: int) -> bool:
        return now_ms - snapshot.written_at_ms < MIN_ROTATION_INTERVAL_MS

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _retrieved(answer: asyncio.Future[Snapshot]) -> None:
    # Read here, so an error nobody waited for is not reported as never retrieved.
    if not answer.cancelled():
        answer.exception()


def _reauth_required(merchant_id: str) -> TokenUnavailable:
    return TokenUnavailable(
        f"merchant {merchant_id} must authorize the app again",
        merchant_id=merchant_id,
        reason="reauth_required",
    )


def _check_lease(settings: Settings) -> None:
    # Recovery may take two Clover calls under one lease.
    if settings.token_refresh_lease_s <= 2 * settings.clover_timeout_s:
        raise ConfigError(
            "LOCKERLINK_TOKEN_REFRESH_LEASE_S must be longer than two "
            f"Clover timeouts ({2 * settings.clover_timeout_s:g} s)",
            setting="token_refresh_lease_s",
        )
