"""The HTTP side of delivery: post one event to a locker and classify its answer.

Classification (what delivery does next):

- ``DELIVERED``: 2xx, or 409 (the locker already holds this idempotency key).
- ``REJECTED``: any other 4xx except those below. The event itself is refused; it
  goes to the dead-letter topic and the store moves on.
- ``REFUSES_US``: 401, 403, 404, 405 or a redirect, or no credential to send. The
  locker refuses *us* (credential or address wrong), not the event: dead-lettering
  every order because a credential was rotated would be wrong, so the store waits,
  paused, and a person is alerted.
- ``TRANSIENT``: 408, 429, 5xx, timeouts and connection errors: retry the same event.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import StrEnum

import aiohttp

from schemas.token_rotation import token_fingerprint

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ORDERS_PATH = "v1/orders"
_ANSWER_LIMIT = 500
# Bytes of a locker's answer read at most: enough for its error, never a flood.
_READ_LIMIT = 4096
_REFUSES_US = frozenset({401, 403, 404, 405})


class Verdict(StrEnum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    REFUSES_US = "refuses_us"
    TRANSIENT = "transient"


@dataclass(frozen=True)
class Answer:
    """What the locker said about one event, safe to log and dead-letter."""

    verdict: Verdict
    status: int | None
    detail: str
    retry_after_s: float = 0.0
    already_held: bool = False
    """The locker said it had this idempotency key already (409 or a replay)."""

    @property
    def summary(self) -> str:
        """For logs, Sentry and mail: the status alone when the locker answered
        (its body may echo the order), else what went wrong on our side."""
        return f"HTTP {self.status}" if self.status is not None else self.detail


def classify(status: int) -> Verdict:
    """The verdict for an HTTP status from a locker."""
    if 200 <= status < 300 or status == 409:
        return Verdict.DELIVERED
    if status in _REFUSES_US or 300 <= status < 400:
        return Verdict.REFUSES_US
    if status in (408, 429) or status >= 500:
        return Verdict.TRANSIENT
    if 400 <= status < 500:
        return Verdict.REJECTED
    return Verdict.TRANSIENT


def orders_url(base_url: str) -> str:
    """The orders endpoint under a locker's base URL from the registry."""
    return f"{base_url.rstrip('/')}/{ORDERS_PATH}"


def _retry_after_s(value: str | None) -> float:
    """Seconds from a Retry-After header; 0 for a date, garbage or infinity."""
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _usable_credential(credential: str) -> bool:
    """Whether ``credential`` can go into a header as it is (a secret file's
    trailing newline cannot, and aiohttp would raise on it)."""
    return credential.isascii() and credential.isprintable() and " " not in credential


def _scrub(text: str, credential: str | None) -> str:
    """Cut the locker's answer short and remove our credential should it echo it."""
    if credential:
        text = text.replace(credential, f"<credential {token_fingerprint(credential)}>")
    return text[:_ANSWER_LIMIT]


class LockerApi:
    """Posts locker order events; one connection pool for every store's locker."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    @classmethod
    def new_session(cls) -> aiohttp.ClientSession:
        """A session sized for many lockers at once, a few connections each."""
        connector = aiohttp.TCPConnector(limit=2000, limit_per_host=4)
        return aiohttp.ClientSession(connector=connector)

    async def post_event(
        self,
        base_url: str,
        event_id: str,
        body: bytes,
        *,
        timeout_s: float,
        credential: str | None,
    ) -> Answer:
        """Send one event's JSON with its idempotency key; never raises for I/O."""
        headers = {IDEMPOTENCY_HEADER: event_id, "Content-Type": "application/json"}
        if credential:
            if not _usable_credential(credential):
                return Answer(
                    Verdict.REFUSES_US,
                    None,
                    "the store's locker credential holds a space, a control "
                    "character (a trailing newline?) or non-ASCII text",
                )
            headers["Authorization"] = f"Bearer {credential}"
        try:
            async with self.session.post(
                orders_url(base_url),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                text = (await _read_some(response)).decode("utf-8", "replace")
                return Answer(
                    verdict=classify(response.status),
                    status=response.status,
                    detail=_scrub(text, credential),
                    retry_after_s=_retry_after_s(response.headers.get("Retry-After")),
                    already_held=response.status == 409
                    or response.headers.get(REPLAYED_HEADER, "").lower() == "true",
                )
        except TimeoutError:
            return Answer(Verdict.TRANSIENT, None, f"no answer within {timeout_s}s")
        except aiohttp.ClientError as exc:
            return Answer(Verdict.TRANSIENT, None, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            # A third-party client on a hostile answer can raise anything; one
            # store's odd locker must not end the process serving every store.
            log.warning(
                "locker answer not understood: %s", type(exc).__name__, exc_info=True
            )
            return Answer(
                Verdict.TRANSIENT, None, f"{type(exc).__name__} talking to the locker"
            )


async def _read_some(response: aiohttp.ClientResponse) -> bytes:
    """The answer's body up to `_READ_LIMIT` bytes (all of a short one, so the
    connection can be used again)."""
    body = b""
    while len(body) < _READ_LIMIT:
        chunk = await response.content.read(_READ_LIMIT - len(body))
        if not chunk:
            break
        body += chunk
    return body
