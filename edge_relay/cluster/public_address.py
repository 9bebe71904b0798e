"""This relay's public IPv4 address, asked of STUN servers: what the other relays gossip with, and what
ICE offers clients as the relay's server-reflexive candidate.

A Fargate task's interface has only its private address; the internet gateway maps the public one 1:1
(ports preserved). The relay learns it **once**, at start-up (:func:`learn_public_ip`): every configured
server is asked at the same time and the first answer wins, so one STUN operator's outage costs nothing;
when none answers, the relay keeps serving and asks again with exponential backoff (capped, jittered)
instead of exiting. Once known, peer connections announce it without asking STUN per connection
(``seams.announce_public_address``). aioice's STUN codec (a dependency of aiortc already).

Why not the task metadata: ECS's task metadata endpoint gives a Fargate task's private address and MAC
only; the public one needs ``ec2:DescribeNetworkInterfaces`` (an AWS call and an IAM grant with no
resource scoping) from the media process. STUN needs neither; see infra/README.md, "Media and ICE".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable

from aioice import stun

log = logging.getLogger("edge_relay.public_address")


class NoPublicAddress(RuntimeError):
    pass


def _server(url: str) -> tuple[str, int]:
    """``stun:host:port`` (or ``stun:host``) -> (host, port)."""
    rest = url.split(":", 1)[1] if url.startswith("stun:") else url
    host, _, port = rest.partition(":")
    return host, int(port or 3478)


class _Binding(asyncio.DatagramProtocol):
    def __init__(self, transaction_id: bytes) -> None:
        self.transaction_id = transaction_id
        self.result: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(ValueError):
            message = stun.parse_message(data)
            mapped = message.attributes.get("XOR-MAPPED-ADDRESS") or message.attributes.get("MAPPED-ADDRESS")
            if message.transaction_id == self.transaction_id and mapped and not self.result.done():
                self.result.set_result(str(mapped[0]))


async def _ask(url: str, attempts: int, timeout_s: float) -> str:
    """One server: a binding request, resent ``attempts`` times. Raises OSError or TimeoutError."""
    host, port = _server(url)
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        functools.partial(_Binding, request.transaction_id), remote_addr=(host, port)
    )
    try:
        for _ in range(attempts):
            transport.sendto(bytes(request))
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(protocol.result), timeout_s)
        raise TimeoutError(url)
    finally:
        transport.close()


async def public_ip(stun_urls: list[str], attempts: int = 3, timeout_s: float = 1.0) -> str:
    """The address the first answering STUN server sees us at (all asked at once); raises
    NoPublicAddress if none answers (unresolvable names and unreachable servers included)."""
    asks = [asyncio.ensure_future(_ask(url, attempts, timeout_s)) for url in stun_urls]
    try:
        for finished in asyncio.as_completed(asks):
            with contextlib.suppress(OSError, TimeoutError):
                return await finished
    finally:
        for ask in asks:
            ask.cancel()
        await asyncio.gather(*asks, return_exceptions=True)
    raise NoPublicAddress(f"no STUN server answered ({', '.join(stun_urls) or 'none configured'})")


async def learn_public_ip(
    stun_urls: list[str],
    *,
    attempts: int = 3,
    timeout_s: float = 1.0,
    first_backoff_s: float = 1.0,
    max_backoff_s: float = 60.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> str:
    """:func:`public_ip`, asked again until some server answers: never raises NoPublicAddress (an
    outage of the STUN servers must not crash-loop every relay task). Backoff doubles up to
    ``max_backoff_s``, with jitter so a region's tasks do not ask in step."""
    if not stun_urls:
        raise ValueError("no STUN server configured (MEETUP_RELAY_STUN_URLS)")
    backoff = first_backoff_s
    tries = 0
    while True:
        tries += 1
        try:
            address = await public_ip(stun_urls, attempts, timeout_s)
        except NoPublicAddress as exc:
            wait = backoff * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not a secret)
            log.warning("public address unknown", extra={"error": str(exc), "retry_s": round(wait, 1)})
            await sleep(wait)
            backoff = min(backoff * 2, max_backoff_s)
            continue
        log.info("public address", extra={"address": address, "tries": tries})
        return address
