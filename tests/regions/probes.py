"""Tiny network probes to run inside a site (``wan.run_in``), for testing the WAN itself.

* ``python -m tests.regions.probes serve HOST PORT``: UDP and TCP echo on HOST:PORT; prints ``ready``.
* ``python -m tests.regions.probes udp-ping HOST PORT [--count N] [--interval-s S] [--timeout-s S]``:
  one JSON line ``{"rtts_ms": [...], "lost": n}`` (a reply later than the timeout counts as lost).
* ``python -m tests.regions.probes tcp HOST PORT [--bytes N]``: sends N bytes, reads the echo back,
  one JSON line ``{"ok": echo intact, "connect_ms": x, "elapsed_ms": y}`` (``ok`` false on failure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import threading
import time


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def _tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(_UdpEcho, local_addr=(host, port))
    server = await asyncio.start_server(_tcp_echo, host, port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def udp_ping(host: str, port: int, count: int, interval_s: float, timeout_s: float) -> dict[str, object]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    rtts = []
    for seq in range(count):
        sent = time.perf_counter()
        payload = seq.to_bytes(4, "big") + os.urandom(1196)  # a WebRTC-sized packet
        sock.send(payload)
        sock.settimeout(timeout_s)
        with contextlib.suppress(TimeoutError, ConnectionRefusedError):
            while True:  # skip late replies to earlier probes
                if sock.recv(2048)[:4] == payload[:4]:
                    rtts.append((time.perf_counter() - sent) * 1000)
                    break
        time.sleep(max(0.0, interval_s - (time.perf_counter() - sent)))
    sock.close()
    return {"rtts_ms": [round(r, 2) for r in rtts], "lost": count - len(rtts)}


def tcp(host: str, port: int, size: int, timeout_s: float) -> dict[str, object]:
    data = os.urandom(size)
    started = time.perf_counter()
    chunks: list[bytes] = []
    failures: list[OSError] = []

    def receive(sock: socket.socket) -> None:  # read while sending, or both sides' buffers fill up
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError as exc:
            failures.append(exc)

    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            connected = time.perf_counter()
            reader = threading.Thread(target=receive, args=(sock,))
            reader.start()
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            reader.join()
        if failures:
            raise failures[0]
    except OSError as exc:
        return {"ok": False, "error": repr(exc)}
    done = time.perf_counter()
    return {
        "ok": b"".join(chunks) == data,
        "connect_ms": round((connected - started) * 1000, 2),
        "elapsed_ms": round((done - started) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("serve", "udp-ping", "tcp"):
        p = sub.add_parser(name)
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.add_argument("--count", type=int, default=10)
        p.add_argument("--interval-s", type=float, default=0.02)
        p.add_argument("--timeout-s", type=float, default=1.0)
        p.add_argument("--bytes", type=int, default=256 * 1024)
    args = parser.parse_args()
    if args.cmd == "serve":
        asyncio.run(serve(args.host, args.port))
    elif args.cmd == "udp-ping":
        print(json.dumps(udp_ping(args.host, args.port, args.count, args.interval_s, args.timeout_s)))
    else:
        print(json.dumps(tcp(args.host, args.port, args.bytes, args.timeout_s)))


if __name__ == "__main__":
    main()
