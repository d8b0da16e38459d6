"""The store registry: validated at start-up, overridable through Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from lockerlink.embedded import free_port
from lockerlink.errors import ConfigError, DependencyError
from lockerlink.keys import KeySpace
from lockerlink.redis_store import RedisUnavailable
from lockerlink.registry import Keypad, Store, StoreRegistry
from lockerlink.registry_reload import ReloadingRegistry
from schemas.locker_order import Channel, PinPolicyName, Platform
from schemas.raw_order import RawSource, order_record
from schemas.topics import RAW_ORDERS
from streams.ledger import MemoryLedger
from streams.processor import OrderProcessor
from streams.record import RawRecord

REGISTRY_YAML = """
stores:
  - store_id: downtown
    name: Downtown Pho
    merchant_ids: [MERCHANTAAAA1]
    locker: {url: "http://127.0.0.1:9001", timeout_s: 2}
    pin_policy:
      platforms:
        grubhub: {source: platform_code, keypad: numeric, length: 4}
  - store_id: airport
    merchant_ids: [MERCHANTBBBB2]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stores.yaml"
    path.write_text(text)
    return path


def test_file_maps_merchants_to_stores_with_their_pin_rules(tmp_path: Path) -> None:
    registry = StoreRegistry.from_file(_write(tmp_path, REGISTRY_YAML))

    downtown = registry.store_for_merchant("MERCHANTAAAA1")
    assert downtown is not None and downtown.store_id == "downtown"
    assert downtown.locker is not None and downtown.locker.timeout_s == 2
    grubhub = downtown.pin_policy.rule_for(Channel.DELIVERY, Platform.GRUBHUB)
    assert (grubhub.source, grubhub.length) == (PinPolicyName.PLATFORM_CODE, 4)
    uber = downtown.pin_policy.rule_for(Channel.DELIVERY, Platform.UBER_EATS)
    assert (uber.source, uber.length) == (PinPolicyName.PLATFORM_CODE, 5)
    in_store = downtown.pin_policy.rule_for(Channel.IN_STORE, None)
    assert (in_store.source, in_store.keypad) == (PinPolicyName.RANDOM, Keypad.NUMERIC)
    assert registry.store_for_merchant("UNKNOWN") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stores: [{store_id: 'Bad Store!'}]", "stores.0.store_id"),
        ("stores: [{store_id: a, locker: {url: 'not a url'}}]", "stores.0.locker.url"),
        (
            "stores: [{store_id: a, pin_policy: {in_store: "
            "{source: random, length: 2}}}]",
            "stores.0.pin_policy.in_store.length",
        ),
        ("stores: [{store_id: a, colour: red}]", "stores.0.colour"),
        ("stores: [ {store_id: a", "not valid YAML"),
        ("- just a list", "expected a mapping"),
        (
            "stores: [{store_id: a, merchant_ids: [M]}, "
            "{store_id: b, merchant_ids: [M]}]",
            "belongs to both",
        ),
    ],
)
def test_bad_file_fails_with_one_clear_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        StoreRegistry.from_file(_write(tmp_path, text))
    assert expected in caught.value.message
    assert "\n" not in caught.value.message


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        StoreRegistry.from_file(tmp_path / "absent.yaml")
    assert "absent.yaml" in caught.value.message


async def test_redis_override_moves_a_merchant_without_restart(
    tmp_path: Path, redis: aioredis.Redis, keyspace: KeySpace
) -> None:
    registry = StoreRegistry.from_file(_write(tmp_path, REGISTRY_YAML))
    before = await registry.resolve_merchant(redis, keyspace, "MERCHANTAAAA1")
    assert before is not None and before.store_id == "downtown"

    await registry.set_override(redis, keyspace, "MERCHANTAAAA1", "airport")
    moved = await registry.resolve_merchant(redis, keyspace, "MERCHANTAAAA1")
    assert moved is not None and moved.store_id == "airport"

    await registry.clear_override(redis, keyspace, "MERCHANTAAAA1")
    back = await registry.resolve_merchant(redis, keyspace, "MERCHANTAAAA1")
    assert back is not None and back.store_id == "downtown"


async def test_override_to_an_unknown_store_is_refused(
    redis: aioredis.Redis, keyspace: KeySpace
) -> None:
    registry = StoreRegistry.from_mapping({"stores": [{"store_id": "a"}]})
    with pytest.raises(ConfigError):
        await registry.set_override(redis, keyspace, "M", "nowhere")


async def test_unreachable_redis_makes_the_stream_wait_instead_of_dead_lettering(
    tmp_path: Path, keyspace: KeySpace
) -> None:
    """Found by the chaos suite: a Redis restart dead-lettered a valid order."""
    registry = StoreRegistry.from_file(_write(tmp_path, REGISTRY_YAML))
    gone = aioredis.Redis(port=free_port(), socket_connect_timeout=1)
    order = {"id": "REDISGONE0001", "modifiedTime": 1733095800000, "title": "Ana"}
    raw = order_record("MERCHANTAAAA1", order, fetched_at_ms=5, source=RawSource.POLL)
    record = RawRecord(RAW_ORDERS, 0, 7, raw.key, raw.value, raw.headers)

    async def resolve(merchant_id: str) -> Store | None:
        return await registry.resolve_merchant(gone, keyspace, merchant_id)

    try:
        with pytest.raises(RedisUnavailable) as caught:
            await OrderProcessor(resolve, MemoryLedger()).process([record])
    finally:
        await gone.aclose()
    assert isinstance(caught.value, DependencyError)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _locker_url(registry: ReloadingRegistry, store_id: str) -> str | None:
    store = registry.store(store_id)
    return None if store is None or store.locker is None else str(store.locker.url)


def test_an_edited_locker_endpoint_is_read_again_after_the_check_interval(
    tmp_path: Path,
) -> None:
    clock = _Clock()
    path = _write(tmp_path, REGISTRY_YAML)
    registry = ReloadingRegistry(path, check_s=2.0, clock=clock)
    path.write_text(REGISTRY_YAML.replace("9001", "9002"))
    assert _locker_url(registry, "downtown") == "http://127.0.0.1:9001/"
    clock.now = 2.0
    assert _locker_url(registry, "downtown") == "http://127.0.0.1:9002/"
    assert registry.reloads == 1


def test_a_broken_edit_keeps_the_last_good_registry_and_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _Clock()
    path = _write(tmp_path, REGISTRY_YAML)
    registry = ReloadingRegistry(path, check_s=1.0, clock=clock)
    path.write_text(REGISTRY_YAML.replace("store_id: airport", "store_id: Bad Id"))
    for step in range(1, 4):
        clock.now = float(step)
        assert _locker_url(registry, "downtown") == "http://127.0.0.1:9001/"
    path.unlink()
    clock.now = 10.0
    assert registry.store("airport") is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
    assert "not valid" in warnings[0] and "stores.1.store_id" in warnings[0]
    assert "cannot be read" in warnings[1]
    assert registry.reloads == 0
