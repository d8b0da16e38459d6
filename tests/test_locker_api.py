"""How delivery reads a locker's answers, against the locker sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from consumers.backoff import Backoff
from consumers.breaker import CircuitBreaker
from consumers.locker_api import Answer, LockerApi, Verdict, classify
from lockerlink.embedded import free_port
from sandbox.locker import LockerFaults, LockerSandbox
from tests.locker_events import locker_event

StartLocker = Callable[..., Awaitable[LockerSandbox]]


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (201, Verdict.DELIVERED),
        (409, Verdict.DELIVERED),
        (400, Verdict.REJECTED),
        (410, Verdict.REJECTED),
        (422, Verdict.REJECTED),
        (401, Verdict.REFUSES_US),
        (403, Verdict.REFUSES_US),
        (404, Verdict.REFUSES_US),
        (302, Verdict.REFUSES_US),
        (408, Verdict.TRANSIENT),
        (429, Verdict.TRANSIENT),
        (500, Verdict.TRANSIENT),
        (503, Verdict.TRANSIENT),
    ],
)
def test_statuses_map_to_what_delivery_does_next(status: int, verdict: Verdict) -> None:
    assert classify(status) is verdict


async def test_repeat_is_reported_as_already_held(locker_sandbox: StartLocker) -> None:
    locker = await locker_sandbox()
    event = locker_event("s1", "A")
    body = event.model_dump_json().encode()
    async with LockerApi.new_session() as session:
        api = LockerApi(session)
        first = await api.post_event(
            locker.base_url, event.event_id, body, timeout_s=2, credential=None
        )
        again = await api.post_event(
            locker.base_url, event.event_id, body, timeout_s=2, credential=None
        )
    assert (first.verdict, first.already_held) == (Verdict.DELIVERED, False)
    assert (again.verdict, again.already_held) == (Verdict.DELIVERED, True)


async def test_slow_and_absent_lockers_are_transient_and_name_no_credential(
    locker_sandbox: StartLocker,
) -> None:
    locker = await locker_sandbox(faults=LockerFaults(latency_s=0.5))
    event = locker_event("s1", "A")
    body = event.model_dump_json().encode()
    async with LockerApi.new_session() as session:
        api = LockerApi(session)
        slow = await api.post_event(
            locker.base_url, event.event_id, body, timeout_s=0.05, credential="s3cret"
        )
        await locker.stop()
        gone = await api.post_event(
            locker.base_url, event.event_id, body, timeout_s=1, credential="s3cret"
        )
    assert slow.verdict is Verdict.TRANSIENT and slow.status is None
    assert gone.verdict is Verdict.TRANSIENT
    assert "s3cret" not in slow.detail + gone.detail


def test_breaker_opens_after_failures_in_a_row_and_closes_on_success() -> None:
    breaker = CircuitBreaker(failures_to_open=3, backoff=Backoff(base_s=1, max_s=8))
    assert [breaker.record_failure() for _ in range(4)] == [False, False, True, False]
    assert breaker.is_open
    assert 0 <= breaker.wait_s() <= 8
    assert breaker.wait_s(at_least_s=20) == 20
    assert breaker.record_success() is True
    assert not breaker.is_open and breaker.failures == 0


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.5, max_s=3)
    assert [backoff.ceiling_s(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]
    assert all(0 <= backoff.delay_s(4) <= 3 for _ in range(50))


def test_a_retry_after_of_a_day_or_infinity_waits_at_most_the_honoured_cap() -> None:
    backoff = Backoff(base_s=0.5, max_s=3, honoured_max_s=60)
    assert backoff.delay_s(1, at_least_s=20) == 20
    assert backoff.delay_s(1, at_least_s=86_400) == 60
    assert backoff.delay_s(1, at_least_s=float("inf")) == 60


@pytest.fixture
async def odd_locker() -> AsyncIterator[str]:
    """A locker on loopback answering each path in its own hostile way."""

    async def odd(request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        await request.read()
        if kind == "charset":
            # aiohttp would look this codec up to decode text and fail.
            return web.Response(
                status=422,
                body=b"bad order",
                headers={"Content-Type": "text/plain; charset=base64"},
            )
        if kind == "huge":
            return web.Response(status=400, body=b"x" * 5_000_000)
        if kind == "retry":
            return web.Response(status=503, headers={"Retry-After": "1e999"})
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/{kind}/v1/orders", odd)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_odd_answers_and_odd_credentials_never_raise(odd_locker: str) -> None:
    event = locker_event("s1", "A")
    body = event.model_dump_json().encode()
    async with LockerApi.new_session() as session:
        api = LockerApi(session)

        async def post(kind: str, credential: str | None = None) -> Answer:
            return await api.post_event(
                f"{odd_locker}/{kind}",
                event.event_id,
                body,
                timeout_s=5,
                credential=credential,
            )

        charset = await post("charset")
        huge = await post("huge")
        retry = await post("retry")
        newline = await post("ok", credential="llk_secret\n")
        fine = await post("ok", credential="llk_secret")
    assert (charset.verdict, charset.status, charset.detail) == (
        Verdict.REJECTED,
        422,
        "bad order",
    )
    assert charset.summary == "HTTP 422"
    assert huge.verdict is Verdict.REJECTED and len(huge.detail) == 500
    assert (retry.verdict, retry.retry_after_s) == (Verdict.TRANSIENT, 0.0)
    assert newline.verdict is Verdict.REFUSES_US and newline.status is None
    assert "trailing newline" in newline.summary
    assert "llk_secret" not in newline.detail
    assert fine.verdict is Verdict.DELIVERED
