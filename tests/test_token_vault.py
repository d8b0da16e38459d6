"""The vault against the Clover sandbox and a real Redis: one refresh, never twice."""

from __future__ import annotations

import asyncio

import pytest

from lockerlink.alerts import Alerter, SmtpSender
from lockerlink.errors import TokenUnavailable
from schemas.token_rotation import MerchantState, RotationReason, token_fingerprint
from tests.mail_inbox import Inbox
from tests.token_fixtures import Rig
from token_service.alerts import ReauthAlerts, reauth_alert_key
from token_service.refresh_lock import RefreshLock


def _spent_twice(rig: Rig) -> int:
    calls = rig.sandbox.calls
    return calls.count("refresh", outcome="reused") + calls.count(
        "recovery", outcome="reused"
    )


async def test_connected_merchant_gets_its_current_token(vault_rig: Rig) -> None:
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)

    token = await vault.get_access_token(merchant)

    assert token.merchant_id == merchant
    assert token.fingerprint == token_fingerprint(token.token)
    assert vault_rig.sandbox.tokens.merchant_of_access(token.token) == merchant
    assert vault_rig.sandbox.calls.count("refresh") == 0


async def test_unknown_merchant_is_not_connected(vault_rig: Rig) -> None:
    vault = vault_rig.make_vault()
    with pytest.raises(TokenUnavailable) as caught:
        await vault.get_access_token("NOSUCHMERCHANT")
    assert caught.value.reason == "not_connected"


async def test_concurrent_callers_in_one_process_share_one_refresh(
    vault_rig: Rig,
) -> None:
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    first = await vault.get_access_token(merchant)
    vault_rig.clock.advance(31 * 60)  # the access token has expired

    tokens = await asyncio.gather(
        *(vault.get_access_token(merchant) for _ in range(50))
    )

    assert len({t.token for t in tokens}) == 1
    assert tokens[0].token != first.token
    assert vault_rig.sandbox.calls.count("refresh", merchant_id=merchant) == 1
    assert vault_rig.sandbox.tokens.merchant_of_access(tokens[0].token) == merchant


async def test_vaults_with_their_own_connections_refresh_once(
    vault_rig: Rig,
) -> None:
    vaults = [vault_rig.make_vault(separate_connection=True) for _ in range(4)]
    merchant = await vault_rig.connect(vaults[0])
    vault_rig.clock.advance(31 * 60)

    tokens = await asyncio.gather(
        *(v.get_access_token(merchant) for v in vaults for _ in range(10))
    )

    assert len({t.token for t in tokens}) == 1
    assert vault_rig.sandbox.calls.count("refresh", merchant_id=merchant) == 1
    assert _spent_twice(vault_rig) == 0


async def test_minimum_validity_gets_a_fresher_token(vault_rig: Rig) -> None:
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    first = await vault.get_access_token(merchant)
    vault_rig.clock.advance(20 * 60)  # ten minutes left

    same = await vault.get_access_token(merchant, min_validity_s=5 * 60)
    fresher = await vault.get_access_token(merchant, min_validity_s=15 * 60)

    assert same.token == first.token
    assert fresher.token != first.token
    assert fresher.remaining_s(int(vault_rig.clock() * 1000)) > 15 * 60
    assert (await vault_rig.published())[-1].reason is RotationReason.PROACTIVE


async def test_rejected_current_token_is_refreshed_once(vault_rig: Rig) -> None:
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    first = await vault.get_access_token(merchant)

    reports = await asyncio.gather(
        *(vault.report_rejected(merchant, first.fingerprint) for _ in range(5))
    )

    assert {r.token for r in reports} != {first.token}
    assert len({r.token for r in reports}) == 1
    assert vault_rig.sandbox.calls.count("refresh") == 1
    assert (await vault_rig.published())[-1].reason is RotationReason.REJECTED


async def test_report_of_an_older_token_answers_the_newer_one_at_once(
    vault_rig: Rig,
) -> None:
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    old = await vault.get_access_token(merchant)
    newer = await vault.report_rejected(merchant, old.fingerprint)

    again = await vault.report_rejected(merchant, old.fingerprint)

    assert again.token == newer.token
    assert vault_rig.sandbox.calls.count("refresh") == 1


async def test_dead_refresh_token_requires_reauth_with_one_alert(
    vault_rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    vault_rig.sandbox.uninstall(merchant)
    vault_rig.clock.advance(31 * 60)

    for _ in range(3):
        with pytest.raises(TokenUnavailable) as caught:
            await vault.get_access_token(merchant)
        assert caught.value.reason == "reauth_required"
        assert not caught.value.retriable

    assert vault_rig.sandbox.calls.count("refresh") == 1  # then no more calls
    record = await vault.merchants.get(merchant)
    assert record is not None and record.state is MerchantState.REAUTH_REQUIRED
    alerts = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(alerts) == 1 and merchant in alerts[0].getMessage()
    states = [
        e.state for e in vault_rig.events if e.reason is RotationReason.STATE_CHANGE
    ]
    assert states == [MerchantState.REAUTH_REQUIRED]


async def test_reconnecting_clears_reauth_required(vault_rig: Rig) -> None:
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    vault_rig.sandbox.uninstall(merchant)
    vault_rig.clock.advance(31 * 60)
    with pytest.raises(TokenUnavailable):
        await vault.get_access_token(merchant)

    vault_rig.sandbox.tokens.install(merchant)
    await vault_rig.connect(vault)
    token = await vault.get_access_token(merchant)

    assert vault_rig.sandbox.tokens.merchant_of_access(token.token) == merchant
    record = await vault.merchants.get(merchant)
    assert record is not None and record.state is MerchantState.CONNECTED


async def test_clover_down_keeps_serving_the_current_token_then_backs_off(
    vault_rig: Rig,
) -> None:
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    current = await vault.get_access_token(merchant)
    await vault_rig.sandbox.stop()  # connection refused: transient
    vault_rig.clock.advance(29 * 60)

    served = await vault.get_access_token(merchant, min_validity_s=5 * 60)

    assert served.token == current.token
    record = await vault.merchants.get(merchant)
    assert record is not None and record.state is MerchantState.REFRESH_FAILING
    assert record.failures == 1
    assert record.retry_at_ms > int(vault_rig.clock() * 1000)
    again = await vault.get_access_token(merchant, min_validity_s=5 * 60)
    assert again.token == current.token
    record = await vault.merchants.get(merchant)
    assert record is not None and record.failures == 1  # backing off: no new call

    vault_rig.clock.advance(2 * 60)  # now it has really expired
    with pytest.raises(TokenUnavailable) as caught:
        await vault.get_access_token(merchant)
    assert caught.value.reason == "refresh_failing" and caught.value.retriable


async def test_lock_is_released_only_by_its_owner(vault_rig: Rig) -> None:
    lock = RefreshLock(vault_rig.redis, vault_rig.keyspace, lease_s=5)
    owner = await lock.acquire("M1")
    assert owner is not None
    assert await lock.acquire("M1") is None

    assert not await lock.release("M1", "someone-else")
    assert await lock.is_held("M1")
    assert await lock.release("M1", owner)
    assert not await lock.is_held("M1")


async def test_refresh_waits_for_the_lock_holder_and_takes_its_result(
    vault_rig: Rig,
) -> None:
    vault = vault_rig.make_vault()
    other = vault_rig.make_vault(separate_connection=True)
    merchant = await vault_rig.connect(vault)
    vault_rig.clock.advance(31 * 60)
    lock = RefreshLock(vault_rig.redis, vault_rig.keyspace, lease_s=5)
    owner = await lock.acquire(merchant)
    assert owner is not None

    waiting = asyncio.create_task(vault.get_access_token(merchant))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # blocked on the lock, not calling Clover
    assert vault_rig.sandbox.calls.count("refresh") == 0
    await lock.release(merchant, owner)
    produced = await other.get_access_token(merchant)
    got = await waiting

    assert got.token == produced.token
    assert vault_rig.sandbox.calls.count("refresh") == 1


@pytest.mark.parametrize("fault", ["error", "reset", "hang", "storm"])
async def test_transient_clover_failures_back_off_then_recover_without_reuse(
    vault_rig: Rig, fault: str
) -> None:
    vault_rig.settings = vault_rig.settings.model_copy(
        update={"clover_timeout_s": 0.3, "token_refresh_lease_s": 1.0}
    )
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    current = await vault.get_access_token(merchant)
    faults = vault_rig.sandbox.faults
    if fault == "storm":
        faults.storm(requests=1, endpoints=["refresh"])
    else:
        faults.outage(fault, status=503, requests=1, endpoints=["refresh"])  # type: ignore[arg-type]
    vault_rig.clock.advance(28 * 60)

    served = await vault.get_access_token(merchant, min_validity_s=5 * 60)
    faults.clear()

    assert served.token == current.token
    record = await vault.merchants.get(merchant)
    assert record is not None and record.state is MerchantState.REFRESH_FAILING
    vault_rig.clock.advance(90)  # past the back-off
    fresh = await vault.get_access_token(merchant, min_validity_s=5 * 60)
    assert fresh.token != current.token
    assert vault_rig.sandbox.tokens.merchant_of_access(fresh.token) == merchant
    assert _spent_twice(vault_rig) == 0
    record = await vault.merchants.get(merchant)
    assert record is not None and record.state is MerchantState.CONNECTED


@pytest.mark.parametrize("fault", ["error", "reset", "hang"])
async def test_answer_lost_after_clover_rotated_is_recovered_without_reuse(
    vault_rig: Rig, fault: str
) -> None:
    vault_rig.settings = vault_rig.settings.model_copy(
        update={"clover_timeout_s": 0.3, "token_refresh_lease_s": 1.0}
    )
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    current = await vault.get_access_token(merchant)
    faults = vault_rig.sandbox.faults
    # Clover rotates the refresh token, then the answer never arrives.
    faults.outage(
        fault,  # type: ignore[arg-type]
        requests=1,
        endpoints=["refresh"],
        after_serving=True,
    )
    vault_rig.clock.advance(28 * 60)

    served = await vault.get_access_token(merchant, min_validity_s=5 * 60)
    faults.clear()
    vault_rig.clock.advance(90)  # past the back-off
    fresh = await vault.get_access_token(merchant, min_validity_s=5 * 60)

    calls = vault_rig.sandbox.calls
    assert served.token == current.token
    assert calls.count("refresh", merchant_id=merchant) == 1  # the lost one
    assert calls.count("recovery", outcome="ok", merchant_id=merchant) == 1
    assert fresh.token != current.token
    assert vault_rig.sandbox.tokens.merchant_of_access(fresh.token) == merchant
    assert _spent_twice(vault_rig) == 0
    assert (await vault_rig.published())[-1].reason is RotationReason.RECOVERY
    # The recovered pair's refresh token works for the next rotation.
    vault_rig.clock.advance(30 * 60)
    after = await vault.get_access_token(merchant, min_validity_s=5 * 60)
    assert after.token != fresh.token and _spent_twice(vault_rig) == 0


async def test_reauth_mails_once_across_processes_and_once_on_reconnect(
    vault_rig: Rig, smtp_inbox: tuple[Inbox, int]
) -> None:
    inbox, smtp_port = smtp_inbox
    sender = SmtpSender("127.0.0.1", smtp_port, "lockerlink@test", ["ops@test"], 5)
    alerter = Alerter(vault_rig.redis, vault_rig.keyspace, sender, "token-service")
    vault = vault_rig.make_vault(alerts=ReauthAlerts(alerter))
    other = vault_rig.make_vault(separate_connection=True, alerts=ReauthAlerts(alerter))
    merchant = await vault_rig.connect(vault)
    vault_rig.sandbox.uninstall(merchant)
    vault_rig.clock.advance(31 * 60)
    alert_key = vault_rig.keyspace.alert_state(reauth_alert_key(merchant))

    for each in (vault, other, vault):
        with pytest.raises(TokenUnavailable):
            await each.get_access_token(merchant)
    assert await vault_rig.redis.exists(alert_key)
    raised = [s for s in inbox.subjects() if merchant in s]
    assert len(raised) == 1 and "must authorize lockerlink again" in raised[0]
    body = inbox.messages[-1].get_payload()
    assert "lockerlink merchants connect --store" in str(body)

    vault_rig.sandbox.tokens.install(merchant)
    await vault_rig.connect(vault)
    assert not await vault_rig.redis.exists(alert_key)
    subjects = [s for s in inbox.subjects() if merchant in s]
    condition = raised[0].removeprefix("[lockerlink] ")
    assert subjects == [raised[0], f"[lockerlink] RESOLVED: {condition}"]
