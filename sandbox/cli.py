"""`lockerlink sandbox ...`: run the local stand-ins from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import os

import click

from lockerlink.shutdown import stop_requested
from sandbox.clover_cli import clover
from sandbox.locker import LockerFaults, LockerSandbox


@click.group()
def sandbox() -> None:
    """Local stand-ins for Clover and for a store's locker server."""


sandbox.add_command(clover)


@sandbox.command("locker")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8091, show_default=True)
@click.option("--store", "store_id", default=None, help="Accept only this store.")
@click.option(
    "--credential-env",
    default=None,
    help="Environment variable holding the bearer credential clients must send.",
)
@click.option("--compartments", type=int, default=100, show_default=True)
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option(
    "--repeat-answer",
    type=click.Choice(["replay", "conflict"]),
    default="replay",
    show_default=True,
    help="Answer a repeated Idempotency-Key with 200 and the first body, or 409.",
)
def locker(
    host: str,
    port: int,
    store_id: str | None,
    credential_env: str | None,
    compartments: int,
    latency_ms: float,
    repeat_answer: str,
) -> None:
    """Serve one store's locker API until Ctrl-C (faults via PUT /_sandbox/faults)."""
    credential = None
    if credential_env is not None:
        credential = os.environ.get(credential_env)
        if not credential:
            raise click.UsageError(f"{credential_env} is not set")
    server = LockerSandbox(
        host=host,
        port=port,
        store_id=store_id,
        credential=credential,
        compartments=compartments,
        repeat_answer="conflict" if repeat_answer == "conflict" else "replay",
        faults=LockerFaults(latency_s=latency_ms / 1000),
    )
    asyncio.run(_serve(server))


async def _serve(server: LockerSandbox) -> None:
    url = await server.start()
    click.echo(f"locker sandbox listening on {url}", err=True)
    stopping = stop_requested()
    try:
        await stopping.wait()
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
