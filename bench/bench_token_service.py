"""The token service: HTTPS token reads, a refresh stampede, refreshes spreading.

1. Throughput: one `lockerlink token-service` process; a keep-alive aiohttp client
   asks for the current token over TLS as fast as it can. Baseline, in the same run
   and alternating round by round: a bare aiohttp TLS server in its own process
   whose handler does one Redis GET. Then the service at half its measured peak,
   for p50/p99.
2. Stampede: 1,000 callers at once ask for one merchant's token right after it
   expired, once on new TLS connections and once on keep-alive connections opened
   beforehand (lockers are long-lived clients). Counted at the Clover sandbox (its
   own process): refreshes. Baselines in the same run: the sandbox's own refresh
   latency, and the bare aiohttp handler answering the same 1,000 callers at once
   (what this machine can do at all), beside the service with a still-valid token.
   What the stampede itself adds is its slowest answer minus the slowest answer of
   that valid-token burst; the target compares it with the refresh latency + 100 ms.
3. Spread: 5,000 merchants connected at once with 30-minute tokens; the proactive
   refresher runs on a virtual clock shared with an in-process Clover sandbox over
   two virtual hours; refreshes per virtual minute against the average, and the
   resident memory of that process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from multiprocessing import Queue
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp
import uvloop
from aiohttp import web

from bench.report import Section
from lockerlink.embedded import EmbeddedRedis, free_port, wait_for_port
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from sandbox.clover_limits import RateLimits
from schemas.token_rotation import TokenRotationEvent
from token_service.clover_oauth import CloverOAuth
from token_service.lockers import LockerRegistry
from token_service.pair import TokenPair
from token_service.refresher import ProactiveRefresher
from token_service.rotation_events import CallbackRotationPublisher
from token_service.service import REDIS_CONNECTIONS
from token_service.tls import TlsFiles, client_context, ensure_dev_certificate
from token_service.tls import server_context as tls_server_context
from token_service.vault import Vault

MERCHANT = "BENCHMERCHAN1"
PROBE_MERCHANT = "BENCHMERCHAN2"
STORE = "bench-store"
CONNECTIONS = 32
ROUND_S = 2.0
ROUNDS = 5
STAMPEDE = 1_000
STAMPEDE_ROUNDS = 3
SPREAD_MERCHANTS = 5_000
SPREAD_HORIZON_S = 2 * 3600
SPREAD_STEP_S = 10
ADMIN = "bench-admin-" + "a" * 24


# -- processes ----------
def _serve_sandbox(port: int, ready: EventType) -> None:
    async def serve() -> None:
        config = CloverConfig(
            merchant_ids=(MERCHANT, PROBE_MERCHANT), limits=RateLimits.lifted()
        )
        await CloverSandbox(config).start("127.0.0.1", port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


def _serve_baseline(
    port: int, files: TlsFiles, redis_url: str, key: str, pool_size: int = 0
) -> None:
    """The bare handler; ``pool_size`` > 0: a blocking pool of that many, as the
    service has (redis-py's default pool refuses a 101st concurrent command)."""
    import redis.asyncio as aioredis

    async def serve() -> None:
        redis = aioredis.Redis.from_url(redis_url)
        if pool_size:
            pool = aioredis.BlockingConnectionPool.from_url(
                redis_url, max_connections=pool_size
            )
            redis = aioredis.Redis(connection_pool=pool)

        async def token(_request: web.Request) -> web.Response:
            value = await redis.get(key)
            return web.json_response({"access_token": str(value)})

        app = web.Application()
        app.router.add_get("/v1/token", token)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        context = tls_server_context(files)
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
        await asyncio.Event().wait()

    uvloop.run(serve())  # the same event loop as the token service


def _start_token_service(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lockerlink", "token-service"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("BENCH_TOKEN_SERVICE_LOG", os.devnull), "ab"),  # noqa: SIM115
    )
    wait_for_port("127.0.0.1", port, 30, "token service")
    return process


def _rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- load ----------
async def _closed_loop(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    seconds: float,
    callers: int = CONNECTIONS,
) -> tuple[float, list[float]]:
    """Requests per second and latencies with ``callers`` asking back to back."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def _at_half_peak(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    peak_rps: float,
) -> tuple[int, float, list[float]]:
    """The closed-loop run whose rate is nearest half the peak: callers, rps, lat.

    A paced (open-loop) generator in this process cannot keep a steady rate on a
    loaded machine, so the load is set by the number of callers instead.
    """
    runs = []
    for callers in (1, 2, 4, 8):
        rps, latencies = await _closed_loop(session, url, headers, ROUND_S, callers)
        runs.append((abs(rps - peak_rps / 2), callers, rps, latencies))
    _, callers, rps, latencies = min(runs, key=lambda run: run[0])
    return callers, rps, latencies


def _ms(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


# -- set-up ----------
class _Stack:
    """Redis, the Clover sandbox, TLS files and a vault in this process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis = EmbeddedRedis("127.0.0.1", free_port(), root / "valkey")
        self.clover_port = free_port()
        self.service_port = free_port()
        self.baseline_port = free_port()
        self.burst_baseline_port = free_port()
        self.files = ensure_dev_certificate(root / "data" / "tls", "127.0.0.1")
        # Fresh interpreters, as the token service is: a forked child would carry
        # this process's heap, and its garbage collections, into the baselines.
        self.processes = multiprocessing.get_context("spawn")
        self.children: list[multiprocessing.process.BaseProcess] = []

    def env(self) -> dict[str, str]:
        return {
            "LOCKERLINK_REDIS_URL": self.redis.url,
            "LOCKERLINK_DATA_DIR": str(self.root / "data"),
            "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "LOCKERLINK_CLOVER_API_BASE_URL": f"http://127.0.0.1:{self.clover_port}",
            "LOCKERLINK_TOKEN_SERVICE_PORT": str(self.service_port),
            "LOCKERLINK_ADMIN_CREDENTIAL": ADMIN,
            "LOCKERLINK_LOCKER_RATE_PER_S": "1000000",
            "LOCKERLINK_LOCKER_BURST": "1000000",
            "LOCKERLINK_LOG_LEVEL": "WARNING",
        }

    def settings(self) -> Settings:
        return Settings(
            redis_url=self.redis.url,
            data_dir=self.root / "data",
            clover_api_base_url=f"http://127.0.0.1:{self.clover_port}",
        )

    def spawn(self, target: Callable[..., None], *args: object) -> None:
        child = self.processes.Process(target=target, args=args, daemon=True)
        child.start()
        self.children.append(child)

    def stop(self) -> None:
        for child in self.children:
            child.terminate()
            child.join(timeout=5)
        self.redis.stop()


async def _connect(stack: _Stack, vault: Vault, merchant: str) -> TokenPair:
    url = f"http://127.0.0.1:{stack.clover_port}/_sandbox/merchants/{merchant}/connect"
    async with aiohttp.ClientSession() as session, session.post(url) as resp:
        pair = TokenPair.from_clover(await resp.json())
    await vault.connect(merchant, STORE, pair)
    return pair


async def _sandbox_calls(stack: _Stack, endpoint: str, merchant: str) -> int:
    url = f"http://127.0.0.1:{stack.clover_port}/_sandbox/calls"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        rows = (await resp.json())["elements"]
    return sum(
        r["count"]
        for r in rows
        if r["endpoint"] == endpoint and r["merchant_id"] == merchant
    )


# -- 1. throughput ----------
async def _throughput(stack: _Stack, credential: str, section: Section) -> None:
    baseline_port = stack.baseline_port
    stack.spawn(
        _serve_baseline,
        baseline_port,
        stack.files,
        stack.redis.url,
        "bench:baseline-token",
    )
    wait_for_port("127.0.0.1", baseline_port, 30, "baseline server")
    assert stack.files.ca is not None
    headers = {"Authorization": f"Bearer {credential}"}
    service_url = f"https://127.0.0.1:{stack.service_port}/v1/token"
    baseline_url = f"https://127.0.0.1:{baseline_port}/v1/token"
    connector = aiohttp.TCPConnector(
        limit=CONNECTIONS, ssl=client_context(stack.files.ca)
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        await _closed_loop(session, service_url, headers, 1.0)  # warm-up
        await _closed_loop(session, baseline_url, headers, 1.0)
        rounds = []
        for _ in range(ROUNDS):
            base_rps, base_lat = await _closed_loop(
                session, baseline_url, headers, ROUND_S
            )
            rps, lat = await _closed_loop(session, service_url, headers, ROUND_S)
            rounds.append((rps / base_rps, rps, lat, base_rps, base_lat))
        ratio, rps, lat, base_rps, base_lat = sorted(rounds, key=lambda r: r[0])[
            len(rounds) // 2
        ]
        callers, half_rps, half = await _at_half_peak(
            session, service_url, headers, rps
        )
    section.add(
        f"bare aiohttp TLS handler, one Redis GET, {CONNECTIONS} keep-alive callers",
        f"{base_rps:,.0f} req/s; p50 {_ms(base_lat, 0.5):.2f} ms, "
        f"p99 {_ms(base_lat, 0.99):.2f} ms",
        "baseline",
    )
    section.add(
        "token service: authenticated current token (median round of "
        f"{ROUNDS} paired rounds)",
        f"{rps:,.0f} req/s; p50 {_ms(lat, 0.5):.2f} ms, p99 {_ms(lat, 0.99):.2f} ms",
        f"{ratio:.2f} x baseline req/s (target >= 0.5)",
    )
    section.add(
        f"token service near half its peak: {callers} caller(s), {half_rps:,.0f} req/s",
        f"p50 {_ms(half, 0.5):.2f} ms, p99 {_ms(half, 0.99):.2f} ms",
        f"p99 target < 10 ms: {'met' if _ms(half, 0.99) < 10 else 'NOT met'}",
    )


# -- 2. stampede ----------
async def _refresh_latency_s(stack: _Stack) -> list[float]:
    # The probe merchant is not in the vault: its refresh tokens are spent here.
    url = f"http://127.0.0.1:{stack.clover_port}/_sandbox/merchants/"
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}{PROBE_MERCHANT}/connect") as resp,
    ):
        pair = TokenPair.from_clover(await resp.json())
    clover = CloverOAuth(stack.settings())
    latencies = []
    try:
        for _ in range(20):
            started = time.perf_counter()
            pair = await clover.refresh(pair.refresh_token, PROBE_MERCHANT)
            latencies.append(time.perf_counter() - started)
    finally:
        await clover.close()
    return latencies


async def _expire_now(vault: Vault) -> str:
    current = await vault.pairs.read(MERCHANT)
    assert current is not None
    expired = TokenPair(
        access_token=current.pair.access_token,
        access_expires_at_ms=int(time.time() * 1000) - 1,
        refresh_token=current.pair.refresh_token,
        refresh_expires_at_ms=current.pair.refresh_expires_at_ms,
    )
    await vault.pairs.write_if(MERCHANT, expired, current.refresh_fingerprint)
    return current.pair.access_token


async def _burst(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> list[tuple[float, str]]:
    """Latency and token of STAMPEDE callers released at the same moment."""
    go = asyncio.Event()
    answers: list[tuple[float, str]] = []
    started = 0.0

    async def caller() -> None:
        await go.wait()
        async with session.get(url, headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        answers.append((time.perf_counter() - started, body["access_token"]))

    tasks = [asyncio.create_task(caller()) for _ in range(STAMPEDE)]
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    return answers


def _session(stack: _Stack) -> aiohttp.ClientSession:
    assert stack.files.ca is not None
    connector = aiohttp.TCPConnector(limit=STAMPEDE, ssl=client_context(stack.files.ca))
    return aiohttp.ClientSession(connector=connector)


async def _open_connections(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> int:
    """Open STAMPEDE keep-alive connections (one request each); how many are open."""
    await _burst(session, url, headers)
    connector = session.connector
    assert isinstance(connector, aiohttp.TCPConnector)
    return sum(len(idle) for idle in connector._conns.values())


class _Bursts:
    """STAMPEDE callers at once against one URL, on new or on open connections."""

    def __init__(self, stack: _Stack, url: str, headers: dict[str, str]) -> None:
        self.stack = stack
        self.url = url
        self.headers = headers
        self.warm = _session(stack)
        self.open = 0

    async def cold(self) -> list[tuple[float, str]]:
        async with _session(self.stack) as session:
            return await _burst(session, self.url, self.headers)

    async def warmed(self) -> list[tuple[float, str]]:
        if not self.open:
            self.open = await _open_connections(self.warm, self.url, self.headers)
        return await _burst(self.warm, self.url, self.headers)

    async def close(self) -> None:
        await self.warm.close()


def _median_burst(bursts: list[list[tuple[float, str]]]) -> list[tuple[float, str]]:
    """The burst whose slowest answer is the median of the bursts'."""
    return sorted(bursts, key=_slowest_ms)[len(bursts) // 2]


def _slowest_ms(answers: list[tuple[float, str]]) -> float:
    return 1000 * max(t for t, _ in answers)


def _timing(answers: list[tuple[float, str]]) -> str:
    median_ms = 1000 * statistics.median(t for t, _ in answers)
    return f"slowest {_slowest_ms(answers):.0f} ms, median {median_ms:.0f} ms"


async def _expired_burst(
    stack: _Stack,
    vault: Vault,
    run: Callable[[], Awaitable[list[tuple[float, str]]]],
) -> tuple[list[tuple[float, str]], int, bool]:
    """Answers, refreshes that reached Clover, whether every answer is new."""
    old = await _expire_now(vault)
    before = await _sandbox_calls(stack, "refresh", MERCHANT)
    answers = await run()
    refreshes = await _sandbox_calls(stack, "refresh", MERCHANT) - before
    tokens = {token for _, token in answers}
    return answers, refreshes, len(tokens) == 1 and old not in tokens


async def _stampede(
    stack: _Stack, vault: Vault, credential: str, section: Section
) -> None:
    refresh_s = await _refresh_latency_s(stack)
    headers = {"Authorization": f"Bearer {credential}"}
    port = stack.burst_baseline_port
    stack.spawn(
        _serve_baseline,
        port,
        stack.files,
        stack.redis.url,
        "bench:baseline-token",
        REDIS_CONNECTIONS,
    )
    wait_for_port("127.0.0.1", port, 30, "baseline server")
    base = _Bursts(stack, f"https://127.0.0.1:{port}/v1/token", headers)
    service = _Bursts(
        stack, f"https://127.0.0.1:{stack.service_port}/v1/token", headers
    )
    try:
        base_cold = await base.cold()
        valid_cold = await service.cold()
        expired_cold = await _expired_burst(stack, vault, service.cold)
        # Bursts on open connections are quick: three rounds, the median of each.
        warm_rounds = [
            (
                await base.warmed(),
                await service.warmed(),
                await _expired_burst(stack, vault, service.warmed),
            )
            for _ in range(STAMPEDE_ROUNDS)
        ]
    finally:
        await base.close()
        await service.close()
    sandbox_ms = 1000 * statistics.median(refresh_s)
    section.add(
        "Clover sandbox refresh, called directly (median of 20)",
        f"{sandbox_ms:.1f} ms (max {1000 * max(refresh_s):.1f} ms)",
        "baseline",
    )
    base_warm = _median_burst([bare for bare, _, _ in warm_rounds])
    valid_warm = _median_burst([valid for _, valid, _ in warm_rounds])
    expired_warm = sorted(
        (expired for _, _, expired in warm_rounds), key=lambda e: _slowest_ms(e[0])
    )[len(warm_rounds) // 2]
    warm = f"open keep-alive connections (median of {STAMPEDE_ROUNDS} rounds)"
    for how, bare, valid, expired, opened in (
        ("new TLS connections", base_cold, valid_cold, expired_cold, None),
        (warm, base_warm, valid_warm, expired_warm, service),
    ):
        _stampede_rows(section, how, sandbox_ms, bare, valid, expired)
        if opened is not None:
            section.notes.append(
                f"open keep-alive connections: {base.open} to the bare server and "
                f"{opened.open} to the token service were open before the bursts"
            )


def _stampede_rows(
    section: Section,
    how: str,
    sandbox_ms: float,
    bare: list[tuple[float, str]],
    valid: list[tuple[float, str]],
    expired: tuple[list[tuple[float, str]], int, bool],
) -> None:
    answers, refreshes, all_new = expired
    bare_ms = _slowest_ms(bare)
    valid_ms = _slowest_ms(valid)
    slowest_ms = _slowest_ms(answers)
    literal = "met" if slowest_ms - sandbox_ms <= 100 else "NOT met"
    # Answering 1,000 callers at once takes this machine longer than 100 ms even
    # with no refresh at all (the bare handler's row), so the part of the slowest
    # answer the stampede itself adds is the slowest answer minus that of the same
    # burst with a valid token, on the same connections.
    added_ms = slowest_ms - valid_ms
    own = "met" if added_ms <= sandbox_ms + 100 else "NOT met"
    section.add(
        f"bare aiohttp TLS handler, one Redis GET ({REDIS_CONNECTIONS}-connection "
        f"blocking pool, as the service's): {STAMPEDE} callers at once, {how}",
        _timing(bare),
        "baseline",
    )
    section.add(
        f"token service, token still valid: {STAMPEDE} callers at once, {how}",
        _timing(valid),
        f"slowest {valid_ms / bare_ms:.2f} x the bare handler's",
    )
    section.add(
        f"stampede, token just expired: {STAMPEDE} callers at once, {how}",
        f"{refreshes} refresh(es) reached Clover; {len(answers)} answers, all the "
        f"one new token: {all_new}; {_timing(answers)}",
        f"added by the stampede: {added_ms:+.0f} ms over the valid-token burst "
        f"(target <= sandbox refresh + 100 ms = {sandbox_ms + 100:.0f} ms: {own}); "
        f"slowest - sandbox refresh = {slowest_ms - sandbox_ms:.0f} ms (literal "
        f"target <= 100 ms: {literal}; the bare handler alone needs "
        f"{bare_ms:.0f} ms); slowest {slowest_ms / bare_ms:.2f} x the bare "
        "handler's",
    )


# -- 3. spread ----------
class _VirtualClock:
    def __init__(self) -> None:
        self.now_s = time.time()

    def __call__(self) -> float:
        return self.now_s


def _spread_process(root: str, redis_url: str, results: Queue[object]) -> None:
    results.put(asyncio.run(_spread(Path(root), redis_url)))


def _spread_elsewhere(root: Path, redis_url: str, section: Section) -> None:
    """Run the spread in a fresh process, so its memory is its own."""
    context = multiprocessing.get_context("spawn")
    results: Queue[object] = context.Queue()
    child = context.Process(
        target=_spread_process, args=(str(root), redis_url, results)
    )
    child.start()
    outcome = results.get(timeout=1800)
    assert isinstance(outcome, tuple)
    per_minute, rss_before, rss_after, expired = outcome
    child.join(timeout=30)
    _report_spread(section, per_minute, rss_before, rss_after, expired)


async def _spread(root: Path, redis_url: str) -> tuple[Counter[int], float, float, int]:
    import redis.asyncio as aioredis

    rss_before = _rss_mb()
    clock = _VirtualClock()
    config = CloverConfig(merchant_ids=(), limits=RateLimits.lifted())
    sandbox = CloverSandbox(config, clock=clock)
    clover_url = await sandbox.start()
    settings = Settings(
        redis_url=redis_url,
        data_dir=root / "spread",
        clover_api_base_url=clover_url,
        token_refresh_concurrency=16,
    )
    redis = aioredis.Redis.from_url(redis_url)

    async def ignore(_event: TokenRotationEvent) -> None:
        return None

    vault = Vault(
        settings,
        redis,
        KeySpace("spread"),
        publisher=CallbackRotationPublisher(ignore),
        clock=clock,
    )
    refresher = ProactiveRefresher(vault, settings.token_refresh_concurrency)
    try:
        for i in range(SPREAD_MERCHANTS):
            merchant = sandbox.add_merchant()
            pair = TokenPair.from_clover(dict(sandbox.connect_merchant(merchant)))
            await vault.connect(merchant, f"store-{i}", pair)
        per_minute: Counter[int] = Counter()
        started_s = clock.now_s
        for step in range(SPREAD_HORIZON_S // SPREAD_STEP_S):
            clock.now_s = started_s + (step + 1) * SPREAD_STEP_S
            before = sandbox.calls.count("refresh", outcome="ok")
            while await refresher.run_once() >= refresher.batch_size:
                pass
            done = sandbox.calls.count("refresh", outcome="ok") - before
            per_minute[int((clock.now_s - started_s) // 60)] += done
        rss_after = _rss_mb()
        expired = await _expired_tokens(vault, clock)
    finally:
        await vault.close()
        await sandbox.stop()
        await redis.aclose()
    return per_minute, rss_before, rss_after, expired


async def _expired_tokens(vault: Vault, clock: _VirtualClock) -> int:
    expired = 0
    for merchant in await vault.merchants.all():
        snapshot = await vault.pairs.read(merchant.merchant_id)
        if snapshot is None or snapshot.pair.access_expires_at_ms <= clock.now_s * 1000:
            expired += 1
    return expired


def _report_spread(
    section: Section,
    per_minute: Counter[int],
    rss_before: float,
    rss_after: float,
    expired: int,
) -> None:
    first = min(m for m, n in per_minute.items() if n)
    minutes = [per_minute[m] for m in range(first, max(per_minute) + 1)]
    average = sum(minutes) / len(minutes)
    last_hour = minutes[-60:]
    section.add(
        f"{SPREAD_MERCHANTS} merchants connected at once, 30-minute tokens, "
        f"{SPREAD_HORIZON_S // 3600} virtual hours",
        f"{sum(minutes):,} refreshes; average {average:.0f}/min from the first "
        f"refresh; busiest minute {max(minutes)}; busiest in the last hour "
        f"{max(last_hour)} (average {sum(last_hour) / len(last_hour):.0f}); "
        f"tokens expired at the end: {expired}",
        f"busiest minute = {max(minutes) / average:.2f} x average (target <= 2)",
    )
    section.add(
        "resident memory: vault, refresher and in-process Clover sandbox with "
        f"{SPREAD_MERCHANTS} merchants",
        f"{rss_after:.0f} MB (process before the merchants: {rss_before:.0f} MB)",
        f"target < 200 MB: {'met' if rss_after < 200 else 'NOT met'}",
    )


# -- the run ----------
async def _with_service(
    stack: _Stack,
    section: Section,
    work: Callable[[Vault, str, int], Awaitable[None]],
) -> None:
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(stack.redis.url)

    async def ignore(_event: TokenRotationEvent) -> None:
        return None

    vault = Vault(
        stack.settings(),
        redis,
        KeySpace(),
        publisher=CallbackRotationPublisher(ignore),
    )
    await _connect(stack, vault, MERCHANT)
    lockers = LockerRegistry(redis, KeySpace(), 60)
    credential = (await lockers.enroll(STORE)).credential
    pair = await vault.pairs.read(MERCHANT)
    assert pair is not None
    await redis.set("bench:baseline-token", pair.pair.access_token)
    service = _start_token_service(stack.env(), stack.service_port)
    try:
        await work(vault, credential, service.pid)
    finally:
        service.terminate()
        service.wait(timeout=10)
        await vault.close()
        await redis.aclose()


async def run() -> Section:
    section = Section(
        "token_service",
        "Token service: HTTPS token reads, refresh stampede, refresh spread",
        ".venv/bin/python -m bench token_service",
    )
    load_before = os.getloadavg()[0]
    with TemporaryDirectory() as tmp:
        stack = _Stack(Path(tmp))
        stack.redis.start()
        try:
            ready = stack.processes.Event()
            stack.spawn(_serve_sandbox, stack.clover_port, ready)
            ready.wait(30)

            async def both(vault: Vault, credential: str, pid: int) -> None:
                await _throughput(stack, credential, section)
                after_reads_mb = _rss_mb(pid)
                await _stampede(stack, vault, credential, section)
                section.notes.append(
                    f"token service process resident memory: {after_reads_mb:.0f} MB "
                    f"after the throughput runs, {_rss_mb(pid):.0f} MB after the "
                    f"stampede ({STAMPEDE} TLS connections open at once)"
                )

            await _with_service(stack, section, both)
            _spread_elsewhere(Path(tmp), stack.redis.url, section)
        finally:
            stack.stop()
    section.notes.append(
        "Load generator, token service, Clover sandbox and Redis share the same "
        f"{os.cpu_count()} cores; throughput is client-bound as much as server-bound, "
        "so read the ratio."
    )
    section.notes.append(
        f"Machine load average (1 min) {load_before:.1f} before the run and "
        f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores shared with the "
        "rest of the team: figures taken under that load."
    )
    return section
