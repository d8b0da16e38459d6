"""The one settings object every lockerlink process reads.

Values come from ``LOCKERLINK_*`` environment variables, then an optional ``.env``
file, then the embedded defaults below, which run the whole system on one machine.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from lockerlink.errors import ConfigError

ENV_PREFIX = "LOCKERLINK_"


class Settings(BaseSettings):
    """Configuration of every lockerlink component."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # -- Kafka and Redis ---------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers, comma-separated host:port.",
    )
    kafka_topic_partitions: int = Field(
        3, ge=1, description="Partitions for topics lockerlink creates."
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL; `dev up` starts an embedded Valkey if none answers.",
    )
    redis_key_prefix: str = Field(
        "ll",
        min_length=1,
        description="Prefix of every Redis key, so deployments can share one Redis.",
    )

    # -- Clover -------------------------------------------------------------------
    clover_api_base_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8090"),
        description="Clover API host (OAuth token, refresh and REST).",
    )
    clover_authorize_base_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8090"),
        description="Clover host the merchant's browser is sent to for authorization.",
    )
    clover_app_id: str = Field("LOCKERLINKDEV", description="Clover app (client) id.")
    clover_app_secret: SecretStr | None = Field(
        None, description="Clover app secret. Never has a default."
    )
    clover_app_secret_file: Path | None = Field(
        None, description="File holding the Clover app secret (instead of the value)."
    )
    clover_webhook_auth_code: SecretStr | None = Field(
        None, description="Shared secret Clover sends in X-Clover-Auth."
    )
    clover_timeout_s: float = Field(
        10.0, gt=0, description="Timeout of one Clover HTTP request."
    )

    # -- Token service -------------------------------------------------------------
    token_service_host: str = Field("127.0.0.1", description="Token service bind host.")
    token_service_port: int = Field(
        8443, ge=0, le=65535, description="Token service HTTPS port."
    )
    token_service_tls_cert: Path | None = Field(
        None, description="Server certificate (PEM); a local CA makes one when unset."
    )
    token_service_tls_key: Path | None = Field(
        None, description="Private key of the server certificate (PEM)."
    )
    token_service_url: str = Field(
        "https://127.0.0.1:8443",
        description="Where lockers and the poller reach the token service.",
    )
    vault_keys: SecretStr | None = Field(
        None,
        description="Vault keys, `id:base64key` comma-separated, newest first.",
    )
    admin_credential: SecretStr | None = Field(
        None, description="Credential for admin endpoints and the status page."
    )
    token_refresh_margin_s: float = Field(
        300.0,
        ge=0,
        description="Refresh an access token at least this long before it expires.",
    )
    token_refresh_spread_s: float = Field(
        900.0,
        ge=0,
        description="Window before the margin in which each refresh is placed at "
        "random (capped at half the token's life).",
    )
    token_refresh_lease_s: float = Field(
        30.0,
        gt=0,
        description="Lease of the per-merchant refresh lock; longer than two "
        "Clover calls.",
    )
    token_retry_base_s: float = Field(
        2.0, gt=0, description="First back-off after a transient refresh failure."
    )
    token_retry_max_s: float = Field(
        300.0, gt=0, description="Longest back-off after transient refresh failures."
    )
    token_refresh_concurrency: int = Field(
        8, ge=1, description="Proactive refreshes one process runs at the same time."
    )
    oauth_state_ttl_s: int = Field(
        600, ge=1, description="How long a merchant authorization link stays valid."
    )
    locker_rate_per_s: float = Field(
        5.0, gt=0, description="Sustained requests per second one locker may make."
    )
    locker_burst: int = Field(
        20, ge=1, description="Requests one locker may make in a burst."
    )
    auth_failure_rate_per_min: float = Field(
        10.0,
        gt=0,
        description="Failed authentications per minute allowed from one address.",
    )
    auth_failure_burst: int = Field(
        10, ge=1, description="Failed authentications one address may make at once."
    )
    locker_rotation_grace_s: float = Field(
        86400.0,
        ge=0,
        description="How long a locker's old credential works after `rotate`.",
    )

    demo_locker_base_port: int = Field(
        9300,
        ge=1,
        le=65000,
        description="`dev up` demo: store N's locker sandbox listens on this + N.",
    )
    demo_orders_per_s: float = Field(
        0.1, ge=0, description="`dev up` demo: orders generated per second per store."
    )
    status_page_host: str = Field("127.0.0.1", description="Status page bind host.")
    status_page_port: int = Field(
        8088, ge=0, le=65535, description="Status page port (HTTP, admin credential)."
    )

    # -- Poller ------------------------------------------------------------------
    poller_interval_s: float = Field(
        5.0, gt=0, description="Shortest time between two polls of one merchant."
    )
    poller_lookback_s: float = Field(
        30.0, ge=0, description="Overlap each poll re-reads before its cursor."
    )
    poller_safety_lag_s: float = Field(
        2.0, ge=0, description="How far behind a poll's start its cursor stays."
    )
    poller_backfill_s: float = Field(
        86400.0, ge=0, description="History the first poll of a new merchant reads."
    )
    poller_page_size: int = Field(
        100, ge=1, le=1000, description="Orders per Clover page (limit)."
    )
    poller_app_requests_per_s: float = Field(
        40.0, gt=0, description="Clover requests/s for the whole app (Clover: 50)."
    )
    poller_app_concurrency: int = Field(
        8, ge=1, description="Concurrent Clover requests for the app (Clover: 10)."
    )
    poller_merchant_requests_per_s: float = Field(
        12.0, gt=0, description="Clover requests/s per merchant (Clover: 16)."
    )
    poller_merchant_concurrency: int = Field(
        4, ge=1, description="Concurrent Clover requests per merchant (Clover: 5)."
    )
    poller_backoff_max_s: float = Field(
        60.0, gt=0, description="Longest wait between retries of a failing merchant."
    )
    poller_lease_ttl_s: float = Field(
        15.0, gt=0, description="Life of a merchant lease a dead poller leaves behind."
    )
    poller_webhook_host: str = Field(
        "127.0.0.1", description="Bind host of the poller's Clover webhook endpoint."
    )
    poller_webhook_port: int = Field(
        8092, ge=0, le=65535, description="Port of the Clover webhook endpoint."
    )
    poller_ops_port: int = Field(
        8093, ge=0, le=65535, description="Poller's /healthz, /readyz, /metrics port."
    )
    poller_webhook_debounce_s: float = Field(
        0.05, ge=0, description="Wait that folds a burst of webhooks into one fetch."
    )
    poller_delete_sweep_s: float = Field(
        300.0,
        gt=0,
        description="How often a merchant's recent orders are checked for deletions.",
    )
    poller_published_retention_s: float = Field(
        604800.0, gt=0, description="How long published order versions are remembered."
    )

    # -- Stores ----------------------------------------------------------------------
    store_registry_path: Path | None = Field(
        None,
        description="YAML file mapping merchants to stores, lockers and PIN rules.",
    )
    store_registry_check_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="How often delivery re-reads the store registry file for changes.",
    )

    # -- Stream --------------------------------------------------------------------
    stream_pin_hold_s: int = Field(
        86_400,
        ge=1,
        description="How long a PIN stays reserved after its order's last event.",
    )
    stream_order_ttl_s: int = Field(
        604_800,
        ge=60,
        description="How long the stream remembers an order's versions and PIN.",
    )
    stream_batch_max: int = Field(
        500, ge=1, description="Most raw records the stream handles in one batch."
    )
    stream_session_timeout_s: float = Field(
        30.0,
        ge=1.0,
        description="Kafka group session timeout of the stream worker; a member "
        "silent this long loses its partitions.",
    )
    stream_send_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How long the stream's producer tries one send before the "
        "batch's unacknowledged outputs are sent again (after a pause).",
    )
    stream_web_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port of the Faust worker's web server; unset = off.",
    )
    stream_ops_port: int = Field(
        8094, ge=0, le=65535, description="Stream's /healthz, /readyz, /metrics port."
    )

    # -- Delivery to lockers ----------------------------------------------------------
    delivery_commit_interval_s: float = Field(
        1.0, gt=0, description="How often delivery commits the offsets lockers acked."
    )
    delivery_queue_limit: int = Field(
        500, ge=1, description="Events fetched ahead per store before it is paused."
    )
    delivery_retry_max_s: float = Field(
        30.0, gt=0, description="Longest wait between tries of a failing locker."
    )
    delivery_session_timeout_s: float = Field(
        10.0,
        ge=1,
        le=300,
        description="How long a silent delivery process keeps its stores.",
    )
    delivery_ops_port: int = Field(
        8095, ge=0, le=65535, description="Delivery's /healthz, /readyz, /metrics port."
    )
    delivery_locker_down_alert_s: float = Field(
        120.0,
        ge=0,
        description="How long a store's locker fails before the locker-down mail.",
    )

    # -- Operations -----------------------------------------------------------------
    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN; unset = off.")
    sentry_environment: str = Field(
        "development", description="Sentry environment name."
    )
    smtp_host: str | None = Field(None, description="SMTP host for alert e-mail.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    alert_email_from: str = Field(
        "lockerlink@localhost", description="Sender of alert e-mail."
    )
    alert_email_to: str | None = Field(
        None, description="Recipients of alert e-mail, comma-separated."
    )
    smtp_timeout_s: float = Field(10.0, gt=0, description="Timeout of one SMTP send.")
    alert_dead_letters_quiet_s: float = Field(
        900.0,
        gt=0,
        description="Time without a new dead letter before the all-clear mail.",
    )
    ops_host: str = Field(
        "127.0.0.1", description="Bind host of the services' ops endpoints."
    )
    data_dir: Path = Field(
        Path(".lockerlink"),
        description="Where local state, certificates and logs live.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port, got {server.strip()!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @cached_property
    def clover_secret(self) -> str | None:
        """The Clover app secret, from the value or the file; None if neither."""
        if self.clover_app_secret is not None:
            return self.clover_app_secret.get_secret_value()
        if self.clover_app_secret_file is None:
            return None
        try:
            return self.clover_app_secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{ENV_PREFIX}CLOVER_APP_SECRET_FILE: cannot read "
                f"{self.clover_app_secret_file}: {exc.strerror}",
                setting="clover_app_secret_file",
            ) from exc


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation failure into one clear ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        variable = f"{ENV_PREFIX}{name.upper()}"
        raise ConfigError(
            f"invalid setting {variable}: {first['msg']}", setting=name
        ) from None
