"""A process's stop request: SIGINT or SIGTERM sets the event services wait on."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from lockerlink.shutdown import STOP_SIGNALS, stop_requested


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_the_event_is_set_by_a_stop_signal_and_not_before(
    sig: signal.Signals,
) -> None:
    loop = asyncio.get_running_loop()
    stopping = stop_requested()
    try:
        await asyncio.sleep(0.05)
        assert not stopping.is_set()
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(stopping.wait(), timeout=5)
    finally:
        for each in STOP_SIGNALS:
            loop.remove_signal_handler(each)
