"""Vault keys: pairs sealed at rest under a named key, and key rotation."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from pydantic import SecretStr

from lockerlink.errors import ConfigError
from tests.token_fixtures import Rig
from token_service.keyring import (
    SealedRecordError,
    VaultKeys,
    dev_key_file,
    new_key_entry,
)


def _entry(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


async def test_stored_pair_holds_no_token_in_clear_and_names_its_key(
    vault_rig: Rig,
) -> None:
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    token = await vault.get_access_token(merchant)
    stored = await vault.pairs.read(merchant)
    assert stored is not None

    everything = b""
    async for key in vault_rig.redis.scan_iter(match=f"{vault_rig.keyspace.prefix}:*"):
        dumped = await vault_rig.redis.dump(key)
        everything += dumped or b""
    raw = await vault_rig.redis.hgetall(vault_rig.keyspace.token_pair(merchant))

    assert token.token.encode() not in everything
    assert stored.pair.refresh_token.encode() not in everything
    assert raw[b"key_id"] == vault.keys.current_id.encode()


def test_development_key_file_is_made_once_and_private(vault_rig: Rig) -> None:
    first = VaultKeys.from_settings(vault_rig.settings)
    again = VaultKeys.from_settings(vault_rig.settings)

    path = dev_key_file(vault_rig.settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.ids == again.ids


def test_record_opens_only_with_its_key_and_context() -> None:
    keys = VaultKeys.parse(_entry("a"))
    sealed = keys.seal(b"secret pair", b"M1")

    assert keys.open(sealed, b"M1") == b"secret pair"
    with pytest.raises(SealedRecordError):
        keys.open(sealed, b"M2")  # another merchant's record moved here
    with pytest.raises(SealedRecordError):
        VaultKeys.parse(_entry("a")).open(sealed, b"M1")
    with pytest.raises(SealedRecordError):
        VaultKeys.parse(_entry("b")).open(sealed, b"M1")


@pytest.mark.parametrize(
    "value", ["nocolon", "a:notbase64!!", "a:" + base64.b64encode(b"short").decode()]
)
def test_malformed_vault_keys_are_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        VaultKeys.parse(value)
    assert caught.value.setting == "vault_keys"
    assert value.partition(":")[2] not in caught.value.message or ":" not in value


async def test_key_rotation_reseals_every_pair_with_the_newest_key(
    vault_rig: Rig,
) -> None:
    old_entry = new_key_entry()
    old_settings = vault_rig.settings.model_copy(
        update={"vault_keys": SecretStr(old_entry)}
    )
    vault_rig.settings = old_settings
    vault = vault_rig.make_vault()
    merchant = await vault_rig.connect(vault)
    token = await vault.get_access_token(merchant)

    new_entry = _entry("new")
    vault_rig.settings = old_settings.model_copy(
        update={"vault_keys": SecretStr(f"{new_entry},{old_entry}")}
    )
    rotated = vault_rig.make_vault()
    assert await rotated.reseal_all() == 1
    assert await rotated.reseal_all() == 0

    stored = await rotated.pairs.read(merchant)
    assert stored is not None and stored.key_id == "new"
    assert (await rotated.get_access_token(merchant)).token == token.token
    vault_rig.settings = old_settings.model_copy(
        update={"vault_keys": SecretStr(new_entry)}
    )
    only_new = vault_rig.make_vault()
    assert (await only_new.get_access_token(merchant)).token == token.token
