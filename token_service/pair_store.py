"""Sealed token pairs in Redis, written only by compare-and-set.

A merchant's pair is a hash: the sealed pair, the id of the key that sealed it, the
fingerprints of both tokens, the access expiry and a version that grows by one at
every rotation. A rotation overwrites the pair only while the stored refresh token is
still the one that was spent (a Lua compare-and-set), and clears the in-flight mark in
the same step, so a crash leaves either the old pair with its mark or the new pair.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from lockerlink.keys import KeySpace
from token_service.keyring import Sealed, VaultKeys
from token_service.pair import AccessToken, TokenPair

_WRITE_IF = """
local current = redis.call('HGET', KEYS[1], 'refresh_fp')
if ARGV[1] ~= '*' and current ~= ARGV[1] then return -1 end
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0') + 1
redis.call('HSET', KEYS[1], 'key_id', ARGV[2], 'blob', ARGV[3],
  'refresh_fp', ARGV[4], 'access_fp', ARGV[5], 'access_expires_at_ms', ARGV[6],
  'written_at_ms', ARGV[7], 'version', version)
redis.call('DEL', KEYS[2])
return version
"""

_RESEAL_IF = """
if redis.call('HGET', KEYS[1], 'refresh_fp') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'key_id', ARGV[2], 'blob', ARGV[3])
return 1
"""

_FIELDS = (
    b"key_id",
    b"blob",
    b"version",
    b"written_at_ms",
    b"refresh_fp",
    b"access_fp",
)


@dataclass(frozen=True)
class Snapshot:
    """A merchant's stored pair as read at one moment, opened."""

    merchant_id: str
    pair: TokenPair
    version: int
    key_id: str
    written_at_ms: int

    @property
    def refresh_fingerprint(self) -> str:
        return self.pair.refresh_fingerprint

    def access(self) -> AccessToken:
        return AccessToken(
            token=self.pair.access_token,
            expires_at_ms=self.pair.access_expires_at_ms,
            fingerprint=self.pair.access_fingerprint,
            version=self.version,
            merchant_id=self.merchant_id,
        )


@dataclass(frozen=True)
class InFlight:
    """A rotation that started: which refresh token it spent, and when."""

    refresh_fingerprint: str
    started_at_ms: int
    reason: str


class PairStore:
    """Reads and writes sealed pairs; the refresh token never leaves in clear."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keyspace: KeySpace,
        keys: VaultKeys,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._keyspace = keyspace
        self._keys = keys
        self._write_if = redis.register_script(_WRITE_IF)
        self._reseal_if = redis.register_script(_RESEAL_IF)
        # Opening the same record twice gives the same pair; skip the AES work.
        self._opened: dict[tuple[str, bytes], TokenPair] = {}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def read(self, merchant_id: str) -> Snapshot | None:
        """The merchant's current pair, or None if none is stored."""
        values = await self._redis.hmget(
            self._keyspace.token_pair(merchant_id), _FIELDS
        )
        return self.snapshot(merchant_id, values)

    def read_fields(self, merchant_id: str) -> tuple[str, tuple[bytes, ...]]:
        """The hash key and fields of the merchant's pair; `snapshot` opens them."""
        return self._keyspace.token_pair(merchant_id), _FIELDS

    def snapshot(
        self, merchant_id: str, values: Sequence[bytes | str | None]
    ) -> Snapshot | None:
        """The snapshot in the answer of a pair read, opened."""
        key_id, blob, version, written_at_ms, *_ = values
        if blob is None or key_id is None:
            return None
        return Snapshot(
            merchant_id=merchant_id,
            pair=self._open(merchant_id, _text(key_id), _raw(blob)),
            version=int(version or 0),
            key_id=_text(key_id),
            written_at_ms=int(written_at_ms or 0),
        )

    async def write_if(
        self, merchant_id: str, pair: TokenPair, spent_refresh_fp: str | None
    ) -> int | None:
        """Store ``pair`` if the stored refresh token is still ``spent_refresh_fp``.

        ``None`` writes unconditionally (a new authorization replaces whatever was
        there). Returns the new version, or None when the compare failed.
        """
        sealed = self._keys.seal(pair.to_json(), merchant_id.encode())
        version = await self._write_if(
            keys=[
                self._keyspace.token_pair(merchant_id),
                self._keyspace.rotation_in_flight(merchant_id),
            ],
            args=[
                "*" if spent_refresh_fp is None else spent_refresh_fp,
                sealed.key_id,
                sealed.blob,
                pair.refresh_fingerprint,
                pair.access_fingerprint,
                pair.access_expires_at_ms,
                self._now_ms(),
            ],
        )
        return None if int(version) < 0 else int(version)

    async def reseal(self, snapshot: Snapshot) -> bool:
        """Seal a stored pair again with the newest key, unless it rotated meanwhile."""
        sealed = self._keys.seal(snapshot.pair.to_json(), snapshot.merchant_id.encode())
        done = await self._reseal_if(
            keys=[self._keyspace.token_pair(snapshot.merchant_id)],
            args=[snapshot.refresh_fingerprint, sealed.key_id, sealed.blob],
        )
        return bool(done)

    async def mark_in_flight(
        self, merchant_id: str, refresh_fingerprint: str, reason: str
    ) -> None:
        """Record, before Clover is called, which refresh token is being spent."""
        await self._redis.hset(
            self._keyspace.rotation_in_flight(merchant_id),
            mapping={
                "refresh_fp": refresh_fingerprint,
                "started_at_ms": self._now_ms(),
                "reason": reason,
            },
        )

    async def in_flight(self, merchant_id: str) -> InFlight | None:
        key = self._keyspace.rotation_in_flight(merchant_id)
        fp, started_at_ms, reason = await self._redis.hmget(
            key, ["refresh_fp", "started_at_ms", "reason"]
        )
        if fp is None:
            return None
        return InFlight(
            refresh_fingerprint=_text(fp),
            started_at_ms=int(started_at_ms or 0),
            reason=_text(reason or b""),
        )

    async def clear_in_flight(self, merchant_id: str) -> None:
        await self._redis.delete(self._keyspace.rotation_in_flight(merchant_id))

    def _open(self, merchant_id: str, key_id: str, blob: bytes) -> TokenPair:
        cache_key = (merchant_id, blob)
        pair = self._opened.get(cache_key)
        if pair is None:
            raw = self._keys.open(Sealed(key_id, blob), merchant_id.encode())
            pair = TokenPair.from_json(raw)
            if len(self._opened) > 10_000:
                self._opened.clear()
            self._opened[cache_key] = pair
        return pair


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
