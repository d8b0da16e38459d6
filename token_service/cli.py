"""Commands of the token service: the server, merchants, lockers and vault keys.

Operator commands talk to Redis directly with the same code the service runs, so
they work while the service is down. Credentials are printed once, never logged.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import click

from lockerlink.devstack import SERVICES, Service
from lockerlink.keys import KeySpace
from lockerlink.redis_store import connect_redis
from lockerlink.settings import Settings
from token_service.authorization import MerchantAuthorization
from token_service.keyring import (
    VaultKeys,
    dev_key_file,
    new_key_entry,
    write_key_file,
)
from token_service.lockers import REMEMBER_S, Enrolment, LockerRegistry
from token_service.vault import Vault

T = TypeVar("T")

if not any(service.name == "token-service" for service in SERVICES):
    SERVICES.append(Service("token-service", ("token-service",)))


def _settings(ctx: click.Context) -> Settings:
    from lockerlink.cli import settings_from

    return settings_from(ctx)


def _run(settings: Settings, work: Callable[[Vault], Awaitable[T]]) -> T:
    async def main() -> T:
        redis = connect_redis(settings.redis_url)
        vault = Vault(settings, redis, KeySpace(settings.redis_key_prefix))
        try:
            return await work(vault)
        finally:
            await vault.close()
            await redis.aclose()

    return asyncio.run(main())


def _lockers(vault: Vault) -> LockerRegistry:
    return LockerRegistry(
        vault.redis, vault.keyspace, vault.settings.locker_rotation_grace_s
    )


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.command("token-service")
@click.pass_context
def token_service(ctx: click.Context) -> None:
    """Serve the token API over HTTPS and refresh tokens ahead of expiry."""
    from token_service.service import run_token_service

    sys.exit(run_token_service(_settings(ctx)))


@click.group()
def merchants() -> None:
    """Connect Clover merchants to stores and see their token state."""


@merchants.command("connect")
@click.option("--store", "store_id", required=True, help="Store the merchant runs.")
@click.pass_context
def merchants_connect(ctx: click.Context, store_id: str) -> None:
    """Print the Clover authorization link for a store (valid 10 minutes, once)."""

    async def start(vault: Vault) -> str:
        authorization = MerchantAuthorization(vault, vault.redis, vault.keyspace)
        link = await authorization.start(store_id)
        return link.url

    click.echo(_run(_settings(ctx), start))


@merchants.command("list")
@click.pass_context
def merchants_list(ctx: click.Context) -> None:
    """Every merchant with its state, token expiry and last refresh."""

    async def rows(vault: Vault) -> list[str]:
        lines = []
        for merchant in await vault.merchants.all():
            snapshot = await vault.pairs.read(merchant.merchant_id)
            expires = snapshot.pair.access_expires_at_ms if snapshot else None
            lines.append(
                f"{merchant.merchant_id:<16} {merchant.state.value:<16} "
                f"{','.join(merchant.store_ids):<20} {_when(expires):<24} "
                f"{_when(merchant.last_refresh_at_ms)}"
            )
        return lines

    lines = _run(_settings(ctx), rows)
    click.echo(
        f"{'merchant':<16} {'state':<16} {'stores':<20} {'token expires':<24} "
        "last refresh"
    )
    for line in lines:
        click.echo(line)


@click.group()
def lockers() -> None:
    """Enrol locker servers and manage their credentials."""


def _show_credential(enrolment: Enrolment) -> None:
    click.echo(
        f"locker {enrolment.locker.locker_id} (store {enrolment.locker.store_id})"
    )
    click.echo(f"credential (shown once): {enrolment.credential}")


@lockers.command("enroll")
@click.option("--store", "store_id", required=True, help="Store the locker is in.")
@click.pass_context
def lockers_enroll(ctx: click.Context, store_id: str) -> None:
    """Enrol a locker and print its credential once."""
    enrolment = _run(_settings(ctx), lambda v: _lockers(v).enroll(store_id))
    _show_credential(enrolment)


@lockers.command("list")
@click.pass_context
def lockers_list(ctx: click.Context) -> None:
    """Every locker with its store and last use."""
    found = _run(_settings(ctx), lambda v: _lockers(v).all())
    click.echo(f"{'locker':<18} {'store':<20} {'state':<8} last used")
    for locker in found:
        state = "revoked" if locker.revoked else "active"
        click.echo(
            f"{locker.locker_id:<18} {locker.store_id:<20} {state:<8} "
            f"{_when(locker.last_used_at_ms)}"
        )


@lockers.command("rotate")
@click.argument("locker_id")
@click.pass_context
def lockers_rotate(ctx: click.Context, locker_id: str) -> None:
    """Issue a new credential; the old one works for the grace period."""
    enrolment = _run(_settings(ctx), lambda v: _lockers(v).rotate(locker_id))
    _show_credential(enrolment)


@lockers.command("revoke")
@click.argument("locker_id")
@click.pass_context
def lockers_revoke(ctx: click.Context, locker_id: str) -> None:
    """Stop every credential of a locker at once."""
    locker = _run(_settings(ctx), lambda v: _lockers(v).revoke(locker_id))
    click.echo(
        f"locker {locker.locker_id} revoked; running token services refuse it "
        f"within {REMEMBER_S:g} s"
    )


@click.group()
def keys() -> None:
    """Vault encryption keys."""


@keys.command("rotate")
@click.option(
    "--new-dev-key",
    is_flag=True,
    help="Development only: add a new key to the local key file first.",
)
@click.pass_context
def keys_rotate(ctx: click.Context, new_dev_key: bool) -> None:
    """Re-encrypt every stored pair with the newest vault key."""
    settings = _settings(ctx)
    if new_dev_key:
        if settings.vault_keys is not None:
            raise click.UsageError("--new-dev-key: LOCKERLINK_VAULT_KEYS is set")
        path = dev_key_file(settings)
        old = path.read_text(encoding="utf-8").strip() if path.exists() else ""
        write_key_file(path, ",".join(filter(None, [new_key_entry(), old])))
    changed = _run(settings, lambda vault: vault.reseal_all())
    current = VaultKeys.from_settings(settings).current_id
    click.echo(f"re-encrypted {changed} pair(s) with key {current}")


COMMANDS: tuple[click.Command, ...] = (token_service, merchants, lockers, keys)
