"""What the stream tells operators of its dead letters once the broker has them.

The status board counts them per store: the envelope's, else the store of the
record's merchant (a record too broken to parse still has its merchant in the key),
else `(unknown)`; the `dead-letters` alert mails operators when they start and when
they stop. Both are best effort: the dead letter itself is already safe on its topic.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from redis.exceptions import RedisError

from lockerlink.dead_letter_alert import DeadLetterAlert
from lockerlink.errors import DependencyError
from lockerlink.registry import Store
from lockerlink.status import StatusBoard
from schemas.dead_letter import DeadLetter
from schemas.topics import DEAD_LETTER
from streams.record import Output

log = logging.getLogger(__name__)


class DeadLetterReport:
    """Reports the dead letters among a batch's produced outputs."""

    def __init__(
        self,
        board: StatusBoard,
        alert: DeadLetterAlert,
        store_of: Callable[[str], Awaitable[Store | None]],
    ) -> None:
        self.board = board
        self.alert = alert
        self._store_of = store_of

    async def produced(self, outputs: Sequence[Output]) -> None:
        for out in outputs:
            if out.topic == DEAD_LETTER:
                await self._report(DeadLetter.model_validate_json(out.value))

    async def _report(self, letter: DeadLetter) -> None:
        where = (
            f"{letter.source_topic}/{letter.source_partition}@{letter.source_offset}"
        )
        try:
            store_id = letter.store_id
            if store_id is None and letter.merchant_id:
                store = await self._store_of(letter.merchant_id)
                store_id = store.store_id if store else None
            await self.board.record_dead_letter(store_id)
            # The reason and position only: the detail may quote the order.
            await self.alert.seen(
                store_id or letter.merchant_id, f"{letter.reason} at {where}"
            )
        except (RedisError, OSError, DependencyError) as exc:
            # The store lookup wraps Redis trouble as RedisUnavailable; either way
            # the batch is already on the broker and must not stop here.
            log.warning(
                "dead letter not reported: %s: %s",
                type(exc).__name__,
                exc,
                extra={"reason": letter.reason, "store_id": letter.store_id},
            )

    async def close(self) -> None:
        await self.alert.close()
