"""`lockerlink poller`: poll Clover, receive its webhooks, publish raw orders."""

from __future__ import annotations

import asyncio

import click

from lockerlink.alerts import Alerter, SmtpSender
from lockerlink.cli import settings_from
from lockerlink.devstack import SERVICES, Service
from lockerlink.keys import KeySpace
from lockerlink.redis_store import connect_redis
from lockerlink.sentry import init_sentry
from lockerlink.settings import Settings
from lockerlink.shutdown import stop_requested
from producers.health import alerter_hook
from producers.merchants import ConnectedMerchants
from producers.process import PollerProcess
from token_service.vault import Vault

# `dev up` runs one poller with its webhook endpoint; with no merchant connected it
# only keeps its heartbeat.
if not any(service.name == "poller" for service in SERVICES):
    SERVICES.append(Service("poller", ("poller",)))


@click.command()
@click.option(
    "--webhooks/--no-webhooks",
    default=True,
    help="Serve Clover's webhooks in this process (the default).",
)
@click.pass_context
def poller(ctx: click.Context, webhooks: bool) -> None:
    """Poll Clover for every connected merchant and publish raw orders to Kafka."""
    settings = settings_from(ctx)
    init_sentry(settings, "poller")
    asyncio.run(_run(settings, webhooks))


async def _run(settings: Settings, webhooks: bool) -> None:
    keys = KeySpace(settings.redis_key_prefix)
    redis = connect_redis(settings.redis_url)
    vault = Vault(settings, redis, keys)
    alerter = Alerter(redis, keys, SmtpSender.from_settings(settings), "poller")
    process = PollerProcess(
        settings,
        vault,
        ConnectedMerchants(redis, keys),
        keys=keys,
        alert_hook=alerter_hook(alerter),
        serve_webhooks=webhooks,
        ops_port=settings.poller_ops_port,
    )
    stopping = stop_requested()
    try:
        await process.start()
        if process.webhook_url is not None:
            click.echo(f"poller webhooks on {process.webhook_url}", err=True)
        await stopping.wait()
    finally:
        await process.stop()
        await vault.close()
        await redis.aclose()
