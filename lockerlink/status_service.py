"""`lockerlink status-page`: the status page as a long-running service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from lockerlink.keys import KeySpace
from lockerlink.local_secrets import admin_credential, admin_credential_path
from lockerlink.ops_http import add_ops_routes
from lockerlink.redis_store import connect_redis
from lockerlink.registry import load_registry
from lockerlink.sentry import init_sentry
from lockerlink.settings import Settings
from lockerlink.status import StatusBoard
from lockerlink.status_page import make_status_app

log = logging.getLogger(__name__)


async def run_status_page(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    init_sentry(settings, component="status-page")
    registry = load_registry(settings.store_registry_path)
    redis = connect_redis(settings.redis_url)
    credential = admin_credential(settings)
    app = make_status_app(StatusBoard(redis, KeySpace()), registry, credential)
    add_ops_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.status_page_host, settings.status_page_port)
    await site.start()
    url = f"http://{settings.status_page_host}:{settings.status_page_port}/"
    where = (
        "LOCKERLINK_ADMIN_CREDENTIAL"
        if settings.admin_credential
        else str(admin_credential_path(settings))
    )
    log.info("status page at %s (password: the admin credential in %s)", url, where)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
        await redis.aclose()
