"""A process that refreshes one merchant and dies right after Clover answers.

Run as ``python -m tests.crash_refresh KEY_PREFIX MERCHANT_ID`` with the
``LOCKERLINK_*`` variables of the test; it exits with code 17 from inside the
refresh, after Clover issued the new pair and before the vault stored it.
"""

from __future__ import annotations

import asyncio
import os
import sys

from lockerlink.keys import KeySpace
from lockerlink.redis_store import connect_redis
from lockerlink.settings import load_settings
from schemas.token_rotation import TokenRotationEvent
from token_service.rotation_events import CallbackRotationPublisher
from token_service.vault import Vault

CRASH_EXIT_CODE = 17


def _die(_merchant_id: str) -> None:
    os._exit(CRASH_EXIT_CODE)


async def _ignore(_event: TokenRotationEvent) -> None:
    return None


async def main(prefix: str, merchant_id: str) -> None:
    settings = load_settings()
    redis = connect_redis(settings.redis_url)
    vault = Vault(
        settings,
        redis,
        KeySpace(prefix),
        publisher=CallbackRotationPublisher(_ignore),
        after_clover_answer=_die,
    )
    current = await vault.get_access_token(merchant_id)
    await vault.report_rejected(merchant_id, current.fingerprint)
    sys.exit("the refresh returned instead of crashing")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
