"""The production compose file only names real commands and real settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from lockerlink.cli import _add_component_commands, cli
from lockerlink.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (ROOT / "docker-compose.kafka.yml").read_text()
    )
    return loaded


def _lockerlink_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in _compose()["services"].items()
        if svc.get("image") == "lockerlink:latest"
    }


def _resolves(argv: list[str]) -> bool:
    _add_component_commands()
    command: click.Command = cli
    for word in argv:
        if word.startswith("-"):
            break
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(click.Context(command), word)
        if sub is None:
            return False
        command = sub
    return not isinstance(command, click.Group)


def test_kafka_runs_kraft_and_redis_fsyncs_every_write() -> None:
    services = _compose()["services"]
    assert (
        "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    )
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert redis_cmd[redis_cmd.index("--appendfsync") + 1] == "always"


@pytest.mark.parametrize("name", sorted(_lockerlink_services()))
def test_every_service_command_is_a_real_subcommand(name: str) -> None:
    command = _lockerlink_services()[name]["command"]
    assert command[0] == "lockerlink"
    assert _resolves(command[1:]), f"{name}: {' '.join(command)} is not a command"


@pytest.mark.parametrize("name", sorted(_lockerlink_services()))
def test_every_variable_is_a_real_setting(name: str) -> None:
    env = _lockerlink_services()[name]["environment"]
    for variable in env:
        assert variable.startswith(ENV_PREFIX)
        field = variable.removeprefix(ENV_PREFIX).lower()
        assert field in Settings.model_fields, f"{name}: {variable} is no setting"


def test_each_lockerlink_service_waits_for_healthy_kafka_and_redis() -> None:
    for name, svc in _lockerlink_services().items():
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy", name
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy", name
