"""The whole demo pipeline under test, with faults to inject and a promise to check.

`ChaosStack` starts what `lockerlink dev up --demo` starts (embedded broker, Redis,
Clover sandbox generating orders for five merchants, five locker sandboxes, token
service, poller, stream, delivery), connects the merchants, and then lets a scenario
kill and restart processes or inject sandbox faults while orders keep flowing.
`Promise.of` compares what Clover wrote with what every locker holds.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from aiokafka import TopicPartition

from bench.report import Section
from lockerlink.broker import make_consumer
from lockerlink.demo import Demo, DemoStore
from lockerlink.devstack import SERVICES, DevStack, Service
from lockerlink.embedded import free_port
from lockerlink.settings import Settings
from schemas.dead_letter import DeadLetter
from schemas.topics import DEAD_LETTER

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "chaos"
SETTLE_POLL_S = 0.5
RECOVERY_POLL_S = 1.0


def demo_env(data_dir: Path, redis_url: str, orders_per_s: float) -> dict[str, str]:
    """Settings of one isolated stack: its own ports, broker, data and key prefix."""
    token_port, clover_port = free_port(), free_port()
    return {
        "LOCKERLINK_DATA_DIR": str(data_dir),
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "LOCKERLINK_REDIS_URL": redis_url,
        "LOCKERLINK_REDIS_KEY_PREFIX": f"chaos-{uuid.uuid4().hex[:8]}",
        "LOCKERLINK_CLOVER_API_BASE_URL": f"http://127.0.0.1:{clover_port}",
        "LOCKERLINK_CLOVER_AUTHORIZE_BASE_URL": f"http://127.0.0.1:{clover_port}",
        "LOCKERLINK_TOKEN_SERVICE_PORT": str(token_port),
        "LOCKERLINK_TOKEN_SERVICE_URL": f"https://127.0.0.1:{token_port}",
        "LOCKERLINK_POLLER_WEBHOOK_PORT": str(free_port()),
        "LOCKERLINK_STATUS_PAGE_PORT": str(free_port()),
        "LOCKERLINK_POLLER_OPS_PORT": str(free_port()),
        "LOCKERLINK_STREAM_OPS_PORT": str(free_port()),
        "LOCKERLINK_DELIVERY_OPS_PORT": str(free_port()),
        "LOCKERLINK_DEMO_LOCKER_BASE_PORT": str(locker_base_port()),
        "LOCKERLINK_DEMO_ORDERS_PER_S": str(orders_per_s),
        "LOCKERLINK_POLLER_INTERVAL_S": "1.0",
        # Time-scaled: a crashed member's partitions, a dead poller's lease and the
        # longest back-offs end in seconds, not the production minutes.
        "LOCKERLINK_POLLER_BACKOFF_MAX_S": "3",
        "LOCKERLINK_POLLER_LEASE_TTL_S": "5",
        # Deletions the poller missed (webhook lost, poller down) come from its sweep.
        "LOCKERLINK_POLLER_DELETE_SWEEP_S": "5",
        "LOCKERLINK_STREAM_SESSION_TIMEOUT_S": "6",
        "LOCKERLINK_DELIVERY_SESSION_TIMEOUT_S": "6",
        "LOCKERLINK_DELIVERY_RETRY_MAX_S": "2",
        "LOCKERLINK_TOKEN_RETRY_BASE_S": "0.5",
        "LOCKERLINK_TOKEN_RETRY_MAX_S": "3",
    }


def locker_base_port() -> int:
    """A base port whose next five are free, below the ephemeral range.

    Store N's locker listens on base + N; ephemeral ports (what `free_port` hands
    out) come in sequence, so a base from there collides with the next picks.
    """
    chooser = random.Random()
    while True:
        base = chooser.randrange(20_000, 30_000)
        if all(_bindable(base + n) for n in range(1, 6)):
            return base


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Promise:
    """What the lockers hold against what Clover wrote, at one moment."""

    orders_created: int = 0
    order_writes: int = 0
    delivered: int = 0
    duplicates: int = 0
    redeliveries_absorbed: int = 0
    out_of_order: int = 0
    missing: list[str] = field(default_factory=list)
    behind: list[str] = field(default_factory=list)
    not_cancelled: list[str] = field(default_factory=list)
    without_pin: list[str] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)
    refresh_calls: int = 0
    reused_refresh_tokens: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    dead_letter_orders: set[str] = field(default_factory=set)
    dead_letter_details: list[str] = field(default_factory=list)
    rejected_events: set[str] = field(default_factory=set)
    rejected_orders: set[str] = field(default_factory=set)
    dead_letters_without_reason: int = 0
    deleted_undelivered: int = 0

    @property
    def settled(self) -> bool:
        """Every order delivered at its latest version (dead-lettered ones aside)."""
        return not (self.missing or self.behind or self.not_cancelled)

    def broken(
        self,
        expected_dead_letters: int = 0,
        expected_dead: AbstractSet[str] = frozenset(),
    ) -> list[str]:
        """Every way the promise is broken; empty when it is kept.

        ``expected_dead_letters``: records the scenario poisoned on purpose;
        ``expected_dead``: orders it made undeliverable on purpose.
        """
        problems = []
        for label, orders in (
            ("missing", self.missing),
            ("behind the latest version", self.behind),
            ("deleted in Clover, not cancelled", self.not_cancelled),
            ("held without a PIN", self.without_pin),
            ("held at a locker but not from its store's merchant", self.strangers),
        ):
            unexpected = [o for o in orders if o not in expected_dead]
            if unexpected:
                problems.append(f"{len(unexpected)} {label}: {unexpected[:5]}")
        if self.duplicates:
            problems.append(f"{self.duplicates} orders applied twice at a locker")
        if self.out_of_order:
            problems.append(f"{self.out_of_order} out-of-order (stale) deliveries")
        if self.reused_refresh_tokens:
            problems.append(f"{self.reused_refresh_tokens} reused refresh tokens")
        letters = sum(self.dead_letters.values())
        if letters != expected_dead_letters:
            problems.append(
                f"{letters} dead letters, expected {expected_dead_letters}: "
                f"{self.dead_letters}"
            )
        if self.dead_letters_without_reason:
            problems.append(f"{self.dead_letters_without_reason} without a reason")
        undeliverable = self.dead_letter_orders - set(expected_dead)
        if undeliverable:
            problems.append(f"unexpected dead letters for {sorted(undeliverable)[:5]}")
        return problems

    def figures(self) -> dict[str, Any]:
        return {
            "orders created": self.orders_created,
            "order writes": self.order_writes,
            "delivered": self.delivered,
            "duplicates at locker": self.duplicates,
            "redeliveries absorbed": self.redeliveries_absorbed,
            "missing": len(self.missing),
            "deleted before delivery": self.deleted_undelivered,
            "out-of-order": self.out_of_order,
            "dead letters": dict(sorted(self.dead_letters.items())),
            "rejected by a locker": len(self.rejected_events),
            "refresh calls": self.refresh_calls,
            "reused refresh tokens": self.reused_refresh_tokens,
        }


class ChaosStack:
    """The demo pipeline on its own broker, ports and key prefix, for one scenario."""

    def __init__(
        self,
        scenario: str,
        work_dir: Path,
        redis_url: str,
        *,
        orders_per_s: float = 1.0,
        clover_options: tuple[str, ...] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.scenario = scenario
        self.env = demo_env(work_dir / "data", redis_url, orders_per_s)
        self.env.update(environ or {})
        self.clover_options = clover_options
        self.started_at = time.monotonic()
        self.healed_at: float | None = None
        self.recovered_at: float | None = None
        self._healed_wall_ms = 0
        self._recovery_checked_at = 0.0
        self.generating_stopped_at: float | None = None
        self._saved_environ: dict[str, str | None] = {}
        self.killed: set[str] = set()
        self.stack: DevStack
        self.demo: Demo
        self.http: aiohttp.ClientSession

    # -- life -----------------------------------------------------------------------
    async def __aenter__(self) -> ChaosStack:
        from lockerlink.cli import _add_component_commands

        _add_component_commands()
        for name, value in self.env.items():
            self._saved_environ[name] = os.environ.get(name)
            os.environ[name] = value
        settings = Settings()
        self.stack = DevStack(settings, out=io.StringIO())
        self.demo = Demo(settings, self.stack.data_dir, self.clover_options)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            await self.stack.start_servers()
            self.stack.extra_env.update(self.demo.env())
            self.stack.start_services(self.demo.sandbox_services())
            self.stack.start_services(list(SERVICES))
            await asyncio.wait_for(self.demo.connect_merchants(lambda _: None), 90)
        except BaseException:
            self.keep_logs()
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is not None and not isinstance(error, AssertionError):
            print(f"{self.scenario}: logs kept in {self.keep_logs()}")
        await self._close()

    async def _close(self) -> None:
        await self.http.close()
        self.stack.stop()
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def keep_logs(self) -> Path:
        """Copy every process's log to the scenario's artifacts folder."""
        target = ARTIFACTS / self.scenario
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
        logs = self.stack.data_dir / "logs"
        if logs.is_dir():
            shutil.copytree(logs, target, dirs_exist_ok=True)
        return target

    # -- faults ---------------------------------------------------------------------
    def kill(self, name: str) -> None:
        """SIGKILL one service, as a crash would."""
        self.stack.kill_service(name, signal.SIGKILL)
        self.killed.add(name)

    def restart(self, name: str) -> None:
        self.stack.restart_service(name)
        self.killed.discard(name)
        self.healed()

    def start_extra(self, service: Service) -> None:
        self.stack.start_service(service)

    def healed(self) -> None:
        """Mark the moment the fault ended; time to recover counts from here."""
        self.healed_at = time.monotonic()
        self._healed_wall_ms = int(time.time() * 1000)
        self.recovered_at = None

    async def _note_recovery(self) -> None:
        """Note when all Clover wrote before the fault ended is at the lockers."""
        now = time.monotonic()
        if self.healed_at is None or self.recovered_at is not None:
            return
        if now - self._recovery_checked_at < RECOVERY_POLL_S:
            return
        self._recovery_checked_at = now
        try:
            caught_up = await self._caught_up(self._healed_wall_ms)
        except (aiohttp.ClientError, TimeoutError):
            return
        if caught_up:
            self.recovered_at = time.monotonic()

    async def _caught_up(self, cutoff_ms: int) -> bool:
        """Whether every locker reflects every Clover write up to ``cutoff_ms``."""
        writes = (await self._json(f"{self.clover_admin}/orders"))["elements"]
        before = {
            (w["merchant_id"], w["order_id"]): w
            for w in writes
            if w["modified_time_ms"] <= cutoff_ms
        }
        for store in self.demo.stores:
            listed = await self._json(f"{store.locker_url}/v1/orders")
            held = {o["order_id"]: o for o in listed["orders"]}
            for (merchant_id, order_id), write in before.items():
                if merchant_id == store.merchant_id and not _arrived(
                    write, held.get(order_id)
                ):
                    return False
        return True

    @property
    def clover_admin(self) -> str:
        return f"{self.demo.clover_url}/_sandbox"

    async def clover_faults(self, spec: dict[str, Any]) -> None:
        async with self.http.put(f"{self.clover_admin}/faults", json=spec) as answer:
            answer.raise_for_status()

    async def clear_clover_faults(self) -> None:
        async with self.http.delete(f"{self.clover_admin}/faults") as answer:
            answer.raise_for_status()
        self.healed()

    async def hold_clover_answer(
        self, endpoint: str, caller: str, timeout_s: float = 90
    ) -> None:
        """Let Clover serve an ``endpoint`` request of ``caller``, then hang.

        Returns once such a request hangs: Clover has acted, ``caller`` (a service)
        has not heard yet; `clear_clover_faults` ends the hang with a 503, so the
        answer is lost. A request of another process caught on the way gets that
        503 at once (it lost an answer too, and must recover) and the next one is
        held.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hold = {"kind": "hang", "requests": 1, "endpoints": [endpoint]}
            await self.clover_faults({"outage": {**hold, "after_serving": True}})
            held_for = await self._held_for(deadline)
            if self.owner_of(held_for) == caller:
                return
            async with self.http.delete(f"{self.clover_admin}/faults") as answer:
                answer.raise_for_status()
        raise AssertionError(f"no {endpoint} request of {caller} in {timeout_s} s")

    async def _held_for(self, deadline: float) -> int:
        """The port of the first request hanging in Clover, once there is one."""
        while time.monotonic() < deadline:
            in_flight = await self._json(f"{self.clover_admin}/faults")
            if in_flight["callers"]:
                return int(in_flight["callers"][0][1])
            await asyncio.sleep(0.05)
        raise AssertionError("no request was held in time")

    def owner_of(self, local_port: int) -> str | None:
        """The service whose process has the TCP connection from ``local_port``."""
        sockets = {f"socket:[{inode}]" for inode in _socket_inodes(local_port)}
        for service, process in self.stack.children:
            if sockets & _open_files(process.pid):
                return service.name
        return None

    async def clover_calls(
        self, endpoint: str | None = None, outcome: str | None = None
    ) -> int:
        """How many calls Clover answered, of ``endpoint``, with ``outcome``."""
        calls = (await self._json(f"{self.clover_admin}/calls"))["elements"]
        return sum(
            row["count"]
            for row in calls
            if endpoint in (None, row["endpoint"]) and outcome in (None, row["outcome"])
        )

    async def pace_orders(self, orders_per_s: float) -> None:
        """Change how many orders Clover's generator writes per merchant per second."""
        url = f"{self.clover_admin}/generator"
        async with self.http.put(url, json={"orders_per_s": orders_per_s}) as answer:
            answer.raise_for_status()

    async def locker_faults(self, store: DemoStore, faults: dict[str, Any]) -> None:
        url = f"{store.locker_url}/_sandbox/faults"
        async with self.http.put(url, json=faults) as answer:
            answer.raise_for_status()

    async def wait_for_rejections(
        self, store: DemoStore, count: int, timeout_s: float = 60
    ) -> None:
        """Let orders flow until ``store``'s locker refused ``count`` events."""
        deadline = time.monotonic() + timeout_s
        url = f"{store.locker_url}/_sandbox/received"
        while (await self._json(url))["counts"]["rejected"] < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {count} rejections in {timeout_s} s")
            await self.run_for(SETTLE_POLL_S)

    async def stop_generating(self) -> None:
        """Pause Clover's order generator; what is written so far must arrive."""
        url = f"{self.clover_admin}/generator"
        async with self.http.put(url, json={"paused": True}) as answer:
            answer.raise_for_status()
        self.generating_stopped_at = time.monotonic()

    async def run_for(self, seconds: float) -> None:
        """Let orders flow; a service that dies on its own fails the scenario."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for service, process in self.stack.children:
                code = process.poll()
                if code is not None and service.name not in self.killed:
                    raise AssertionError(
                        f"{service.name} exited with {code} on its own; "
                        f"logs in {self.keep_logs()}"
                    )
            await self._note_recovery()
            await asyncio.sleep(0.2)

    async def wait_for_deliveries(self, count: int, timeout_s: float = 60) -> None:
        """Wait until lockers accepted ``count`` events: the pipeline is flowing."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self._accepted() >= count:
                return
            await self.run_for(SETTLE_POLL_S)
        raise AssertionError(
            f"{self.scenario}: fewer than {count} deliveries after {timeout_s} s; "
            f"logs in {self.keep_logs()}"
        )

    async def _accepted(self) -> int:
        total = 0
        for store in self.demo.stores:
            try:
                received = await self._json(f"{store.locker_url}/_sandbox/received")
            except (aiohttp.ClientError, TimeoutError):
                continue
            total += received["counts"]["received"] - received["counts"]["duplicates"]
        return total

    # -- the promise ----------------------------------------------------------------
    async def _json(self, url: str) -> Any:
        async with self.http.get(url) as answer:
            answer.raise_for_status()
            return await answer.json()

    async def promise(self) -> Promise:
        """Compare every Clover order's latest write with what its locker holds."""
        found = Promise()
        writes = (await self._json(f"{self.clover_admin}/orders"))["elements"]
        latest = {(w["merchant_id"], w["order_id"]): w for w in writes}
        found.order_writes = len(writes)
        found.orders_created = sum(w["kind"] == "CREATE" for w in writes)
        await self._dead_letters(found)
        for store in self.demo.stores:
            held = {
                o["order_id"]: o
                for o in (await self._json(f"{store.locker_url}/v1/orders"))["orders"]
            }
            received = await self._json(f"{store.locker_url}/_sandbox/received")
            counts = received["counts"]
            found.duplicates += counts["applied_more_than_once"]
            found.redeliveries_absorbed += counts["duplicates"]
            found.rejected_events |= {r["event_id"] for r in received["rejected"]}
            found.rejected_orders |= {r["order_id"] for r in received["rejected"]}
            found.out_of_order += counts["out_of_order"]
            found.delivered += counts["received"] - counts["duplicates"]
            mine = {o: w for (m, o), w in latest.items() if m == store.merchant_id}
            _compare(found, mine, held)
        await self._refreshes(found)
        return found

    async def _refreshes(self, found: Promise) -> None:
        calls = (await self._json(f"{self.clover_admin}/calls"))["elements"]
        for row in calls:
            if "refresh" in row["endpoint"]:
                found.refresh_calls += row["count"]
            if row["outcome"] == "reused":
                found.reused_refresh_tokens += row["count"]

    async def _dead_letters(self, found: Promise) -> None:
        for letter in await read_dead_letters(self.stack.bootstrap_servers):
            where = f"{letter.component}:{letter.reason}"
            if not letter.reason.strip() or not letter.detail.strip():
                found.dead_letters_without_reason += 1
            found.dead_letters[where] = found.dead_letters.get(where, 0) + 1
            found.dead_letter_details.append(letter.detail)
            order_id = _order_id_of(letter)
            if order_id is not None:
                found.dead_letter_orders.add(order_id)

    async def wait_until_settled(self, timeout_s: float) -> Promise:
        """Poll the promise until every order arrived, or the time is up."""
        deadline = time.monotonic() + timeout_s
        found = await self.promise()
        while not found.settled and time.monotonic() < deadline:
            await self.run_for(SETTLE_POLL_S * 2)
            found = await self.promise()
        if found.settled and self.healed_at is not None and self.recovered_at is None:
            self.recovered_at = time.monotonic()
        return found

    async def _trace(self, folder: Path, found: Promise) -> None:
        """Write where each lost order was last seen, for the one who investigates."""
        lost = set(found.missing + found.behind + found.not_cancelled)
        writes = (await self._json(f"{self.clover_admin}/orders"))["elements"]
        seen = await find_in_topics(self.stack.bootstrap_servers, lost)
        trace = {
            order_id: {
                "clover writes": [w for w in writes if w["order_id"] == order_id],
                "records": seen.get(order_id, []),
            }
            for order_id in sorted(lost)
        }
        (folder / "lost-orders.json").write_text(
            json.dumps(trace, indent=1), encoding="utf-8"
        )

    async def verdict(
        self,
        found: Promise,
        *,
        expected_dead_letters: int = 0,
        expected_dead: AbstractSet[str] = frozenset(),
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Print the scenario's figures; fail with the logs kept if it broke."""
        now = time.monotonic()
        figures = {"scenario": self.scenario, **found.figures()}
        if self.healed_at is not None:
            recovered = self.recovered_at or now
            figures["time to recover s"] = round(recovered - self.healed_at, 1)
        if self.generating_stopped_at is not None:
            figures["drain after generator stop s"] = round(
                now - self.generating_stopped_at, 1
            )
        figures.update(extra or {})
        print(json.dumps(figures, indent=1))
        record_figures(self.scenario, figures)
        problems = found.broken(expected_dead_letters, expected_dead)
        if problems:
            folder = self.keep_logs()
            await self._trace(folder, found)
            raise AssertionError(
                f"{self.scenario} broke the promise; logs of every process in "
                f"{folder}:\n" + "\n".join(problems)
            )
        return figures


def _arrived(write: dict[str, Any], order: dict[str, Any] | None) -> bool:
    """Whether a locker's ``order`` reflects Clover's ``write`` or a later one."""
    if write["kind"] == "DELETE":
        return order is None or order["status"] == "cancelled"
    return order is not None and order["order_version"] >= write["modified_time_ms"]


def _socket_inodes(local_port: int) -> set[str]:
    """Inodes of the TCP sockets bound to ``local_port`` (Linux's /proc)."""
    inodes = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                inodes.add(fields[9])
    return inodes


def _open_files(pid: int) -> set[str]:
    """What the file descriptors of process ``pid`` point at."""
    folder = Path(f"/proc/{pid}/fd")
    targets = set()
    try:
        descriptors = os.listdir(folder)
    except OSError:
        return set()
    for descriptor in descriptors:
        try:
            targets.add(os.readlink(folder / descriptor))
        except OSError:
            continue  # closed meanwhile
    return targets


def _compare(
    found: Promise, latest: dict[str, dict[str, Any]], held: dict[str, dict[str, Any]]
) -> None:
    for order_id, write in latest.items():
        order = held.get(order_id)
        if order_id in found.dead_letter_orders:
            # Set aside with a reason; `broken` reports it unless it was expected.
            continue
        if order is None and write["kind"] == "DELETE":
            # Deleted before it was ever delivered: there is nothing to cancel.
            found.deleted_undelivered += 1
            continue
        if order is None:
            found.missing.append(order_id)
            continue
        if write["kind"] == "DELETE":
            # A cancellation's version is when the poller learnt of the deletion
            # (the webhook's ts or its fetch), not Clover's modifiedTime: only the
            # status can be compared.
            if order["status"] != "cancelled":
                found.not_cancelled.append(order_id)
        elif order["order_version"] < write["modified_time_ms"]:
            found.behind.append(order_id)
        if order["status"] == "active" and not order["pin"]:
            found.without_pin.append(order_id)
    found.strangers += [o for o in held if o not in latest]


def _order_id_of(letter: DeadLetter) -> str | None:
    """The Clover order id inside a dead-lettered record, when it has one."""
    try:
        body = json.loads(letter.original_value())
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    for key in ("order_id", "id"):
        if isinstance(body.get(key), str):
            return str(body[key])
    order = body.get("order")
    if isinstance(order, dict) and isinstance(order.get("id"), str):
        return str(order["id"])
    return None


async def find_in_topics(
    bootstrap_servers: str, order_ids: AbstractSet[str]
) -> dict[str, list[dict[str, Any]]]:
    """Every record of every topic that mentions one of ``order_ids``."""
    found: dict[str, list[dict[str, Any]]] = {}
    consumer = make_consumer(bootstrap_servers, None)
    await consumer.start()
    try:
        assigned = [
            TopicPartition(topic, p)
            for topic in await consumer.topics()
            for p in consumer.partitions_for_topic(topic) or set()
        ]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(*assigned, timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    text = (record.value or b"").decode("utf-8", "replace")
                    for order_id in order_ids:
                        if order_id in text:
                            found.setdefault(order_id, []).append(
                                {
                                    "topic": record.topic,
                                    "offset": record.offset,
                                    "headers": [
                                        (k, v.decode("utf-8", "replace"))
                                        for k, v in record.headers
                                    ],
                                    "value": text[:300],
                                }
                            )
        return found
    finally:
        await consumer.stop()


async def read_dead_letters(bootstrap_servers: str) -> list[DeadLetter]:
    """Every record in the dead-letter topic so far."""
    consumer = make_consumer(bootstrap_servers, None)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata partitions_for_topic reads
        partitions = consumer.partitions_for_topic(DEAD_LETTER) or set()
        assigned = [TopicPartition(DEAD_LETTER, p) for p in partitions]
        if not assigned:
            return []
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        letters: list[DeadLetter] = []
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(*assigned, timeout_ms=1000)
            for records in batch.values():
                letters += [
                    DeadLetter.model_validate_json(r.value)
                    for r in records
                    if r.value is not None
                ]
        return letters
    finally:
        await consumer.stop()


SESSION_FIGURES: list[dict[str, Any]] = []
"""Figures of every scenario run in this pytest session, in order."""

CHAOS_COMMAND = "make chaos"


STANDARD_FIGURES = frozenset(
    [
        *Promise().figures(),
        "scenario",
        "time to recover s",
        "drain after generator stop s",
    ]
)


def chaos_section(
    runs: list[dict[str, Any]], failed: list[str], elapsed_s: float
) -> Section:
    """The BENCHMARKS.md section of one `make chaos` run."""
    section = Section(
        name="chaos",
        title="Chaos suite: the promise under faults (issue 9)",
        command=CHAOS_COMMAND,
    )
    for figures in runs:
        letters = figures["dead letters"]
        why = ", ".join(f"{k} x{v}" for k, v in letters.items()) or "none"
        extra = "".join(
            f"; {k} {v}" for k, v in figures.items() if k not in STANDARD_FIGURES
        )
        section.add(
            figures["scenario"],
            f"created {figures['orders created']}, writes {figures['order writes']}, "
            f"delivered {figures['delivered']}, duplicates at locker "
            f"{figures['duplicates at locker']} (redeliveries absorbed "
            f"{figures['redeliveries absorbed']}), missing {figures['missing']}, "
            f"out-of-order {figures['out-of-order']}, rejected by a locker "
            f"{figures['rejected by a locker']}, dead letters {why}, "
            f"refresh calls {figures['refresh calls']}, reused refresh tokens "
            f"{figures['reused refresh tokens']}{extra}",
            f"recovered {figures.get('time to recover s', '-')} s after the fault "
            f"ended; drained {figures.get('drain after generator stop s', '-')} s "
            "after the generator stopped",
        )
    section.notes += [
        "Counts, not speeds. Third column: recovered = from the end of the fault "
        "until every order Clover wrote before that moment was at its locker at "
        "that version or later (checked each second while orders keep flowing); "
        "drained = from pausing Clover's generator until every locker held every "
        "order at its latest version.",
        "Duplicates at the locker: orders a locker created or cancelled more than "
        "once (exactly once in effect: must be 0, asserted). Redeliveries absorbed: "
        "events sent again that the locker's Idempotency-Key answered with the first "
        "answer, changing nothing (expected after a crash).",
        f"Whole run {'FAILED' if failed else 'passed'}: {len(runs)} scenarios "
        f"checked in {elapsed_s / 60:.1f} min (budget 15 min), load average "
        f"{os.getloadavg()[0]:.1f} at the end on 2 shared cores.",
    ]
    if failed:
        section.notes.append("Failed: " + ", ".join(failed) + ".")
    return section


def record_figures(scenario: str, figures: Mapping[str, Any]) -> None:
    """Keep the latest figures of a scenario for the BENCHMARKS.md section."""
    SESSION_FIGURES.append(dict(figures))
    folder = ARTIFACTS / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{scenario}.json").write_text(json.dumps(figures), encoding="utf-8")
