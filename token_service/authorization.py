"""Connecting a merchant: Clover's authorization step with state and PKCE.

``start`` makes a single-use ``state`` (kept in Redis for ``oauth_state_ttl_s``,
sealed, with the PKCE code verifier and the store) and the Clover URL the
merchant's browser opens. ``complete`` runs on the callback: it takes the state
(GETDEL, so a replayed callback finds nothing), exchanges the code with the
verifier, and hands the first pair to the vault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as aioredis
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from lockerlink.errors import CredentialError, InputError
from lockerlink.keys import KeySpace
from schemas.token_rotation import token_fingerprint
from schemas.topics import is_valid_store_id
from token_service.keyring import Sealed, SealedRecordError
from token_service.pair import AccessToken
from token_service.vault import Vault

CALLBACK_PATH = "/v1/oauth/callback"
_STATE_CONTEXT = b"oauth-state"


@dataclass(frozen=True)
class AuthorizationLink:
    """Where to send the merchant's browser, and until when the link works."""

    url: str
    store_id: str
    expires_in_s: int


class MerchantAuthorization:
    """Starts and completes Clover authorizations for stores."""

    def __init__(self, vault: Vault, redis: aioredis.Redis, keyspace: KeySpace) -> None:
        self._vault = vault
        self._redis = redis
        self._keyspace = keyspace
        settings = vault.settings
        self._ttl_s = settings.oauth_state_ttl_s
        self._app_id = settings.clover_app_id
        self.redirect_uri = settings.token_service_url.rstrip("/") + CALLBACK_PATH

    async def start(self, store_id: str) -> AuthorizationLink:
        """A one-time authorization link for ``store_id``."""
        if not is_valid_store_id(store_id):
            raise InputError(f"invalid store id {store_id!r}", reason="bad_store_id")
        state = generate_token(32)
        verifier = generate_token(64)
        record = json.dumps({"store_id": store_id, "code_verifier": verifier}).encode()
        sealed = self._vault.keys.seal(record, _STATE_CONTEXT)
        stored = json.dumps({"key_id": sealed.key_id, "blob": sealed.blob.hex()})
        await self._redis.set(
            self._keyspace.oauth_state(token_fingerprint(state)),
            stored,
            ex=self._ttl_s,
            nx=True,
        )
        url = self._vault.clover.authorize_url(
            self.redirect_uri, state, create_s256_code_challenge(verifier)
        )
        return AuthorizationLink(url, store_id, self._ttl_s)

    async def complete(
        self, state: str, code: str, merchant_id: str, client_id: str | None
    ) -> tuple[str, AccessToken]:
        """Finish the authorization the callback names; returns store and token."""
        store_id, verifier = await self._take_state(state)
        if client_id is not None and client_id != self._app_id:
            raise CredentialError("callback for another app", reason="wrong_app")
        if not merchant_id or len(merchant_id) > 64 or not merchant_id.isalnum():
            raise InputError(
                "callback without a valid merchant id", reason="bad_merchant"
            )
        pair = await self._vault.clover.exchange_code(code, verifier, merchant_id)
        token = await self._vault.connect(merchant_id, store_id, pair)
        return store_id, token

    async def _take_state(self, state: str) -> tuple[str, str]:
        raw = None
        if state and len(state) <= 256:
            raw = await self._redis.getdel(
                self._keyspace.oauth_state(token_fingerprint(state))
            )
        if raw is None:
            raise CredentialError(
                "unknown, used or expired authorization state", reason="bad_state"
            )
        stored = json.loads(raw)
        try:
            opened = self._vault.keys.open(
                Sealed(stored["key_id"], bytes.fromhex(stored["blob"])), _STATE_CONTEXT
            )
        except SealedRecordError as exc:
            raise CredentialError(exc.message, reason="bad_state") from exc
        record = json.loads(opened)
        return str(record["store_id"]), str(record["code_verifier"])
