"""A small client of the Clover sandbox's REST API, for tests."""

from __future__ import annotations

from typing import Any

import aiohttp

from sandbox.clover import CloverSandbox


class MerchantClient:
    """Reads one merchant's REST API with a token the sandbox issued it."""

    def __init__(
        self, http: aiohttp.ClientSession, sandbox: CloverSandbox, merchant: str
    ) -> None:
        self.http = http
        self.base = f"{sandbox.base_url}/v3/merchants/{merchant}"
        self.access_token = sandbox.connect_merchant(merchant)["access_token"]
        self.headers = {"Authorization": f"Bearer {self.access_token}"}

    async def get(self, path: str, params: Any = None) -> tuple[int, Any, Any]:
        """Status, JSON body and headers of one GET."""
        async with self.http.get(
            f"{self.base}{path}", params=params, headers=self.headers
        ) as response:
            return response.status, await response.json(), response.headers

    async def status(self, path: str = "/orders") -> int:
        return (await self.get(path))[0]
