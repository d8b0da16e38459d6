"""The operators' status page: every store's tokens, polls, deliveries and latency.

Served behind the admin credential (HTTP Basic; any user name, the credential as the
password), as HTML for people and `/api/status` JSON for scripts. The latency chart
is an inline SVG drawn here: no script, no external asset.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from aiohttp import web

from lockerlink.registry import StoreRegistry
from lockerlink.status import Board, LatencyMinute, StatusBoard


@dataclass(frozen=True)
class TokenState:
    """A merchant's token as the token service reports it (never the token)."""

    merchant_id: str
    state: str
    access_expires_at_ms: int | None
    last_refresh_ms: int | None


TokenStates = Callable[[], Awaitable[dict[str, TokenState]]]


async def _no_token_states() -> dict[str, TokenState]:
    return {}


@dataclass
class StoreRow:
    store_id: str
    name: str
    merchants: list[str]
    token_state: str
    token_expires_in_s: int | None
    last_poll_age_s: int | None
    last_delivery_age_s: int | None
    delivered: int
    lag: int | None
    breaker: str
    dead_letters: int


def _age_s(then_ms: int | None, now_ms: int) -> int | None:
    return None if then_ms is None else max(0, (now_ms - then_ms) // 1000)


def build_rows(
    registry: StoreRegistry, board: Board, tokens: dict[str, TokenState], now_ms: int
) -> list[StoreRow]:
    """One row per store: configured stores first, then any the board has seen."""
    by_store = {s.store_id: s for s in board.stores}
    ids = [s.store_id for s in registry.stores]
    ids += sorted(set(by_store) - set(ids))
    rows = []
    for store_id in ids:
        config = registry.store(store_id)
        merchants = list(config.merchant_ids) if config else []
        status = by_store.get(store_id)
        states = [tokens[m] for m in merchants if m in tokens]
        worst = _worst_state([t.state for t in states]) if states else "unknown"
        expiries = [t.access_expires_at_ms for t in states if t.access_expires_at_ms]
        polls = [board.polls_ms[m] for m in merchants if m in board.polls_ms]
        rows.append(
            StoreRow(
                store_id=store_id,
                name=config.name if config else "",
                merchants=merchants,
                token_state=worst,
                token_expires_in_s=(min(expiries) - now_ms) // 1000
                if expiries
                else None,
                last_poll_age_s=_age_s(max(polls) if polls else None, now_ms),
                last_delivery_age_s=_age_s(
                    status.last_delivery_ms if status else None, now_ms
                ),
                delivered=status.delivered if status else 0,
                lag=status.lag if status else None,
                breaker=status.breaker if status else "closed",
                dead_letters=status.dead_letters if status else 0,
            )
        )
    return rows


def _worst_state(states: list[str]) -> str:
    order = ["reauth_required", "refresh_failing", "connected"]
    for state in order:
        if state in states:
            return state
    return states[0]


def latency_svg(minutes: list[LatencyMinute], now_ms: int, width: int = 720) -> str:
    """p50 and p99 end-to-end latency per minute over the last hour, as SVG."""
    height, pad = 200, 36
    current = now_ms // 60_000
    top_ms = max([m.p99_ms for m in minutes] + [100.0])

    def point(minute: int, value_ms: float) -> str:
        x = pad + (width - 2 * pad) * (60 - (current - minute)) / 60
        y = height - pad - (height - 2 * pad) * value_ms / top_ms
        return f"{x:.1f},{y:.1f}"

    def line(values: list[tuple[int, float]], colour: str, label: str) -> str:
        if not values:
            return ""
        points = " ".join(point(minute, ms) for minute, ms in values)
        return (
            f'<polyline class="{label}" fill="none" stroke="{colour}" '
            f'stroke-width="2" points="{points}"><title>{label}</title></polyline>'
        )

    p50 = [(m.minute, m.p50_ms) for m in minutes]
    p99 = [(m.minute, m.p99_ms) for m in minutes]
    return (
        f'<svg id="latency-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="end-to-end latency, last hour">'
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa"/>'
        f'<text x="{pad}" y="20" font-size="12">end-to-end latency (ms), last hour; '
        f"top = {top_ms:,.0f} ms</text>"
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        f'stroke="#999"/>'
        f"{line(p50, '#2a7ae2', 'p50')}{line(p99, '#d9534f', 'p99')}"
        f'<text x="{width - pad - 150}" y="20" font-size="12" fill="#2a7ae2">p50</text>'
        f'<text x="{width - pad - 110}" y="20" font-size="12" fill="#d9534f">p99</text>'
        f'<text x="{pad}" y="{height - 10}" font-size="11">-60 min</text>'
        f'<text x="{width - pad - 20}" y="{height - 10}" font-size="11">now</text>'
        "</svg>"
    )


def _cell(value: object) -> str:
    return "&ndash;" if value is None else html.escape(str(value))


def render_page(rows: list[StoreRow], board: Board, now_ms: int) -> str:
    header = (
        "<tr><th>store</th><th>merchants</th><th>token</th><th>expires in (s)</th>"
        "<th>last poll (s ago)</th><th>last delivery (s ago)</th><th>delivered</th>"
        "<th>lag</th><th>breaker</th><th>dead letters</th></tr>"
    )
    body = "".join(
        f'<tr data-store="{html.escape(r.store_id)}" class="breaker-{r.breaker}">'
        f"<td>{_cell(r.store_id)} {_cell(r.name)}</td>"
        f"<td>{_cell(', '.join(r.merchants))}</td>"
        f'<td class="token-{_cell(r.token_state)}">{_cell(r.token_state)}</td>'
        f"<td>{_cell(r.token_expires_in_s)}</td><td>{_cell(r.last_poll_age_s)}</td>"
        f"<td>{_cell(r.last_delivery_age_s)}</td><td>{r.delivered}</td>"
        f"<td>{_cell(r.lag)}</td><td>{_cell(r.breaker)}</td>"
        f"<td>{r.dead_letters}</td></tr>"
        for r in rows
    )
    stamp = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="10">
<title>lockerlink status</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; }}
tr.breaker-open td {{ background: #fde2e1; }}
tr.breaker-half_open td {{ background: #fff4d6; }}
td.token-reauth_required {{ color: #b00; font-weight: bold; }}
</style></head>
<body><h1>lockerlink status</h1>
<p>As of {stamp} UTC; refreshes every 10 s.</p>
<table id="stores">{header}{body}</table>
{latency_svg(board.latency, now_ms)}
</body></html>"""


def _authorized(request: web.Request, credential: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, _, password = decoded.partition(":")
    return hmac.compare_digest(password.encode(), credential.encode())


def make_status_app(
    board: StatusBoard,
    registry: StoreRegistry,
    admin_credential: str,
    token_states: TokenStates = _no_token_states,
) -> web.Application:
    """The status page application."""

    @web.middleware
    async def require_admin(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if request.path in ("/healthz", "/readyz"):
            return await handler(request)
        if not _authorized(request, admin_credential):
            return web.json_response(
                {"error": "unauthorized", "message": "admin credential required"},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="lockerlink"'},
            )
        return await handler(request)

    async def snapshot() -> tuple[list[StoreRow], Board, int]:
        now_ms = int(time.time() * 1000)
        current = await board.read(minutes=60, now_ms=now_ms)
        rows = build_rows(registry, current, await token_states(), now_ms)
        return rows, current, now_ms

    async def page(_request: web.Request) -> web.Response:
        rows, current, now_ms = await snapshot()
        return web.Response(
            text=render_page(rows, current, now_ms), content_type="text/html"
        )

    async def api(_request: web.Request) -> web.Response:
        rows, current, _ = await snapshot()
        return web.json_response(
            {
                "stores": [asdict(r) for r in rows],
                "latency": [asdict(m) for m in current.latency],
            }
        )

    app = web.Application(middlewares=[require_admin])
    app.router.add_get("/", page)
    app.router.add_get("/api/status", api)
    return app
