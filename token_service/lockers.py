"""Locker credentials: high-entropy, stored only as hashes, bound to one store.

A credential is ``llk_`` followed by 256 random bits, shown once at enrolment. Redis
keeps only its SHA-256 (a fast hash is enough for a secret with that much entropy)
mapped to the locker id; the locker's record names its store, its current and
previous credential hashes and when it was last used. ``rotate`` issues a new
credential while the old one keeps working for a grace period.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from lockerlink.errors import CredentialError, InputError
from lockerlink.keys import KeySpace
from schemas.topics import is_valid_store_id
from token_service.recent import RecentAnswers

CREDENTIAL_PREFIX = "llk_"
_CREDENTIAL = re.compile(r"^llk_[A-Za-z0-9_-]{43}$")
# Last-use times are written at most this often per locker: a hot locker must not
# turn every token read into a Redis write.
_LAST_USE_EVERY_MS = 10_000
# A process remembers a credential it checked for this long, so a busy locker costs
# no Redis reads to authenticate; a revocation or rotation made by another process
# reaches this one within that time (this process's own changes at once).
REMEMBER_S = 2.0
_REMEMBER_AT_MOST = 10_000


@dataclass(frozen=True)
class Locker:
    """An enrolled locker server and the store it belongs to."""

    locker_id: str
    store_id: str
    enrolled_at_ms: int
    last_used_at_ms: int
    revoked: bool


@dataclass(frozen=True)
class Enrolment:
    """A new credential, to be shown once and then forgotten."""

    locker: Locker
    credential: str


def credential_hash(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def looks_like_credential(value: str) -> bool:
    return _CREDENTIAL.fullmatch(value) is not None


class LockerRegistry:
    """Enrols, authenticates, rotates and revokes locker credentials."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keyspace: KeySpace,
        grace_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._keyspace = keyspace
        self._grace_ms = int(grace_s * 1000)
        self._clock = clock
        self._last_use_written: dict[str, int] = {}
        self._known: RecentAnswers[str, Locker] = RecentAnswers(
            REMEMBER_S, clock, _REMEMBER_AT_MOST
        )

    async def enroll(self, store_id: str) -> Enrolment:
        """A new locker for ``store_id`` with its first credential."""
        if not is_valid_store_id(store_id):
            raise InputError(f"invalid store id {store_id!r}", reason="bad_store_id")
        locker_id = f"lk-{secrets.token_hex(6)}"
        credential = _new_credential()
        now_ms = self._now_ms()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._keyspace.locker(locker_id),
                mapping={
                    "store_id": store_id,
                    "enrolled_at_ms": now_ms,
                    "last_used_at_ms": 0,
                    "revoked": 0,
                    "current_hash": credential_hash(credential),
                },
            )
            pipe.set(
                self._keyspace.locker_credential(credential_hash(credential)), locker_id
            )
            pipe.sadd(self._keyspace.lockers_index(), locker_id)
            pipe.sadd(self._keyspace.lockers_of_store(store_id), locker_id)
            await pipe.execute()
        locker = Locker(locker_id, store_id, now_ms, 0, False)
        return Enrolment(locker, credential)

    async def authenticate(self, credential: str) -> Locker:
        """The live locker holding ``credential``; `CredentialError` otherwise."""
        if not looks_like_credential(credential):
            raise CredentialError("malformed credential", reason="malformed")
        presented = credential_hash(credential)
        locker = await self._known.get(presented, lambda: self._verify(presented))
        assert locker is not None  # _verify raises rather than answering None
        await self.touch(locker)
        return locker

    def remembered(self, credential: str) -> Locker | None:
        """The locker of a credential this process checked moments ago, if any."""
        return self._known.fresh(credential_hash(credential))

    def checked_before(self, credential: str) -> bool:
        """Whether this process found ``credential`` valid before (maybe long ago)."""
        return self._known.seen(credential_hash(credential))

    def forget(self, locker_id: str | None = None) -> None:
        """Drop remembered credentials (of one locker, or all) after a change."""
        self._known.forget(
            None if locker_id is None else lambda locker: locker.locker_id == locker_id
        )

    async def _verify(self, presented: str) -> Locker:
        found = await self._redis.get(self._keyspace.locker_credential(presented))
        if found is None:
            raise CredentialError("unknown or revoked credential", reason="unknown")
        locker_id = _text(found)
        record = await self._record(locker_id)
        hashes = (record.get("current_hash", ""), record.get("previous_hash", ""))
        # The lookup was by hash; compare again in constant time so a stale index
        # entry can never authenticate a credential the record no longer holds.
        matched = [hmac.compare_digest(presented, h) for h in hashes]
        if record.get("revoked") != "0" or not any(matched):
            raise CredentialError("unknown or revoked credential", reason="unknown")
        return _locker(locker_id, record)

    async def rotate(self, locker_id: str) -> Enrolment:
        """A new credential; the current one keeps working for the grace period."""
        record = await self._live_record(locker_id)
        self.forget(locker_id)
        credential = _new_credential()
        new_hash = credential_hash(credential)
        old_hash = record["current_hash"]
        async with self._redis.pipeline(transaction=True) as pipe:
            stale = record.get("previous_hash")
            if stale:
                pipe.delete(self._keyspace.locker_credential(stale))
            pipe.hset(
                self._keyspace.locker(locker_id),
                mapping={"current_hash": new_hash, "previous_hash": old_hash},
            )
            pipe.set(self._keyspace.locker_credential(new_hash), locker_id)
            pipe.pexpire(
                self._keyspace.locker_credential(old_hash), max(1, self._grace_ms)
            )
            await pipe.execute()
        return Enrolment(_locker(locker_id, record), credential)

    async def revoke(self, locker_id: str) -> Locker:
        """Stop every credential of the locker at once."""
        record = await self._live_record(locker_id)
        self.forget(locker_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            for name in ("current_hash", "previous_hash"):
                if record.get(name):
                    pipe.delete(self._keyspace.locker_credential(record[name]))
            pipe.hset(self._keyspace.locker(locker_id), "revoked", 1)
            await pipe.execute()
        # Again: a lookup that began between the first forget and the write may
        # have remembered the credential as still good.
        self.forget(locker_id)
        return _locker(locker_id, {**record, "revoked": "1"})

    async def all(self) -> list[Locker]:
        members = await self._redis.smembers(self._keyspace.lockers_index())
        lockers = []
        for locker_id in sorted(_text(m) for m in members):
            record = await self._record(locker_id)
            if record:
                lockers.append(_locker(locker_id, record))
        return lockers

    async def _live_record(self, locker_id: str) -> dict[str, str]:
        record = await self._record(locker_id)
        if not record:
            raise InputError(f"no locker {locker_id!r}", reason="unknown_locker")
        if record.get("revoked") != "0":
            raise InputError(f"locker {locker_id!r} is revoked", reason="revoked")
        return record

    async def _record(self, locker_id: str) -> dict[str, str]:
        raw = await self._redis.hgetall(self._keyspace.locker(locker_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def touch(self, locker: Locker) -> None:
        """Note that the locker was just used (written at most every 10 s)."""
        locker_id = locker.locker_id
        now_ms = self._now_ms()
        if now_ms - self._last_use_written.get(locker_id, 0) < _LAST_USE_EVERY_MS:
            return
        self._last_use_written[locker_id] = now_ms
        await self._redis.hset(
            self._keyspace.locker(locker_id), "last_used_at_ms", now_ms
        )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _new_credential() -> str:
    return CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


def _locker(locker_id: str, record: dict[str, str]) -> Locker:
    return Locker(
        locker_id=locker_id,
        store_id=record.get("store_id", ""),
        enrolled_at_ms=int(record.get("enrolled_at_ms") or 0),
        last_used_at_ms=int(record.get("last_used_at_ms") or 0),
        revoked=record.get("revoked") != "0",
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
