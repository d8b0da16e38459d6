"""The store registry: which merchant is which store, where its lockers are, PIN rules.

Loaded from a YAML file checked at start-up; the merchant-to-store mapping can be
overridden at run time through Redis (an operator moving a merchant to another store
must not need a restart). File shape::

    stores:
      - store_id: downtown
        name: Downtown Pho
        merchant_ids: [MERCHANT1]
        locker:
          url: https://lockers.downtown.example:8443
          timeout_s: 5
          credential_env: LOCKERLINK_LOCKER_CREDENTIAL_DOWNTOWN
        pin_policy:
          in_store: {source: random, keypad: numeric, length: 6}
          delivery: {source: platform_code, keypad: numeric, length: 5}
          platforms:
            grubhub: {source: platform_code, keypad: numeric, length: 4}
        timezone: America/Toronto
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis.asyncio as aioredis
import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from redis.exceptions import RedisError

from lockerlink.errors import ConfigError
from lockerlink.keys import KeySpace
from lockerlink.redis_store import RedisUnavailable
from schemas.locker_order import Channel, PinPolicyName, Platform
from schemas.topics import is_valid_store_id


class Keypad(StrEnum):
    """What a courier can type on the locker: digits only, or letters too."""

    NUMERIC = "numeric"
    ALPHANUMERIC = "alphanumeric"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PinRule(_Frozen):
    """How one kind of order gets its PIN."""

    source: PinPolicyName
    keypad: Keypad = Keypad.NUMERIC
    length: Annotated[int, Field(ge=4, le=12)] = 6


class PinPolicy(_Frozen):
    """A store's PIN rules: in-store, delivery, and per delivery platform."""

    in_store: PinRule = PinRule(source=PinPolicyName.RANDOM)
    delivery: PinRule = PinRule(source=PinPolicyName.PLATFORM_CODE, length=5)
    platforms: dict[Platform, PinRule] = Field(default_factory=dict)

    def rule_for(self, channel: Channel, platform: Platform | None) -> PinRule:
        """The rule for an order from ``channel`` (and ``platform`` when delivery)."""
        if channel is Channel.IN_STORE:
            return self.in_store
        if platform is not None and platform in self.platforms:
            return self.platforms[platform]
        return self.delivery


class LockerEndpoint(_Frozen):
    """Where a store's locker server takes orders."""

    url: AnyHttpUrl
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    credential_env: str | None = Field(
        None, description="Environment variable holding the locker's bearer credential."
    )


class Store(_Frozen):
    """One restaurant with its lockers."""

    store_id: str
    name: str = ""
    merchant_ids: tuple[str, ...] = ()
    locker: LockerEndpoint | None = None
    pin_policy: PinPolicy = PinPolicy()
    timezone: str | None = Field(
        None,
        description="IANA zone of the store, e.g. America/Toronto; reads the "
        "pickup times staff and integrators write in order notes.",
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def zone(self) -> ZoneInfo | None:
        """The store's time zone, when configured."""
        return ZoneInfo(self.timezone) if self.timezone else None

    @field_validator("store_id")
    @classmethod
    def _check_store_id(cls, value: str) -> str:
        if not is_valid_store_id(value):
            raise ValueError(
                "must be 1-63 of a-z, 0-9, '-' or '_', starting with a letter or digit"
            )
        return value


class _RegistryFile(_Frozen):
    stores: tuple[Store, ...] = ()


class StoreRegistry:
    """Stores by id and by merchant, as configured, plus Redis overrides."""

    def __init__(self, stores: tuple[Store, ...]) -> None:
        self.stores = stores
        self._by_id: dict[str, Store] = {}
        self._by_merchant: dict[str, Store] = {}
        for store in stores:
            if store.store_id in self._by_id:
                raise ConfigError(f"store registry: store {store.store_id!r} twice")
            self._by_id[store.store_id] = store
            for merchant_id in store.merchant_ids:
                other = self._by_merchant.get(merchant_id)
                if other is not None:
                    raise ConfigError(
                        f"store registry: merchant {merchant_id!r} belongs to both "
                        f"{other.store_id!r} and {store.store_id!r}"
                    )
                self._by_merchant[merchant_id] = store

    @classmethod
    def empty(cls) -> StoreRegistry:
        return cls(())

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], origin: str = "mapping"
    ) -> StoreRegistry:
        """Validate ``data``; a problem raises one ConfigError naming where it is."""
        try:
            parsed = _RegistryFile.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top)"
            raise ConfigError(
                f"store registry {origin}: {where}: {first['msg']}",
                setting="store_registry_path",
            ) from None
        return cls(parsed.stores)

    @classmethod
    def from_file(cls, path: Path) -> StoreRegistry:
        """Load and validate the YAML registry at ``path``."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"store registry {path}: cannot read: {exc.strerror}",
                setting="store_registry_path",
            ) from exc
        return cls.from_text(text, origin=str(path))

    @classmethod
    def from_text(cls, text: str, origin: str) -> StoreRegistry:
        """Parse and validate registry YAML read from ``origin``."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(
                f"store registry {origin}:{line} is not valid YAML",
                setting="store_registry_path",
            ) from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"store registry {origin}: expected a mapping with a 'stores' list",
                setting="store_registry_path",
            )
        return cls.from_mapping(data, origin=origin)

    def store(self, store_id: str) -> Store | None:
        return self._by_id.get(store_id)

    def store_for_merchant(self, merchant_id: str) -> Store | None:
        """The store the file maps ``merchant_id`` to, ignoring overrides."""
        return self._by_merchant.get(merchant_id)

    def merchant_ids(self) -> tuple[str, ...]:
        return tuple(self._by_merchant)

    async def resolve_merchant(
        self, redis: aioredis.Redis, keyspace: KeySpace, merchant_id: str
    ) -> Store | None:
        """The merchant's store: a Redis override wins over the file.

        Raises `RedisUnavailable` when Redis cannot answer: the caller waits for it,
        since the record itself is fine and must not be set aside as bad input.
        """
        try:
            override = await redis.get(keyspace.store_override(merchant_id))
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"store override lookup failed: {exc}") from exc
        if override is not None:
            name = override.decode() if isinstance(override, bytes) else str(override)
            store = self._by_id.get(name)
            if store is not None:
                return store
        return self._by_merchant.get(merchant_id)

    async def set_override(
        self, redis: aioredis.Redis, keyspace: KeySpace, merchant_id: str, store_id: str
    ) -> None:
        """Map ``merchant_id`` to a configured store until the override is cleared."""
        if store_id not in self._by_id:
            raise ConfigError(f"store registry: no store {store_id!r} to map to")
        await redis.set(keyspace.store_override(merchant_id), store_id)

    async def clear_override(
        self, redis: aioredis.Redis, keyspace: KeySpace, merchant_id: str
    ) -> None:
        await redis.delete(keyspace.store_override(merchant_id))


def load_registry(path: Path | None) -> StoreRegistry:
    """The registry from ``path``, or an empty one when no file is configured."""
    return StoreRegistry.empty() if path is None else StoreRegistry.from_file(path)
