"""Clover's OAuth v2 endpoints: authorize, token, refresh and recovery."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from sandbox.clover_calls import MERCHANT_KEY
from sandbox.clover_config import CloverConfig
from sandbox.clover_orderbook import OrderBook
from sandbox.clover_rejection import Rejection
from sandbox.clover_tokens import TokenAuthority


def _bad(message: str) -> Rejection:
    return Rejection(message, status=400, outcome="bad_request")


async def read_fields(request: web.Request) -> dict[str, str]:
    """A request's body fields, from JSON (as Clover expects) or a form."""
    if request.content_type == "application/json":
        try:
            body: Any = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise _bad("Request body is not valid JSON") from None
    else:
        body = dict(await request.post())
    if not isinstance(body, dict):
        raise _bad("Request body must be a JSON object")
    return {key: value for key, value in body.items() if isinstance(value, str)}


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise _bad(f"Missing {name}")
    return value


class OAuthApi:
    """Request handlers for the browser step and the token endpoints."""

    def __init__(
        self, tokens: TokenAuthority, book: OrderBook, config: CloverConfig
    ) -> None:
        self._tokens = tokens
        self._book = book
        self._config = config

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/oauth/v2/authorize", self.authorize, name="authorize")
        app.router.add_post("/oauth/v2/token", self.token, name="token")
        app.router.add_post("/oauth/v2/refresh", self.refresh, name="refresh")
        app.router.add_post("/oauth/v2/recovery", self.recovery, name="recovery")

    async def authorize(self, request: web.Request) -> web.Response:
        """Approve at once for a configured merchant and send the browser back."""
        query = request.query
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        if urlsplit(redirect_uri).scheme not in ("http", "https"):
            raise _bad("redirect_uri must be an absolute http(s) URL")
        merchant_id = query.get("merchant_id") or next(
            iter(self._book.merchant_ids()), ""
        )
        if not self._book.has_merchant(merchant_id):
            raise _bad(f"Unknown merchant {merchant_id}")
        challenge = self._challenge(query.get("code_challenge"), query)
        request[MERCHANT_KEY] = merchant_id
        if client_id == self._config.app_id:
            self._tokens.install(merchant_id)
        code = self._tokens.new_code(merchant_id, client_id, challenge)
        callback = {"merchant_id": merchant_id, "client_id": client_id, "code": code}
        if "state" in query:
            callback["state"] = query["state"]
        separator = "&" if urlsplit(redirect_uri).query else "?"
        raise web.HTTPFound(f"{redirect_uri}{separator}{urlencode(callback)}")

    def _challenge(self, challenge: str | None, query: Any) -> str | None:
        if challenge is None:
            return None
        if query.get("code_challenge_method", "S256") != "S256":
            raise _bad("Only code_challenge_method=S256 is supported")
        return challenge

    async def token(self, request: web.Request) -> web.Response:
        fields = await read_fields(request)
        merchant_id, pair = self._tokens.exchange_code(
            _required(fields, "client_id"),
            _required(fields, "code"),
            fields.get("client_secret"),
            fields.get("code_verifier"),
        )
        request[MERCHANT_KEY] = merchant_id
        return web.json_response(dict(pair))

    async def refresh(self, request: web.Request) -> web.Response:
        fields = await read_fields(request)
        merchant_id, pair = self._tokens.refresh(
            _required(fields, "client_id"), _required(fields, "refresh_token")
        )
        request[MERCHANT_KEY] = merchant_id
        return web.json_response(dict(pair))

    async def recovery(self, request: web.Request) -> web.Response:
        fields = await read_fields(request)
        merchant_id, pair = self._tokens.recover(
            _required(fields, "client_id"), _required(fields, "refresh_token")
        )
        request[MERCHANT_KEY] = merchant_id
        return web.json_response(dict(pair))
