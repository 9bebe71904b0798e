"""Load on the control-plane API over loopback: requests per second, p50/p99 latency, CPU per request.

An asyncio + httpx load generator runs N closed-loop clients (each with one keep-alive connection from
its own 127.x address) against the API process. Every scenario runs for a warm-up, then a measured
window; the API's and moto's CPU time over that window, divided by the requests completed in it, gives a
cost per request that holds up on a busy shared machine. ``GET /healthz`` through the same stack is the
baseline: ratios say "a login costs X healthz".
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import httpx
from rich.progress import Progress, TaskID

from bench.common import (
    Account,
    BenchStack,
    CpuSnapshot,
    gather_limited,
    join,
    loopback_address,
    new_account,
    new_meeting,
    percentile,
)

BASELINE = "healthz"
# Rough upper bound of first joins per second (argon2 + ~10 DynamoDB calls), to size the pool of
# (user, meeting) pairs that have not met yet. Running out ends the window early (reported).
_MAX_JOIN_RPS = 50.0

Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


@dataclass
class Scenario:
    name: str
    what: str
    ok: int
    request: Request


@dataclass
class LoadResult:
    endpoint: str
    what: str
    concurrency: int
    requests: int  # successful ones, completed in the window
    errors: dict[str, int]  # other outcomes (status code or exception), completed in the window
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    api_cpu_ms: float  # API process CPU per completed request (successful or not)
    aws_cpu_ms: float  # moto (DynamoDB + S3 stand-in) CPU per completed request
    client_cpu_ms: float  # load generator CPU per completed request
    api_busy: float  # API CPU seconds per wall second (1.0 = one core saturated)
    pool_exhausted: bool = False
    ratios: dict[str, float] = field(default_factory=dict)


@dataclass
class Fixture:
    """Accounts and meetings the scenarios act on, created before any measurement."""

    workers: list[Account]
    room: dict[str, Any]  # every worker has joined it: rejoin and chat target
    fresh_pairs: asyncio.Queue[tuple[Account, dict[str, Any]]]
    host: Account | None = None  # the room's host: host controls


async def prepare(stack: BenchStack, concurrency: int, join_requests: int) -> Fixture:
    """Create one account per client, a shared meeting they all joined, and meetings to join fresh."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        host, *workers = await gather_limited(
            [partial(new_account, http, f"Worker{i}") for i in range(concurrency + 1)], limit=4
        )
        room = await new_meeting(http, host)
        await gather_limited([partial(join, http, room, w) for w in workers], limit=4)
        meeting_count = max(4, -(-join_requests // concurrency))
        meetings = await gather_limited([partial(new_meeting, http, host)] * meeting_count, limit=4)
        # Touch every table once: each PynamoDB model builds its botocore client on first use (~40 ms,
        # and concurrent first uses each build one), which belongs to a cold start, not to this benchmark.
        body = {"text": "warming up", "idempotency_key": secrets.token_urlsafe(16)}
        await http.post(f"/meetings/{room['meeting_id']}/chat", json=body, headers=workers[0].auth)
    pairs: asyncio.Queue[tuple[Account, dict[str, Any]]] = asyncio.Queue()
    for meeting in meetings:  # meeting-major, so concurrent joins spread over meetings
        for worker in workers:
            pairs.put_nowait((worker, meeting))
    return Fixture(workers=workers, room=room, fresh_pairs=pairs, host=host)


class PoolExhausted(Exception):
    """No (user, meeting) pair left that has not joined yet."""


def scenarios(fx: Fixture) -> list[Scenario]:
    room = fx.room["meeting_id"]

    def me(http: httpx.AsyncClient, w: int) -> Awaitable[httpx.Response]:
        return http.get("/auth/me", headers=fx.workers[w].auth)

    def login(http: httpx.AsyncClient, w: int) -> Awaitable[httpx.Response]:
        acct = fx.workers[w]
        return http.post("/auth/login", json={"email": acct.email, "password": acct.password})

    def first_join(http: httpx.AsyncClient, w: int) -> Awaitable[httpx.Response]:
        try:
            acct, meeting = fx.fresh_pairs.get_nowait()
        except asyncio.QueueEmpty:
            raise PoolExhausted from None
        url = f"/meetings/{meeting['meeting_id']}/join"
        return http.post(url, json={"passcode": meeting["passcode"]}, headers=acct.auth)

    def rejoin(http: httpx.AsyncClient, w: int) -> Awaitable[httpx.Response]:
        return http.post(f"/meetings/{room}/join", json={}, headers=fx.workers[w].auth)

    def chat(http: httpx.AsyncClient, w: int) -> Awaitable[httpx.Response]:
        body = {"text": "hello from the benchmark", "idempotency_key": secrets.token_urlsafe(16)}
        return http.post(f"/meetings/{room}/chat", json=body, headers=fx.workers[w].auth)

    def mute_all(http: httpx.AsyncClient, w: int) -> Awaitable[httpx.Response]:
        assert fx.host is not None
        return http.post(f"/meetings/{room}/mute", json={}, headers=fx.host.auth)

    def lock(http: httpx.AsyncClient, w: int) -> Awaitable[httpx.Response]:
        assert fx.host is not None
        return http.post(f"/meetings/{room}/lock", json={"locked": w % 2 == 0}, headers=fx.host.auth)

    return [
        Scenario(
            BASELINE,
            "GET /healthz: baseline (routing, middlewares, JSON, access log)",
            200,
            lambda http, w: http.get("/healthz"),
        ),
        Scenario("me", "GET /auth/me: JWT check, 1 DynamoDB read", 200, me),
        Scenario(
            "login", "POST /auth/login: argon2 verify, 5 DynamoDB calls (2 throttle writes)", 200, login
        ),
        Scenario(
            "join",
            "POST /meetings/{id}/join, first time: passcode argon2 verify, 11 DynamoDB calls "
            "(6 throttle writes, 1 transaction), EdDSA join token",
            200,
            first_join,
        ),
        Scenario(
            "rejoin", "POST /meetings/{id}/join, already in: 3 DynamoDB reads, EdDSA join token", 200, rejoin
        ),
        Scenario("post-chat", "POST /meetings/{id}/chat: 3 DynamoDB reads, 1 conditional put", 201, chat),
        Scenario(
            "mute-all",
            "POST /meetings/{id}/mute (host, all): 2 DynamoDB reads, an EdDSA notice POSTed to each relay",
            200,
            mute_all,
        ),
        Scenario("lock", "POST /meetings/{id}/lock (host): 2 DynamoDB reads, 1 update", 200, lock),
    ]


async def run_scenario(
    stack: BenchStack, scenario: Scenario, concurrency: int, warmup_s: float, measure_s: float
) -> LoadResult:
    """Closed loop: each client sends its next request as soon as the previous one is answered."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    stop = asyncio.Event()
    window: dict[str, float] = {}
    marks: dict[str, CpuSnapshot] = {}
    exhausted = False

    def end_window() -> None:
        if "end" not in window:
            window["end"] = time.perf_counter()
            marks["end"] = stack.cpu()
        stop.set()

    async def client(w: int) -> None:
        nonlocal exhausted
        transport = httpx.AsyncHTTPTransport(local_address=loopback_address(w))
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=stack.api_url, transport=transport, limits=limits, timeout=30
        ) as http:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    response = await scenario.request(http, w)
                    outcome = str(response.status_code) if response.status_code != scenario.ok else ""
                except PoolExhausted:
                    exhausted = True
                    end_window()
                    return
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                done = time.perf_counter()
                if "start" in window and "end" not in window:
                    if outcome:
                        errors[outcome] += 1
                    else:
                        latencies.append(done - started)

    async def timer() -> None:
        await asyncio.sleep(warmup_s)
        marks["start"] = stack.cpu()
        window["start"] = time.perf_counter()
        await asyncio.sleep(measure_s)
        end_window()

    clock = asyncio.create_task(timer())
    await asyncio.gather(*(client(w) for w in range(concurrency)))
    clock.cancel()
    if "start" not in window:
        raise RuntimeError(f"{scenario.name}: the fixture ran out during warm-up; raise the pool size")
    used = marks["end"] - marks["start"]
    seconds = window["end"] - window["start"]
    n = len(latencies)
    completed = n + sum(errors.values())  # refused requests cost CPU too
    per_req = 1000 / completed if completed else float("nan")
    return LoadResult(
        endpoint=scenario.name,
        what=scenario.what,
        concurrency=concurrency,
        requests=n,
        errors=dict(errors),
        seconds=round(seconds, 3),
        rps=n / seconds if seconds else float("nan"),
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        api_cpu_ms=used.api * per_req,
        aws_cpu_ms=used.aws * per_req,
        client_cpu_ms=used.client * per_req,
        api_busy=used.api / seconds if seconds else float("nan"),
        pool_exhausted=exhausted,
    )


def add_ratios(results: list[LoadResult]) -> None:
    """Ratios against the healthz row measured at the same concurrency."""
    base = {r.concurrency: r for r in results if r.endpoint == BASELINE}
    for r in results:
        b = base.get(r.concurrency)
        if b is None:
            continue
        r.ratios = {
            "p50": r.p50_ms / b.p50_ms,
            "api_cpu": r.api_cpu_ms / b.api_cpu_ms,
            "total_cpu": (r.api_cpu_ms + r.aws_cpu_ms) / (b.api_cpu_ms + b.aws_cpu_ms),
            "rps": r.rps / b.rps,
        }


async def run(
    stack: BenchStack,
    concurrency_levels: list[int],
    warmup_s: float,
    measure_s: float,
    progress: Progress | None = None,
    only: set[str] | None = None,
) -> list[LoadResult]:
    """Every scenario at every concurrency level; fixtures sized for the first-join pool."""
    top = max(concurrency_levels)
    join_requests = int(_MAX_JOIN_RPS * (warmup_s + measure_s) * len(concurrency_levels))
    task: TaskID | None = progress.add_task("API load: set-up", total=None) if progress else None
    fx = await prepare(stack, top, join_requests)
    plan = [(s, c) for c in concurrency_levels for s in scenarios(fx) if only is None or s.name in only]
    if progress and task is not None:
        progress.update(task, total=len(plan), completed=0)
    results = []
    for scenario, concurrency in plan:
        if progress and task is not None:
            progress.update(task, description=f"API load: {scenario.name} x{concurrency}")
        results.append(await run_scenario(stack, scenario, concurrency, warmup_s, measure_s))
        if progress and task is not None:
            progress.advance(task)
    if progress and task is not None:
        progress.update(task, description="API load: done")
    add_ratios(results)
    return results


def to_json(results: list[LoadResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]
