"""Settings: embedded defaults, one clear line per wrong value, secrets kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockerlink.cli import markdown_table
from lockerlink.errors import ConfigError
from lockerlink.settings import Settings, load_settings


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockerlink", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_defaults_describe_the_embedded_stack() -> None:
    current = Settings()
    assert current.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert current.clover_secret is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS", "no-port-here"),
        ("LOCKERLINK_REDIS_URL", "http://example.invalid"),
        ("LOCKERLINK_TOKEN_SERVICE_PORT", "seventy"),
        ("LOCKERLINK_LOG_FORMAT", "xml"),
    ],
)
def test_wrong_value_fails_with_one_line_naming_the_setting(
    variable: str, value: str
) -> None:
    result = _run_cli("settings", "show", env={variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_load_settings_raises_config_error_with_the_setting_name() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(smtp_port=0)
    assert caught.value.setting == "smtp_port"


def test_secret_comes_from_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cr3t-value\n")
    assert Settings(clover_app_secret_file=secret_file).clover_secret == "s3cr3t-value"


def test_unreadable_secret_file_names_the_setting(tmp_path: Path) -> None:
    current = Settings(clover_app_secret_file=tmp_path / "missing")
    with pytest.raises(ConfigError) as caught:
        _ = current.clover_secret
    assert "CLOVER_APP_SECRET_FILE" in caught.value.message


def test_settings_show_never_prints_a_secret() -> None:
    result = _run_cli(
        "settings",
        "show",
        env={
            "LOCKERLINK_CLOVER_APP_SECRET": "do-not-print-me",
            "LOCKERLINK_ADMIN_CREDENTIAL": "nor-me",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "do-not-print-me" not in result.stdout
    assert "nor-me" not in result.stdout
    assert "LOCKERLINK_CLOVER_APP_SECRET=(set)" in result.stdout


def test_readme_configuration_table_matches_the_settings() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    begin, end = "<!-- settings:begin -->\n", "\n<!-- settings:end -->"
    table = readme[readme.index(begin) + len(begin) : readme.index(end)]
    assert table == markdown_table(), "run `lockerlink settings table` into README.md"
