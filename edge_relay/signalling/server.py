"""The relay's network face: ``/ws`` (signalling), ``/notices`` (from the API), ``/healthz``
(readiness), ``/livez`` (liveness) and ``/metrics``, on one port."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from edge_relay.config import RelayConfig
from edge_relay.ops import metrics
from edge_relay.ops.clock import ClockCheck
from edge_relay.rooms import notices
from edge_relay.rooms.directory import Rooms
from edge_relay.sfu.seams import CodecCensus
from edge_relay.signalling.connection import Connection
from edge_relay.signalling.session import Closed
from meetup_protocol import signalling as protocol
from meetup_protocol.tokens import load_public_key

if TYPE_CHECKING:
    from edge_relay.cluster.coordinator import Coordinator

log = logging.getLogger("edge_relay.server")


class Relay:
    """State of one relay process, and the Starlette app that serves it."""

    def __init__(self, config: RelayConfig, census: CodecCensus) -> None:
        if not config.join_public_key:
            raise RuntimeError("set MEETUP_JOIN_PUBLIC_KEY: the relay verifies join tokens with it")
        self.config = config
        self.public_key = load_public_key(config.join_public_key)
        self.census = census
        #: This relay's id in the cluster and the registry (IAM scopes registry writes by its region prefix).
        self.relay_id = config.relay_id or f"{config.region}-{uuid.uuid4().hex[:12]}"
        self.rooms = Rooms()
        self.rooms.relay_id = self.relay_id
        self.lag = metrics.LoopLag()
        self.clock = ClockCheck()  # is our wall clock right? (join tokens, the other relays say)
        self.draining = False
        self.coordinator: Coordinator | None = None  # with the cluster on (edge_relay/main.py)
        #: The TLS link endpoint (``cascade_port``): other relays only, so only the WebSocket.
        self.link_app = Starlette(routes=[WebSocketRoute("/ws", self.websocket)])
        self.app = Starlette(
            routes=[
                WebSocketRoute("/ws", self.websocket),
                Route("/notices", self.notices, methods=["POST"]),
                Route("/healthz", self.healthz),
                Route("/livez", self.livez),
                Route("/metrics", self.metrics),
            ]
        )

    async def notices(self, request: Request) -> JSONResponse:
        """A notice the API pushes (a meeting ended, a participant's tokens revoked): ``{"notice": JWS}``.
        Public like ``/ws``; only a notice signed with the API's key is acted on."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > NOTICE_MAX_BYTES:
                return _error(413, "too_large", f"a notice body is at most {NOTICE_MAX_BYTES} bytes")
        try:
            token = protocol.load_json(body.decode())["notice"]
            if not isinstance(token, str):
                raise TypeError
            changed = await notices.apply_pushed(self.rooms, notices.verified(token, self.public_key))
        except protocol.ProtocolError as exc:
            return _error(400, exc.code, exc.message)
        except (KeyError, TypeError, UnicodeDecodeError):
            return _error(400, "invalid_message", 'send {"notice": "<the API\'s signed notice>"}')
        except notices.NoticeRefused as exc:
            metrics.COUNTERS.rejects[exc.code] += 1
            return _error(403 if exc.code == "not_allowed" else 401, exc.code, exc.message)
        return JSONResponse({"changed": changed})

    async def healthz(self, _: Request) -> JSONResponse:
        """Readiness: may this relay take new joins? 503 while draining. What clients' RTT probes and
        Route 53 ask. Public: no room or participant counts here (``/metrics`` has them)."""
        if self.config.probe_delay_ms:
            await asyncio.sleep(self.config.probe_delay_ms / 1000)
        # A wrong clock makes the relay refuse every token and the cluster drop it (edge_relay/ops/clock.py).
        status = "draining" if self.draining else "clock_skew" if self.clock.skewed else "ok"
        body = {
            "status": status,
            "region": self.config.region,
            "relay_id": self.relay_id,
        }
        # CORS: a browser's relay probe may read the status (503 while draining).
        headers = {"Access-Control-Allow-Origin": "*"}
        return JSONResponse(body, status_code=200 if status == "ok" else 503, headers=headers)

    async def livez(self, _: Request) -> JSONResponse:
        """Liveness: the process serves, draining or not. What the NLB's target health and the task's
        health check ask, so a draining task stays healthy and keeps its open connections. A relay
        whose clock is wrong is not alive in any useful sense (it refuses every token and the cluster
        drops it): 503, so the orchestrator replaces the task (edge_relay/ops/clock.py)."""
        if self.clock.skewed:
            return JSONResponse({"status": "clock_skew"}, status_code=503)
        return JSONResponse({"status": "draining" if self.draining else "ok"})

    async def metrics(self, request: Request) -> Response:
        if not _allowed(request, self.config.metrics_networks):
            return _error(403, "forbidden", "metrics are served to the local scraper only")
        text = metrics.render(self.rooms, self.census, self.lag, self.draining, self.coordinator, self.clock)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    async def websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        metrics.COUNTERS.connections += 1
        lock = asyncio.Lock()

        async def send(text: str) -> None:
            async with lock:
                await ws.send_text(text)

        async def disconnect(reason: str) -> None:
            with contextlib.suppress(Exception):
                await ws.close(code=1000, reason=reason[:100])

        connection = Connection(
            self.config, self.rooms, self.public_key, send, disconnect, lambda: self.draining, self.clock
        )
        reason = "disconnected"
        try:
            while True:
                timeout = None if connection.session else self.config.join_timeout_s
                frame = await asyncio.wait_for(ws.receive(), timeout=timeout)
                if frame["type"] == "websocket.disconnect":
                    break
                text, binary = frame.get("text"), frame.get("bytes")
                await connection.handle(text if text is not None else (binary or b""))
        except Closed as closed:
            reason = closed.reason
            with contextlib.suppress(Exception):
                await ws.close(code=closed.code, reason=closed.reason[:100])
        except TimeoutError:
            reason = "join_timeout"
            with contextlib.suppress(Exception):
                await connection.error("join_timeout", "no join message in time")
                await ws.close(code=4408)
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("session failed")
            reason = "relay_error"
            with contextlib.suppress(Exception):
                await ws.close(code=1011)
        finally:
            await connection.close(reason)

    async def drain(self, grace_s: float) -> None:
        """Refuse joins (healthz says 503), keep rooms for ``grace_s``, then send everyone elsewhere
        (``migrate``: the meeting goes on, on another relay) and close their connections here."""
        if self.draining:
            return
        self.draining = True
        log.info("draining", extra={"grace_s": grace_s})
        deadline = asyncio.get_running_loop().time() + grace_s
        while self.rooms.rooms and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        for room in list(self.rooms.rooms.values()):
            await room.tell(lambda peer: peer.migrate("relay_draining"))
            for participant in list(room.participants.values()):
                await room.remove(participant, reason="relay_draining", notify=False)
                await participant.signals.disconnect("relay_draining")


NOTICE_MAX_BYTES = 8 * 1024


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _allowed(request: Request, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    return any(address in network for network in networks)
