"""`/healthz`, `/readyz` and `/metrics` for every long-running lockerlink service.

Services that already serve HTTP mount the routes with `add_ops_routes`; the others
run an `OpsServer` on their own port.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]

# The lockerlink metric families each component reports. Every process imports every
# component's metrics (one CLI), so without this a stream's /metrics would also list
# the delivery service's breakers, at zero. The poller refreshes tokens through the
# vault's code path, so its token metrics are its own. Families not named
# ``lockerlink_*`` (process, Python) are always reported.
OWN_FAMILIES: dict[str, tuple[str, ...]] = {
    "poller": ("lockerlink_poller_", "lockerlink_token_"),
    "stream": ("lockerlink_stream_",),
    "delivery": ("lockerlink_delivery_",),
    "token-service": ("lockerlink_token_",),
    # The status page reads others' facts and has no lockerlink families itself.
    "status-page": (),
}


class _OwnMetrics:
    """A view of the process's registry holding only one component's families."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = prefixes

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            name = family.name
            if not name.startswith("lockerlink_") or name.startswith(self.prefixes):
                yield family


def metrics_registry(component: str | None) -> CollectorRegistry:
    """What ``component``'s /metrics reports: its own families, or all of them."""
    prefixes = OWN_FAMILIES.get(component or "")
    if prefixes is None:
        return REGISTRY
    view = CollectorRegistry(auto_describe=False)
    view.register(_OwnMetrics(prefixes))
    return view


def add_ops_routes(
    app: web.Application,
    ready: ReadyCheck | None = None,
    component: str | None = None,
) -> None:
    """Mount the health, readiness and metrics endpoints on ``app``.

    ``component`` limits /metrics to that component's families (`OWN_FAMILIES`).
    """
    registry = metrics_registry(component)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        is_ready = True if ready is None else await ready()
        return web.json_response(
            {"status": "ready" if is_ready else "not ready"},
            status=200 if is_ready else 503,
        )

    async def metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


class OpsServer:
    """A small HTTP server carrying only the operations endpoints."""

    def __init__(
        self, component: str, host: str, port: int, ready: ReadyCheck | None = None
    ) -> None:
        self.component = component
        self.host = host
        self.port = port
        app = web.Application()
        add_ops_routes(app, ready, component)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> bool:
        """Serve; False (logged) when the port is taken: the work goes on without."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            # Health and metrics must never stop the work they describe.
            log.error(
                "ops endpoints not served: %s",
                exc.strerror or exc,
                extra={"component": self.component, "port": self.port},
            )
            return False
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])  # the port the OS chose
        log.info(
            "ops endpoints listening",
            extra={"component": self.component, "port": self.port},
        )
        return True

    async def stop(self) -> None:
        await self._runner.cleanup()
