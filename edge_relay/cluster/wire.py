"""Authenticated messages: every datagram and stream frame is signed, fresh and seen at most once.

Layout: ``b"MC" | codec (1 byte) | HMAC-SHA256(secret, codec | body)[:16] | body`` where body is
``[sender, boot, seq, sent_ms, kind, payload]`` in msgpack (JSON if msgpack is not installed; the byte
says which, so mixed clusters still talk). Why not swim-protocol's framing: it pickles payloads (a leaked
secret would mean code execution on every relay) and signs with a random salt only, so a captured ack
can be replayed to keep a dead relay "alive". Here a replay is refused twice over: anything sent more
than ``replay_window_s`` ago (or that far in the future) is stale, and inside the window each
``(sender, boot, seq)`` is accepted once (an IPsec-style sliding bitmap per sender and boot; ``boot`` is
random per process start, so a restarted relay's sequence numbers do not collide with its old ones).

``open`` never raises: garbage, forged, stale and replayed messages are counted in ``rejected`` by reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

try:  # msgpack is a declared dependency; JSON keeps the library importable without it
    import msgpack

    CODEC = 1
except ImportError:  # pragma: no cover
    msgpack = None
    CODEC = 2

MAGIC = b"MC"
MAC_LEN = 16
HEADER = len(MAGIC) + 1 + MAC_LEN
WINDOW_BITS = 1024


class Message(NamedTuple):
    sender: str
    kind: int
    payload: Any
    sent_ms: int


def encode(obj: Any) -> bytes:
    if CODEC == 1:
        return msgpack.packb(obj, use_bin_type=True)
    return json.dumps(obj, separators=(",", ":")).encode()


def decode(codec: int, body: bytes) -> Any:
    if codec == 1 and msgpack is not None:
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    if codec == 2:
        return json.loads(body)
    raise ValueError("unknown codec")


def encoded_size(obj: Any) -> int:
    return len(encode(obj))


class _Window:
    __slots__ = ("bits", "high", "seen_ms")

    def __init__(self) -> None:
        self.high = -1
        self.bits = 0
        self.seen_ms = 0

    def accept(self, seq: int) -> bool:
        if seq > self.high:
            shift = seq - self.high
            self.bits = 1 if shift >= WINDOW_BITS else ((self.bits << shift) | 1) & ((1 << WINDOW_BITS) - 1)
            self.high = seq
            return True
        offset = self.high - seq
        if offset >= WINDOW_BITS or self.bits >> offset & 1:
            return False
        self.bits |= 1 << offset
        return True


class Codec:
    def __init__(
        self,
        node_id: str,
        keys: Sequence[str | bytes],
        replay_window_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_id = node_id
        self.keys = [k.encode() if isinstance(k, str) else k for k in keys]
        if not self.keys or not all(self.keys):
            raise ValueError("a non-empty shared secret is required")
        self.window_ms = int(replay_window_s * 1000)
        self.clock = clock
        self.boot = _secrets.randbits(32)
        self._seq = 0
        self._windows: dict[tuple[str, int], _Window] = {}
        self.rejected: Counter[str] = Counter()
        self.accepted = 0

    def _mac(self, key: bytes, codec_byte: bytes, body: bytes) -> bytes:
        return hmac.new(key, codec_byte + body, hashlib.sha256).digest()[:MAC_LEN]

    def seal(self, kind: int, payload: Any) -> bytes:
        self._seq += 1
        now_ms = int(self.clock() * 1000)
        body = encode([self.node_id, self.boot, self._seq, now_ms, kind, payload])
        codec_byte = bytes([CODEC])
        return MAGIC + codec_byte + self._mac(self.keys[0], codec_byte, body) + body

    def open(self, data: bytes) -> Message | None:
        try:
            return self._open(data)
        except Exception:  # garbage that got past the MAC (impossible without the key) or a codec bug
            self.rejected["malformed"] += 1
            return None

    def _open(self, data: bytes) -> Message | None:
        if len(data) <= HEADER or data[:2] != MAGIC:
            self.rejected["malformed"] += 1
            return None
        codec_byte, mac, body = data[2:3], data[3:HEADER], data[HEADER:]
        if not any(hmac.compare_digest(mac, self._mac(k, codec_byte, body)) for k in self.keys):
            self.rejected["bad_mac"] += 1
            return None
        fields = decode(codec_byte[0], bytes(body))
        if not isinstance(fields, list) or len(fields) != 6:
            self.rejected["malformed"] += 1
            return None
        sender, boot, seq, sent_ms, kind, payload = fields
        if not (isinstance(sender, str) and all(type(x) is int for x in (boot, seq, sent_ms, kind))):
            self.rejected["malformed"] += 1
            return None
        if sender == self.node_id:
            self.rejected["reflected"] += 1
            return None
        now_ms = int(self.clock() * 1000)
        if abs(now_ms - sent_ms) > self.window_ms:
            self.rejected["stale"] += 1
            return None
        window = self._windows.get((sender, boot))
        if window is None:
            window = self._windows[(sender, boot)] = _Window()
        if not window.accept(seq):
            self.rejected["replay"] += 1
            return None
        window.seen_ms = now_ms
        self.accepted += 1
        return Message(sender, kind, payload, sent_ms)

    def prune(self) -> None:
        """Forget replay windows idle for two windows: their messages would be refused as stale anyway."""
        cutoff = int(self.clock() * 1000) - 2 * self.window_ms
        for key in [k for k, w in self._windows.items() if w.seen_ms < cutoff]:
            del self._windows[key]
