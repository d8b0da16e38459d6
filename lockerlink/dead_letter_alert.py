"""The `dead-letters` alert: one mail when records start being set aside, one all-clear.

Dead letters come one by one, sometimes in floods; operators want to hear that they
began, and when none has come for a quiet spell, not one mail per record. The first
dead letter raises the alert (once across every process: the state is in Redis);
every dead letter, in any process, notes its time in Redis too, and the all-clear
goes once none has come anywhere for ``quiet_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from lockerlink.alerts import Alert, Alerter

log = logging.getLogger(__name__)

DEAD_LETTERS_KEY = "dead-letters"
RETRY_S = 5.0


class DeadLetterAlert:
    """Raises `dead-letters` on a first dead letter, clears it after a quiet spell."""

    def __init__(
        self,
        alerter: Alerter,
        quiet_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.alerter = alerter
        self.quiet_s = quiet_s
        self._clock = clock
        self._last_seen_key = alerter.keyspace.alert_last_seen(DEAD_LETTERS_KEY)
        self._count = 0
        self._quiet_watch: asyncio.Task[None] | None = None

    async def seen(self, where: str | None, detail: str) -> None:
        """One record set aside; ``where``: its store (or merchant) when known.

        ``detail`` goes into a mail: ids and reasons only, never order contents.
        """
        self._count += 1
        await self.alerter.redis.set(
            self._last_seen_key,
            int(self._clock() * 1000),
            ex=max(60, int(self.quiet_s * 2)),
        )
        if self._quiet_watch is not None and not self._quiet_watch.done():
            return
        self._count = 1
        await self.alerter.raise_alert(
            Alert(
                DEAD_LETTERS_KEY,
                "New dead letters",
                f"A record was set aside ({where or 'no store'}): {detail}\n"
                "More may follow; `lockerlink dlq list` shows them all.",
            )
        )
        self._quiet_watch = asyncio.create_task(self._clear_when_quiet())

    async def _quiet_for_s(self) -> float:
        """How long no process has seen a dead letter."""
        last_ms = await self.alerter.redis.get(self._last_seen_key)
        if last_ms is None:
            return self.quiet_s
        return self._clock() - int(last_ms) / 1000

    async def _clear_when_quiet(self) -> None:
        wait_s = self.quiet_s
        while wait_s > 0:
            await asyncio.sleep(wait_s)
            try:
                # A dead letter anywhere moved the end of the quiet spell further out.
                wait_s = self.quiet_s - await self._quiet_for_s()
            except (RedisError, OSError) as exc:
                log.warning("dead-letter alert not checked: %s", exc)
                wait_s = RETRY_S
        component = self.alerter.component
        with contextlib.suppress(RedisError, OSError):
            await self.alerter.clear_alert(
                DEAD_LETTERS_KEY,
                f"No new dead letter for {self.quiet_s:.0f} s; this {component} set "
                f"aside {self._count}. `lockerlink dlq list` shows what waits.",
            )

    async def close(self) -> None:
        """Stop watching for the quiet spell (at shutdown); the alert stays raised."""
        if self._quiet_watch is not None:
            self._quiet_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._quiet_watch
