"""The one way a Clover sandbox refuses a request: an HTTP status and a reason."""

from __future__ import annotations

from lockerlink.errors import LockerlinkError


class Rejection(LockerlinkError):
    """A request the sandbox refuses, as Clover would, with a status and a message.

    ``outcome`` is the word the call log records, so tests can count refusals by
    kind (``reused``, ``expired``, ``revoked``...).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        outcome: str,
        merchant_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, retriable=status >= 500 or status == 429)
        self.status = status
        self.outcome = outcome
        self.merchant_id = merchant_id
        self.headers = headers or {}
