"""The stream's commands: `stream`, `transform` and `schemas export`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from lockerlink.cli import settings_from
from lockerlink.devstack import SERVICES, Service
from lockerlink.registry import Store, StoreRegistry, load_registry
from schemas.export import SCHEMA_DIR, write_schemas
from schemas.topics import DEAD_LETTER, RAW_ORDERS, is_valid_store_id
from streams.ledger import MemoryLedger
from streams.processor import OrderProcessor
from streams.record import Output, RawRecord

LOCAL_STORE = "local"
EXIT_DEAD_LETTER = 2

# `dev up` runs the stream beside the other services.
if not any(service.name == "stream" for service in SERVICES):
    SERVICES.append(Service("stream", ("stream",)))


@click.command("stream")
@click.pass_context
def stream(ctx: click.Context) -> None:
    """Run the Faust stream: raw Clover orders into store topics."""
    from streams.app import run_stream

    run_stream(settings_from(ctx))


def _resolver(registry: StoreRegistry, store_id: str | None) -> Store | None:
    if store_id is None:
        return None
    if not is_valid_store_id(store_id):
        raise click.BadParameter(
            f"{store_id!r} is not a store id", param_hint="--store"
        )
    return registry.store(store_id) or Store(store_id=store_id)


async def _transform_one(
    registry: StoreRegistry, forced: Store | None, record: RawRecord
) -> list[Output]:
    async def resolve(merchant_id: str) -> Store | None:
        if forced is not None:
            return forced
        if not registry.stores:
            return Store(store_id=LOCAL_STORE)
        return registry.store_for_merchant(merchant_id)

    processor = OrderProcessor(resolve, MemoryLedger())
    return await processor.process([record])


@click.command("transform")
@click.option("--store", "store_id", help="Store to file the order under.")
@click.option("--merchant", "merchant_id", help="Merchant id (default: the order's).")
@click.option(
    "--registry",
    "registry_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Store registry YAML (default: LOCKERLINK_STORE_REGISTRY_PATH).",
)
@click.argument("source", type=click.File("rb"), default="-")
@click.pass_context
def transform(
    ctx: click.Context,
    store_id: str | None,
    merchant_id: str | None,
    registry_path: Path | None,
    source: click.utils.LazyFile,
) -> None:
    """Print the locker order event of one Clover order JSON (FILE or stdin).

    Uses the stream's own code, without a broker or Redis. Input the stream would
    dead-letter prints the reason on stderr and exits with status 2.
    """
    path = registry_path or settings_from(ctx).store_registry_path
    registry = load_registry(path)
    forced = _resolver(registry, store_id)
    value = source.read()
    key = merchant_id.encode() if merchant_id else None
    record = RawRecord(RAW_ORDERS, 0, 0, key, value)
    outputs = asyncio.run(_transform_one(registry, forced, record))
    if not outputs:
        click.echo("no event: the order was never emitted, nothing to cancel", err=True)
        return
    out = outputs[0]
    if out.topic == DEAD_LETTER:
        from schemas.dead_letter import DeadLetter

        letter = DeadLetter.model_validate_json(out.value)
        click.echo(f"dead letter: {letter.reason}: {letter.detail}", err=True)
        sys.exit(EXIT_DEAD_LETTER)
    click.echo(out.value.decode())


@click.group("schemas")
def schemas_group() -> None:
    """The contracts lockerlink publishes."""


@schemas_group.command("export")
@click.argument(
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=SCHEMA_DIR,
)
def schemas_export(directory: Path) -> None:
    """Write the JSON Schemas of the locker order and token-rotation events."""
    for path in write_schemas(directory):
        click.echo(f"wrote {path}")
