"""Redis connections, one way for every component."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.errors import DependencyError


def connect_redis(url: str) -> aioredis.Redis:
    """An asyncio Redis client; it connects lazily on first use."""
    return aioredis.Redis.from_url(
        url, decode_responses=False, health_check_interval=30
    )


async def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    """True when a Redis server answers PING at ``url``."""
    client = aioredis.Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
    )
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


class RedisUnavailable(DependencyError):
    """Redis could not be reached or refused a command."""
