"""Rate limits shared by every process: GCRA in one Redis Lua script.

The generic cell rate algorithm keeps one number per subject, the theoretical
arrival time (TAT) of its next request. A request is allowed when it would not push
the TAT further than ``burst`` emission intervals past now. Redis's own clock is
used, so processes on hosts with drifting clocks agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from lockerlink.keys import KeySpace

# gcra(key, emission interval ms, burst, cost, dry run '1'/'0') ->
# {allowed, remaining, retry_after_ms, reset_ms}
_GCRA_FUNCTION = """
local function gcra(key, interval, burst, cost, dry_run)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - interval * burst
  if now < allow_at then
    return {0, 0, allow_at - now, tat - now}
  end
  if dry_run == '0' and cost > 0 then
    redis.call('SET', key, new_tat, 'PX', math.max(1, new_tat - now))
  end
  local remaining = math.floor((now - allow_at) / interval)
  return {1, remaining, 0, new_tat - now}
end
"""
# KEYS[1] subject; ARGV: emission interval ms, burst, cost, dry run (1/0).
_GCRA = (
    _GCRA_FUNCTION
    + """
return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
"""
)
# KEYS[1] subject, KEYS[2] a hash; ARGV: interval ms, burst, then the hash's fields.
# Counts one request and, only if it is allowed, reads the fields: one round trip.
_GCRA_THEN_HMGET = (
    _GCRA_FUNCTION
    + """
local verdict = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 1, '0')
if verdict[1] == 1 then
  verdict[5] = redis.call('HMGET', KEYS[2], unpack(ARGV, 3))
end
return verdict
"""
)


@dataclass(frozen=True)
class Verdict:
    """A rate limiter's answer, with what the response headers need."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int
    reset_s: int
    window_s: int
    policy: str

    def headers(self) -> dict[str, str]:
        """``RateLimit-Policy`` and ``RateLimit`` (IETF draft), plus ``Retry-After``."""
        headers = {
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={self.window_s}',
            "RateLimit": f'"{self.policy}";r={self.remaining};t={self.reset_s}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiter:
    """One named limit: ``rate_per_s`` sustained, ``burst`` at once."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keyspace: KeySpace,
        policy: str,
        rate_per_s: float,
        burst: int,
    ) -> None:
        self._keyspace = keyspace
        self.policy = policy
        self.burst = burst
        self._interval_ms = max(1, round(1000 / rate_per_s))
        self._window_s = max(1, math.ceil(burst * self._interval_ms / 1000))
        self._script = redis.register_script(_GCRA)
        self._script_then_read = redis.register_script(_GCRA_THEN_HMGET)

    async def hit(self, subject: str, cost: int = 1) -> Verdict:
        """Count one request of ``subject``; the verdict says whether it may pass."""
        return await self._run(subject, cost, dry_run=False)

    async def check(self, subject: str) -> Verdict:
        """Would one more request pass? Counts nothing."""
        return await self._run(subject, 1, dry_run=True)

    async def hit_then_read(
        self, subject: str, hash_key: str, fields: Sequence[str | bytes]
    ) -> tuple[Verdict, list[bytes | None] | None]:
        """Count one request and, if it may pass, read ``fields`` of ``hash_key``.

        One Redis call (a plain pipeline would add a SCRIPT EXISTS round trip).
        The values are None when the request was refused.
        """
        answer = await self._script_then_read(
            keys=[self._keyspace.rate_limit(self.policy, subject), hash_key],
            args=[self._interval_ms, self.burst, *fields],
        )
        values = answer[4] if len(answer) > 4 else None
        return self.verdict(answer[:4]), values

    async def _run(self, subject: str, cost: int, dry_run: bool) -> Verdict:
        answer = await self._script(
            keys=[self._keyspace.rate_limit(self.policy, subject)],
            args=[self._interval_ms, self.burst, cost, "1" if dry_run else "0"],
        )
        return self.verdict(answer)

    def verdict(self, answer: list[int]) -> Verdict:
        """The verdict in the script's answer."""
        allowed, remaining, retry_after_ms, reset_ms = answer
        return Verdict(
            allowed=bool(allowed),
            limit=self.burst,
            remaining=max(0, int(remaining)),
            retry_after_s=max(1, math.ceil(int(retry_after_ms) / 1000)),
            reset_s=max(0, math.ceil(int(reset_ms) / 1000)),
            window_s=self._window_s,
            policy=self.policy,
        )
