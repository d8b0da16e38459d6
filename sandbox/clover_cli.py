"""`lockerlink sandbox clover`: a local Clover served from the command line."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import click

from lockerlink.cli import settings_from
from lockerlink.local_secrets import local_secret
from lockerlink.settings import Settings
from lockerlink.shutdown import stop_requested
from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from sandbox.clover_limits import RateLimits
from sandbox.clover_webhooks import WebhookConfig
from sandbox.order_generator import GeneratorConfig


def merchant_ids(spec: str) -> tuple[str, ...]:
    """``3`` names three merchants LLSANDBOX0001..; ``A,B`` names them as given."""
    if spec.isdigit():
        return tuple(f"LLSANDBOX{n:04d}" for n in range(1, int(spec) + 1))
    chosen = tuple(part.strip() for part in spec.split(",") if part.strip())
    if not chosen:
        raise click.BadParameter("name at least one merchant", param_hint="--merchants")
    return chosen


def _secret(current: Settings, given: str | None, name: str) -> tuple[str, Path | None]:
    """A configured secret, or this machine's own kept in a private file."""
    if given:
        return given, None
    return local_secret(current.data_dir, name), current.data_dir / "secrets" / name


@click.command("clover")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8090, show_default=True)
@click.option(
    "--merchants",
    default="1",
    show_default=True,
    help="A count, or comma-separated merchant ids.",
)
@click.option(
    "--rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Generated orders per second per merchant.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--webhook-url", default=None, help="Where to POST webhook notifications."
)
@click.option("--webhook-drop", type=float, default=0.0, show_default=True)
@click.option("--webhook-duplicates", type=float, default=0.0, show_default=True)
@click.option("--no-limits", is_flag=True, help="Lift every rate limit.")
@click.option("--access-lifetime-s", type=float, default=1800.0, show_default=True)
@click.pass_context
def clover(
    ctx: click.Context,
    host: str,
    port: int,
    merchants: str,
    rate: float,
    seed: int,
    webhook_url: str | None,
    webhook_drop: float,
    webhook_duplicates: float,
    no_limits: bool,
    access_lifetime_s: float,
) -> None:
    """Serve a local Clover (OAuth v2, orders, webhooks) until Ctrl-C.

    The app id and secret come from the lockerlink settings; without a secret the
    machine's own is used (made once, kept under the data directory's secrets/).
    """
    current = settings_from(ctx)
    app_secret, secret_path = _secret(
        current, current.clover_secret, "clover-app-secret"
    )
    configured_code = current.clover_webhook_auth_code
    auth_code, code_path = _secret(
        current,
        configured_code.get_secret_value() if configured_code else None,
        "clover-webhook-auth-code",
    )
    config = CloverConfig(
        app_id=current.clover_app_id,
        app_secret=app_secret,
        merchant_ids=merchant_ids(merchants),
        seed=seed,
        access_token_lifetime_s=access_lifetime_s,
        limits=RateLimits.lifted() if no_limits else RateLimits(),
        webhooks=WebhookConfig(
            url=webhook_url,
            auth_code=auth_code,
            drop_probability=webhook_drop,
            duplicate_update_probability=webhook_duplicates,
            seed=seed,
        ),
        generator=GeneratorConfig(seed=seed, orders_per_s=rate),
    )
    for label, path in (("app secret", secret_path), ("webhook auth code", code_path)):
        if path is not None:
            click.echo(f"clover sandbox {label} is in {path}", err=True)
    asyncio.run(_serve(CloverSandbox(config), host, port))


async def _serve(sandbox: CloverSandbox, host: str, port: int) -> None:
    url = await sandbox.start(host, port)
    click.echo(f"clover sandbox listening on {url}", err=True)
    click.echo(f"merchants: {', '.join(sandbox.merchant_ids)}", err=True)
    stopping = stop_requested()
    try:
        await stopping.wait()
    finally:
        with contextlib.suppress(Exception):
            await sandbox.stop()
