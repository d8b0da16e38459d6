"""`lockerlink deliver`, `lockerlink replay` and `lockerlink dlq`."""

from __future__ import annotations

import asyncio
import signal

import click

from consumers.backoff import Backoff
from consumers.delivery import CENTRAL_GROUP, DeliveryService, in_store_group
from consumers.store_lane import DeliveryOptions
from lockerlink.cli import settings_from
from lockerlink.devstack import SERVICES, Service
from lockerlink.errors import ConfigError
from lockerlink.registry import StoreRegistry, load_registry
from lockerlink.settings import Settings
from schemas.topics import store_topic

# `dev up` runs central delivery; with no registry file it holds every store it sees
# (one alert each) and delivers nothing, which is harmless.
if not any(service.name == "deliver" for service in SERVICES):
    SERVICES.append(Service("deliver", ("deliver",)))


def delivery_options(settings: Settings) -> DeliveryOptions:
    return DeliveryOptions(
        commit_interval_s=settings.delivery_commit_interval_s,
        queue_limit=settings.delivery_queue_limit,
        backoff=Backoff(max_s=settings.delivery_retry_max_s),
        session_timeout_s=settings.delivery_session_timeout_s,
    )


def _in_store_registry_check(registry: StoreRegistry, store_id: str) -> None:
    store = registry.store(store_id)
    if store is None:
        raise ConfigError(f"store {store_id!r} is not in the store registry")
    if store.locker is None:
        raise ConfigError(f"store {store_id!r} has no locker endpoint in the registry")


@click.command()
@click.option(
    "--store",
    "store_id",
    default=None,
    help="Run in-store: deliver only this store's topic, with its credential.",
)
@click.option("--group", default=None, help="Consumer group (rarely needed).")
@click.pass_context
def deliver(ctx: click.Context, store_id: str | None, group: str | None) -> None:
    """Deliver locker orders from store topics to the stores' locker servers."""
    settings = settings_from(ctx)
    registry = load_registry(settings.store_registry_path)
    topics: tuple[str, ...] = ()
    if store_id is not None:
        _in_store_registry_check(registry, store_id)
        topics = (store_topic(store_id),)
    service = DeliveryService(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        registry=registry,
        group_id=group or (in_store_group(store_id) if store_id else CENTRAL_GROUP),
        topics=topics,
        options=delivery_options(settings),
    )
    asyncio.run(_until_signal(service))


async def _until_signal(service: DeliveryService) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await service.run(stopping)
