"""The stream worker's /healthz, /readyz and /metrics, served beside Faust.

Faust's own web server is off by default and has views of its own; the stream serves
the same three endpoints as every other service instead, on its own port. It is
ready once the consumer group gave it its partitions and while Redis answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
import redis.asyncio as aioredis

from lockerlink.ops_http import OpsServer
from lockerlink.readiness import redis_reachable


def serve_ops(
    app: faust.App, host: str, port: int, redis: Callable[[], aioredis.Redis]
) -> None:
    """Run an `OpsServer` for ``app`` while it runs; ``redis`` gives its client."""
    assigned = asyncio.Event()

    async def ready() -> bool:
        return assigned.is_set() and await redis_reachable(redis())

    server = OpsServer("stream", host, port, ready)

    async def on_assigned(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        assigned.set()

    async def start() -> None:
        await server.start()

    async def stop(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        await server.stop()

    app.on_partitions_assigned.connect(on_assigned)
    app.task(start)
    app.on_before_shutdown.connect(stop)
