"""The Clover webhook endpoint: check the shared secret, queue the order ids, say 200.

Clover first POSTs ``{"verificationCode": ...}`` to prove the URL; after that every
notification carries the app's fixed secret in ``X-Clover-Auth``. Notifications
hold ids only, batched across merchants, with duplicates and bursts; nothing in
them is trusted beyond the ids, which go to the `WebhookInbox` for the owning
poller to fetch. Delivery is not guaranteed, so polling stays the backstop.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lockerlink.errors import LockerlinkError
from producers.inbox import WebhookInbox

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/clover/webhooks"
MAX_BODY_BYTES = 1024 * 1024

_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_ORDER_OBJECT = re.compile(r"^O:(?P<order>[A-Za-z0-9]{1,32})$")


@dataclass
class WebhookStats:
    """Counts of what the endpoint received; exposed for tests and operators."""

    accepted: int = 0
    orders_queued: int = 0
    bad_bodies: int = 0
    wrong_auth: int = 0
    verifications: int = 0
    ignored: int = 0


class BadNotice(ValueError):
    """A notification body that is not what Clover sends."""


def _order_ids(events: Any) -> tuple[list[str], int]:
    if not isinstance(events, list):
        raise BadNotice("a merchant's events are not a list")
    order_ids: list[str] = []
    ignored = 0
    for event in events:
        if not isinstance(event, dict):
            raise BadNotice("an event is not an object")
        object_id = event.get("objectId")
        if not isinstance(object_id, str):
            raise BadNotice("an event has no objectId")
        match = _ORDER_OBJECT.fullmatch(object_id)
        if match is None:
            ignored += 1  # not an order (customers, items, ...): nothing to fetch
            continue
        order_ids.append(match.group("order"))
    return order_ids, ignored


def parse_notices(body: Any) -> tuple[dict[str, list[str]], int]:
    """Order ids per merchant from a notification, and how many events were ignored."""
    if not isinstance(body, dict):
        raise BadNotice("the body is not a JSON object")
    merchants = body.get("merchants")
    if not isinstance(merchants, dict):
        raise BadNotice("the body has no 'merchants' object")
    notices: dict[str, list[str]] = {}
    ignored = 0
    for merchant_id, events in merchants.items():
        if not _ID.fullmatch(merchant_id):
            raise BadNotice("a merchant id is not an id")
        order_ids, skipped = _order_ids(events)
        ignored += skipped
        if order_ids:
            notices[merchant_id] = order_ids
    return notices, ignored


class WebhookReceiver:
    """Handles Clover's POSTs for one app."""

    def __init__(
        self,
        inbox: WebhookInbox,
        auth_code: str | None,
        known_merchants: Callable[[], Collection[str]],
        on_verification: Callable[[str], None] | None = None,
    ) -> None:
        self._inbox = inbox
        self._auth = auth_code.encode() if auth_code else None
        self._known = known_merchants
        self._on_verification = on_verification
        self.stats = WebhookStats()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(WEBHOOK_PATH, self.handle)
        return app

    def _authorized(self, request: web.Request) -> bool:
        sent = request.headers.get("X-Clover-Auth", "").encode()
        if self._auth is None:
            return False
        return hmac.compare_digest(sent, self._auth)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            raw = await request.read()
            body = json.loads(raw)
        except web.HTTPRequestEntityTooLarge:
            self.stats.bad_bodies += 1
            raise
        except ValueError:
            return self._bad("the body is not JSON")
        if isinstance(body, dict) and set(body) == {"verificationCode"}:
            return self._verification(body["verificationCode"])
        if not self._authorized(request):
            self.stats.wrong_auth += 1
            log.warning("webhook with a wrong X-Clover-Auth refused")
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            notices, ignored = parse_notices(body)
        except BadNotice as exc:
            return self._bad(str(exc))
        return await self._queue(notices, ignored)

    def _bad(self, reason: str) -> web.Response:
        self.stats.bad_bodies += 1
        log.warning("bad webhook body refused", extra={"reason": reason})
        return web.json_response({"error": reason}, status=400)

    def _verification(self, code: Any) -> web.Response:
        if not isinstance(code, str) or not code:
            return self._bad("verificationCode is not a string")
        self.stats.verifications += 1
        fingerprint = hashlib.sha256(code.encode()).hexdigest()[:16]
        log.info("Clover webhook verification received", extra={"code": fingerprint})
        if self._on_verification is not None:
            self._on_verification(code)
        return web.json_response({"ok": True})

    async def _queue(self, notices: dict[str, list[str]], ignored: int) -> web.Response:
        known = self._known()
        wanted = {m: ids for m, ids in notices.items() if m in known}
        ignored += sum(len(ids) for m, ids in notices.items() if m not in known)
        try:
            await self._inbox.add(wanted)
        except LockerlinkError as exc:
            # Clover retries a failed delivery; polling covers it if it does not.
            log.warning("webhook notices not queued", extra={"error": exc.message})
            return web.json_response({"error": "try again"}, status=503)
        self.stats.accepted += 1
        self.stats.ignored += ignored
        self.stats.orders_queued += sum(len(ids) for ids in wanted.values())
        return web.json_response({"ok": True})
