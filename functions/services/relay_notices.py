"""Tell the relays what the API decided: a meeting ended, a participant left (their join tokens void).

A relay admits whoever brings a valid join token and never calls the API, so what the API decides after
a token was issued has to reach the relays: each decision becomes a signed notice
(meetup_protocol/tokens.py) POSTed to ``/notices`` of every relay the API knows, the fresh entries of the
relay registry (every region: the table is global) and the configured ones, in parallel. Where several
relay tasks share one load-balanced URL, one of them gets it and the cluster's gossip carries it to the
others, and to any relay that joins later (edge_relay/rooms/directory.py). A relay that cannot be
reached is logged and counted, never an error for the caller: the decision is stored already, and the
relays that did hear it spread it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from functions.core.config import get_settings
from functions.core.observability import count, logger
from functions.core.security import join_signing_key
from functions.services.relays import registered_relays
from meetup_protocol.tokens import NoticeKind, issue_notice


def notices_url(relay_url: str) -> str:
    """``ws(s)://host/ws`` (what clients are given) -> ``http(s)://host/notices`` on the same port."""
    parts = urlsplit(relay_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path[: -len("/ws")] if parts.path.endswith("/ws") else parts.path.rstrip("/")
    return urlunsplit((scheme, parts.netloc, f"{path}/notices", "", ""))


def sign(kind: NoticeKind, meeting_id: str, data: dict[str, Any]) -> str:
    return issue_notice(kind, meeting_id, data, join_signing_key(), get_settings().notice_ttl_s)


def push(kind: NoticeKind, meeting_id: str, data: dict[str, Any]) -> int:
    """Send a notice to every known relay; returns how many accepted it."""
    urls = {notices_url(r.url) for r in registered_relays()}
    urls |= {notices_url(r.url) for r in get_settings().relays}
    if not urls:
        return 0
    body = json.dumps({"notice": sign(kind, meeting_id, data)}).encode()
    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        delivered = sum(pool.map(lambda url: _post(url, body), sorted(urls)))
    if delivered < len(urls):
        count("RelayNoticeFailures", len(urls) - delivered)
    logger.info("relay notice", extra={"kind": kind, "relays": len(urls), "delivered": delivered})
    return delivered


def _post(url: str, body: bytes) -> bool:
    if urlsplit(url).scheme not in ("http", "https"):  # a registry entry is data, not a URL we trust
        logger.warning("relay notice skipped: not an http(s) relay", extra={"relay": url[:200]})
        return False
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        timeout = get_settings().relay_push_timeout_s
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (checked above)
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        logger.warning("relay notice failed", extra={"relay": url, "error": repr(exc)[:200]})
        return False
