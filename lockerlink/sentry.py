"""Sentry for every lockerlink process, with secrets and order contents scrubbed.

Nothing reaches Sentry that could let someone act as a merchant or a locker, or that
describes a customer's order: tokens, credentials, PINs, Authorization headers,
request bodies and order fields are replaced before the event leaves the process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.aiohttp import AioHttpIntegration
from sentry_sdk.integrations.asyncio import AsyncioIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from lockerlink.settings import Settings

SCRUBBED = "[scrubbed]"

# Field names whose values never leave the process, whatever they hold.
_SECRET_NAME = re.compile(
    r"token|secret|credential|passw|authorization|cookie|api[-_]?key|dsn"
    r"|code_verifier|(^|[_-])(pin|auth|code)($|[_-])",
    re.IGNORECASE,
)
# Fields that carry a customer's order.
_ORDER_NAME = re.compile(
    r"^(note|title|items|line_?items|customer|customers|display_name|name|phone"
    r"|email|address|payload|body|value|order)$",
    re.IGNORECASE,
)
# Token-shaped text inside free strings (messages, exception values).
_SECRET_TEXT = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|(?i:(?:access|refresh)_token[\"'=:\s]+)[A-Za-z0-9._~+/=-]{8,}"
)


def scrub_text(text: str) -> str:
    """Replace token-shaped parts of free text."""
    return _SECRET_TEXT.sub(lambda m: (m.group(1) or "") + SCRUBBED, text)


def _scrub(value: Any, name: str = "", orders: bool = True) -> Any:
    hidden = _SECRET_NAME.search(name) or (orders and _ORDER_NAME.match(name))
    if name and hidden:
        return SCRUBBED if value not in (None, "", [], {}) else value
    if isinstance(value, Mapping):
        return {k: _scrub(v, str(k), orders) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, "", orders) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


# Log lines name their ids in `extra` (see STYLE); these become the tags operators
# filter by, so every component's ERROR lines are tagged without extra calls.
_ID_TAGS = (
    ("merchant", "merchant"),
    ("merchant_id", "merchant"),
    ("store", "store"),
    ("store_id", "store"),
)


def tag_from_extra(event: dict[str, Any]) -> None:
    """Tag the event with the store and merchant ids its log line names.

    The line's own ids win over tags set on the scope: they are the more specific.
    """
    extra = event.get("extra")
    if not isinstance(extra, Mapping):
        return
    tags = event.setdefault("tags", {})
    if not isinstance(tags, dict):
        return
    for field, tag in _ID_TAGS:
        value = extra.get(field)
        if isinstance(value, str) and value:
            tags[tag] = value


def scrub_event(event: dict[str, Any], hint: object = None) -> dict[str, Any]:
    """Sentry `before_send`: tag the ids, remove secrets and order contents."""
    tag_from_extra(event)
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        request["query_string"] = SCRUBBED if request.get("query_string") else ""
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                k: SCRUBBED if _SECRET_NAME.search(k) else v for k, v in headers.items()
            }
    for key in ("extra", "user"):
        if key in event:
            event[key] = _scrub(event[key])
    if "contexts" in event:
        # Runtime and OS contexts use plain names such as "name"; only secrets go.
        event["contexts"] = _scrub(event["contexts"], orders=False)
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        # Parameters are values without names; the formatted text is enough.
        logentry.pop("params", None)
        event["logentry"] = _scrub(logentry)
    if isinstance(event.get("message"), str):
        event["message"] = scrub_text(event["message"])
    for exception in (event.get("exception") or {}).get("values", []):
        if isinstance(exception.get("value"), str):
            exception["value"] = scrub_text(exception["value"])
        for frame in (exception.get("stacktrace") or {}).get("frames", []):
            if "vars" in frame:
                frame["vars"] = {k: SCRUBBED for k in frame["vars"]}
    crumbs = event.get("breadcrumbs")
    if isinstance(crumbs, dict):
        crumbs["values"] = [_scrub(c) for c in crumbs.get("values", [])]
    return event


def init_sentry(settings: Settings, component: str) -> bool:
    """Start sentry-sdk when a DSN is set; returns whether it was started."""
    if settings.sentry_dsn is None:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,  # type: ignore[arg-type]
        before_breadcrumb=lambda crumb, _hint: _scrub(crumb),
        integrations=[
            AioHttpIntegration(),
            AsyncioIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
        environment=settings.sentry_environment,
    )
    sentry_sdk.set_tag("component", component)
    return True


def tag_ids(*, store_id: str | None = None, merchant_id: str | None = None) -> None:
    """Tag the current scope with the ids an operator filters by."""
    if store_id is not None:
        sentry_sdk.set_tag("store", store_id)
    if merchant_id is not None:
        sentry_sdk.set_tag("merchant", merchant_id)
