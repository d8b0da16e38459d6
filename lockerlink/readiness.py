"""Readiness checks: does this process reach what its work needs, right now?

Each check answers within ``PROBE_TIMEOUT_S`` and never raises, so `/readyz` says
"not ready" instead of failing or hanging when a dependency is away.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from lockerlink.ops_http import ReadyCheck

PROBE_TIMEOUT_S = 2.0


async def redis_reachable(redis: aioredis.Redis) -> bool:
    """True when Redis answers PING."""
    try:
        return bool(await asyncio.wait_for(redis.ping(), PROBE_TIMEOUT_S))
    except (RedisError, OSError, TimeoutError):
        return False


async def broker_reachable(client: AIOKafkaClient) -> bool:
    """True when a broker answers a metadata request on ``client``'s connections."""
    try:
        await asyncio.wait_for(client.fetch_all_metadata(), PROBE_TIMEOUT_S)
    except (KafkaError, OSError, TimeoutError):
        return False
    return True


def all_of(*checks: ReadyCheck) -> ReadyCheck:
    """A check that passes when every one of ``checks`` passes, asked in order."""

    async def ready() -> bool:
        for check in checks:
            if not await check():
                return False
        return True

    return ready
