"""`lockerlink deliver`, `lockerlink replay` and `lockerlink dlq`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import click

from consumers.alerts import mail_hook
from consumers.audit import write_audit
from consumers.backoff import Backoff
from consumers.delivery import CENTRAL_GROUP, DeliveryService, in_store_group
from consumers.dlq import Filters, RedriveResult, find_entries, list_entries, redrive
from consumers.locker_watch import LockerWatch
from consumers.replay import (
    Progress,
    ReplaySummary,
    StoreReplay,
    parse_time,
    replay_raw,
)
from consumers.status_feed import StatusFeed
from consumers.store_lane import DeliveryOptions
from lockerlink.alerts import Alerter, SmtpSender
from lockerlink.cli import settings_from
from lockerlink.dead_letter_alert import DeadLetterAlert
from lockerlink.devstack import SERVICES, Service
from lockerlink.errors import ConfigError, LockerlinkError
from lockerlink.keys import KeySpace
from lockerlink.ops_http import OpsServer
from lockerlink.readiness import redis_reachable
from lockerlink.redis_store import connect_redis
from lockerlink.registry import load_registry
from lockerlink.registry_reload import StoreLookup, store_lookup
from lockerlink.sentry import init_sentry
from lockerlink.settings import Settings
from lockerlink.shutdown import stop_requested
from lockerlink.status import StatusBoard
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


def _in_store_registry_check(registry: StoreLookup, store_id: str) -> None:
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
    init_sentry(settings, "delivery")
    # Re-read while running: a locker endpoint edited in the file needs no restart.
    registry = store_lookup(
        settings.store_registry_path, settings.store_registry_check_s
    )
    topics: tuple[str, ...] = ()
    if store_id is not None:
        _in_store_registry_check(registry, store_id)
        topics = (store_topic(store_id),)
    asyncio.run(
        _deliver_until_signal(
            settings,
            registry,
            group or (in_store_group(store_id) if store_id else CENTRAL_GROUP),
            topics,
        )
    )


async def _deliver_until_signal(
    settings: Settings, registry: StoreLookup, group: str, topics: tuple[str, ...]
) -> None:
    redis = connect_redis(settings.redis_url)
    keys = KeySpace(settings.redis_key_prefix)
    alerter = Alerter(redis, keys, SmtpSender.from_settings(settings), "delivery")
    dead_letters = DeadLetterAlert(alerter, settings.alert_dead_letters_quiet_s)
    service = DeliveryService(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        registry=registry,
        group_id=group,
        topics=topics,
        options=delivery_options(settings),
        alert=mail_hook(alerter, dead_letters),
        status=StatusFeed(StatusBoard(redis, keys)),
    )

    async def ready() -> bool:
        return service.assigned.is_set() and await redis_reachable(redis)

    ops = OpsServer("delivery", settings.ops_host, settings.delivery_ops_port, ready)
    watch = LockerWatch(
        lambda: {store: lane.held for store, lane in service.lanes.items()},
        alerter,
        settings.delivery_locker_down_alert_s,
    )
    stopping = stop_requested()
    await ops.start()
    watching = asyncio.create_task(watch.run())
    try:
        await service.run(stopping)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await dead_letters.close()
        await ops.stop()
        await redis.aclose()


# -- replay -----------------------------------------------------------------------

_TIME_HELP = "ISO 8601 (UTC if no zone), epoch ms, or an age like 90m, 2h, 1d."


def _bar_run(
    label: str, work: Callable[[Progress, Progress], Coroutine[Any, Any, ReplaySummary]]
) -> ReplaySummary:
    """Run ``work`` with a progress bar fed by its on_total and on_progress hooks."""
    state: dict[str, Any] = {}

    def on_total(total: int) -> None:
        state["bar"] = click.progressbar(
            length=max(total, 1), label=label, file=sys.stderr
        )
        state["bar"].__enter__()

    def on_progress(step: int) -> None:
        if "bar" in state:
            state["bar"].update(step)

    try:
        return asyncio.run(work(on_total, on_progress))
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)


@click.group(invoke_without_command=True)
@click.option("--store", "store_id", help="Store whose events to re-deliver.")
@click.option("--since", help=f"Start of the window. {_TIME_HELP}")
@click.option(
    "--until", default=None, help=f"End of the window (default now). {_TIME_HELP}"
)
@click.option("--dry-run", is_flag=True, help="Count what would be sent; send nothing.")
@click.pass_context
def replay(
    ctx: click.Context,
    store_id: str | None,
    since: str | None,
    until: str | None,
    dry_run: bool,
) -> None:
    """Re-deliver a store's events from its topic by time (`replay raw` for raw)."""
    if ctx.invoked_subcommand is not None:
        return
    if store_id is None or since is None:
        raise click.UsageError("give --store and --since (or use `replay raw`)")
    settings = settings_from(ctx)
    since_at, until_at = parse_time(since), parse_time(until) if until else None
    job = StoreReplay(
        settings.kafka_bootstrap_servers,
        load_registry(settings.store_registry_path),
        store_id,
    )
    try:
        summary = _bar_run(
            f"replay {store_id}",
            lambda total, step: job.run(
                since_at, until_at, dry_run=dry_run, on_total=total, on_progress=step
            ),
        )
    except LockerlinkError as exc:
        if job.summary is not None:
            _report(
                settings, "replay store", job.summary, store=store_id, error=exc.message
            )
        raise
    _report(settings, "replay store", summary, store=store_id)


@replay.command("raw")
@click.option("--merchant", "merchant_id", required=True, help="Clover merchant id.")
@click.option("--since", required=True, help=f"Start of the window. {_TIME_HELP}")
@click.option(
    "--until", default=None, help=f"End of the window (default now). {_TIME_HELP}"
)
@click.option("--dry-run", is_flag=True, help="Count what would be sent; send nothing.")
@click.pass_context
def replay_raw_command(
    ctx: click.Context,
    merchant_id: str,
    since: str,
    until: str | None,
    dry_run: bool,
) -> None:
    """Re-publish a merchant's raw orders from a window so the stream re-runs them."""
    settings = settings_from(ctx)
    since_at, until_at = parse_time(since), parse_time(until) if until else None
    replay_id = uuid.uuid4().hex[:12]
    summary = _bar_run(
        f"replay raw {merchant_id}",
        lambda total, step: replay_raw(
            settings.kafka_bootstrap_servers,
            merchant_id,
            since_at,
            until_at,
            dry_run=dry_run,
            replay_id=replay_id,
            on_total=total,
            on_progress=step,
        ),
    )
    _report(settings, "replay raw", summary, merchant=merchant_id, replay_id=replay_id)


def _report(settings: Settings, what: str, summary: ReplaySummary, **ids: str) -> None:
    for line in summary.lines():
        click.echo(line)
    write_audit(
        settings.data_dir,
        what,
        **ids,
        since=summary.since.isoformat(),
        until=summary.until.isoformat() if summary.until else None,
        dry_run=summary.dry_run,
        count=summary.matched,
        delivered=summary.delivered,
        already_held=summary.already_held,
        rejected=len(summary.rejected),
        republished=summary.republished,
    )


# -- dead letters ------------------------------------------------------------------


@click.group()
def dlq() -> None:
    """Dead letters: list, show, re-drive after a fix."""


def _filter_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option("--store", "store_id", help="Only this store.")(command)
    command = click.option("--reason", help="Only this reason, e.g. locker_rejected.")(
        command
    )
    command = click.option("--since", help=f"Set aside at or after. {_TIME_HELP}")(
        command
    )
    return click.option("--until", help=f"Set aside before. {_TIME_HELP}")(command)


def _filters(
    store_id: str | None, reason: str | None, since: str | None, until: str | None
) -> Filters:
    return Filters(
        store_id=store_id,
        reason=reason,
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
    )


@dlq.command("list")
@_filter_options
@click.pass_context
def dlq_list(
    ctx: click.Context,
    store_id: str | None,
    reason: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """One line per dead letter: id, when, store, reason, source, detail."""
    settings = settings_from(ctx)
    filters = _filters(store_id, reason, since, until)
    entries = asyncio.run(list_entries(settings.kafka_bootstrap_servers, filters))
    for entry in entries:
        letter = entry.letter
        click.echo(
            f"{entry.id}\t{letter.at.isoformat(timespec='seconds')}\t"
            f"{letter.store_id or letter.merchant_id or '-'}\t{letter.reason}\t"
            f"{letter.source_topic}/{letter.source_partition}@{letter.source_offset}\t"
            f"{letter.detail[:80]}"
        )
    click.echo(f"{len(entries)} dead letter(s)", err=True)


@dlq.command("show")
@click.argument("dead_letter_id")
@click.pass_context
def dlq_show(ctx: click.Context, dead_letter_id: str) -> None:
    """The whole envelope of one dead letter, with its original record decoded."""
    settings = settings_from(ctx)
    [entry] = asyncio.run(
        find_entries(settings.kafka_bootstrap_servers, [dead_letter_id])
    )
    shown = entry.letter.model_dump(mode="json")
    shown["original_value"] = (
        None
        if entry.letter.original_omitted
        else entry.letter.original_value().decode("utf-8", "replace")
    )
    click.echo(json.dumps({"id": entry.id, **shown}, indent=2))


@dlq.command("redrive")
@click.argument("dead_letter_ids", nargs=-1)
@_filter_options
@click.option("--force", is_flag=True, help="Re-drive even if the reason is unchanged.")
@click.option("--dry-run", is_flag=True, help="Say what would be re-driven.")
@click.pass_context
def dlq_redrive(
    ctx: click.Context,
    dead_letter_ids: tuple[str, ...],
    store_id: str | None,
    reason: str | None,
    since: str | None,
    until: str | None,
    force: bool,
    dry_run: bool,
) -> None:
    """Send dead letters' original records back to their topics (ids or filters)."""
    settings = settings_from(ctx)
    filters = _filters(store_id, reason, since, until)
    if not dead_letter_ids and filters == Filters():
        raise click.UsageError("name dead letter ids, or filter with --store/--reason")
    results = asyncio.run(
        _redrive(settings, dead_letter_ids, filters, force=force, dry_run=dry_run)
    )
    sent = 0
    for result in results:
        if result.sent:
            sent += 1
            click.echo(
                f"{result.entry.id}\tre-driven to {result.entry.letter.source_topic}"
            )
        elif result.refused_because:
            click.echo(f"{result.entry.id}\trefused: {result.refused_because}")
        else:
            click.echo(f"{result.entry.id}\twould re-drive (dry run)")
    click.echo(f"{sent} of {len(results)} re-driven", err=True)


async def _redrive(
    settings: Settings,
    ids: tuple[str, ...],
    filters: Filters,
    *,
    force: bool,
    dry_run: bool,
) -> list[RedriveResult]:
    bootstrap = settings.kafka_bootstrap_servers
    if ids:
        entries = [
            e for e in await find_entries(bootstrap, ids) if filters.match(e.letter)
        ]
    else:
        entries = await list_entries(bootstrap, filters)
    return await redrive(
        bootstrap, entries, data_dir=settings.data_dir, force=force, dry_run=dry_run
    )
