"""A vault wired to the Clover sandbox and the test's Redis key prefix.

``vault_rig`` gives a `Rig`: the sandbox, settings pointing at it (small leases and
timeouts), and ``make_vault()`` which builds vaults that record their rotation
events in ``rig.events``. Every vault made is closed afterwards.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from sandbox.clover import CloverSandbox
from schemas.token_rotation import TokenRotationEvent
from tests.sandboxes import ManualClock, SandboxFactory
from token_service.pair import TokenPair
from token_service.rotation_events import CallbackRotationPublisher
from token_service.service import TokenService
from token_service.tls import client_context, ensure_dev_certificate, server_context
from token_service.vault import Vault

FAST = {
    "clover_timeout_s": 2.0,
    "token_refresh_lease_s": 5.0,
    "token_retry_base_s": 30.0,
    "token_refresh_margin_s": 60.0,
    "token_refresh_spread_s": 120.0,
}


def settings_for(base: Settings, clover_url: str, **overrides: Any) -> Settings:
    """``base`` pointed at a Clover sandbox, with test-sized timings."""
    values = {
        **FAST,
        "clover_api_base_url": clover_url,
        "clover_authorize_base_url": clover_url,
        **overrides,
    }
    return base.model_copy(update=values)


def pair_of(issued: Any) -> TokenPair:
    """The sandbox's token pair as the vault stores it."""
    return TokenPair.from_clover(dict(issued))


@dataclass
class Rig:
    sandbox: CloverSandbox
    settings: Settings
    redis: aioredis.Redis
    keyspace: KeySpace
    clock: ManualClock
    events: list[TokenRotationEvent] = field(default_factory=list)
    vaults: list[Vault] = field(default_factory=list)
    redis_clients: list[aioredis.Redis] = field(default_factory=list)

    def make_vault(
        self,
        *,
        separate_connection: bool = False,
        clock: Callable[[], float] | None = None,
        **kwargs: Any,
    ) -> Vault:
        """A vault; with ``separate_connection`` it behaves as another process."""
        client = self.redis
        if separate_connection:
            client = aioredis.Redis.from_url(self.settings.redis_url)
            self.redis_clients.append(client)

        async def record(event: TokenRotationEvent) -> None:
            self.events.append(event)

        kwargs["clock"] = clock or self.clock
        kwargs.setdefault("publisher", CallbackRotationPublisher(record))
        vault = Vault(self.settings, client, self.keyspace, **kwargs)
        self.vaults.append(vault)
        return vault

    async def published(self) -> list[TokenRotationEvent]:
        """Every event published so far, once each vault's publishes settled.

        A vault answers its callers as soon as a new pair is durable; the event
        of that rotation follows moments later.
        """
        for vault in self.vaults:
            await vault.settle_events()
        return self.events

    async def connect(
        self, vault: Vault, store_id: str = "store-1", merchant_id: str | None = None
    ) -> str:
        """Connect a sandbox merchant to ``store_id`` directly (no browser)."""
        merchant = merchant_id or self.sandbox.merchant_ids[0]
        await vault.connect(
            merchant, store_id, pair_of(self.sandbox.connect_merchant(merchant))
        )
        return merchant


@pytest.fixture
async def vault_rig(
    clover_sandbox_factory: SandboxFactory,
    settings: Settings,
    redis: aioredis.Redis,
    keyspace: KeySpace,
) -> AsyncIterator[Rig]:
    """A Clover sandbox and vaults sharing one manual clock."""
    clock = ManualClock(time.time())
    sandbox = await clover_sandbox_factory(clock=clock)
    assert sandbox.base_url is not None
    rig = Rig(sandbox, settings_for(settings, sandbox.base_url), redis, keyspace, clock)
    try:
        yield rig
    finally:
        for vault in rig.vaults:
            await vault.close()
        for client in rig.redis_clients:
            await client.aclose()


@dataclass
class ApiRig:
    """A token service on loopback over TLS, its vault rig and an HTTPS client."""

    rig: Rig
    service: TokenService
    base_url: str
    ca: Path
    admin: str
    session: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    @staticmethod
    def bearer(credential: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"}

    async def enroll(self, store_id: str) -> str:
        """A new locker credential for ``store_id`` through the admin API."""
        async with self.session.post(
            self.url("/v1/admin/lockers"),
            json={"store_id": store_id},
            headers=self.bearer(self.admin),
        ) as resp:
            assert resp.status == 201, await resp.text()
            body = await resp.json()
        return str(body["credential"])


@pytest.fixture
async def token_api(vault_rig: Rig, tmp_path: Path) -> AsyncIterator[ApiRig]:
    """The token service's HTTPS API with a development CA, against the sandbox."""
    # Slow refill: a limit test's burst must not refill while a busy machine runs it.
    settings = vault_rig.settings.model_copy(
        update={
            "admin_credential": SecretStr("admin-" + "x" * 32),
            "locker_rate_per_s": 0.01,
            "auth_failure_rate_per_min": 0.5,
        }
    )
    vault_rig.settings = settings

    async def record(event: TokenRotationEvent) -> None:
        vault_rig.events.append(event)

    service = TokenService(
        settings,
        vault_rig.redis,
        vault_rig.keyspace,
        publisher=CallbackRotationPublisher(record),
        clock=vault_rig.clock,
    )
    files = ensure_dev_certificate(tmp_path / "tls", "127.0.0.1")
    port = await service.start("127.0.0.1", 0, server_context(files))
    assert files.ca is not None
    connector = aiohttp.TCPConnector(ssl=client_context(files.ca))
    session = aiohttp.ClientSession(connector=connector)
    try:
        yield ApiRig(
            vault_rig,
            service,
            f"https://127.0.0.1:{port}",
            files.ca,
            "admin-" + "x" * 32,
            session,
        )
    finally:
        await session.close()
        await service.stop()
