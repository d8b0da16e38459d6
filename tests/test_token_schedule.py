"""Proactive refresh: merchants come due inside their window and are refreshed once."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from lockerlink.broker import ensure_topics, make_consumer
from lockerlink.errors import CloverError
from schemas.token_rotation import RotationReason, TokenRotationEvent
from schemas.topics import TopicSpec
from tests.token_fixtures import Rig
from token_service.pair import TokenPair
from token_service.refresher import ProactiveRefresher
from token_service.rotation_events import KafkaRotationPublisher


async def test_each_merchant_is_due_inside_its_refresh_window(vault_rig: Rig) -> None:
    vault = vault_rig.make_vault()
    now_ms = int(vault_rig.clock() * 1000)
    expires_ms = now_ms + 30 * 60 * 1000
    margin_ms = int(vault_rig.settings.token_refresh_margin_s * 1000)
    spread_ms = int(vault_rig.settings.token_refresh_spread_s * 1000)

    due = [vault.schedule.due_at_ms(expires_ms) for _ in range(500)]

    earliest_ms = expires_ms - margin_ms - spread_ms
    assert all(earliest_ms <= d <= expires_ms - margin_ms for d in due)
    assert len(set(due)) > 400  # spread, not bunched


async def test_due_merchants_are_refreshed_before_expiry_once(vault_rig: Rig) -> None:
    vault = vault_rig.make_vault()
    other = vault_rig.make_vault(separate_connection=True)
    merchants = [vault_rig.sandbox.add_merchant() for _ in range(5)]
    for merchant in merchants:
        await vault_rig.connect(vault, f"store-{merchant.lower()}", merchant)
    before = {m: (await vault.get_access_token(m)).token for m in merchants}
    refreshers = [ProactiveRefresher(v, concurrency=4) for v in (vault, other)]

    assert sum([await r.run_once() for r in refreshers]) == 0  # nothing due yet
    vault_rig.clock.advance(30 * 60 - vault_rig.settings.token_refresh_margin_s)
    claimed = sum([await r.run_once() for r in refreshers])

    assert claimed == len(merchants)
    for merchant in merchants:
        token = await vault.get_access_token(merchant)
        assert token.token != before[merchant]
        assert vault_rig.sandbox.calls.count("refresh", merchant_id=merchant) == 1
    assert {e.reason for e in vault_rig.events[-5:]} == {RotationReason.PROACTIVE}


async def test_rotation_event_on_kafka_names_the_fingerprint_not_the_token(
    vault_rig: Rig, kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("rotations")
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, compacted=True)], 1)
    publisher = KafkaRotationPublisher(kafka_bootstrap, topic=topic)
    vault = vault_rig.make_vault(publisher=publisher)
    merchant = await vault_rig.connect(vault)
    token = await vault.get_access_token(merchant)
    stored = await vault.pairs.read(merchant)
    assert stored is not None
    await vault.close()

    consumer: AIOKafkaConsumer = make_consumer(kafka_bootstrap, None)
    consumer.subscribe([topic])
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=500)
            records += [r for rs in batch.values() for r in rs]
            if records:
                break
    finally:
        await consumer.stop()

    assert len(records) == 1
    assert records[0].key == merchant.encode()
    assert token.token.encode() not in records[0].value
    assert stored.pair.refresh_token.encode() not in records[0].value
    event = TokenRotationEvent.model_validate(json.loads(records[0].value))
    assert event.fingerprint == token.fingerprint
    assert event.reason is RotationReason.CONNECT
    assert event.store_ids == ("store-1",)


async def test_one_merchant_with_an_unreadable_record_does_not_stop_the_others(
    vault_rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    vault = vault_rig.make_vault()
    broken, fine = (vault_rig.sandbox.add_merchant() for _ in range(2))
    for merchant in (broken, fine):
        await vault_rig.connect(vault, f"store-{merchant.lower()}", merchant)
    before = (await vault.get_access_token(fine)).token
    # A state this release does not know (written by a newer one, or by hand).
    await vault_rig.redis.hset(vault_rig.keyspace.merchant(broken), "state", "bogus")
    vault_rig.clock.advance(30 * 60 - vault_rig.settings.token_refresh_margin_s)

    with caplog.at_level(logging.ERROR, logger="token_service.refresher"):
        claimed = await ProactiveRefresher(vault, concurrency=4).run_once()

    assert claimed == 2
    assert (await vault.get_access_token(fine)).token != before
    [line] = [r for r in caplog.records if r.name == "token_service.refresher"]
    assert line.getMessage().startswith("proactive refresh failed: ValueError at ")
    assert getattr(line, "merchant_id", None) == broken


def test_an_expiration_too_large_for_a_float_is_a_malformed_answer() -> None:
    answer = {
        "access_token": "a",
        "refresh_token": "r",
        "access_token_expiration": 10**400,
        "refresh_token_expiration": 1_900_000_000,
    }
    with pytest.raises(CloverError, match="not a number") as caught:
        TokenPair.from_clover(answer, "M1")
    assert caught.value.retriable
