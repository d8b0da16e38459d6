"""The token service's versioned JSON API over HTTPS (aiohttp).

Lockers authenticate with their credential (``Authorization: Bearer llk_...``) and
may read only their own store's merchant token; operators use the separate admin
credential. Every error is ``{"error": code, "message": text}``, including the 404,
405 and 413 aiohttp raises itself. An unauthenticated caller gets 401 before any
store or merchant is looked up, so it learns nothing about which exist.
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, NoReturn, TypeVar

from aiohttp import web
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError

from lockerlink.errors import (
    CloverError,
    CredentialError,
    InputError,
    TokenUnavailable,
)
from lockerlink.ops_http import add_ops_routes
from token_service import metrics
from token_service.authorization import CALLBACK_PATH, MerchantAuthorization
from token_service.lockers import Locker, LockerRegistry
from token_service.pair import AccessToken
from token_service.rate_limit import RateLimiter, Verdict
from token_service.recent import RecentAnswers
from token_service.vault import Vault

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
MAX_MIN_VALIDITY_S = 3600
# Which merchant a store belongs to changes only when a merchant connects; another
# process's change reaches this one within this time.
STORE_MERCHANT_REMEMBER_S = 2.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVICE_KEY = web.AppKey("token_service", object)
_RATE_HEADERS = web.RequestKey("rate_headers", dict)


class Refusal(Exception):
    """An HTTP answer other than success, with its JSON error code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


BodyT = TypeVar("BodyT", bound=_Body)


class RefreshBody(_Body):
    store_id: str | None = Field(None, max_length=63)


class RejectedBody(_Body):
    fingerprint: str = Field(pattern=r"^[0-9a-f]{16}$")
    store_id: str | None = Field(None, max_length=63)


class StoreBody(_Body):
    store_id: str = Field(min_length=1, max_length=63)


class TokenApi:
    """Request handlers; one instance per application."""

    def __init__(
        self,
        vault: Vault,
        lockers: LockerRegistry,
        authorization: MerchantAuthorization,
        locker_limit: RateLimiter,
        auth_failure_limit: RateLimiter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.vault = vault
        self.lockers = lockers
        self.authorization = authorization
        self.locker_limit = locker_limit
        self.auth_failure_limit = auth_failure_limit
        self._store_merchants: RecentAnswers[str, str] = RecentAnswers(
            STORE_MERCHANT_REMEMBER_S, clock
        )
        admin = vault.settings.admin_credential
        self._admin = admin.get_secret_value().encode() if admin else None

    def application(self) -> web.Application:
        app = web.Application(
            middlewares=[_answer_errors], client_max_size=MAX_BODY_BYTES
        )
        app[SERVICE_KEY] = self
        router = app.router
        router.add_get("/v1/token", self.get_token, name="token.get")
        router.add_post("/v1/token/refresh", self.refresh_token, name="token.refresh")
        router.add_post("/v1/token/rejected", self.rejected, name="token.rejected")
        router.add_get(CALLBACK_PATH, self.oauth_callback, name="oauth.callback")
        router.add_post(
            "/v1/admin/merchants/authorize", self.authorize, name="admin.authorize"
        )
        router.add_get("/v1/admin/merchants", self.merchants, name="admin.merchants")
        router.add_post("/v1/admin/lockers", self.enroll, name="admin.enroll")
        router.add_get("/v1/admin/lockers", self.list_lockers, name="admin.lockers")
        router.add_post(
            "/v1/admin/lockers/{locker_id}/rotate", self.rotate, name="admin.rotate"
        )
        router.add_post(
            "/v1/admin/lockers/{locker_id}/revoke", self.revoke, name="admin.revoke"
        )
        router.add_get("/openapi.yaml", openapi_document, name="openapi")
        add_ops_routes(app, self.ready, "token-service")
        return app

    async def ready(self) -> bool:
        try:
            return bool(await self.vault.pairs.ping())
        except Exception:  # any Redis failure means "not ready", never a 500
            return False

    # -- lockers ----------
    async def get_token(self, request: web.Request) -> web.Response:
        locker = await self._authenticated(request)
        store_id = _own_store(locker, request.query.get("store_id"))
        min_validity_s = _min_validity(request.query.get("min_validity_s"))
        merchant_id = await self._merchant_of(store_id)
        # The hot path: count the request and read the pair in one Redis call.
        pair_key, fields = self.vault.pairs.read_fields(merchant_id)
        verdict, values = await self.locker_limit.hit_then_read(
            locker.locker_id, pair_key, fields
        )
        self._admit(request, verdict)
        snapshot = self.vault.pairs.snapshot(merchant_id, values) if values else None
        token = await self.vault.get_access_token(
            merchant_id, min_validity_s, just_read=snapshot
        )
        return _token_response(request, store_id, token)

    async def refresh_token(self, request: web.Request) -> web.Response:
        locker = await self._locker(request)
        body = await _body(request, RefreshBody)
        store_id = _own_store(locker, body.store_id)
        merchant_id = await self._merchant_of(store_id)
        token = await self.vault.force_refresh(merchant_id)
        return _token_response(request, store_id, token)

    async def rejected(self, request: web.Request) -> web.Response:
        locker = await self._locker(request)
        body = await _body(request, RejectedBody)
        store_id = _own_store(locker, body.store_id)
        merchant_id = await self._merchant_of(store_id)
        token = await self.vault.report_rejected(merchant_id, body.fingerprint)
        return _token_response(request, store_id, token)

    # -- merchant authorization ----------
    async def oauth_callback(self, request: web.Request) -> web.Response:
        query = request.query
        store_id, token = await self.authorization.complete(
            state=query.get("state", ""),
            code=query.get("code", ""),
            merchant_id=query.get("merchant_id", ""),
            client_id=query.get("client_id"),
        )
        return web.json_response(
            {
                "status": "connected",
                "merchant_id": token.merchant_id,
                "store_id": store_id,
            }
        )

    # -- admin ----------
    async def authorize(self, request: web.Request) -> web.Response:
        await self._admin_only(request)
        body = await _body(request, StoreBody)
        link = await self.authorization.start(body.store_id)
        return web.json_response(
            {
                "authorize_url": link.url,
                "store_id": link.store_id,
                "expires_in_s": link.expires_in_s,
            }
        )

    async def merchants(self, request: web.Request) -> web.Response:
        await self._admin_only(request)
        rows = []
        for merchant in await self.vault.merchants.all():
            snapshot = await self.vault.pairs.read(merchant.merchant_id)
            rows.append(
                {
                    "merchant_id": merchant.merchant_id,
                    "store_ids": list(merchant.store_ids),
                    "state": merchant.state.value,
                    "access_expires_at_ms": (
                        snapshot.pair.access_expires_at_ms if snapshot else None
                    ),
                    "token_version": snapshot.version if snapshot else None,
                    "last_refresh_at_ms": merchant.last_refresh_at_ms,
                    "failures": merchant.failures,
                }
            )
        return web.json_response({"merchants": rows})

    async def enroll(self, request: web.Request) -> web.Response:
        await self._admin_only(request)
        body = await _body(request, StoreBody)
        enrolment = await self.lockers.enroll(body.store_id)
        return _credential_response(enrolment.locker, enrolment.credential, 201)

    async def list_lockers(self, request: web.Request) -> web.Response:
        await self._admin_only(request)
        rows = [_locker_row(locker) for locker in await self.lockers.all()]
        return web.json_response({"lockers": rows})

    async def rotate(self, request: web.Request) -> web.Response:
        await self._admin_only(request)
        enrolment = await self.lockers.rotate(request.match_info["locker_id"])
        return _credential_response(enrolment.locker, enrolment.credential, 200)

    async def revoke(self, request: web.Request) -> web.Response:
        await self._admin_only(request)
        locker = await self.lockers.revoke(request.match_info["locker_id"])
        return web.json_response(_locker_row(locker))

    # -- authentication and limits ----------
    async def _locker(self, request: web.Request) -> Locker:
        """The authenticated locker, its request counted against its limit."""
        locker = await self._authenticated(request)
        self._admit(request, await self.locker_limit.hit(locker.locker_id))
        return locker

    def _admit(self, request: web.Request, verdict: Verdict) -> None:
        if not verdict.allowed:
            raise _too_many(verdict, "this locker is over its request rate")
        request[_RATE_HEADERS] = verdict.headers()

    async def _authenticated(self, request: web.Request) -> Locker:
        address = request.remote or "unknown"
        try:
            credential = _bearer(request)
            known = self.lockers.remembered(credential)
            if known is not None:
                await self.lockers.touch(known)
                return known
            # A credential found valid before is no guess: re-check it without
            # consulting the failed-authentication limit (a stampede of one locker's
            # callers would otherwise make one limit call each).
            if not self.lockers.checked_before(credential):
                await self._refuse_blocked_address(address)
            locker = await self.lockers.authenticate(credential)
        except CredentialError as exc:
            await self._refuse_blocked_address(address)
            await self._failed_authentication(address, exc)
        return locker

    async def _admin_only(self, request: web.Request) -> None:
        address = request.remote or "unknown"
        await self._refuse_blocked_address(address)
        try:
            presented = _bearer(request).encode()
            if self._admin is None or not hmac.compare_digest(presented, self._admin):
                raise CredentialError("invalid admin credential", reason="unknown")
        except CredentialError as exc:
            await self._failed_authentication(address, exc)

    async def _refuse_blocked_address(self, address: str) -> None:
        verdict = await self.auth_failure_limit.check(address)
        if not verdict.allowed:
            raise _too_many(verdict, "too many failed authentications from here")

    async def _failed_authentication(
        self, address: str, exc: CredentialError
    ) -> NoReturn:
        await self.auth_failure_limit.hit(address)
        log.info("authentication failed", extra={"reason": exc.reason})
        raise Refusal(
            401,
            "unauthenticated",
            exc.message,
            {"WWW-Authenticate": 'Bearer realm="lockerlink"'},
        )

    async def _merchant_of(self, store_id: str) -> str:
        merchant_id = await self._store_merchants.get(
            store_id, lambda: self.vault.merchants.merchant_of_store(store_id)
        )
        if merchant_id is None:
            raise Refusal(
                409, "not_connected", "no Clover merchant is connected to this store"
            )
        return merchant_id


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization")
    if header is None:
        raise CredentialError("missing Authorization header", reason="missing")
    scheme, _, value = header.partition(" ")
    credential = value.strip()
    # aiohttp keeps bytes that are not UTF-8 as surrogates; no credential we issue
    # has anything but printable ASCII, so such a header is malformed, not a 500.
    if (
        scheme.lower() != "bearer"
        or not credential
        or len(value) > 512
        or not (credential.isascii() and credential.isprintable())
    ):
        raise CredentialError(
            "Authorization must be 'Bearer <credential>'", reason="malformed"
        )
    return credential


def _own_store(locker: Locker, asked: str | None) -> str:
    if asked is not None and asked != locker.store_id:
        raise Refusal(
            403, "forbidden_store", "this credential is not valid for that store"
        )
    return locker.store_id


def _min_validity(raw: str | None) -> float:
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_MIN_VALIDITY_S:
        raise Refusal(
            400,
            "bad_request",
            f"min_validity_s must be a number from 0 to {MAX_MIN_VALIDITY_S}",
        )
    return value


async def _body(request: web.Request, model: type[BodyT]) -> BodyT:
    if request.content_type != "application/json":
        raise Refusal(
            415, "unsupported_media_type", "send the body as application/json"
        )
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise Refusal(400, "bad_request", f"{where}: {first['msg']}") from None


def _too_many(verdict: Verdict, message: str) -> Refusal:
    metrics.RATE_LIMITED.labels(verdict.policy).inc()
    return Refusal(429, "rate_limited", message, verdict.headers())


def _token_response(
    request: web.Request, store_id: str, token: AccessToken
) -> web.Response:
    response = web.json_response(
        {
            "merchant_id": token.merchant_id,
            "store_id": store_id,
            "access_token": token.token,
            "expires_at_ms": token.expires_at_ms,
            "fingerprint": token.fingerprint,
            "token_version": token.version,
        }
    )
    response.headers.update(request.get(_RATE_HEADERS, {}))
    response.headers["Cache-Control"] = "no-store"
    return response


def _locker_row(locker: Locker) -> dict[str, Any]:
    return {
        "locker_id": locker.locker_id,
        "store_id": locker.store_id,
        "enrolled_at_ms": locker.enrolled_at_ms,
        "last_used_at_ms": locker.last_used_at_ms or None,
        "revoked": locker.revoked,
    }


def _credential_response(locker: Locker, credential: str, status: int) -> web.Response:
    body = {**_locker_row(locker), "credential": credential}
    response = web.json_response(body, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    response = web.json_response({"error": code, "message": message}, status=status)
    response.headers.update(headers or {})
    return response


_UNAVAILABLE = {
    "not_connected": (409, "no Clover merchant is connected to this store"),
    "reauth_required": (409, "the merchant must authorize lockerlink again"),
}
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def _translate(exc: Exception) -> web.Response:
    """The JSON error for anything a handler raised."""
    if isinstance(exc, Refusal):
        return _error(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, TokenUnavailable):
        if exc.reason in _UNAVAILABLE:
            status, message = _UNAVAILABLE[exc.reason]
            return _error(status, exc.reason, message)
        retry = str(max(1, round(exc.retry_after_s or 1)))
        message = "Clover is not answering; try again later"
        return _error(503, "token_unavailable", message, {"Retry-After": retry})
    if isinstance(exc, CredentialError):
        return _error(401, "unauthenticated", exc.message)
    if isinstance(exc, CloverError):
        if exc.retriable:
            message = "Clover is not answering; try again later"
            return _error(503, "token_unavailable", message, {"Retry-After": "5"})
        return _error(400, "authorization_failed", "Clover refused the authorization")
    if isinstance(exc, RedisError | OSError):
        log.warning("Redis unavailable: %s", type(exc).__name__)
        message = "storage is unavailable; try again later"
        return _error(503, "unavailable", message, {"Retry-After": "1"})
    if isinstance(exc, InputError):
        status = 404 if exc.reason == "unknown_locker" else 400
        code = "not_found" if status == 404 else "bad_request"
        return _error(status, code, exc.message)
    if isinstance(exc, web.HTTPException):
        code = _HTTP_CODES.get(
            exc.status, "bad_request" if exc.status < 500 else "error"
        )
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return _error(exc.status, code, exc.reason, headers)
    log.exception("unexpected error answering a request")
    return _error(500, "internal", "internal error; it has been logged")


@web.middleware
async def _answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except Exception as exc:  # every failure becomes a JSON answer, never a crash
        response = _translate(exc)
    route = request.match_info.route.name or "unmatched"
    _requests_counted(route, response.status).inc()
    _request_seconds(route).observe(time.perf_counter() - started)
    return response


# Metric children looked up once per label set, not once per request.
@functools.cache
def _requests_counted(route: str, status: int) -> Counter:
    return metrics.REQUESTS.labels(route, str(status))


@functools.cache
def _request_seconds(route: str) -> Histogram:
    return metrics.REQUEST_SECONDS.labels(route)


async def openapi_document(_request: web.Request) -> web.Response:
    text = resources.files("token_service").joinpath("openapi.yaml").read_text()
    return web.Response(text=text, content_type="application/yaml")
