"""The Clover sandbox's OAuth v2: codes, single-use refresh, recovery, revocation."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from sandbox.clover_tokens import pkce_challenge
from tests.sandboxes import ManualClock, SandboxFactory

CALLBACK = "http://127.0.0.1:9/callback"


async def _authorize(
    http: aiohttp.ClientSession, sandbox: CloverSandbox, **extra: str
) -> dict[str, str]:
    params = {"client_id": sandbox.config.app_id, "redirect_uri": CALLBACK, **extra}
    async with http.get(
        f"{sandbox.base_url}/oauth/v2/authorize", params=params, allow_redirects=False
    ) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(CALLBACK)
    return {
        key: values[0] for key, values in parse_qs(urlsplit(location).query).items()
    }


async def _post(
    http: aiohttp.ClientSession, sandbox: CloverSandbox, path: str, body: Any
) -> tuple[int, Any]:
    async with http.post(f"{sandbox.base_url}{path}", json=body) as response:
        return response.status, await response.json()


async def _refresh(
    http: aiohttp.ClientSession,
    sandbox: CloverSandbox,
    token: str,
    path: str = "refresh",
) -> tuple[int, Any]:
    body = {"client_id": sandbox.config.app_id, "refresh_token": token}
    return await _post(http, sandbox, f"/oauth/v2/{path}", body)


async def _orders_status(
    http: aiohttp.ClientSession, sandbox: CloverSandbox, merchant_id: str, access: str
) -> int:
    url = f"{sandbox.base_url}/v3/merchants/{merchant_id}/orders"
    headers = {"Authorization": f"Bearer {access}"}
    async with http.get(url, headers=headers) as response:
        return response.status


async def test_authorize_redirects_with_merchant_client_code_and_state(
    clover_sandbox: CloverSandbox,
) -> None:
    async with aiohttp.ClientSession() as http:
        callback = await _authorize(http, clover_sandbox, state="xyz-123")
    assert callback["merchant_id"] == clover_sandbox.config.merchant_ids[0]
    assert callback["client_id"] == clover_sandbox.config.app_id
    assert callback["state"] == "xyz-123"
    assert callback["code"]


async def test_code_exchange_with_secret_gives_pair_with_unix_second_expirations(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    clock = ManualClock()
    sandbox = await clover_sandbox_factory(CloverConfig(), clock=clock)
    async with aiohttp.ClientSession() as http:
        code = (await _authorize(http, sandbox))["code"]
        status, pair = await _post(
            http,
            sandbox,
            "/oauth/v2/token",
            {
                "client_id": sandbox.config.app_id,
                "client_secret": sandbox.config.app_secret,
                "code": code,
            },
        )
    assert status == 200
    assert set(pair) == {
        "access_token",
        "access_token_expiration",
        "refresh_token",
        "refresh_token_expiration",
    }
    assert pair["access_token_expiration"] == int(clock.now_s) + 30 * 60
    assert pair["refresh_token_expiration"] > pair["access_token_expiration"]


async def test_code_works_once(clover_sandbox: CloverSandbox) -> None:
    async with aiohttp.ClientSession() as http:
        code = (await _authorize(http, clover_sandbox))["code"]
        body = {
            "client_id": clover_sandbox.config.app_id,
            "client_secret": clover_sandbox.config.app_secret,
            "code": code,
        }
        first, _ = await _post(http, clover_sandbox, "/oauth/v2/token", body)
        second, error = await _post(http, clover_sandbox, "/oauth/v2/token", body)
    assert (first, second) == (200, 401)
    assert error["message"]


async def test_code_expires(clover_sandbox_factory: SandboxFactory) -> None:
    clock = ManualClock()
    sandbox = await clover_sandbox_factory(CloverConfig(code_lifetime_s=5), clock=clock)
    async with aiohttp.ClientSession() as http:
        code = (await _authorize(http, sandbox))["code"]
        clock.advance(5)
        body = {
            "client_id": sandbox.config.app_id,
            "client_secret": sandbox.config.app_secret,
            "code": code,
        }
        status, error = await _post(http, sandbox, "/oauth/v2/token", body)
    assert status == 401
    assert "expired" in error["message"]


async def test_pkce_exchange_needs_the_matching_verifier(
    clover_sandbox: CloverSandbox,
) -> None:
    verifier = secrets.token_urlsafe(48)
    async with aiohttp.ClientSession() as http:
        code = (
            await _authorize(
                http,
                clover_sandbox,
                code_challenge=pkce_challenge(verifier),
                code_challenge_method="S256",
            )
        )["code"]
        body = {"client_id": clover_sandbox.config.app_id, "code": code}
        wrong, _ = await _post(
            http, clover_sandbox, "/oauth/v2/token", {**body, "code_verifier": "nope"}
        )
        right, pair = await _post(
            http, clover_sandbox, "/oauth/v2/token", {**body, "code_verifier": verifier}
        )
    assert (wrong, right) == (401, 200)
    assert pair["refresh_token"]


async def test_wrong_client_secret_is_refused(clover_sandbox: CloverSandbox) -> None:
    async with aiohttp.ClientSession() as http:
        code = (await _authorize(http, clover_sandbox))["code"]
        body = {
            "client_id": clover_sandbox.config.app_id,
            "client_secret": "not-the-secret",
            "code": code,
        }
        status, _ = await _post(http, clover_sandbox, "/oauth/v2/token", body)
    assert status == 401


async def test_refresh_token_works_once(clover_sandbox: CloverSandbox) -> None:
    merchant = clover_sandbox.merchant_ids[0]
    pair = clover_sandbox.connect_merchant(merchant)
    async with aiohttp.ClientSession() as http:
        first, fresh = await _refresh(http, clover_sandbox, pair["refresh_token"])
        second, error = await _refresh(http, clover_sandbox, pair["refresh_token"])
        third, _ = await _refresh(http, clover_sandbox, fresh["refresh_token"])
    assert (first, second, third) == (200, 401, 200)
    assert fresh["refresh_token"] != pair["refresh_token"]
    assert error["message"] == "Invalid refresh token"
    calls = clover_sandbox.calls
    assert calls.count("refresh", outcome="ok", merchant_id=merchant) == 2
    assert calls.count("refresh", outcome="reused") == 1


async def test_concurrent_refreshes_with_one_token_have_exactly_one_winner(
    clover_sandbox: CloverSandbox,
) -> None:
    pair = clover_sandbox.connect_merchant(clover_sandbox.merchant_ids[0])
    async with aiohttp.ClientSession() as http:
        results = await asyncio.gather(
            *(_refresh(http, clover_sandbox, pair["refresh_token"]) for _ in range(6))
        )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 401, 401, 401, 401, 401]
    assert clover_sandbox.calls.count("refresh", outcome="reused") == 5


async def test_recovery_with_the_preceding_token_works_once(
    clover_sandbox: CloverSandbox,
) -> None:
    first = clover_sandbox.connect_merchant(clover_sandbox.merchant_ids[0])
    async with aiohttp.ClientSession() as http:
        _, lost = await _refresh(http, clover_sandbox, first["refresh_token"])
        ok, recovered = await _refresh(
            http, clover_sandbox, first["refresh_token"], "recovery"
        )
        again, _ = await _refresh(
            http, clover_sandbox, first["refresh_token"], "recovery"
        )
        lost_status, _ = await _refresh(http, clover_sandbox, lost["refresh_token"])
        new_status, _ = await _refresh(http, clover_sandbox, recovered["refresh_token"])
    assert (ok, again) == (200, 401)
    assert lost_status == 401
    assert new_status == 200


async def test_recovery_stops_once_the_current_token_is_used(
    clover_sandbox: CloverSandbox,
) -> None:
    first = clover_sandbox.connect_merchant(clover_sandbox.merchant_ids[0])
    async with aiohttp.ClientSession() as http:
        _, second = await _refresh(http, clover_sandbox, first["refresh_token"])
        await _refresh(http, clover_sandbox, second["refresh_token"])
        status, _ = await _refresh(
            http, clover_sandbox, first["refresh_token"], "recovery"
        )
    assert status == 401


async def test_going_over_the_refresh_token_cap_invalidates_the_oldest(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    sandbox = await clover_sandbox_factory(CloverConfig(refresh_tokens_per_merchant=2))
    merchant = sandbox.merchant_ids[0]
    oldest, middle, newest = (sandbox.connect_merchant(merchant) for _ in range(3))
    assert sandbox.tokens.active_refresh_tokens(merchant) == 2
    async with aiohttp.ClientSession() as http:
        statuses = [
            (await _refresh(http, sandbox, pair["refresh_token"]))[0]
            for pair in (oldest, middle, newest)
        ]
    assert statuses == [401, 200, 200]


async def test_uninstall_revokes_refresh_and_access_tokens(
    clover_sandbox: CloverSandbox,
) -> None:
    merchant = clover_sandbox.merchant_ids[0]
    pair = clover_sandbox.connect_merchant(merchant)
    clover_sandbox.uninstall(merchant)
    async with aiohttp.ClientSession() as http:
        refresh_status, _ = await _refresh(http, clover_sandbox, pair["refresh_token"])
        rest_status = await _orders_status(
            http, clover_sandbox, merchant, pair["access_token"]
        )
        # Authorizing again installs the app again, as a merchant would.
        callback = await _authorize(http, clover_sandbox)
    assert (refresh_status, rest_status) == (401, 401)
    assert callback["code"]


async def test_expired_and_unknown_access_tokens_get_401(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    clock = ManualClock()
    sandbox = await clover_sandbox_factory(
        CloverConfig(access_token_lifetime_s=10), clock=clock
    )
    merchant = sandbox.merchant_ids[0]
    pair = sandbox.connect_merchant(merchant)
    async with aiohttp.ClientSession() as http:
        fresh = await _orders_status(http, sandbox, merchant, pair["access_token"])
        clock.advance(10)
        expired = await _orders_status(http, sandbox, merchant, pair["access_token"])
        unknown = await _orders_status(http, sandbox, merchant, "made-up")
    assert (fresh, expired, unknown) == (200, 401, 401)


async def test_malformed_bodies_get_400_with_a_message(
    clover_sandbox: CloverSandbox,
) -> None:
    url = f"{clover_sandbox.base_url}/oauth/v2/refresh"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, data=b"{not json", headers={"Content-Type": "application/json"}
        ) as broken:
            broken_body = await broken.json()
        async with http.post(url, json=["a", "list"]) as listed:
            listed_status = listed.status
        async with http.post(url, json={"client_id": "x"}) as missing:
            missing_body = await missing.json()
    assert broken.status == 400 and "JSON" in broken_body["message"]
    assert listed_status == 400
    assert missing.status == 400 and "refresh_token" in missing_body["message"]


async def test_refresh_token_expires_and_recovery_window_closes(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    clock = ManualClock()
    config = CloverConfig(refresh_token_lifetime_s=100, recovery_window_s=50)
    sandbox = await clover_sandbox_factory(config, clock=clock)
    merchant = sandbox.merchant_ids[0]
    idle = sandbox.connect_merchant(merchant)
    used = sandbox.connect_merchant(merchant)
    async with aiohttp.ClientSession() as http:
        status, _ = await _refresh(http, sandbox, used["refresh_token"])
        assert status == 200
        clock.advance(100)
        expired, _ = await _refresh(http, sandbox, idle["refresh_token"])
        too_late, _ = await _refresh(http, sandbox, used["refresh_token"], "recovery")
    assert (expired, too_late) == (401, 401)
    assert sandbox.calls.count("refresh", outcome="expired") == 1
    assert sandbox.calls.count("recovery", outcome="expired") == 1
