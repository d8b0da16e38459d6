"""The `lockerlink` command: every process and operator tool starts here."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from lockerlink.errors import ConfigError, LockerlinkError
from lockerlink.logs import configure_logging
from lockerlink.settings import Settings, load_settings


def settings_from(ctx: click.Context) -> Settings:
    """The settings of this invocation, loaded once and shared by subcommands."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = load_settings()
        configure_logging(root.obj.log_level, root.obj.log_format)
    settings: Settings = root.obj
    return settings


class _Group(click.Group):
    """Turns lockerlink's own errors into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"lockerlink: {exc.message}", err=True)
            sys.exit(2)
        except LockerlinkError as exc:
            click.echo(f"lockerlink: {exc.message}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="lockerlink")
def cli() -> None:
    """lockerlink: Clover orders into pickup lockers, through Kafka."""


@cli.group()
def dev() -> None:
    """Run everything on this machine with embedded servers."""


@dev.command("up")
@click.option(
    "--demo/--no-demo",
    default=True,
    show_default=True,
    help="Also run the Clover and locker sandboxes with five demo stores.",
)
@click.pass_context
def dev_up(ctx: click.Context, demo: bool) -> None:
    """Start broker, Redis and every service; Ctrl-C stops all of it."""
    from lockerlink.devstack import run_dev_up

    sys.exit(run_dev_up(settings_from(ctx), demo=demo))


@cli.group()
def settings() -> None:
    """Inspect configuration."""


@settings.command("show")
@click.pass_context
def settings_show(ctx: click.Context) -> None:
    """Print the effective settings; secrets show only whether they are set."""
    current = settings_from(ctx)
    for name, value in current.model_dump().items():
        shown = "(set)" if name in _SECRET_FIELDS and value is not None else value
        click.echo(f"LOCKERLINK_{name.upper()}={'' if shown is None else shown}")


@settings.command("table")
def settings_table() -> None:
    """Print the configuration table the README carries (Markdown)."""
    click.echo(markdown_table())


def markdown_table() -> str:
    """Every setting with its variable, default and meaning, as a Markdown table."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else str(field.default)
        variable = f"`LOCKERLINK_{name.upper()}`"
        lines.append(f"| {variable} | {default} | {field.description or ''} |")
    return "\n".join(lines)


_SECRET_FIELDS = frozenset(
    {
        "clover_app_secret",
        "clover_webhook_auth_code",
        "vault_keys",
        "admin_credential",
        "sentry_dsn",
    }
)


@cli.group()
def topics() -> None:
    """Manage Kafka topics."""


@topics.command("create")
@click.pass_context
def topics_create(ctx: click.Context) -> None:
    """Create the core topics that do not exist yet."""
    from lockerlink.broker import ensure_topics
    from schemas.topics import CORE_TOPICS

    current = settings_from(ctx)
    created = asyncio.run(
        ensure_topics(
            current.kafka_bootstrap_servers,
            CORE_TOPICS,
            current.kafka_topic_partitions,
        )
    )
    click.echo(f"created: {', '.join(created) or 'nothing (all exist)'}")


@cli.command("status-page")
@click.pass_context
def status_page(ctx: click.Context) -> None:
    """Serve the operators' status page (behind the admin credential)."""
    from lockerlink.status_service import run_status_page

    asyncio.run(run_status_page(settings_from(ctx)))


def _add_component_commands() -> None:
    """Attach each component's commands; each component owns its own module."""
    # Components add their import here, e.g. `from streams.cli import stream`.
    from consumers.cli import deliver, dlq, replay
    from producers.cli import poller
    from sandbox.cli import sandbox
    from streams.cli import schemas_group, stream, transform
    from token_service.cli import COMMANDS as TOKEN_SERVICE_COMMANDS

    cli.add_command(sandbox)
    for command in TOKEN_SERVICE_COMMANDS:
        cli.add_command(command)
    cli.add_command(deliver)
    cli.add_command(replay)
    cli.add_command(dlq)
    cli.add_command(poller)
    cli.add_command(stream)
    cli.add_command(transform)
    cli.add_command(schemas_group)


def main() -> None:
    _add_component_commands()
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"lockerlink: {exc.message}", err=True)
        sys.exit(2)
