"""The Clover REST calls the poller makes, inside the shared budget and the breaker.

Every request takes a budget slot, carries a vault token, and is translated here,
once, into data or a `CloverError`. A 401 is reported to the vault and retried once
with the token it hands out next; a 429 puts its scope on hold for the
``retry-after`` Clover named and is retried after it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from lockerlink.errors import CloverError
from producers import metrics
from producers.budget import CloverBudget, Priority, Scope
from producers.health import CloverBreaker
from producers.token_source import AccessTokenLike, TokenSource

log = logging.getLogger(__name__)

ORDER_EXPANSIONS = ("lineItems.modifications", "orderType", "customers")
"""What the transform needs, within Clover's advice of three expansions per call.

Expanding ``lineItems.modifications`` brings the line items with it. Customers
often come back as bare ids; `CustomerCache` fetches their records.
"""

_APP_LIMIT_HEADERS = (
    "x-ratelimit-crosstokenlimit",
    "x-ratelimit-crosstokenconcurrentlimit",
)


_PLAIN_ID = re.compile(r"[A-Za-z0-9]+")
"""Clover's ids are uppercase letters and digits; only such ids go into a filter."""


class CloverNotFound(CloverError):
    """Clover has no such object (a deleted order answers this way)."""


class CloverRateLimited(CloverError):
    """Clover kept answering 429 after every wait it asked for."""


@dataclass
class _Answer:
    status: int
    retry_after_s: float
    app_scope: bool
    body: bytes


def _retry_after_s(headers: Any) -> float:
    raw = headers.get("retry-after", "1")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 1.0


class CloverClient:
    """Orders and customers of one app's merchants, over one aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        tokens: TokenSource,
        budget: CloverBudget,
        breaker: CloverBreaker,
        *,
        timeout_s: float = 10.0,
        min_token_validity_s: float = 60.0,
        max_rate_limited: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._budget = budget
        self._breaker = breaker
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._min_validity_s = min_token_validity_s
        self._max_rate_limited = max_rate_limited
        self._clock = clock
        self._token_cache: dict[str, AccessTokenLike] = {}
        self.requests = 0
        self.rate_limited = 0
        self.rejected_tokens = 0

    def forget(self, merchant_id: str) -> None:
        """Drop what is kept per merchant once its lease is gone."""
        self._token_cache.pop(merchant_id, None)
        self._budget.forget(merchant_id)

    async def list_orders(
        self,
        merchant_id: str,
        *,
        modified_since_ms: int,
        offset: int,
        limit: int,
        priority: Priority = Priority.POLL,
    ) -> list[Any]:
        """One page of orders modified at or after ``modified_since_ms``."""
        params = [
            ("filter", f"modifiedTime>={modified_since_ms}"),
            # Keyset paging needs oldest change first; Clover's default is newest
            # creation first.
            ("orderBy", "modifiedTime ASC"),
            ("expand", ",".join(ORDER_EXPANSIONS)),
            ("limit", str(limit)),
            ("offset", str(offset)),
        ]
        body = await self._get_json(
            merchant_id, f"/v3/merchants/{merchant_id}/orders", params, priority
        )
        elements = body.get("elements") if isinstance(body, dict) else None
        if elements is None:
            return []
        if not isinstance(elements, list):
            raise CloverError(
                "Clover sent an order list whose elements are not a list",
                merchant_id=merchant_id,
                retriable=True,
            )
        return elements

    async def orders_with_ids(
        self, merchant_id: str, order_ids: Sequence[str]
    ) -> list[Any]:
        """The listed (not deleted) orders among ``order_ids``, without expansions.

        Clover's documented ``filter=id in ('ID1','ID2')`` (docs.clover.com, "Use
        filters to retrieve multiple results from an endpoint"), at most a hundred
        ids a request as Clover advises. An id that could not be quoted safely is left
        out, so it counts as not listed and the caller reads it by id instead.
        """
        quoted = [f"'{o}'" for o in order_ids if _PLAIN_ID.fullmatch(o)]
        if not quoted:
            return []
        params = [
            ("filter", f"id in ({','.join(quoted)})"),
            ("limit", str(len(quoted))),
        ]
        body = await self._get_json(
            merchant_id, f"/v3/merchants/{merchant_id}/orders", params, Priority.POLL
        )
        elements = body.get("elements") if isinstance(body, dict) else None
        return elements if isinstance(elements, list) else []

    async def get_order(
        self, merchant_id: str, order_id: str, priority: Priority = Priority.WEBHOOK
    ) -> dict[str, Any]:
        """One order with the same expansions as a poll; `CloverNotFound` if gone."""
        params = [("expand", ",".join(ORDER_EXPANSIONS))]
        path = f"/v3/merchants/{merchant_id}/orders/{order_id}"
        body = await self._get_json(merchant_id, path, params, priority)
        if not isinstance(body, dict):
            raise CloverError(
                "Clover sent an order that is not an object",
                merchant_id=merchant_id,
                retriable=True,
            )
        return body

    async def get_customer(
        self, merchant_id: str, customer_id: str, priority: Priority = Priority.POLL
    ) -> dict[str, Any] | None:
        """A customer record (names), or None when Clover has none by that id."""
        path = f"/v3/merchants/{merchant_id}/customers/{customer_id}"
        try:
            body = await self._get_json(merchant_id, path, [], priority)
        except CloverNotFound:
            return None
        return body if isinstance(body, dict) else None

    async def _token(self, merchant_id: str) -> AccessTokenLike:
        cached = self._token_cache.get(merchant_id)
        now_ms = self._clock() * 1000
        if cached is not None and cached.expires_at_ms - now_ms > (
            self._min_validity_s * 1000
        ):
            return cached
        token = await self._tokens.get_access_token(
            merchant_id, min_validity_s=self._min_validity_s
        )
        self._token_cache[merchant_id] = token
        return token

    async def _get_json(
        self,
        merchant_id: str,
        path: str,
        params: Sequence[tuple[str, str]],
        priority: Priority,
    ) -> Any:
        token = await self._token(merchant_id)
        reported = False
        rate_limited = 0
        while True:
            answer = await self._send(merchant_id, path, params, token, priority)
            if answer.status == 401 and not reported:
                token = await self._replace_rejected(merchant_id, token)
                reported = True
                continue
            if answer.status == 429:
                rate_limited += 1
                await self._wait_out_429(merchant_id, answer, rate_limited)
                continue
            return self._decode(merchant_id, path, answer)

    async def _replace_rejected(
        self, merchant_id: str, token: AccessTokenLike
    ) -> AccessTokenLike:
        self.rejected_tokens += 1
        self._token_cache.pop(merchant_id, None)
        log.info(
            "Clover rejected a token; asking the vault for another",
            extra={"merchant_id": merchant_id, "fingerprint": token.fingerprint},
        )
        fresh = await self._tokens.report_rejected(merchant_id, token.fingerprint)
        self._token_cache[merchant_id] = fresh
        return fresh

    async def _wait_out_429(
        self, merchant_id: str, answer: _Answer, count: int
    ) -> None:
        self.rate_limited += 1
        scope = Scope.APP if answer.app_scope else Scope.MERCHANT
        metrics.RATE_LIMITED.labels(scope.value).inc()
        log.info(
            "Clover rate limit hit; holding off",
            extra={
                "merchant_id": merchant_id,
                "scope": scope.value,
                "retry_after_s": answer.retry_after_s,
            },
        )
        if count > self._max_rate_limited:
            raise CloverRateLimited(
                f"Clover answered 429 {count} times in a row",
                status=429,
                merchant_id=merchant_id,
                retriable=True,
            )
        # The budget makes every process wait until the hold-off passes.
        await self._budget.hold_off(scope, merchant_id, answer.retry_after_s)

    async def _send(
        self,
        merchant_id: str,
        path: str,
        params: Sequence[tuple[str, str]],
        token: AccessTokenLike,
        priority: Priority,
    ) -> _Answer:
        probing = await self._breaker.admit()
        headers = {"Authorization": f"Bearer {token.token}"}
        try:
            async with self._budget.request(merchant_id, priority) as slot:
                self.requests += 1
                async with self._session.get(
                    self._base_url + path,
                    params=list(params),
                    headers=headers,
                    timeout=self._timeout,
                ) as response:
                    answer = _Answer(
                        response.status,
                        _retry_after_s(response.headers),
                        any(h in response.headers for h in _APP_LIMIT_HEADERS),
                        await response.read(),
                    )
                    slot.succeeded = response.status != 429
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = f"{type(exc).__name__} calling Clover"
            await self._breaker.failed(detail, probing)
            raise CloverError(
                f"{detail} for merchant {merchant_id}",
                merchant_id=merchant_id,
                retriable=True,
            ) from exc
        except BaseException:
            # Redis, cancellation: Clover was never asked, so this says nothing
            # about an outage, but the probe turn must not stay taken.
            self._breaker.abandon(probing)
            raise
        if answer.status >= 500:
            await self._breaker.failed(f"Clover answered {answer.status}", probing)
        else:
            await self._breaker.succeeded(probing)
        return answer

    def _decode(self, merchant_id: str, path: str, answer: _Answer) -> Any:
        status = answer.status
        if status == 404:
            raise CloverNotFound(
                f"Clover has nothing at {path}", status=404, merchant_id=merchant_id
            )
        if status >= 300:
            raise CloverError(
                f"Clover answered {status} for merchant {merchant_id}",
                status=status,
                merchant_id=merchant_id,
                # A 4xx other than 404/429 will not heal by retrying at once, but a
                # merchant re-authorizing or Clover fixing itself can heal it later.
                retriable=status >= 500 or status == 401,
            )
        try:
            return json.loads(answer.body)
        except ValueError as exc:
            raise CloverError(
                f"Clover sent a body that is not JSON for merchant {merchant_id}",
                status=status,
                merchant_id=merchant_id,
                retriable=True,
            ) from exc
