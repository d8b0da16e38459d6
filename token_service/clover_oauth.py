"""Clover's OAuth v2 endpoints: authorize URL, code exchange, refresh and recovery.

This is the one boundary where Clover's HTTP failures become `CloverError`:
``retriable=False`` when the refresh token or code is dead (400, 401, 403: used,
expired, revoked, app uninstalled), ``retriable=True`` for timeouts, connection
errors, 429, 5xx and answers that are not a token response.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from authlib.common.urls import add_params_to_uri

from lockerlink.errors import CloverError
from lockerlink.settings import Settings
from token_service import metrics
from token_service.pair import TokenPair

log = logging.getLogger(__name__)

_PERMANENT = frozenset({400, 401, 403})
_MESSAGE_CHARS = 160


class CloverOAuth:
    """Talks to Clover's OAuth v2 endpoints over one HTTP session."""

    def __init__(
        self, settings: Settings, session: aiohttp.ClientSession | None = None
    ) -> None:
        self._api = str(settings.clover_api_base_url).rstrip("/")
        self._authorize = str(settings.clover_authorize_base_url).rstrip("/")
        self._app_id = settings.clover_app_id
        self._timeout = aiohttp.ClientTimeout(total=settings.clover_timeout_s)
        self._session = session
        self._owns_session = session is None

    def authorize_url(self, redirect_uri: str, state: str, code_challenge: str) -> str:
        """Where the merchant's browser goes to authorize the app (PKCE S256)."""
        return str(
            add_params_to_uri(
                f"{self._authorize}/oauth/v2/authorize",
                [
                    ("client_id", self._app_id),
                    ("redirect_uri", redirect_uri),
                    ("response_type", "code"),
                    ("state", state),
                    ("code_challenge", code_challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
        )

    async def exchange_code(
        self, code: str, code_verifier: str, merchant_id: str
    ) -> TokenPair:
        """Trade the callback's code for the merchant's first pair."""
        body = {"client_id": self._app_id, "code": code, "code_verifier": code_verifier}
        return await self._token_call("token", body, merchant_id, code)

    async def refresh(self, refresh_token: str, merchant_id: str) -> TokenPair:
        """Spend a refresh token for a new pair (it never works again)."""
        body = {"client_id": self._app_id, "refresh_token": refresh_token}
        return await self._token_call("refresh", body, merchant_id, refresh_token)

    async def recover(self, refresh_token: str, merchant_id: str) -> TokenPair:
        """Spend the refresh token before a lost one for a new pair."""
        body = {"client_id": self._app_id, "refresh_token": refresh_token}
        return await self._token_call("recovery", body, merchant_id, refresh_token)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _token_call(
        self, endpoint: str, body: dict[str, str], merchant_id: str, secret: str
    ) -> TokenPair:
        """One exchange with Clover's token endpoints, counted by its outcome."""
        try:
            pair = await self._post_token(endpoint, body, merchant_id, secret)
        except CloverError as exc:
            outcome = "transient" if exc.retriable else "permanent"
            metrics.EXCHANGES.labels(endpoint, outcome).inc()
            raise
        metrics.EXCHANGES.labels(endpoint, "ok").inc()
        return pair

    async def _post_token(
        self, endpoint: str, body: dict[str, str], merchant_id: str, secret: str
    ) -> TokenPair:
        url = f"{self._api}/oauth/v2/{endpoint}"
        try:
            async with self._http().post(url, json=body, timeout=self._timeout) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
        except TimeoutError as exc:
            raise CloverError(
                f"Clover {endpoint} timed out",
                merchant_id=merchant_id,
                retriable=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise CloverError(
                f"Clover {endpoint} unreachable: {type(exc).__name__}",
                merchant_id=merchant_id,
                retriable=True,
            ) from exc
        if status != 200:
            raise _status_error(endpoint, status, text, merchant_id, secret)
        return TokenPair.from_clover(_json(text, endpoint, merchant_id), merchant_id)


def _status_error(
    endpoint: str, status: int, text: str, merchant_id: str, secret: str
) -> CloverError:
    # Clover's error bodies are not documented; keep a short, secret-free excerpt.
    excerpt = " ".join(text.replace(secret, "[redacted]").split())[:_MESSAGE_CHARS]
    return CloverError(
        f"Clover {endpoint} answered {status}: {excerpt or '(empty body)'}",
        status=status,
        merchant_id=merchant_id,
        retriable=status not in _PERMANENT,
    )


def _json(text: str, endpoint: str, merchant_id: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        raise CloverError(
            f"Clover {endpoint} answered 200 without JSON",
            status=200,
            merchant_id=merchant_id,
            retriable=True,
        ) from None
