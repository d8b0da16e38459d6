"""`lockerlink status-page`: the status page as a long-running service."""

from __future__ import annotations

import contextlib
import logging
import ssl

import aiohttp
from aiohttp import web

from lockerlink.keys import KeySpace
from lockerlink.listen import start_site
from lockerlink.local_secrets import admin_credential, admin_credential_path
from lockerlink.ops_http import add_ops_routes
from lockerlink.redis_store import connect_redis
from lockerlink.registry import load_registry
from lockerlink.sentry import init_sentry
from lockerlink.settings import Settings
from lockerlink.shutdown import stop_requested
from lockerlink.status import StatusBoard
from lockerlink.status_page import TokenState, TokenStates, make_status_app

log = logging.getLogger(__name__)


def _token_service_tls(settings: Settings) -> ssl.SSLContext:
    """Trust the development CA when there is one, else the system's roots."""
    dev_ca = settings.data_dir / "tls" / "ca.pem"
    if settings.token_service_tls_cert is None and dev_ca.exists():
        return ssl.create_default_context(cafile=str(dev_ca))
    return ssl.create_default_context()


def token_states_from_service(
    settings: Settings, http: aiohttp.ClientSession, credential: str
) -> TokenStates:
    """Ask the token service's admin API for every merchant's token state."""
    url = settings.token_service_url.rstrip("/") + "/v1/admin/merchants"
    headers = {"Authorization": f"Bearer {credential}"}

    async def states() -> dict[str, TokenState]:
        try:
            async with http.get(
                url,
                headers=headers,
                ssl=_token_service_tls(settings),
                timeout=aiohttp.ClientTimeout(total=2),
            ) as response:
                if response.status != 200:
                    return {}
                rows = (await response.json())["merchants"]
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError):
            log.warning("token service unreachable; token states unknown")
            return {}
        return {
            row["merchant_id"]: TokenState(
                row["merchant_id"],
                row["state"],
                row.get("access_expires_at_ms"),
                row.get("last_refresh_at_ms"),
            )
            for row in rows
        }

    return states


async def _serve(settings: Settings, runner: web.AppRunner) -> None:
    """Listen, say where, and wait for SIGINT or SIGTERM."""
    await runner.setup()
    host, port = settings.status_page_host, settings.status_page_port
    await start_site(web.TCPSite(runner, host, port), "status page", host, port)
    where = (
        "LOCKERLINK_ADMIN_CREDENTIAL"
        if settings.admin_credential
        else str(admin_credential_path(settings))
    )
    log.info(
        "status page at http://%s:%s/ (password: the admin credential in %s)",
        host,
        port,
        where,
    )
    await stop_requested().wait()


async def run_status_page(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    init_sentry(settings, component="status-page")
    registry = load_registry(settings.store_registry_path)
    redis = connect_redis(settings.redis_url)
    credential = admin_credential(settings)
    http = aiohttp.ClientSession()
    app = make_status_app(
        StatusBoard(redis, KeySpace(settings.redis_key_prefix)),
        registry,
        credential,
        token_states_from_service(settings, http, credential),
    )
    add_ops_routes(app, component="status-page")
    runner = web.AppRunner(app, access_log=None)
    try:
        await _serve(settings, runner)
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
        await http.close()
        await redis.aclose()
