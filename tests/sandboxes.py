"""Fixtures that start our own stand-ins (the sandboxes) on loopback.

``clover_sandbox`` is a started ``CloverSandbox`` with one merchant and default
settings; ``clover_sandbox_factory`` starts one with a config and clock of the
test's choosing. Both stop it afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig

SandboxFactory = Callable[..., Awaitable[CloverSandbox]]


class ManualClock:
    """A clock that moves only when a test says so (Unix seconds)."""

    def __init__(self, start_s: float = 1_760_000_000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
async def clover_sandbox_factory() -> AsyncIterator[SandboxFactory]:
    """Starts Clover sandboxes: ``await make(config, clock=...)``."""
    started: list[CloverSandbox] = []

    async def make(
        config: CloverConfig | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> CloverSandbox:
        sandbox = CloverSandbox(config, clock=clock) if clock else CloverSandbox(config)
        await sandbox.start()
        started.append(sandbox)
        return sandbox

    try:
        yield make
    finally:
        for sandbox in started:
            await sandbox.stop()


@pytest.fixture
async def clover_sandbox(clover_sandbox_factory: SandboxFactory) -> CloverSandbox:
    """A started Clover sandbox with one merchant (``merchant_ids[0]``)."""
    return await clover_sandbox_factory()
