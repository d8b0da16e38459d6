"""A local Clover: OAuth v2, the orders REST API and introspection, on aiohttp.

``CloverSandbox`` composes the parts: ``tokens`` (OAuth rules), ``orders`` (the
order book), ``calls`` (what was asked and how it ended), ``limiter`` (rate limits),
``faults`` (injected failures), ``webhooks`` (notifications) and ``generator``
(seeded orders). Start it on loopback with ``await sandbox.start()`` or serve
``sandbox.app`` any other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from lockerlink.listen import start_site
from sandbox.clover_admin import ADMIN_PREFIX, AdminApi
from sandbox.clover_calls import MERCHANT_KEY, OUTCOME_KEY, CallLog
from sandbox.clover_config import CloverConfig
from sandbox.clover_faults import CloverFaults
from sandbox.clover_ids import CloverIds
from sandbox.clover_limits import RateLimiter
from sandbox.clover_oauth import OAuthApi
from sandbox.clover_orderbook import OrderBook
from sandbox.clover_orders import OrdersApi
from sandbox.clover_rejection import Rejection
from sandbox.clover_tokens import TokenAuthority, TokenPair
from sandbox.clover_webhooks import WebhookSender
from sandbox.order_generator import OrderGenerator

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_OUTCOME_OF_STATUS = {400: "bad_request", 401: "unauthorized", 404: "not_found"}


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "error"
    return _OUTCOME_OF_STATUS.get(status, "bad_request")


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Rejection("Missing bearer access token", status=401, outcome="unknown")
    return token.strip()


class CloverSandbox:
    """One local Clover for one app, with its merchants, tokens and orders."""

    def __init__(
        self,
        config: CloverConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or CloverConfig()
        self.clock = clock
        self.calls = CallLog()
        self.ids = CloverIds(self.config.seed)
        self.orders = OrderBook(self.ids, clock)
        self.tokens = TokenAuthority(self.config, clock)
        self.limiter = RateLimiter(self.config.limits, clock)
        self.faults = CloverFaults(self.tokens, clock)
        self.generator = OrderGenerator(self.orders, self.config.generator)
        self._generating: asyncio.Task[None] | None = None
        self.webhooks = WebhookSender(
            self.config.webhooks, self.config.app_id, self.orders
        )
        for merchant_id in self.config.merchant_ids:
            self.orders.add_merchant(merchant_id)
        self.app = self._build_app()
        self.base_url: str | None = None
        self._runner: web.AppRunner | None = None

    # -- merchants -------------------------------------------------------------------
    def add_merchant(self, merchant_id: str | None = None) -> str:
        """Add a merchant with the app installed; returns its id."""
        made = merchant_id or self.ids.new()
        self.orders.add_merchant(made)
        self.tokens.install(made)
        return made

    def connect_merchant(self, merchant_id: str) -> TokenPair:
        """A first token pair for a merchant, exactly as a code exchange issues it."""
        return self.tokens.connect(merchant_id)

    def uninstall(self, merchant_id: str) -> None:
        """Uninstall the app for a merchant; all its tokens stop working at once."""
        self.tokens.uninstall(merchant_id)

    @property
    def merchant_ids(self) -> list[str]:
        return self.orders.merchant_ids()

    # -- serving ---------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = any free port); returns the base URL."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await start_site(site, "Clover sandbox", host, port, runner=runner)
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}"
        await self.webhooks.start()
        if self.config.generator.orders_per_s > 0:
            self._generating = asyncio.create_task(
                self.generator.run(lambda: self.merchant_ids), name="clover-orders"
            )
        log.info("clover sandbox listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        self.faults.clear()
        if self._generating is not None:
            self._generating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._generating
            self._generating = None
        await self.webhooks.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the application ---------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._refuse, self._guard])
        OAuthApi(self.tokens, self.orders, self.config).add_routes(app)
        OrdersApi(self.orders, self.config).add_routes(app)
        admin = AdminApi(
            self.tokens,
            self.orders,
            self.calls,
            self.faults,
            self.add_merchant,
            self.generator,
        )
        admin.add_routes(app)
        return app

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            endpoint = request.match_info.route.name or "unknown"
            outcome = request.get(OUTCOME_KEY) or _outcome(status)
            merchant_id = request.get(MERCHANT_KEY) or request.match_info.get("mId")
            self.calls.record(endpoint, outcome, merchant_id)

    @web.middleware
    async def _refuse(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except Rejection as exc:
            request[OUTCOME_KEY] = exc.outcome
            if exc.merchant_id and MERCHANT_KEY not in request:
                request[MERCHANT_KEY] = exc.merchant_id
            return web.json_response(
                {"message": exc.message}, status=exc.status, headers=exc.headers
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return web.json_response({"message": exc.reason}, status=exc.status)

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        """Faults first, then for REST calls the token and the rate limits."""
        if request.path.startswith(ADMIN_PREFIX):
            return await handler(request)
        endpoint = request.match_info.route.name or "unknown"
        await self.faults.before(request, endpoint)
        if not request.path.startswith("/v3/"):
            await self.faults.delay()
            response = await handler(request)
            await self.faults.after(request, endpoint)
            return response
        token = _bearer(request)
        request[MERCHANT_KEY] = self._merchant_of(request, token)
        self.limiter.enter(token)
        try:
            await self.faults.delay()
            response = await handler(request)
            await self.faults.after(request, endpoint)
            return response
        finally:
            self.limiter.leave(token)

    def _merchant_of(self, request: web.Request, access_token: str) -> str:
        merchant_id = self.tokens.merchant_of_access(access_token)
        if request.match_info.get("mId") != merchant_id:
            raise Rejection(
                "Token is not valid for this merchant",
                status=401,
                outcome="wrong_merchant",
                merchant_id=merchant_id,
            )
        return merchant_id
