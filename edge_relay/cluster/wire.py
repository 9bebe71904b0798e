"""Sealed messages: every datagram and stream frame is encrypted, authenticated, fresh and seen once.

Layout: ``b"MC" | codec (1 byte) | nonce (12) | AES-256-GCM(body) with the 16-byte tag`` where body is
``[sender, boot, seq, sent_ms, kind, payload]`` in msgpack (JSON if msgpack is not installed; the byte
says which, so mixed clusters still talk), and the magic and codec byte are authenticated as associated
data. Encrypted, as memberlist's gossip is (AES-GCM with the shared key), because the room state crosses
the internet between regions and holds participants' names and chat text; the key is derived from the
shared secret with HKDF. Why not swim-protocol's framing: it pickles payloads (a leaked secret would mean
code execution on every relay) and signs with a random salt only, so a captured ack can be replayed to
keep a dead relay "alive". Here a replay is refused twice over: anything sent more
than ``replay_window_s`` ago (or that far in the future) is stale, and inside the window each
``(sender, boot, seq)`` is accepted once (an IPsec-style sliding bitmap per sender and boot; ``boot`` is
random per process start, so a restarted relay's sequence numbers do not collide with its old ones).

``open`` never raises: garbage, forged, stale and replayed messages are counted in ``rejected`` by reason.
"""

from __future__ import annotations

import json
import secrets as _secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from meetup_protocol.signalling import too_deep

try:  # msgpack is a declared dependency; JSON keeps the library importable without it
    import msgpack

    CODEC = 1
except ImportError:  # pragma: no cover
    msgpack = None
    CODEC = 2

MAGIC = b"MC"
NONCE_LEN = 12
TAG_LEN = 16
HEADER = len(MAGIC) + 1 + NONCE_LEN
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
        text = body.decode()
        if too_deep(text):  # msgpack bounds its own nesting (StackError, a ValueError)
            raise ValueError("nested too deep")
        return json.loads(text)
    raise ValueError("unknown codec")


def derive_key(secret: bytes) -> AESGCM:
    """One AES-256 key per shared secret (a secret of any length or entropy shape becomes 32 bytes)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"meetup-edge cluster wire v1")
    return AESGCM(hkdf.derive(secret))


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
        secrets = [k.encode() if isinstance(k, str) else k for k in keys]
        if not secrets or not all(secrets):
            raise ValueError("a non-empty shared secret is required")
        self.keys = [derive_key(k) for k in secrets]
        self.window_ms = int(replay_window_s * 1000)
        self.clock = clock
        self.boot = _secrets.randbits(32)
        self._seq = 0
        self._windows: dict[tuple[str, int], _Window] = {}
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        #: Told each authenticated sender's clock minus ours (seconds), stale or not: a clock check.
        self.on_clock: Callable[[str, float], None] | None = None

    def seal(self, kind: int, payload: Any) -> bytes:
        self._seq += 1
        now_ms = int(self.clock() * 1000)
        body = encode([self.node_id, self.boot, self._seq, now_ms, kind, payload])
        head = MAGIC + bytes([CODEC])
        nonce = _secrets.token_bytes(NONCE_LEN)  # random: 2^-32 collision odds need ~2^32 messages a key
        return head + nonce + self.keys[0].encrypt(nonce, body, head)

    def open(self, data: bytes) -> Message | None:
        try:
            return self._open(data)
        except Exception:  # garbage that got past the MAC (impossible without the key) or a codec bug
            self.rejected["malformed"] += 1
            return None

    def _open(self, data: bytes) -> Message | None:
        if len(data) <= HEADER + TAG_LEN or data[:2] != MAGIC:
            self.rejected["malformed"] += 1
            return None
        head, nonce, sealed = bytes(data[:3]), bytes(data[3:HEADER]), bytes(data[HEADER:])
        body = None
        for key in self.keys:
            try:
                body = key.decrypt(nonce, sealed, head)
                break
            except InvalidTag:
                continue
        if body is None:  # forged, tampered with, or sealed with a key we do not have
            self.rejected["bad_mac"] += 1
            return None
        try:
            fields = decode(head[2], body)
        except (ValueError, RecursionError):  # a peer with the key, but a bug or a bad version
            self.rejected["malformed"] += 1
            return None
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
        if self.on_clock is not None:
            self.on_clock(sender, (sent_ms - now_ms) / 1000)
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
