"""The token service's /metrics: exchanges with Clover by outcome, time to expiry."""

from __future__ import annotations

from tests.ops_probe import OpsProbe
from tests.token_fixtures import ApiRig
from token_service.tls import client_context

EXCHANGES = "lockerlink_token_exchanges_total"
EXPIRY = "lockerlink_token_access_expiry_seconds"


async def _refresh(token_api: ApiRig, credential: str) -> int:
    async with token_api.session.post(
        token_api.url("/v1/token/refresh"),
        json={"store_id": "store-1"},
        headers=token_api.bearer(credential),
    ) as resp:
        return resp.status


async def test_exchanges_by_outcome_and_time_to_expiry_per_merchant(
    token_api: ApiRig,
) -> None:
    rig = token_api.rig
    probe = OpsProbe(token_api.base_url, client_context(token_api.ca))
    merchant = await rig.connect(token_api.service.vault, "store-1")
    credential = await token_api.enroll("store-1")
    ok = await probe.value(EXCHANGES, endpoint="refresh", outcome="ok") or 0.0
    dead = await probe.value(EXCHANGES, endpoint="refresh", outcome="permanent") or 0

    assert (await probe.value(EXPIRY, merchant=merchant) or 0) > 0
    rig.clock.advance(60)  # past the pause between two rotations
    assert await _refresh(token_api, credential) == 200
    assert await probe.value(EXCHANGES, endpoint="refresh", outcome="ok") == ok + 1

    rig.sandbox.faults.revoke(merchant)
    rig.clock.advance(60)
    assert await _refresh(token_api, credential) != 200
    assert (
        await probe.value(EXCHANGES, endpoint="refresh", outcome="permanent")
        == dead + 1
    )
