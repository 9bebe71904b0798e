"""Pick the nearest relay: probe every candidate's round-trip time in parallel, fastest first.

The API already ranks relays by region; the probe makes the final pick from what this client really
measures. A relay that does not answer in time, or says it is draining (503), is left out.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlparse, urlunparse

import httpx


@dataclass(frozen=True)
class Candidate:
    url: str
    region: str
    rtt_ms: float


def health_url(relay_url: str) -> str:
    """``ws://host:port/ws`` -> ``http://host:port/healthz`` (wss -> https)."""
    parts = urlparse(relay_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunparse((scheme, parts.netloc, "/healthz", "", "", ""))


async def probe(http: httpx.AsyncClient, url: str, samples: int = 3, timeout_s: float = 1.5) -> float | None:
    """Median RTT of a few /healthz requests on one connection, in ms; None if unusable."""
    rtts = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            response = await http.get(health_url(url), timeout=timeout_s)
            if response.status_code != 200:
                return None
            rtts.append((time.perf_counter() - started) * 1000)
    except Exception:  # unreachable, or a URL httpx cannot even request (bad port, broken IPv6 literal)
        return None
    return statistics.median(rtts)


async def rank_relays(relays: list[tuple[str, str]], budget_s: float = 2.0) -> list[Candidate]:
    """``(url, region)`` pairs -> reachable candidates, lowest RTT first, within ``budget_s`` overall."""
    async with httpx.AsyncClient() as http:
        tasks = [asyncio.ensure_future(probe(http, url)) for url, _ in relays]
        done, pending = await asyncio.wait(tasks, timeout=budget_s) if tasks else (set(), set())
        for task in pending:
            task.cancel()
    ranked = []
    for (url, region), task in zip(relays, tasks, strict=True):
        rtt = task.result() if task in done and not task.cancelled() and not task.exception() else None
        if rtt is not None:
            ranked.append(Candidate(url, region, rtt))
    return sorted(ranked, key=lambda c: c.rtt_ms)
