"""The AES-GCM keys that encrypt token pairs at rest, newest first.

Every sealed record names the id of the key that sealed it, so keys can be rotated:
the newest key seals, any listed key opens. Keys come from the ``vault_keys``
setting (``id:base64key,...``); for development, when it is unset, a key is made
once and kept in ``<data_dir>/vault.keys`` with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lockerlink.errors import ConfigError, LockerlinkError
from lockerlink.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
DEV_KEY_FILE = "vault.keys"
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class SealedRecordError(LockerlinkError):
    """A sealed record cannot be opened: unknown key id, or tampered ciphertext."""


@dataclass(frozen=True)
class Sealed:
    """Ciphertext (nonce first) and the id of the key that sealed it."""

    key_id: str
    blob: bytes


class VaultKeys:
    """Seals with the newest key, opens with any key listed."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigError("no vault key configured", setting="vault_keys")
        self._ids = [key_id for key_id, _ in keys]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    def __repr__(self) -> str:
        return f"VaultKeys(ids={self._ids!r})"

    @property
    def current_id(self) -> str:
        return self._ids[0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._ids)

    def seal(self, plaintext: bytes, context: bytes) -> Sealed:
        """Encrypt with the newest key; ``context`` is bound as associated data."""
        nonce = os.urandom(NONCE_BYTES)
        blob = nonce + self._ciphers[self.current_id].encrypt(nonce, plaintext, context)
        return Sealed(self.current_id, blob)

    def open(self, sealed: Sealed, context: bytes) -> bytes:
        """Decrypt a record sealed by any listed key, for the same ``context``."""
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise SealedRecordError(
                f"record sealed with key {sealed.key_id!r}, which is not configured"
            )
        nonce, body = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, body, context)
        except InvalidTag:
            raise SealedRecordError(
                f"record sealed with key {sealed.key_id!r} fails authentication"
            ) from None

    @classmethod
    def parse(cls, value: str) -> VaultKeys:
        """Keys from ``id:base64key,...`` (newest first)."""
        keys: list[tuple[str, bytes]] = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            key_id, sep, encoded = item.partition(":")
            if not sep or not _KEY_ID.fullmatch(key_id):
                raise ConfigError(
                    "LOCKERLINK_VAULT_KEYS: each key must look like id:base64key",
                    setting="vault_keys",
                )
            keys.append((key_id, _decode_key(key_id, encoded)))
        if len({key_id for key_id, _ in keys}) != len(keys):
            raise ConfigError(
                "LOCKERLINK_VAULT_KEYS: key ids must be unique", setting="vault_keys"
            )
        return cls(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> VaultKeys:
        """The configured keys, or the development key file (made when missing)."""
        if settings.vault_keys is not None:
            return cls.parse(settings.vault_keys.get_secret_value())
        path = dev_key_file(settings)
        if not path.exists():
            write_key_file(path, new_key_entry())
        return cls.parse(path.read_text(encoding="utf-8"))


def _decode_key(key_id: str, encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"LOCKERLINK_VAULT_KEYS: key {key_id!r} must be {KEY_BYTES} bytes, base64",
            setting="vault_keys",
        )
    return key


def new_key_entry() -> str:
    """A fresh ``id:base64key`` entry; the id says when it was made."""
    key_id = f"k{secrets.token_hex(4)}"
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def dev_key_file(settings: Settings) -> Path:
    return settings.data_dir / DEV_KEY_FILE


def write_key_file(path: Path, entries: str) -> None:
    """Write key entries so that only the owner can read them (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(entries + "\n")
    os.replace(tmp, path)
