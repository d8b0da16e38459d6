"""Fixtures of the chaos scenarios: one isolated full stack per scenario."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.report import write_sections
from tests.chaos.harness import SESSION_FIGURES, ChaosStack, chaos_section

StackFactory = Callable[..., ChaosStack]
SESSION_STARTED = time.monotonic()
FAILED: list[str] = []


@pytest.fixture
def chaos_stack(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str
) -> StackFactory:
    """``async with chaos_stack(**options) as stack:`` named after the test."""
    scenario = request.node.name.removeprefix("test_").replace("[", "-").rstrip("]")

    def make(**options: Any) -> ChaosStack:
        options.setdefault("redis_url", redis_url)
        return ChaosStack(scenario, tmp_path, **options)

    return make


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After `make chaos`, put the figures of this run into BENCHMARKS.md.

    Only a run of the whole suite (``-m chaos``, no paths, no ``-k``) writes: one
    scenario run while developing must not replace the section.
    """
    config = session.config
    whole_suite = (
        config.getoption("markexpr") == "chaos"
        and not config.getoption("keyword")
        and config.args_source is pytest.Config.ArgsSource.TESTPATHS
    )
    if not whole_suite or not SESSION_FIGURES:
        return
    elapsed_s = time.monotonic() - SESSION_STARTED
    failed = FAILED or ([] if exitstatus == 0 else [f"pytest exit status {exitstatus}"])
    write_sections([chaos_section(SESSION_FIGURES, failed, elapsed_s)])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember which scenarios failed, for the BENCHMARKS.md section."""
    if report.failed:
        FAILED.append(report.nodeid.rsplit("::", 1)[-1].removeprefix("test_"))
