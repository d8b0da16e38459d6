"""A stand-in for one store's locker management server, for tests, demos and benches.

The locker API it serves (the one lockerlink's delivery speaks):

- ``POST /v1/orders`` with a `LockerOrderEvent` as JSON and the header
  ``Idempotency-Key: <event_id>``. Answers ``201`` when the event created, changed or
  cancelled an order, ``200`` when it was stale (an older ``order_version`` than the
  one held) and changed nothing. A repeat of a key the locker already holds creates
  nothing and, by default, gets the first answer again (same status, same body) with
  the header ``Idempotent-Replayed: true``; with ``repeat_answer="conflict"`` it gets
  ``409`` with the first body instead (some vendors do that; delivery treats both as
  delivered).
- ``GET /v1/orders`` lists the orders it holds; ``GET /v1/orders/{order_id}`` one.
- Malformed requests get a 4xx JSON body ``{"error": CODE, "detail": ...}``: ``400``
  for a body that is not JSON or a missing ``Idempotency-Key``, ``422`` for a body
  that is no valid locker order event or whose key differs from its ``event_id``,
  ``401`` for a missing or wrong bearer credential when one is configured.

Introspection and faults for tests, under ``/_sandbox/`` (same credential):
``GET /_sandbox/received`` (every event in arrival order, the events a fault
rejected, counts), ``GET`` and
``PUT /_sandbox/faults`` (see `LockerFaults`), ``POST /_sandbox/reset``.

Faults: ``down`` (``"503"`` answers every order request with 503; connection refused
is `LockerSandbox.stop` followed by `LockerSandbox.start` on the same port),
``latency_s`` (slow), ``error_status`` (every order request gets that 5xx),
``fail_probability`` (intermittent 503, from a seeded random generator),
``reject_order_ids`` (a permanent 4xx for the listed orders) and ``reject_share``
(``reject_status`` for a share of all orders, chosen by a hash of the order id and
``seed``, so every event of a chosen order is refused). An answer forced by a fault is
not a delivery: the locker records nothing for it beyond counting it; a rejection is
also listed under ``rejected``.

Counts tell apart ``duplicates`` (repeats of a held Idempotency-Key, absorbed: the
first answer again) from ``applied_more_than_once`` (an order the locker created
or cancelled a second time; exactly once in effect means 0).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockerlink.listen import start_site
from schemas.locker_order import EventType, LockerOrderEvent

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

Outcome = Literal["created", "updated", "cancelled", "stale", "duplicate"]


class LockerFaults(BaseModel):
    """What the sandbox does wrong on purpose; every field off by default."""

    model_config = ConfigDict(extra="forbid")

    down: bool = Field(False, description="Answer every order request with 503.")
    latency_s: float = Field(0.0, ge=0, le=120, description="Added to each request.")
    error_status: int | None = Field(
        None, ge=500, le=599, description="Answer every order request with this 5xx."
    )
    fail_probability: float = Field(
        0.0, ge=0, le=1, description="Share of order requests answered 503."
    )
    seed: int = Field(0, description="Seed of the intermittent failures.")
    reject_order_ids: dict[str, int] = Field(
        default_factory=dict,
        description="order id -> 4xx status answered to every event of that order.",
    )
    reject_share: float = Field(
        0.0, ge=0, le=1, description="Share of orders whose every event is refused."
    )
    reject_status: int = Field(
        422, ge=400, le=499, description="The status answered to those orders."
    )

    def rejection(self, order_id: str) -> int | None:
        """The 4xx this locker answers every event of ``order_id`` with, if any."""
        listed = self.reject_order_ids.get(order_id)
        if listed is not None or not self.reject_share:
            return listed
        digest = hashlib.sha256(f"{self.seed}\x1f{order_id}".encode()).digest()
        drawn = int.from_bytes(digest[:8], "big") / 2**64
        return self.reject_status if drawn < self.reject_share else None


@dataclass(frozen=True)
class Received:
    """One accepted order request, in arrival order."""

    seq: int
    event_id: str
    order_id: str
    order_version: int
    event_type: str
    outcome: Outcome
    received_at_ms: int = 0
    channel: str = ""
    platform: str | None = None
    customer: str | None = None
    pin: str = ""


@dataclass(frozen=True)
class Rejected:
    """One order request a fault refused for good."""

    event_id: str
    order_id: str
    order_version: int
    status: int


@dataclass
class HeldOrder:
    """An order as the locker holds it."""

    order_id: str
    order_version: int
    status: Literal["active", "cancelled"]
    compartment: str | None
    pin: str
    event_id: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LockerState:
    """Everything the locker holds and has seen; survives a stop and start."""

    compartments: int = 100
    orders: dict[str, HeldOrder] = field(default_factory=dict)
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    faults_served: int = 0
    malformed: int = 0

    def free_compartment(self) -> str | None:
        taken = {o.compartment for o in self.orders.values() if o.compartment}
        for number in range(1, self.compartments + 1):
            name = f"C{number:03d}"
            if name not in taken:
                return name
        return None

    def counts(self) -> dict[str, int]:
        """How many events of each outcome, plus faults and malformed requests."""
        by_outcome: dict[str, int] = {}
        for item in self.received:
            by_outcome[item.outcome] = by_outcome.get(item.outcome, 0) + 1
        return {
            "received": len(self.received),
            "held": len(self.orders),
            "active": sum(o.status == "active" for o in self.orders.values()),
            "duplicates": by_outcome.get("duplicate", 0),
            "applied_more_than_once": self.applied_more_than_once(),
            "rejected": len(self.rejected),
            "out_of_order": by_outcome.get("stale", 0),
            "faults_served": self.faults_served,
            "malformed": self.malformed,
            **{f"outcome_{k}": v for k, v in sorted(by_outcome.items())},
        }

    def applied_more_than_once(self) -> int:
        """Orders created again or cancelled again: a change applied twice.

        A version the locker holds already is ``stale``, whatever its key, so an
        order can only be applied twice by coming back after its cancellation or by
        a second cancellation.
        """
        created: set[str] = set()
        cancelled: set[str] = set()
        again = 0
        for item in self.received:
            seen = {"created": created, "cancelled": cancelled}.get(item.outcome)
            if seen is None:
                continue
            again += item.order_id in seen
            seen.add(item.order_id)
        return again

    def accepted_event_ids(self) -> list[str]:
        """Event ids in the order they were first accepted, without duplicates."""
        return [r.event_id for r in self.received if r.outcome != "duplicate"]

    def reset(self) -> None:
        self.orders.clear()
        self.answers.clear()
        self.received.clear()
        self.rejected.clear()
        self.faults_served = 0
        self.malformed = 0


def _error(status: int, code: str, detail: object) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status)


class LockerApp:
    """The request handlers over one `LockerState` and its faults."""

    def __init__(
        self,
        state: LockerState,
        faults: LockerFaults,
        *,
        credential: str | None,
        repeat_answer: Literal["replay", "conflict"],
        store_id: str | None,
    ) -> None:
        self.state = state
        self.faults = faults
        self.credential = credential
        self.repeat_answer = repeat_answer
        self.store_id = store_id
        self._random = random.Random(faults.seed)  # noqa: S311 - not for secrets
        # One event at a time, like a locker controller writing to its database.
        self._lock = asyncio.Lock()

    def set_faults(self, faults: LockerFaults) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)  # noqa: S311 - not for secrets

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/orders", self.post_order)
        app.router.add_get("/v1/orders", self.list_orders)
        app.router.add_get("/v1/orders/{order_id}", self.get_order)
        app.router.add_get("/_sandbox/received", self.get_received)
        app.router.add_get("/_sandbox/faults", self.get_faults)
        app.router.add_put("/_sandbox/faults", self.put_faults)
        app.router.add_post("/_sandbox/reset", self.post_reset)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.credential is None:
            response: web.StreamResponse = await handler(request)
            return response
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {self.credential}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return _error(401, "unauthorized", "missing or wrong bearer credential")
        response = await handler(request)
        return response

    # -- orders ---------------------------------------------------------------

    async def post_order(self, request: web.Request) -> web.Response:
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        forced = self._forced_failure()
        if forced is not None:
            return forced
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key:
            self.state.malformed += 1
            return _error(400, "missing_idempotency_key", f"send {IDEMPOTENCY_HEADER}")
        parsed = await self._parse(request, key)
        if isinstance(parsed, web.Response):
            return parsed
        rejected = self.faults.rejection(parsed.order_id)
        if rejected is not None:
            self.state.faults_served += 1
            self.state.rejected.append(
                Rejected(
                    parsed.event_id, parsed.order_id, parsed.order_version, rejected
                )
            )
            return _error(rejected, "order_rejected", f"order {parsed.order_id}")
        async with self._lock:
            return self._apply_once(key, parsed)

    def _forced_failure(self) -> web.Response | None:
        faults = self.faults
        if faults.down:
            status, detail = 503, "locker is down"
        elif faults.error_status is not None:
            status, detail = faults.error_status, "locker failed"
        elif (
            faults.fail_probability and self._random.random() < faults.fail_probability
        ):
            status, detail = 503, "locker failed intermittently"
        else:
            return None
        self.state.faults_served += 1
        return _error(status, "sandbox_fault", detail)

    async def _parse(
        self, request: web.Request, key: str
    ) -> LockerOrderEvent | web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.state.malformed += 1
            return _error(400, "malformed_json", str(exc))
        try:
            event = LockerOrderEvent.model_validate(body)
        except ValidationError as exc:
            self.state.malformed += 1
            problems = [
                {"loc": ".".join(map(str, e["loc"])), "msg": e["msg"]}
                for e in exc.errors()
            ]
            return _error(422, "invalid_order", problems)
        if event.event_id != key:
            self.state.malformed += 1
            return _error(422, "key_mismatch", "Idempotency-Key must equal event_id")
        if self.store_id is not None and event.store_id != self.store_id:
            self.state.malformed += 1
            return _error(422, "wrong_store", f"this locker serves {self.store_id}")
        return event

    def _apply_once(self, key: str, event: LockerOrderEvent) -> web.Response:
        known = self.state.answers.get(key)
        if known is not None:
            self._record(event, "duplicate")
            first_status, first_body = known
            if self.repeat_answer == "conflict":
                return web.json_response(first_body, status=409)
            return web.json_response(
                first_body, status=first_status, headers={REPLAYED_HEADER: "true"}
            )
        outcome = self._apply(event)
        held = self.state.orders.get(event.order_id)
        body: dict[str, Any] = {
            "order_id": event.order_id,
            "event_id": event.event_id,
            "outcome": outcome,
            "order": held.as_json() if held else None,
        }
        status = 200 if outcome == "stale" else 201
        self.state.answers[key] = (status, body)
        self._record(event, outcome)
        return web.json_response(body, status=status)

    def _apply(self, event: LockerOrderEvent) -> Outcome:
        held = self.state.orders.get(event.order_id)
        if held is not None and event.order_version <= held.order_version:
            return "stale"
        if event.event_type is EventType.CANCELLED:
            compartment = None
            outcome: Outcome = "cancelled"
        elif held is not None and held.status == "active":
            compartment = held.compartment or self.state.free_compartment()
            outcome = "updated"
        else:
            compartment = self.state.free_compartment()
            outcome = "created"
        self.state.orders[event.order_id] = HeldOrder(
            order_id=event.order_id,
            order_version=event.order_version,
            status="cancelled" if outcome == "cancelled" else "active",
            compartment=compartment,
            pin=event.pickup.pin,
            event_id=event.event_id,
        )
        return outcome

    def _record(self, event: LockerOrderEvent, outcome: Outcome) -> None:
        self.state.received.append(
            Received(
                seq=len(self.state.received),
                event_id=event.event_id,
                order_id=event.order_id,
                order_version=event.order_version,
                event_type=event.event_type.value,
                outcome=outcome,
                received_at_ms=int(time.time() * 1000),
                channel=event.source.channel.value,
                platform=event.source.platform.value if event.source.platform else None,
                customer=event.customer.display_name,
                pin=event.pickup.pin,
            )
        )

    async def list_orders(self, request: web.Request) -> web.Response:
        orders = [o.as_json() for o in self.state.orders.values()]
        return web.json_response({"orders": orders})

    async def get_order(self, request: web.Request) -> web.Response:
        held = self.state.orders.get(request.match_info["order_id"])
        if held is None:
            return _error(404, "not_found", "no such order")
        return web.json_response(held.as_json())

    # -- introspection and faults ------------------------------------------------

    async def get_received(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "counts": self.state.counts(),
                "received": [asdict(r) for r in self.state.received],
                "rejected": [asdict(r) for r in self.state.rejected],
            }
        )

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.model_dump())

    async def put_faults(self, request: web.Request) -> web.Response:
        try:
            faults = LockerFaults.model_validate(await request.json())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, "malformed_json", str(exc))
        except ValidationError as exc:
            return _error(422, "invalid_faults", exc.errors(include_url=False))
        self.set_faults(faults)
        log.info("locker sandbox faults set", extra={"faults": faults.model_dump()})
        return web.json_response(faults.model_dump())

    async def post_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        self.set_faults(LockerFaults())
        return web.json_response({"reset": True})


class LockerSandbox:
    """One locker server on loopback, started and stopped from a test or the CLI.

    State (orders, answers, the received log) survives `stop` and `start`, which
    reuse the first port, so a test can take the locker down (connection refused)
    and bring it back like a restarted server.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        store_id: str | None = None,
        credential: str | None = None,
        compartments: int = 100,
        repeat_answer: Literal["replay", "conflict"] = "replay",
        faults: LockerFaults | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.state = LockerState(compartments=compartments)
        self.app = LockerApp(
            self.state,
            faults or LockerFaults(),
            credential=credential,
            repeat_answer=repeat_answer,
            store_id=store_id,
        )
        self._runner: web.AppRunner | None = None

    @property
    def faults(self) -> LockerFaults:
        return self.app.faults

    def set_faults(self, faults: LockerFaults) -> None:
        self.app.set_faults(faults)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> str:
        """Listen (again, on the same port after the first start); return the URL."""
        if self._runner is not None:
            return self.base_url
        runner = web.AppRunner(self.app.build(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await start_site(site, "locker sandbox", self.host, self.port, runner=runner)
        if self.port == 0:
            self.port = _bound_port(runner)
        self._runner = runner
        return self.base_url

    async def stop(self) -> None:
        """Stop listening: clients now get connection refused."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("locker sandbox is not listening")
