"""Links to a relay's own TLS endpoint accept exactly the certificate its gossip announced."""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
from pathlib import Path

import pytest
import websockets

from edge_relay.cluster.link_tls import LinkIdentity, PinMismatch, check_pin, client_context


async def test_the_pinned_certificate_is_accepted_and_any_other_refused() -> None:
    served, other = LinkIdentity.generate("127.0.0.1"), LinkIdentity.generate("127.0.0.1")
    assert served.fingerprint != other.fingerprint and len(served.fingerprint) == 64
    certfile, keyfile = served.write()
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600  # the private key: this user only
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)

    async def echo(ws: websockets.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0, ssl=context) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"wss://127.0.0.1:{port}/ws"
        async with websockets.connect(url, ssl=client_context()) as ws:
            check_pin(ws, served.fingerprint)
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 5) == "hello"
        async with websockets.connect(url, ssl=client_context()) as ws:
            with pytest.raises(PinMismatch):
                check_pin(ws, other.fingerprint)
        # Without the pin, a self-signed certificate is refused by ordinary verification.
        with pytest.raises(ssl.SSLCertVerificationError):
            await websockets.connect(url)
    for path in (certfile, keyfile):
        Path(path).unlink()
