"""One token-service process: the HTTPS API and the proactive refresher.

`TokenService` builds every part from settings; `run_token_service` serves it until
SIGINT or SIGTERM. In development it prints where the CA file lockers must trust
is, and where the admin credential is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
import time
from collections.abc import Callable
from typing import IO

import redis.asyncio as aioredis
import uvloop
from aiohttp import web
from pydantic import SecretStr

from lockerlink.alerts import Alerter, SmtpSender
from lockerlink.keys import KeySpace
from lockerlink.listen import start_site
from lockerlink.local_secrets import admin_credential, admin_credential_path
from lockerlink.sentry import init_sentry
from lockerlink.settings import Settings
from lockerlink.shutdown import stop_requested
from token_service.alerts import ReauthAlerts
from token_service.api import TokenApi
from token_service.authorization import MerchantAuthorization
from token_service.lockers import LockerRegistry
from token_service.rate_limit import RateLimiter
from token_service.refresher import ProactiveRefresher
from token_service.rotation_events import RotationPublisher
from token_service.tls import server_context, tls_files
from token_service.vault import Vault

log = logging.getLogger(__name__)

COMPONENT = "token-service"
REDIS_CONNECTIONS = 64
VAULT_REDIS_CONNECTIONS = 16


class TokenService:
    """The vault, lockers, limits and API of one process, sharing one Redis client."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis | None = None,
        keyspace: KeySpace | None = None,
        *,
        publisher: RotationPublisher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings.model_copy(
            update={"admin_credential": SecretStr(admin_credential(settings))}
        )
        self.redis = redis or _redis_client(settings, REDIS_CONNECTIONS)
        # Refreshes get connections of their own: a burst of token reads queued for
        # the pool must not delay the one refresh those reads are waiting for.
        self.vault_redis = redis or _redis_client(settings, VAULT_REDIS_CONNECTIONS)
        self._owns_redis = redis is None
        self.keyspace = keyspace or KeySpace(settings.redis_key_prefix)
        alerter = Alerter(
            self.redis, self.keyspace, SmtpSender.from_settings(settings), COMPONENT
        )
        self.vault = Vault(
            self.settings,
            self.vault_redis,
            self.keyspace,
            publisher=publisher,
            alerts=ReauthAlerts(alerter),
            clock=clock,
        )
        self.lockers = LockerRegistry(
            self.redis, self.keyspace, settings.locker_rotation_grace_s, clock
        )
        self.authorization = MerchantAuthorization(
            self.vault, self.redis, self.keyspace
        )
        self.api = TokenApi(
            self.vault,
            self.lockers,
            self.authorization,
            RateLimiter(
                self.redis,
                self.keyspace,
                "locker",
                settings.locker_rate_per_s,
                settings.locker_burst,
            ),
            RateLimiter(
                self.redis,
                self.keyspace,
                "auth-failures",
                settings.auth_failure_rate_per_min / 60,
                settings.auth_failure_burst,
            ),
            clock,
        )
        self.refresher = ProactiveRefresher(
            self.vault, settings.token_refresh_concurrency
        )
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._refreshing: asyncio.Task[None] | None = None

    async def start(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> int:
        """Serve the API on host:port (0 = any) and start refreshing; the port."""
        self._runner = web.AppRunner(self.api.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await start_site(site, "token service", host, port)
        self._refreshing = asyncio.create_task(self.refresher.run(self._stopping))
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._stopping.set()
        try:
            if self._refreshing is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._refreshing
        finally:
            if self._runner is not None:
                await self._runner.cleanup()
            await self.vault.close()
            if self._owns_redis:
                await self.redis.aclose()
                await self.vault_redis.aclose()


def _redis_client(settings: Settings, connections: int) -> aioredis.Redis:
    # A burst of callers waits for a pooled connection instead of failing at the
    # client library's connection cap.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=connections,
        timeout=settings.clover_timeout_s,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


async def _serve(settings: Settings, out: IO[str]) -> None:
    files = tls_files(settings)
    service = TokenService(settings)
    port = await service.start(
        settings.token_service_host,
        settings.token_service_port,
        server_context(files),
    )
    url = f"https://{settings.token_service_host}:{port}"
    print(f"token service listening on {url}", file=out, flush=True)
    if files.ca is not None:
        print(f"lockers trust the development CA in {files.ca}", file=out, flush=True)
    if settings.admin_credential is None:
        print(
            f"admin credential kept in {admin_credential_path(settings)}",
            file=out,
            flush=True,
        )
    stopping = stop_requested()
    try:
        await stopping.wait()
    finally:
        await service.stop()


def run_token_service(settings: Settings, out: IO[str] = sys.stdout) -> int:
    """Run one token-service process until SIGINT or SIGTERM."""
    init_sentry(settings, component=COMPONENT)
    # uvloop: the event loop is most of the cost of a token read.
    uvloop.run(_serve(settings, out))
    return 0
