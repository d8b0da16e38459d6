"""Reading a service's /healthz, /readyz and /metrics over real HTTP in tests."""

from __future__ import annotations

import ssl

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.poller_support import eventually


class OpsProbe:
    """The ops endpoints of one running service, at ``base_url``."""

    def __init__(self, base_url: str, tls: ssl.SSLContext | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.tls = tls

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.tls if self.tls else True)
        )

    async def status(self, path: str) -> int:
        async with (
            self._session() as http,
            http.get(f"{self.base_url}{path}") as response,
        ):
            return response.status

    async def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample /metrics shows, by name and labels."""
        async with (
            self._session() as http,
            http.get(f"{self.base_url}/metrics") as response,
        ):
            assert response.status == 200
            text = await response.text()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    async def value(self, name: str, **labels: str) -> float | None:
        """One sample's value, or None when /metrics does not show it."""
        return (await self.samples()).get((name, frozenset(labels.items())))

    async def wait_ready(self) -> None:
        async def ready() -> bool:
            try:
                return await self.status("/readyz") == 200
            except aiohttp.ClientConnectionError:  # not listening yet
                return False

        await eventually(ready, f"{self.base_url}/readyz answering 200")

    async def wait_value(self, name: str, at_least: float, **labels: str) -> float:
        """Wait until the sample reaches ``at_least``; returns its value."""
        seen: list[float] = []

        async def reached() -> bool:
            value = await self.value(name, **labels)
            seen[:] = [] if value is None else [value]
            return value is not None and value >= at_least

        await eventually(reached, f"{name}{labels} >= {at_least}")
        return seen[0]
