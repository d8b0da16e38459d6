"""One poller process put together: Kafka producer, Redis, Clover client, webhooks.

`PollerProcess` builds every part from the settings, starts the service and the
webhook endpoint, and on stop hands its merchants back before closing anything.
The token source and the list of merchants come from outside, so tests and the CLI
choose them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio import BlockingConnectionPool

from lockerlink.broker import make_producer, start_client
from lockerlink.keys import KeySpace
from lockerlink.listen import start_site
from lockerlink.ops_http import OpsServer
from lockerlink.readiness import broker_reachable, redis_reachable
from lockerlink.settings import Settings
from lockerlink.status import StatusBoard
from producers.budget import BudgetLimits, CloverBudget
from producers.clover_client import CloverClient
from producers.cursor import CursorStore
from producers.customers import CustomerCache
from producers.health import AlertHook, Backoff, CloverBreaker, log_only
from producers.inbox import WebhookInbox
from producers.journal import PublishJournal, TopicReader
from producers.lease import LeaseTable
from producers.ledger import PublishedLedger
from producers.poller import MerchantPoller, PollWindow
from producers.publisher import RawPublisher
from producers.service import Cadence, PollerService
from producers.token_source import TokenSource
from producers.webhooks import WEBHOOK_PATH, WebhookReceiver
from schemas.topics import RAW_ORDERS

log = logging.getLogger(__name__)

REDIS_CONNECTIONS = 32


def new_owner_id() -> str:
    """A name for this process in leases: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def budget_limits(settings: Settings) -> BudgetLimits:
    return BudgetLimits(
        app_requests_per_s=settings.poller_app_requests_per_s,
        app_concurrency=settings.poller_app_concurrency,
        merchant_requests_per_s=settings.poller_merchant_requests_per_s,
        merchant_concurrency=settings.poller_merchant_concurrency,
    )


def poll_window(settings: Settings) -> PollWindow:
    return PollWindow(
        lookback_ms=int(settings.poller_lookback_s * 1000),
        safety_lag_ms=int(settings.poller_safety_lag_s * 1000),
        backfill_ms=int(settings.poller_backfill_s * 1000),
        page_size=settings.poller_page_size,
    )


class PollerProcess:
    """Everything one `lockerlink poller` runs, started and stopped as one."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenSource,
        merchants: Callable[[], Awaitable[Collection[str]]],
        *,
        keys: KeySpace | None = None,
        topic: str = RAW_ORDERS,
        alert_hook: AlertHook = log_only,
        serve_webhooks: bool = True,
        ops_port: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``ops_port``: serve /healthz, /readyz and /metrics there (None: not)."""
        self.settings = settings
        self.owner = new_owner_id()
        self._tokens = tokens
        self._merchants = merchants
        self._keys = keys or KeySpace(settings.redis_key_prefix)
        self._topic = topic
        self._hook = alert_hook
        self._serve_webhooks = serve_webhooks
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._stopped = False
        self.webhook_url: str | None = None
        self.ops: OpsServer | None = None
        if ops_port is not None:
            self.ops = OpsServer("poller", settings.ops_host, ops_port, self.ready)

    async def start(self) -> None:
        """Connect to Kafka, Redis and Clover; start polling and serving webhooks."""
        settings = self.settings
        # Thousands of merchant tasks share a bounded pool: they wait for a
        # connection instead of opening one each.
        self.redis = aioredis.Redis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=REDIS_CONNECTIONS
            )
        )
        # Leases get a connection of their own: renewals must never queue behind
        # a thousand polls, or the leases would expire under a busy process.
        self._lease_redis = aioredis.Redis.from_url(settings.redis_url)
        self.producer = make_producer(settings.kafka_bootstrap_servers)
        await start_client(self.producer, settings.kafka_bootstrap_servers)
        self.session = aiohttp.ClientSession()
        self._build()
        self._task = asyncio.create_task(self.service.run())
        if self._serve_webhooks:
            await self._start_webhooks()
        if self.ops is not None:
            await self.ops.start()
        log.info(
            "poller started",
            extra={"owner": self.owner, "webhooks": self.webhook_url or "off"},
        )

    async def ready(self) -> bool:
        """Ready once merchants were shared out, while Kafka and Redis answer."""
        if self._task is None or not self.service.rebalanced.is_set():
            return False
        return await redis_reachable(self.redis) and await broker_reachable(
            self.producer.client
        )

    def _build(self) -> None:
        settings = self.settings
        backoff = Backoff(
            base_s=min(0.5, settings.poller_interval_s),
            max_s=settings.poller_backoff_max_s,
        )
        self.budget = CloverBudget(self.redis, self._keys, budget_limits(settings))
        self.breaker = CloverBreaker(self._hook, backoff)
        self.client = CloverClient(
            self.session,
            str(settings.clover_api_base_url),
            self._tokens,
            self.budget,
            self.breaker,
            timeout_s=settings.clover_timeout_s,
            clock=self._clock,
        )
        self.publisher = RawPublisher(self.producer, self._topic)
        self.inbox = WebhookInbox(self.redis, self._keys)
        self.poller = MerchantPoller(
            self.client,
            self.publisher,
            PublishedLedger(
                self.redis, self._keys, settings.poller_published_retention_s
            ),
            CursorStore(self.redis, self._keys),
            self.inbox,
            CustomerCache(self.client),
            poll_window(settings),
            self.owner,
            PublishJournal(self.redis, self._keys),
            TopicReader(settings.kafka_bootstrap_servers, self._topic),
            clock=self._clock,
        )
        self.service = PollerService(
            self.poller,
            self.client,
            LeaseTable(
                self._lease_redis, self._keys, self.owner, settings.poller_lease_ttl_s
            ),
            self.inbox,
            self.redis,
            self._merchants,
            Cadence(
                interval_s=settings.poller_interval_s,
                debounce_s=settings.poller_webhook_debounce_s,
                rebalance_s=settings.poller_lease_ttl_s / 3,
                app_requests_per_s=settings.poller_app_requests_per_s
                * self.budget.limits.poll_share,
                stop_timeout_s=settings.clover_timeout_s,
                delete_sweep_s=settings.poller_delete_sweep_s,
            ),
            self._hook,
            backoff,
            StatusBoard(self.redis, self._keys),
        )
        auth = settings.clover_webhook_auth_code
        self.receiver = WebhookReceiver(
            self.inbox,
            auth.get_secret_value() if auth is not None else None,
            lambda: self.service.known,
        )

    async def _start_webhooks(self) -> None:
        runner = web.AppRunner(self.receiver.app(), access_log=None)
        await runner.setup()
        host = self.settings.poller_webhook_host
        port = self.settings.poller_webhook_port
        site = web.TCPSite(runner, host, port)
        await start_site(site, "poller webhook endpoint", host, port, runner=runner)
        self._runner = runner
        port = runner.addresses[0][1]
        self.webhook_url = f"http://{host}:{port}{WEBHOOK_PATH}"

    async def stop(self) -> None:
        """Hand merchants back, then close webhooks, Kafka, Clover and Redis."""
        if self._stopped:
            return
        self._stopped = True
        if self.ops is not None:
            await self.ops.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._task is not None:
            self.service.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # A start that failed half-way leaves only some of these behind.
        if hasattr(self, "budget"):
            await self.budget.close()
        if hasattr(self, "session"):
            await self.session.close()
        if hasattr(self, "producer"):
            await self.producer.stop()
        if hasattr(self, "redis"):
            await self.redis.aclose()
            await self._lease_redis.aclose()
        log.info("poller stopped", extra={"owner": self.owner})

    async def __aenter__(self) -> PollerProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
