"""Remembered answers: kept for their time, loaded once however many ask."""

from __future__ import annotations

import asyncio

import pytest

from tests.sandboxes import ManualClock
from token_service.recent import RecentAnswers


async def test_concurrent_askers_share_one_load_and_reload_after_the_time() -> None:
    clock = ManualClock()
    answers: RecentAnswers[str, str] = RecentAnswers(2.0, clock)
    loads = 0
    release = asyncio.Event()

    async def load() -> str:
        nonlocal loads
        loads += 1
        await release.wait()
        return f"answer-{loads}"

    askers = [asyncio.create_task(answers.get("k", load)) for _ in range(100)]
    await asyncio.sleep(0)
    release.set()
    first = await asyncio.gather(*askers)
    clock.advance(1.9)
    still = await answers.get("k", load)
    clock.advance(0.1)
    later = await answers.get("k", load)

    assert set(first) == {"answer-1"} and still == "answer-1"
    assert later == "answer-2"


async def test_a_failed_or_empty_load_is_not_remembered() -> None:
    answers: RecentAnswers[str, str] = RecentAnswers(2.0, ManualClock())

    async def fail() -> str:
        raise LookupError("gone")

    async def nothing() -> str | None:
        return None

    async def found() -> str:
        return "found"

    with pytest.raises(LookupError):
        await answers.get("k", fail)
    assert not answers.seen("k")
    assert await answers.get("k", nothing) is None
    assert await answers.get("k", found) == "found" and answers.seen("k")


async def test_forgotten_answers_are_loaded_again() -> None:
    answers: RecentAnswers[str, str] = RecentAnswers(2.0, ManualClock())

    async def first() -> str:
        return "first"

    async def second() -> str:
        return "second"

    await answers.get("a", first)
    await answers.get("b", first)
    answers.forget(lambda value: value == "first")

    assert await answers.get("a", second) == "second"
    assert not answers.seen("b")


async def test_an_answer_loading_while_forgotten_is_not_kept() -> None:
    answers: RecentAnswers[str, str] = RecentAnswers(2.0, ManualClock())
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "stale"

    loading = asyncio.create_task(answers.get("k", slow))
    await asyncio.sleep(0)
    answers.forget()
    release.set()

    assert await loading == "stale"
    assert answers.fresh("k") is None and not answers.seen("k")
