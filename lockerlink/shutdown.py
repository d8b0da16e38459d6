"""How a lockerlink process learns it should stop: SIGINT (Ctrl-C) or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_requested() -> asyncio.Event:
    """An event the running loop sets on SIGINT or SIGTERM.

    Every service waits on it, then stops in its own order; the loop keeps running
    while it does, so a second signal does not cut the clean-up short.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stopping.set)
    return stopping
