"""Answers looked up moments ago, kept for a short while and loaded once at a time.

The token service remembers which locker a credential belongs to and which merchant
a store belongs to for a few seconds, so a busy locker costs no Redis reads beyond
its token read. When a remembered answer runs out, every caller that asks for it at
that moment shares one load instead of each reading Redis (a stampede of a thousand
callers would otherwise make a thousand reads).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class RecentAnswers(Generic[K, V]):
    """A time-bounded memory of answers with one load in flight per key.

    ``clock`` gives seconds (a seam for tests); an answer is used for ``ttl_s``
    after it was loaded and then loaded again. A load that returns None or raises
    is not remembered.
    """

    def __init__(
        self,
        ttl_s: float,
        clock: Callable[[], float],
        max_entries: int = 10_000,
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._answers: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Task[V | None]] = {}
        # Bumped by `forget`: a load that started before must not bring back
        # what was forgotten while it ran.
        self._generation = 0

    def fresh(self, key: K) -> V | None:
        """The remembered answer for ``key`` if it is still within its time."""
        entry = self._answers.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def seen(self, key: K) -> bool:
        """Whether ``key`` was answered before, even if that answer ran out."""
        return key in self._answers

    async def get(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The fresh answer, or the result of one shared ``load``."""
        answer = self.fresh(key)
        if answer is not None:
            return answer
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, load, self._generation))
            self._loading[key] = task
            task.add_done_callback(self._landed(key))
        return await asyncio.shield(task)

    def forget(self, matches: Callable[[V], bool] | None = None) -> None:
        """Drop remembered answers (those ``matches`` accepts, or all).

        Loads running meanwhile still answer their callers but keep nothing.
        """
        self._generation += 1
        for key, (_, value) in list(self._answers.items()):
            if matches is None or matches(value):
                del self._answers[key]

    def _landed(self, key: K) -> Callable[[asyncio.Task[V | None]], None]:
        def done(task: asyncio.Task[V | None]) -> None:
            if self._loading.get(key) is task:
                del self._loading[key]
            if not task.cancelled():
                task.exception()  # retrieved here: every waiter may have gone

        return done

    async def _load(
        self, key: K, load: Callable[[], Awaitable[V | None]], generation: int
    ) -> V | None:
        try:
            answer = await load()
        except BaseException:
            self._answers.pop(key, None)
            raise
        if answer is None:
            self._answers.pop(key, None)
            return None
        if generation != self._generation:
            return answer  # forgotten meanwhile: answer this once, keep nothing
        if len(self._answers) >= self._max_entries:
            self._answers.clear()
        self._answers[key] = (self._clock() + self.ttl_s, answer)
        return answer
