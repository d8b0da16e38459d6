"""Sentry events reach a real ingest server on loopback, tagged and scrubbed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import sentry_sdk
from aiohttp import web

from lockerlink.embedded import free_port
from lockerlink.sentry import SCRUBBED, init_sentry, scrub_event, tag_ids
from lockerlink.settings import Settings
from tests.sentry_ingest import SentryIngest

ACCESS_TOKEN = "a1b2c3d4-e5f6-7788-99aa-bbccddeeff00"


@pytest.fixture
async def ingest() -> AsyncIterator[tuple[SentryIngest, str]]:
    server = SentryIngest()
    runner = web.AppRunner(server.app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield server, f"http://publickey@127.0.0.1:{port}/1"
    finally:
        client = sentry_sdk.get_client()
        client.close(timeout=1)
        await runner.cleanup()


async def test_error_arrives_tagged_and_without_secrets(
    ingest: tuple[SentryIngest, str],
) -> None:
    server, dsn = ingest
    assert init_sentry(Settings(sentry_dsn=dsn), component="token-service")
    # Its own isolation scope, as each task of a service has: the tags end with it.
    with sentry_sdk.isolation_scope(), sentry_sdk.new_scope() as scope:
        tag_ids(store_id="downtown", merchant_id="MERCHANT0001")
        scope.set_extra("access_token", ACCESS_TOKEN)
        scope.set_extra("pin", "483920")
        # Built at run time so the test's own source lines (which Sentry sends as
        # stack context) do not contain the text the assertion looks for.
        scope.set_extra("note", "\n".join(["JOHN D", "uber eats".upper(), "18:37"]))
        scope.set_extra("attempt", 3)
        try:
            raise RuntimeError(f"Clover said no to Bearer {ACCESS_TOKEN}")
        except RuntimeError:
            sentry_sdk.capture_exception()
    await asyncio.to_thread(sentry_sdk.flush, 5)

    assert len(server.events) == 1
    event = server.events[0]
    assert event["tags"]["component"] == "token-service"
    assert event["tags"]["store"] == "downtown"
    assert event["tags"]["merchant"] == "MERCHANT0001"
    assert event["extra"]["access_token"] == SCRUBBED
    assert event["extra"]["pin"] == SCRUBBED
    assert event["extra"]["note"] == SCRUBBED
    assert event["extra"]["attempt"] == 3
    everything = b"".join(server.raw_bodies)
    assert ACCESS_TOKEN.encode() not in everything
    assert b"UBER EATS" not in everything


async def test_error_log_line_becomes_an_event(
    ingest: tuple[SentryIngest, str],
) -> None:
    server, dsn = ingest
    init_sentry(Settings(sentry_dsn=dsn), component="stream")
    logging.getLogger("lockerlink.test").error(
        "refresh failed for merchant M1: refresh_token=%s", "rt-0123456789abcdef"
    )
    await asyncio.to_thread(sentry_sdk.flush, 5)

    assert len(server.events) == 1
    assert b"rt-0123456789abcdef" not in b"".join(server.raw_bodies)


async def test_error_log_line_is_tagged_with_the_ids_it_names(
    ingest: tuple[SentryIngest, str],
) -> None:
    server, dsn = ingest
    init_sentry(Settings(sentry_dsn=dsn), component="delivery")
    with sentry_sdk.isolation_scope():
        logging.getLogger("lockerlink.test").error(
            "locker refuses us", extra={"store": "pho-downtown", "status": 401}
        )
    with sentry_sdk.isolation_scope():
        logging.getLogger("lockerlink.test").error(
            "token refresh failed",
            extra={"merchant_id": "MERCHANT0002", "store_id": "taqueria"},
        )
    await asyncio.to_thread(sentry_sdk.flush, 5)

    tags = sorted(
        (e["tags"].get("store"), e["tags"].get("merchant"), e["tags"]["component"])
        for e in server.events
    )
    assert tags == [
        ("pho-downtown", None, "delivery"),
        ("taqueria", "MERCHANT0002", "delivery"),
    ]


def test_no_dsn_means_no_sentry() -> None:
    assert init_sentry(Settings(), component="poller") is False


def test_request_bodies_and_auth_headers_are_dropped() -> None:
    event = {
        "request": {
            "data": '{"title": "Uber Eats - Joe"}',
            "headers": {
                "Authorization": "Bearer xyz",
                "X-Clover-Auth": "s",
                "Accept": "*",
            },
            "query_string": "code=abc",
        }
    }
    scrubbed = scrub_event(event)
    request = scrubbed["request"]
    assert "data" not in request
    assert request["headers"] == {
        "Authorization": SCRUBBED,
        "X-Clover-Auth": SCRUBBED,
        "Accept": "*",
    }
    assert request["query_string"] == SCRUBBED
