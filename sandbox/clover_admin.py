"""The sandbox's own control endpoints, under ``/_sandbox``, for tools and demos.

Tests in the same process use ``CloverSandbox`` methods instead; these endpoints
serve a sandbox started from the command line.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)

from sandbox.clover_calls import CallLog
from sandbox.clover_faults import CloverFaults, FaultSpec
from sandbox.clover_orderbook import OrderBook
from sandbox.clover_rejection import Rejection
from sandbox.clover_tokens import TokenAuthority, TokenPair
from sandbox.order_generator import OrderGenerator

ADMIN_PREFIX = "/_sandbox"


class GeneratorChange(BaseModel):
    """What a PUT to the generator changes; absent parts stay as they are."""

    model_config = ConfigDict(extra="forbid")

    paused: StrictBool | None = None
    orders_per_s: float | None = Field(None, gt=0, le=1000)

    @model_validator(mode="after")
    def _something(self) -> GeneratorChange:
        if self.paused is None and self.orders_per_s is None:
            raise ValueError("nothing to change")
        return self


class AdminApi:
    """Merchants, connections and introspection over HTTP."""

    def __init__(
        self,
        tokens: TokenAuthority,
        book: OrderBook,
        calls: CallLog,
        faults: CloverFaults,
        add_merchant: Callable[[str | None], str],
        generator: OrderGenerator | None = None,
    ) -> None:
        self._generator = generator
        self._faults = faults
        self._tokens = tokens
        self._book = book
        self._calls = calls
        self._add_merchant = add_merchant

    def add_routes(self, app: web.Application) -> None:
        base = f"{ADMIN_PREFIX}/merchants"
        router = app.router
        router.add_post(base, self.add_merchant, name="admin.add_merchant")
        router.add_post(f"{base}/{{mId}}/connect", self.connect, name="admin.connect")
        router.add_post(
            f"{base}/{{mId}}/uninstall", self.uninstall, name="admin.uninstall"
        )
        router.add_get(f"{ADMIN_PREFIX}/calls", self.calls, name="admin.calls")
        faults = f"{ADMIN_PREFIX}/faults"
        router.add_put(faults, self.add_faults, name="admin.add_faults")
        router.add_delete(faults, self.clear_faults, name="admin.clear_faults")
        router.add_get(faults, self.in_flight, name="admin.faults")
        router.add_get(f"{ADMIN_PREFIX}/orders", self.versions, name="admin.orders")
        router.add_put(
            f"{ADMIN_PREFIX}/generator", self.set_generator, name="admin.generator"
        )

    async def add_merchant(self, request: web.Request) -> web.Response:
        wanted = request.query.get("merchant_id")
        return web.json_response({"merchant_id": self._add_merchant(wanted)})

    async def connect(self, request: web.Request) -> web.Response:
        pair: TokenPair = self._tokens.connect(self._known(request))
        return web.json_response(dict(pair))

    async def uninstall(self, request: web.Request) -> web.Response:
        self._tokens.uninstall(self._known(request))
        return web.json_response({"uninstalled": request.match_info["mId"]})

    async def add_faults(self, request: web.Request) -> web.Response:
        """Add faults described by a JSON ``FaultSpec``."""
        try:
            spec = FaultSpec.model_validate_json(await request.read())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise Rejection(
                f"Invalid fault spec at {where}: {first['msg']}",
                status=400,
                outcome="bad_request",
            ) from None
        spec.apply(self._faults)
        return web.json_response({"applied": spec.model_dump(exclude_none=True)})

    async def clear_faults(self, request: web.Request) -> web.Response:
        self._faults.clear()
        return web.json_response({"cleared": True})

    async def in_flight(self, request: web.Request) -> web.Response:
        """Requests hanging now, each caller named by its address and port."""
        callers = [list(caller) for caller in self._faults.hanging_callers]
        return web.json_response({"hanging": len(callers), "callers": callers})

    async def calls(self, request: web.Request) -> web.Response:
        rows = [
            {
                "endpoint": call.endpoint,
                "outcome": call.outcome,
                "merchant_id": call.merchant_id,
                "count": count,
            }
            for call, count in self._calls.snapshot().items()
        ]
        return web.json_response({"elements": rows})

    async def set_generator(self, request: web.Request) -> web.Response:
        """Pause, resume or re-pace the order generator.

        ``{"paused": true|false}``, ``{"orders_per_s": N}`` (per merchant) or both.
        """
        try:
            change = GeneratorChange.model_validate_json(await request.read())
        except ValidationError:
            raise Rejection(
                'Send {"paused": true|false} and/or {"orders_per_s": N}',
                status=400,
                outcome="bad_request",
            ) from None
        if self._generator is None:
            raise Rejection("No order generator", status=404, outcome="not_found")
        if change.paused is not None:
            self._generator.paused = change.paused
        if change.orders_per_s is not None:
            self._generator.config.orders_per_s = change.orders_per_s
        return web.json_response(
            {
                "paused": self._generator.paused,
                "orders_per_s": self._generator.config.orders_per_s,
            }
        )

    async def versions(self, request: web.Request) -> web.Response:
        rows = [
            {
                "merchant_id": v.merchant_id,
                "order_id": v.order_id,
                "version": v.version,
                "modified_time_ms": v.modified_time_ms,
                "kind": v.kind,
            }
            for v in self._book.versions(request.query.get("merchant_id"))
        ]
        return web.json_response({"elements": rows})

    def _known(self, request: web.Request) -> str:
        merchant_id = request.match_info["mId"]
        if not self._book.has_merchant(merchant_id):
            raise Rejection("Unknown merchant", status=404, outcome="not_found")
        return merchant_id
