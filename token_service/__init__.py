"""The Clover OAuth token vault that lockers and the poller trust.

In-process use (the poller): `Vault` hands out `AccessToken`s and refreshes each
merchant's pair once across every process. Over HTTPS (lockers): the aiohttp
application started by ``lockerlink token-service``.
"""

from token_service.pair import AccessToken
from token_service.vault import Vault

__all__ = ["AccessToken", "Vault"]
