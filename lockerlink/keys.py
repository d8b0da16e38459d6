"""Every Redis key lockerlink writes, built in one place.

A `KeySpace` carries a prefix so tests (and several deployments sharing one Redis)
never see each other's keys.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeySpace:
    """Builds Redis keys under one prefix."""

    prefix: str = "ll"

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # token service
    def token_pair(self, merchant_id: str) -> str:
        return self._key("vault", "pair", merchant_id)

    def refresh_lock(self, merchant_id: str) -> str:
        return self._key("vault", "lock", merchant_id)

    def rotation_in_flight(self, merchant_id: str) -> str:
        return self._key("vault", "inflight", merchant_id)

    def rotation_outbox(self) -> str:
        return self._key("vault", "outbox")

    def rotation_latest(self) -> str:
        return self._key("vault", "latest-event")

    def merchant(self, merchant_id: str) -> str:
        return self._key("merchant", merchant_id)

    def merchants_index(self) -> str:
        return self._key("merchants")

    def oauth_state(self, state: str) -> str:
        return self._key("oauth", "state", state)

    def locker_credential(self, credential_hash: str) -> str:
        return self._key("locker", "cred", credential_hash)

    def lockers_of_store(self, store_id: str) -> str:
        return self._key("locker", "store", store_id)

    def rate_limit(self, scope: str, subject: str) -> str:
        return self._key("ratelimit", scope, subject)

    def store_merchant(self, store_id: str) -> str:
        return self._key("store", "merchant", store_id)

    def refresh_schedule(self) -> str:
        return self._key("vault", "schedule")

    def locker(self, locker_id: str) -> str:
        return self._key("locker", "id", locker_id)

    def lockers_index(self) -> str:
        return self._key("lockers")

    # poller
    def poll_cursor(self, merchant_id: str) -> str:
        return self._key("poll", "cursor", merchant_id)

    def published_versions(self, merchant_id: str) -> str:
        return self._key("poll", "published", merchant_id)

    def merchant_lease(self, merchant_id: str) -> str:
        return self._key("poll", "lease", merchant_id)

    def clover_budget(self, scope: str) -> str:
        return self._key("clover", "budget", scope)

    def merchant_hold_off(self, merchant_id: str) -> str:
        return self._key("clover", "budget", "merchant", merchant_id, "holdoff")

    def poller_members(self) -> str:
        return self._key("poll", "members")

    def webhook_pending(self, merchant_id: str) -> str:
        return self._key("poll", "pending", merchant_id)

    def poller_wake_channel(self) -> str:
        return self._key("poll", "wake")

    def publish_journal(self, merchant_id: str) -> str:
        return self._key("poll", "journal", merchant_id)

    # operations
    def status_polls(self) -> str:
        return self._key("status", "polls")

    def status_store(self, store_id: str) -> str:
        return self._key("status", "store", store_id)

    def status_stores(self) -> str:
        return self._key("status", "stores")

    def status_latency(self, minute: int) -> str:
        return self._key("status", "latency", str(minute))

    def alert_state(self, alert_key: str) -> str:
        return self._key("alert", alert_key)

    def alert_last_seen(self, alert_key: str) -> str:
        """When any process last saw the alert's condition (epoch ms)."""
        return self._key("alert-seen", alert_key)

    # stream
    def store_override(self, merchant_id: str) -> str:
        return self._key("registry", "merchant", merchant_id)

    def active_pins(self, store_id: str) -> str:
        return self._key("pin", "active", store_id)

    def order_pin(self, store_id: str, order_id: str) -> str:
        return self._key("pin", "order", store_id, order_id)

    def order_version(self, store_id: str, order_id: str) -> str:
        return self._key("stream", "version", store_id, order_id)
