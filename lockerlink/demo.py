"""The demo `make run` brings up: five restaurants, their lockers, orders flowing.

A Clover sandbox generates orders (delivery-platform orders included) for five
merchants and sends webhooks to the poller; each store gets its own locker sandbox;
the token service connects every merchant through the real OAuth flow (the sandbox
approves at once) and enrols one locker per store. Then one line is printed per
order a locker accepted: store, channel, platform, customer, PIN, and the time from
Clover's change to the locker's acknowledgement.

PINs are printed because this is sandbox data on the developer's own screen; no
service logs them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from lockerlink.devstack import Service
from lockerlink.embedded import port_answers
from lockerlink.local_secrets import admin_credential, local_secret
from lockerlink.settings import Settings

log = logging.getLogger(__name__)

DEMO_STORES = (
    ("pho-downtown", "Pho Downtown"),
    ("taqueria-market", "Taqueria on Market"),
    ("burger-harbour", "Harbour Burgers"),
    ("sushi-airport", "Airport Sushi"),
    ("pizza-campus", "Campus Pizza"),
)
STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DemoStore:
    store_id: str
    name: str
    merchant_id: str
    locker_port: int

    @property
    def locker_url(self) -> str:
        return f"http://127.0.0.1:{self.locker_port}"


def _port_of(url: str, default: int) -> int:
    return urlsplit(url).port or default


class Demo:
    """Everything the demo adds to `dev up`: sandboxes, registry, secrets, printer."""

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.demo_dir = data_dir / "demo"
        self.stores = tuple(
            DemoStore(
                store_id, name, f"DEMOMERCHANT{n}", settings.demo_locker_base_port + n
            )
            for n, (store_id, name) in enumerate(DEMO_STORES, start=1)
        )
        self.clover_url = str(settings.clover_api_base_url).rstrip("/")
        self.token_url = settings.token_service_url.rstrip("/")
        self.webhook_url = (
            f"http://127.0.0.1:{settings.poller_webhook_port}/clover/webhooks"
        )

    # -- preparation ---------------------------------------------------------------

    def registry_path(self) -> Path:
        return self.settings.store_registry_path or self.demo_dir / "stores.yaml"

    def write_registry(self) -> Path:
        """The demo's store registry, unless one is configured."""
        path = self.registry_path()
        if self.settings.store_registry_path is not None:
            return path
        stores = [
            {
                "store_id": s.store_id,
                "name": s.name,
                "merchant_ids": [s.merchant_id],
                "locker": {"url": s.locker_url, "timeout_s": 5},
            }
            for s in self.stores
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        # JSON is YAML; the registry loader reads either.
        path.write_text(json.dumps({"stores": stores}, indent=2), encoding="utf-8")
        return path

    def env(self) -> dict[str, str]:
        """Settings every demo process shares, secrets included (never printed)."""
        env = {
            "LOCKERLINK_STORE_REGISTRY_PATH": str(self.write_registry()),
            "LOCKERLINK_CLOVER_APP_SECRET": self.settings.clover_secret
            or local_secret(self.data_dir, "clover-app-secret"),
            "LOCKERLINK_CLOVER_WEBHOOK_AUTH_CODE": (
                self.settings.clover_webhook_auth_code.get_secret_value()
                if self.settings.clover_webhook_auth_code
                else local_secret(self.data_dir, "clover-webhook-auth-code")
            ),
            "LOCKERLINK_ADMIN_CREDENTIAL": admin_credential(self.settings),
        }
        return env

    def sandbox_services(self) -> list[Service]:
        """The Clover sandbox and one locker sandbox per store, started first.

        The lockerlink services themselves (token service, poller, stream,
        delivery, status page) are the ones `dev up` always runs.
        """
        clover_port = _port_of(self.clover_url, 8090)
        merchants = ",".join(s.merchant_id for s in self.stores)
        services = [
            Service(
                "clover-sandbox",
                (
                    "sandbox",
                    "clover",
                    "--port",
                    str(clover_port),
                    "--merchants",
                    merchants,
                    "--rate",
                    str(self.settings.demo_orders_per_s),
                    "--seed",
                    str(int(time.time())),
                    "--webhook-url",
                    self.webhook_url,
                ),
            )
        ]
        services += [
            Service(
                f"locker-{s.store_id}",
                (
                    "sandbox",
                    "locker",
                    "--port",
                    str(s.locker_port),
                    "--store",
                    s.store_id,
                ),
            )
            for s in self.stores
        ]
        return services

    # -- after start -----------------------------------------------------------------

    async def wait_for_servers(self) -> None:
        """Wait until Clover, the token service and every locker listen."""
        wanted = {
            "clover-sandbox": _port_of(self.clover_url, 8090),
            "token-service": _port_of(self.token_url, 8443),
            **{f"locker-{s.store_id}": s.locker_port for s in self.stores},
        }
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for name, port in wanted.items():
            while not port_answers("127.0.0.1", port):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not start; see logs/{name}.log")
                await asyncio.sleep(0.2)

    def _tls(self) -> ssl.SSLContext:
        ca = self.settings.token_service_tls_cert
        context = ssl.create_default_context()
        if ca is None:
            context.load_verify_locations(cafile=str(self.data_dir / "tls" / "ca.pem"))
        return context

    async def connect_merchants(self, say: Callable[[str], None]) -> None:
        """Connect each merchant through the OAuth flow; enrol one locker per store."""
        await self.wait_for_servers()
        admin = {"Authorization": f"Bearer {admin_credential(self.settings)}"}
        tls = self._tls()
        async with aiohttp.ClientSession(headers=admin) as http:
            for store in self.stores:
                async with http.post(
                    f"{self.token_url}/v1/admin/merchants/authorize",
                    json={"store_id": store.store_id},
                    ssl=tls,
                ) as response:
                    response.raise_for_status()
                    link = (await response.json())["authorize_url"]
                # The merchant approves in the browser; the sandbox approves at once.
                async with http.get(
                    f"{link}&merchant_id={store.merchant_id}", allow_redirects=False
                ) as response:
                    callback = response.headers["Location"]
                async with http.get(callback, ssl=tls) as response:
                    response.raise_for_status()
                async with http.post(
                    f"{self.token_url}/v1/admin/lockers",
                    json={"store_id": store.store_id},
                    ssl=tls,
                ) as response:
                    response.raise_for_status()
                    enrolment = await response.json()
                self._keep_locker_credential(store, enrolment)
                say(f"store   {store.store_id}: merchant {store.merchant_id} connected")

    def _keep_locker_credential(
        self, store: DemoStore, enrolment: dict[str, str]
    ) -> None:
        folder = self.demo_dir / "lockers"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{store.store_id}.credential"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(enrolment.get("credential", ""))

    async def print_deliveries(self, say: Callable[[str], None]) -> None:
        """One line per event a locker accepted, until cancelled."""
        seen = {s.store_id: 0 for s in self.stores}
        async with aiohttp.ClientSession() as http:
            while True:
                for store in self.stores:
                    try:
                        async with http.get(
                            f"{store.locker_url}/_sandbox/received"
                        ) as response:
                            received = (await response.json())["received"]
                    except (aiohttp.ClientError, OSError, ValueError):
                        continue
                    for item in received[seen[store.store_id] :]:
                        if item["outcome"] not in ("duplicate", "stale"):
                            say(_delivery_line(store.store_id, item))
                    seen[store.store_id] = len(received)
                await asyncio.sleep(0.5)


def _delivery_line(store_id: str, item: dict[str, object]) -> str:
    latency_ms = int(str(item["received_at_ms"])) - int(str(item["order_version"]))
    platform = item.get("platform") or "-"
    customer = item.get("customer") or "-"
    return (
        f"order   {store_id:<16} {item['event_type']:<9} {item['channel']:<8} "
        f"{platform!s:<15} {customer!s:<14} PIN {item['pin']!s:<8} "
        f"e2e {latency_ms / 1000:.2f} s"
    )
