"""The lockerlink exception tree.

    LockerlinkError                  base; `retriable`: can trying again help?
    ├── ConfigError                  a setting or config file is wrong; fix and restart
    │   └── PortUnavailable          a server cannot listen on its host:port
    ├── DependencyError              Kafka, Redis, Clover or a locker misbehaved
    │   ├── BrokerError              the Kafka-compatible broker
    │   ├── CloverError              the Clover API (carries the HTTP status)
    │   ├── LockerError              a store's locker server (carries the store id)
    │   └── TokenUnavailable         no usable Clover token for a merchant now
    ├── CredentialError              a caller's credential is missing or wrong
    └── InputError                   bad input: dead-letter it, never crash on it

Lower layers translate their library's exceptions into these at one boundary and
chain the original with ``raise ... from exc``.
"""

from __future__ import annotations


class LockerlinkError(Exception):
    """Base of every error lockerlink raises on purpose."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retriable is not None:
            self.retriable = retriable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, retriable={self.retriable})"


class ConfigError(LockerlinkError):
    """A setting or configuration file is invalid; the process cannot start."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message, retriable=False)
        self.setting = setting


class PortUnavailable(ConfigError):
    """A server cannot listen where it is told to (the port is taken, or not ours)."""

    def __init__(self, message: str, *, host: str, port: int) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


class DependencyError(LockerlinkError):
    """A service lockerlink depends on failed; usually worth retrying."""

    retriable = True


class BrokerError(DependencyError):
    """The Kafka-compatible broker refused or could not be reached."""


class CloverError(DependencyError):
    """Clover answered with an error or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        merchant_id: str | None = None,
        retriable: bool | None = None,
    ) -> None:
        super().__init__(message, retriable=retriable)
        self.status = status
        self.merchant_id = merchant_id


class LockerError(DependencyError):
    """A store's locker server answered with an error or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        store_id: str,
        status: int | None = None,
        retriable: bool | None = None,
    ) -> None:
        super().__init__(message, retriable=retriable)
        self.store_id = store_id
        self.status = status


class InputError(LockerlinkError):
    """Input that cannot be processed as it is; it belongs in the dead-letter topic."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, retriable=False)
        self.reason = reason


class CredentialError(LockerlinkError):
    """A caller's credential is missing, malformed, unknown or revoked."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, retriable=False)
        self.reason = reason


class TokenUnavailable(DependencyError):
    """No usable Clover access token for a merchant right now.

    ``reason`` says why: ``not_connected``, ``reauth_required`` (a person must
    authorize the app again; not retriable) or ``refresh_failing`` (Clover is
    failing; retriable after ``retry_after_s``).
    """

    def __init__(
        self,
        message: str,
        *,
        merchant_id: str | None,
        reason: str,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, retriable=reason == "refresh_failing")
        self.merchant_id = merchant_id
        self.reason = reason
        self.retry_after_s = retry_after_s
