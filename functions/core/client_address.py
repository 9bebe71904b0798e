"""The caller's address, decided in this one place for the whole API (per-address throttles key on it).

The peer is whoever opened the connection: in Lambda, API Gateway's ``requestContext.http.sourceIp`` (the
address API Gateway saw); under uvicorn, the socket's peer (the local stack turns uvicorn's own
proxy-header handling off, or it would believe any local client's ``X-Forwarded-For``).

``X-Forwarded-For`` is written by the sender, so it counts only when the peer is a trusted proxy
(``MEETUP_TRUSTED_PROXIES``: networks such as CloudFront's origin-facing ranges; empty by default). Then the
caller is the right-most entry that is not itself a trusted proxy: the address the outermost trusted proxy
saw and appended. Entries to its left were written by the client and are ignored, so a spoofed
``X-Forwarded-For`` never moves a request into another address's bucket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import IPvAnyNetwork
from starlette.requests import Request

from functions.core.config import get_settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(request: Request) -> str:
    return address_from_scope(request.scope, get_settings().trusted_proxies)


def throttle_subject(address: str) -> str:
    """What a per-address bucket counts: the address, or for IPv6 its /64 (one subscriber's prefix: an
    attacker holding a /64 would otherwise get 2^64 fresh buckets)."""
    parsed = _parse(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
    return str(parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else parsed or address)


def address_from_scope(scope: Mapping[str, Any], trusted: Sequence[IPvAnyNetwork]) -> str:
    """The caller's address for an ASGI ``scope`` (pure: unit-testable with a fake scope)."""
    peer = _peer(scope)
    hop = _parse(peer)
    if hop is None or not trusted:
        return peer
    for entry in reversed(_forwarded_for(scope)):
        if not _is_trusted(hop, trusted):
            break
        earlier = _parse(entry)
        if earlier is None:  # garbage from the client: keep the last address a trusted proxy vouched for
            break
        hop = earlier
    return str(hop)


def _peer(scope: Mapping[str, Any]) -> str:
    event = scope.get("aws.event")
    if isinstance(event, dict):
        context = event.get("requestContext") or {}
        http, identity = context.get("http") or {}, context.get("identity") or {}  # payload 2.0, 1.0
        source = http.get("sourceIp") or identity.get("sourceIp")
        if source:
            return str(source)
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _forwarded_for(scope: Mapping[str, Any]) -> list[str]:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"x-forwarded-for"]
    return [entry.strip() for value in values for entry in value.split(",") if entry.strip()]


def _parse(value: str) -> Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _is_trusted(address: Address, trusted: Sequence[IPvAnyNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)  # type: ignore[operator]
