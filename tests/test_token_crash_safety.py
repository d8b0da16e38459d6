"""Crash safety: a pair Redis acknowledged survives, a lost Clover answer recovers."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import redis.asyncio as aioredis

from lockerlink.embedded import EmbeddedRedis, free_port
from lockerlink.errors import TokenUnavailable
from lockerlink.keys import KeySpace
from schemas.token_rotation import RotationReason
from tests.crash_refresh import CRASH_EXIT_CODE
from tests.token_fixtures import Rig, pair_of
from token_service.keyring import VaultKeys
from token_service.pair import AccessToken
from token_service.pair_store import PairStore
from token_service.vault import Vault


async def test_acknowledged_pair_survives_redis_sigkill(
    vault_rig: Rig, tmp_path: Path
) -> None:
    data_dir = tmp_path / "valkey"
    server = EmbeddedRedis("127.0.0.1", free_port(), data_dir)
    server.start()
    keys = VaultKeys.from_settings(vault_rig.settings)
    keyspace = KeySpace("aof")
    pair = pair_of(
        vault_rig.sandbox.connect_merchant(vault_rig.sandbox.merchant_ids[0])
    )
    try:
        client = aioredis.Redis.from_url(server.url)
        await PairStore(client, keyspace, keys).write_if("M1", pair, None)
        await client.aclose()
        server.kill()  # SIGKILL right after the acknowledgement

        server.start()
        client = aioredis.Redis.from_url(server.url)
        stored = await PairStore(client, keyspace, keys).read("M1")
        await client.aclose()
    finally:
        server.stop()

    assert stored is not None
    assert stored.pair == pair
    assert stored.version == 1


async def _crash_refresh(rig: Rig, merchant_id: str) -> int:
    env = {
        **os.environ,
        "LOCKERLINK_REDIS_URL": rig.settings.redis_url,
        "LOCKERLINK_DATA_DIR": str(rig.settings.data_dir),
        "LOCKERLINK_CLOVER_API_BASE_URL": str(rig.settings.clover_api_base_url),
        "LOCKERLINK_CLOVER_TIMEOUT_S": "1",
        "LOCKERLINK_TOKEN_REFRESH_LEASE_S": "2.5",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.crash_refresh",
        rig.keyspace.prefix,
        merchant_id,
        env=env,
    )
    return await asyncio.wait_for(process.wait(), timeout=60)


async def test_process_dying_after_clover_answered_is_recovered(
    vault_rig: Rig,
) -> None:
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    before = await vault.get_access_token(merchant)

    assert await _crash_refresh(vault_rig, merchant) == CRASH_EXIT_CODE
    calls = vault_rig.sandbox.calls
    assert calls.count("refresh", outcome="ok", merchant_id=merchant) == 1
    in_flight = await vault.pairs.in_flight(merchant)
    assert in_flight is not None  # the mark outlived the process
    stored = await vault.pairs.read(merchant)
    assert stored is not None and stored.pair.access_token == before.token

    # The lock of the dead process expires with its lease; then the next refresh
    # finds the mark and recovers with the refresh token Redis still holds.
    vault_rig.clock.advance(31 * 60)
    recovered = await _eventually_token(vault, merchant)

    assert recovered.token != before.token
    assert vault_rig.sandbox.tokens.merchant_of_access(recovered.token) == merchant
    assert calls.count("recovery", outcome="ok", merchant_id=merchant) == 1
    assert calls.count("refresh", outcome="reused") == 0
    assert calls.count("recovery", outcome="reused") == 0
    assert await vault.pairs.in_flight(merchant) is None
    assert (await vault_rig.published())[-1].reason is RotationReason.RECOVERY


async def _eventually_token(vault: Vault, merchant: str) -> AccessToken:
    for _ in range(20):
        try:
            return await vault.get_access_token(merchant)
        except TokenUnavailable:
            await asyncio.sleep(0.5)
    raise AssertionError("no token after the dead process's lease ran out")
