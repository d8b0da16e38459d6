"""The token service over HTTPS: lockers, admin, bad input, limits, TLS."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from schemas.token_rotation import RotationReason
from tests.token_fixtures import ApiRig, pair_of
from token_service.lockers import REMEMBER_S, LockerRegistry
from token_service.tls import server_context, tls_files


async def _connect(api: ApiRig, store_id: str) -> str:
    sandbox = api.rig.sandbox
    merchant = sandbox.add_merchant()
    await api.service.vault.connect(
        merchant, store_id, pair_of(sandbox.connect_merchant(merchant))
    )
    return merchant


async def _get(
    api: ApiRig, path: str, credential: str | None, **kwargs: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = api.bearer(credential) if credential else {}
    async with api.session.get(api.url(path), headers=headers, **kwargs) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def _post(
    api: ApiRig, path: str, credential: str | None, **kwargs: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {
        **(api.bearer(credential) if credential else {}),
        **kwargs.pop("headers", {}),
    }
    async with api.session.post(api.url(path), headers=headers, **kwargs) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def test_locker_gets_its_store_merchant_token_over_tls(token_api: ApiRig) -> None:
    merchant = await _connect(token_api, "store-a")
    credential = await token_api.enroll("store-a")

    status, body, headers = await _get(token_api, "/v1/token", credential)

    assert status == 200
    assert body["merchant_id"] == merchant and body["store_id"] == "store-a"
    assert (
        token_api.rig.sandbox.tokens.merchant_of_access(body["access_token"])
        == merchant
    )
    assert "refresh_token" not in str(body)
    assert headers["Cache-Control"] == "no-store"
    assert "RateLimit-Policy" in headers and "RateLimit" in headers


async def test_locker_cannot_get_another_stores_token(token_api: ApiRig) -> None:
    await _connect(token_api, "store-a")
    await _connect(token_api, "store-b")
    credential = await token_api.enroll("store-a")

    existing = await _get(token_api, "/v1/token?store_id=store-b", credential)
    missing = await _get(token_api, "/v1/token?store_id=store-zz", credential)
    refresh = await _post(
        token_api, "/v1/token/refresh", credential, json={"store_id": "store-b"}
    )

    assert existing[0] == missing[0] == refresh[0] == 403
    assert existing[1] == missing[1] == refresh[1]
    assert existing[1]["error"] == "forbidden_store"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer llk_short",
        "Bearer llk_" + "A" * 43,
        "Bearer " + "x" * 600,
    ],
)
async def test_bad_credentials_get_401_and_learn_nothing(
    token_api: ApiRig, authorization: str | None
) -> None:
    await _connect(token_api, "store-a")
    headers = {} if authorization is None else {"Authorization": authorization}
    answers = []
    for store in ("store-a", "store-none"):
        async with token_api.session.get(
            token_api.url(f"/v1/token?store_id={store}"), headers=headers
        ) as resp:
            answers.append((resp.status, await resp.json()))

    assert answers[0] == answers[1]
    status, body = answers[0]
    assert status == 401 and body["error"] == "unauthenticated"
    assert "store" not in body["message"]


async def test_revoked_credential_stops_working(token_api: ApiRig) -> None:
    await _connect(token_api, "store-a")
    credential = await token_api.enroll("store-a")
    lockers = await token_api.service.lockers.all()

    status, body, _ = await _post(
        token_api,
        f"/v1/admin/lockers/{lockers[0].locker_id}/revoke",
        token_api.admin,
    )
    assert status == 200 and body["revoked"] is True

    status, body, _ = await _get(token_api, "/v1/token", credential)
    assert status == 401 and body["error"] == "unauthenticated"


async def test_revocation_elsewhere_takes_effect_within_the_remembered_time(
    token_api: ApiRig,
) -> None:
    await _connect(token_api, "store-a")
    credential = await token_api.enroll("store-a")
    assert (await _get(token_api, "/v1/token", credential))[0] == 200
    # Another process (the CLI, another token service) revokes the locker.
    elsewhere = LockerRegistry(token_api.rig.redis, token_api.rig.keyspace, 60)
    (locker,) = await elsewhere.all()
    await elsewhere.revoke(locker.locker_id)

    token_api.rig.clock.advance(REMEMBER_S)
    status, body, _ = await _get(token_api, "/v1/token", credential)

    assert status == 401 and body["error"] == "unauthenticated"


async def test_rotated_credential_old_one_works_during_grace(token_api: ApiRig) -> None:
    await _connect(token_api, "store-a")
    old = await token_api.enroll("store-a")
    locker_id = (await token_api.service.lockers.all())[0].locker_id

    status, body, _ = await _post(
        token_api, f"/v1/admin/lockers/{locker_id}/rotate", token_api.admin
    )
    new = body["credential"]

    assert status == 200 and new != old
    assert (await _get(token_api, "/v1/token", old))[0] == 200
    assert (await _get(token_api, "/v1/token", new))[0] == 200
    # the grace period ends with the old credential's index entry
    old_key = token_api.rig.keyspace.locker_credential(_hash(old))
    grace_ms = token_api.rig.settings.locker_rotation_grace_s * 1000
    assert 0 < await token_api.rig.redis.pttl(old_key) <= grace_ms
    await token_api.rig.redis.delete(old_key)
    token_api.rig.clock.advance(REMEMBER_S)  # what this process remembered ran out
    assert (await _get(token_api, "/v1/token", old))[0] == 401
    assert (await _get(token_api, "/v1/token", new))[0] == 200


def _hash(credential: str) -> str:
    from token_service.lockers import credential_hash

    return credential_hash(credential)


async def test_credentials_are_stored_only_as_hashes(token_api: ApiRig) -> None:
    credential = await token_api.enroll("store-a")
    dumped = b""
    redis = token_api.rig.redis
    async for key in redis.scan_iter(match=f"{token_api.rig.keyspace.prefix}:*"):
        dumped += key + ((await redis.dump(key)) or b"")
    assert credential.encode() not in dumped
    assert _hash(credential).encode() in dumped


async def test_rejected_report_refreshes_only_the_current_token(
    token_api: ApiRig,
) -> None:
    await _connect(token_api, "store-a")
    credential = await token_api.enroll("store-a")
    _, first, _ = await _get(token_api, "/v1/token", credential)

    _, second, _ = await _post(
        token_api,
        "/v1/token/rejected",
        credential,
        json={"fingerprint": first["fingerprint"]},
    )
    _, third, _ = await _post(
        token_api,
        "/v1/token/rejected",
        credential,
        json={"fingerprint": first["fingerprint"]},
    )

    assert second["access_token"] != first["access_token"]
    assert third["access_token"] == second["access_token"]
    assert token_api.rig.sandbox.calls.count("refresh") == 1


@pytest.mark.parametrize(
    ("content_type", "data", "status", "error"),
    [
        ("application/json", b"{not json", 400, "bad_request"),
        ("application/json", b"[1, 2]", 400, "bad_request"),
        ("application/json", b'{"fingerprint": "zz"}', 400, "bad_request"),
        (
            "application/json",
            b'{"fingerprint": "0123456789abcdef", "x": 1}',
            400,
            "bad_request",
        ),
        ("text/plain", b"fingerprint=0123456789abcdef", 415, "unsupported_media_type"),
        (
            "application/json",
            b'{"fingerprint": "' + b"a" * 20_000 + b'"}',
            413,
            "payload_too_large",
        ),
    ],
)
async def test_bad_bodies_get_a_clear_4xx(
    token_api: ApiRig, content_type: str, data: bytes, status: int, error: str
) -> None:
    await _connect(token_api, "store-a")
    credential = await token_api.enroll("store-a")

    got, body, _ = await _post(
        token_api,
        "/v1/token/rejected",
        credential,
        data=data,
        headers={"Content-Type": content_type},
    )

    assert (got, body["error"]) == (status, error)
    assert body["message"]


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/v2/token", 404, "not_found"),
        ("GET", "/nothing/here", 404, "not_found"),
        ("DELETE", "/v1/token", 405, "method_not_allowed"),
        ("GET", "/v1/token?min_validity_s=lots", 400, "bad_request"),
        ("GET", "/v1/token?min_validity_s=99999", 400, "bad_request"),
    ],
)
async def test_unknown_paths_methods_and_queries_get_json_errors(
    token_api: ApiRig, method: str, path: str, status: int, error: str
) -> None:
    await _connect(token_api, "store-a")
    credential = await token_api.enroll("store-a")
    async with token_api.session.request(
        method, token_api.url(path), headers=token_api.bearer(credential)
    ) as resp:
        body = await resp.json()
    assert (resp.status, body["error"]) == (status, error)


async def test_store_without_merchant_and_reauth_are_409(token_api: ApiRig) -> None:
    credential = await token_api.enroll("store-lonely")
    status, body, _ = await _get(token_api, "/v1/token", credential)
    assert (status, body["error"]) == (409, "not_connected")

    merchant = await _connect(token_api, "store-gone")
    gone = await token_api.enroll("store-gone")
    token_api.rig.sandbox.uninstall(merchant)
    token_api.rig.clock.advance(31 * 60)
    status, body, _ = await _get(token_api, "/v1/token", gone)
    assert (status, body["error"]) == (409, "reauth_required")


async def test_locker_over_its_rate_gets_429_with_headers(token_api: ApiRig) -> None:
    await _connect(token_api, "store-a")
    credential = await token_api.enroll("store-a")
    burst = token_api.rig.settings.locker_burst

    statuses = [
        (await _get(token_api, "/v1/token", credential)) for _ in range(burst + 1)
    ]

    assert [s for s, _, _ in statuses[:burst]] == [200] * burst
    status, body, headers = statuses[-1]
    assert (status, body["error"]) == (429, "rate_limited")
    assert int(headers["Retry-After"]) >= 1
    assert headers["RateLimit-Policy"].startswith('"locker";q=')
    assert ";r=0;" in headers["RateLimit"]


async def test_failed_authentications_from_one_address_are_limited(
    token_api: ApiRig,
) -> None:
    await _connect(token_api, "store-a")
    credential = await token_api.enroll("store-a")
    burst = token_api.rig.settings.auth_failure_burst
    wrong = "llk_" + "B" * 43

    failures = [(await _get(token_api, "/v1/token", wrong))[0] for _ in range(burst)]
    blocked = await _get(token_api, "/v1/token", credential)

    assert failures == [401] * burst
    assert blocked[0] == 429 and "Retry-After" in blocked[2]


async def test_admin_endpoints_need_the_admin_credential(token_api: ApiRig) -> None:
    locker_credential = await token_api.enroll("store-a")
    for credential in (None, locker_credential, "wrong"):
        status, body, _ = await _get(token_api, "/v1/admin/merchants", credential)
        assert (status, body["error"]) == (401, "unauthenticated")


async def test_merchant_connects_through_clover_authorization(
    token_api: ApiRig,
) -> None:
    status, link, _ = await _post(
        token_api,
        "/v1/admin/merchants/authorize",
        token_api.admin,
        json={"store_id": "store-new"},
    )
    assert status == 200
    query = parse_qs(urlsplit(link["authorize_url"]).query)
    assert query["code_challenge_method"] == ["S256"]
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(link["authorize_url"], allow_redirects=False) as resp,
    ):
        assert resp.status == 302
        callback = resp.headers["Location"]
    callback = callback.replace(
        urlsplit(callback).netloc, urlsplit(token_api.base_url).netloc
    ).replace("http://", "https://")

    async with token_api.session.get(callback) as resp:
        connected = await resp.json()
    async with token_api.session.get(callback) as resp:
        replayed = (resp.status, await resp.json())

    merchant = token_api.rig.sandbox.merchant_ids[0]
    assert connected == {
        "status": "connected",
        "merchant_id": merchant,
        "store_id": "store-new",
    }
    assert replayed[0] == 401 and replayed[1]["error"] == "unauthenticated"
    credential = await token_api.enroll("store-new")
    status, body, _ = await _get(token_api, "/v1/token", credential)
    assert status == 200 and body["merchant_id"] == merchant
    assert token_api.rig.events[-1].reason is RotationReason.CONNECT
    status, listing, _ = await _get(token_api, "/v1/admin/merchants", token_api.admin)
    assert [m["state"] for m in listing["merchants"]] == ["connected"]


async def test_health_readiness_metrics_and_openapi_are_served(
    token_api: ApiRig,
) -> None:
    for path in ("/healthz", "/readyz"):
        async with token_api.session.get(token_api.url(path)) as resp:
            assert resp.status == 200
    async with token_api.session.get(token_api.url("/metrics")) as resp:
        assert "lockerlink_token_service_requests_total" in await resp.text()
    async with token_api.session.get(token_api.url("/openapi.yaml")) as resp:
        assert "openapi: 3.0.3" in await resp.text()


def test_server_refuses_anything_older_than_tls_1_2(token_api: ApiRig) -> None:
    context = server_context(tls_files(token_api.rig.settings))
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


async def test_plain_http_is_not_served(token_api: ApiRig) -> None:
    plain = token_api.base_url.replace("https://", "http://")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"{plain}/healthz") as resp:
                await resp.read()


async def _raw_get(api: ApiRig, path: str, authorization: bytes) -> tuple[int, bytes]:
    """A GET whose Authorization header holds exactly these bytes (no client
    library would send bytes that are not UTF-8)."""
    url = urlsplit(api.base_url)
    context = ssl.create_default_context(cafile=str(api.ca))
    reader, writer = await asyncio.open_connection(
        url.hostname, url.port, ssl=context, server_hostname=url.hostname
    )
    try:
        writer.write(
            b"GET "
            + path.encode()
            + b" HTTP/1.1\r\nHost: "
            + url.netloc.encode()
            + b"\r\nAuthorization: "
            + authorization
            + b"\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    ("path", "authorization"),
    [
        ("/v1/token", b"Bearer llk_\xff\xfe"),
        ("/v1/token", b"Bearer llk_\xc3\xa9t\xc3\xa9"),
        ("/v1/token", b"Bearer llk_a\tb"),
        ("/v1/admin/lockers", b"Bearer adm\xff"),
    ],
)
async def test_credentials_not_in_printable_ascii_get_401_not_500(
    token_api: ApiRig, path: str, authorization: bytes
) -> None:
    status, body = await _raw_get(token_api, path, authorization)
    assert status == 401, body
    assert b"unauthenticated" in body
