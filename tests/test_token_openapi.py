"""Schemathesis against the running service: no 5xx, nothing undocumented.

The service (with a Clover sandbox and a connected merchant) runs on its own event
loop in a background thread, because schemathesis calls it synchronously.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from sandbox.clover import CloverSandbox
from schemas.token_rotation import TokenRotationEvent
from tests.token_fixtures import FAST, pair_of
from token_service.api import TokenApi
from token_service.rotation_events import CallbackRotationPublisher
from token_service.service import TokenService
from token_service.tls import ensure_dev_certificate, server_context

OPENAPI = Path(str(resources.files("token_service").joinpath("openapi.yaml")))
schema = schemathesis.openapi.from_path(OPENAPI)
ADMIN = "admin-" + "s" * 32


@dataclass
class Running:
    base_url: str
    ca: Path
    locker_credential: str


async def _ignore(_event: TokenRotationEvent) -> None:
    return None


class _ServiceThread(threading.Thread):
    """Runs sandbox and service on a private loop until told to stop."""

    def __init__(self, settings: Settings, tls_dir: Path) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.tls_dir = tls_dir
        self.keyspace = KeySpace(f"lltest-{uuid.uuid4().hex[:12]}")
        self.ready = threading.Event()
        self.running: Running | None = None
        self.failure: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to the test, never swallowed
            self.failure = exc
            self.ready.set()

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=30)

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        sandbox = CloverSandbox()
        clover_url = await sandbox.start()
        settings = self.settings.model_copy(
            update={
                **FAST,
                "clover_api_base_url": clover_url,
                "clover_authorize_base_url": clover_url,
                "admin_credential": SecretStr(ADMIN),
                "locker_burst": 1_000_000,
                "locker_rate_per_s": 100_000.0,
                "auth_failure_burst": 1_000_000,
                "auth_failure_rate_per_min": 1_000_000.0,
            }
        )
        redis = aioredis.Redis.from_url(settings.redis_url)
        service = TokenService(
            settings,
            redis,
            self.keyspace,
            publisher=CallbackRotationPublisher(_ignore),
        )
        files = ensure_dev_certificate(self.tls_dir, "127.0.0.1")
        port = await service.start("127.0.0.1", 0, server_context(files))
        merchant = sandbox.merchant_ids[0]
        await service.vault.connect(
            merchant, "store-a", pair_of(sandbox.connect_merchant(merchant))
        )
        enrolment = await service.lockers.enroll("store-a")
        assert files.ca is not None
        self.running = Running(
            f"https://127.0.0.1:{port}", files.ca, enrolment.credential
        )
        self.ready.set()
        try:
            await self._stopping.wait()
        finally:
            await service.stop()
            await sandbox.stop()
            keys = [k async for k in redis.scan_iter(match=f"{self.keyspace.prefix}:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()


@pytest.fixture(scope="module")
def running_service(
    redis_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    base = tmp_path_factory.mktemp("openapi")
    settings = Settings(
        redis_url=redis_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        data_dir=base / "data",
    )
    thread = _ServiceThread(settings, base / "tls")
    thread.start()
    thread.ready.wait(timeout=60)
    if thread.failure is not None:
        raise thread.failure
    assert thread.running is not None
    try:
        yield thread.running
    finally:
        thread.stop()


def _credential_for(path: str, running: Running) -> str:
    return ADMIN if path.startswith("/v1/admin") else running.locker_credential


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_only_documented_statuses_and_never_5xx(
    case: schemathesis.Case,  # type: ignore[type-arg]
    running_service: Running,
) -> None:
    headers: dict[str, Any] = dict(case.headers or {})
    headers.setdefault(
        "Authorization",
        f"Bearer {_credential_for(case.path, running_service)}",
    )
    response = case.call(
        base_url=running_service.base_url,
        headers=headers,
        verify=str(running_service.ca),
    )
    assert response.status_code < 500, response.text
    case.validate_response(
        response,
        checks=[
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )


def test_served_document_is_the_one_in_the_repository(running_service: Running) -> None:
    import requests

    served = requests.get(
        f"{running_service.base_url}/openapi.yaml",
        verify=str(running_service.ca),
        timeout=10,
    )
    assert yaml.safe_load(served.text) == yaml.safe_load(OPENAPI.read_text())
    documented = {path for path in yaml.safe_load(OPENAPI.read_text())["paths"]}
    assert "/v1/token" in documented
    assert TokenApi.__name__  # the handlers the document describes
