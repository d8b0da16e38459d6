"""Fixtures of the chaos scenarios: one isolated full stack per scenario."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.report import write_sections
from tests.chaos.harness import SESSION_FIGURES, ChaosStack, chaos_section

StackFactory = Callable[..., ChaosStack]


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
    """After `make chaos`, put the figures of this run into BENCHMARKS.md."""
    if session.config.getoption("markexpr") != "chaos" or not SESSION_FIGURES:
        return
    write_sections([chaos_section(SESSION_FIGURES, passed=exitstatus == 0)])
