"""What a Clover sandbox is told to be: app, merchants, lifetimes and limits."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from sandbox.clover_limits import RateLimits
from sandbox.clover_webhooks import WebhookConfig
from sandbox.order_generator import GeneratorConfig

DAY_S = 86_400


@dataclass
class CloverConfig:
    """Settings of one Clover sandbox; defaults follow what integrators see.

    Where Clover does not document a value, the default is the stricter choice
    for a client (a small refresh-token cap, customer references without names).
    """

    app_id: str = "LOCKERLINKDEV"
    # A fresh secret per sandbox unless one is given, so nothing guessable ships.
    app_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    merchant_ids: tuple[str, ...] = ("SANDBOXMERCH1",)
    seed: int = 0

    access_token_lifetime_s: float = 30 * 60
    refresh_token_lifetime_s: float = 365 * DAY_S
    code_lifetime_s: float = 60
    recovery_window_s: float = 14 * DAY_S
    refresh_tokens_per_merchant: int = 5

    default_page_limit: int = 100
    max_page_limit: int = 1000
    expanded_list_cap: int = 100
    customers_expand_full: bool = False

    limits: RateLimits = field(default_factory=RateLimits)
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
