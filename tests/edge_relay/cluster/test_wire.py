"""Messages are authenticated, fresh and accepted once; garbage is counted, never raised."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_relay.cluster.wire import HEADER, Codec


def pair(**kw: object) -> tuple[Codec, Codec]:
    return Codec("a", ["secret"], **kw), Codec("b", ["secret"], **kw)  # type: ignore[arg-type]


def test_round_trip() -> None:
    a, b = pair()
    msg = b.open(a.seal(1, {"s": 5, "g": [["x", 1]]}))
    assert (
        msg is not None and msg.sender == "a" and msg.kind == 1 and msg.payload == {"s": 5, "g": [["x", 1]]}
    )


def test_forged_unsigned_and_other_key_rejected() -> None:
    a, b = pair()
    data = bytearray(a.seal(1, {"s": 1}))
    data[-1] ^= 1  # payload tampered with
    assert b.open(bytes(data)) is None
    data = bytearray(a.seal(1, {"s": 1}))
    data[5] ^= 1  # nonce tampered with
    assert b.open(bytes(data)) is None
    assert b.open(Codec("a", ["other secret"]).seal(1, {"s": 1})) is None
    assert b.open(a.seal(1, {})[HEADER:]) is None  # body without the envelope
    assert b.rejected["bad_mac"] == 3 and b.rejected["malformed"] == 1


def test_replay_and_stale_rejected() -> None:
    a, b = pair()
    data = a.seal(1, {"s": 1})
    assert b.open(data) is not None
    assert b.open(data) is None
    assert b.rejected["replay"] == 1
    old = Codec("a", ["secret"], clock=lambda: time.time() - 3_600).seal(1, {})
    future = Codec("a", ["secret"], clock=lambda: time.time() + 3_600).seal(1, {})
    assert b.open(old) is None and b.open(future) is None
    assert b.rejected["stale"] == 2


def test_reordering_inside_the_window_is_fine_and_restarts_get_a_fresh_window() -> None:
    a, b = pair()
    sealed = [a.seal(1, {"i": i}) for i in range(50)]
    for data in reversed(sealed):
        assert b.open(data) is not None
    restarted = Codec("a", ["secret"])  # same sender, new boot: sequence numbers start again
    assert b.open(restarted.seal(1, {})) is not None
    assert b.open(b.seal(1, {})) is None and b.rejected["reflected"] == 1


def test_far_out_of_window_sequence_rejected() -> None:
    a, b = pair()
    first = a.seal(1, {})
    for _ in range(2_000):
        b.open(a.seal(1, {}))
    assert b.open(first) is None and b.rejected["replay"] == 1


def test_key_rotation() -> None:
    old = Codec("a", ["k1"])
    both = Codec("b", ["k2", "k1"])  # verifies with either, signs with the new one
    new = Codec("c", ["k2"])
    assert both.open(old.seal(1, {})) is not None
    assert new.open(both.seal(1, {})) is not None
    assert old.open(both.seal(1, {})) is None


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    _, b = pair()
    assert b.open(data) is None
    assert b.open(b"MC\x01" + data) is None
    assert sum(b.rejected.values()) == 2


def test_json_codec_interoperates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without msgpack a relay signs JSON; the codec byte lets a msgpack relay read it, and back."""
    from edge_relay.cluster import wire

    a, b = pair()
    monkeypatch.setattr(wire, "CODEC", 2)
    sealed = a.seal(1, {"r": [["m", {"p": [["p1", 1, 0, "a", True, "r", "n", "", ""]]}]]})
    assert sealed[2] == 2
    monkeypatch.setattr(wire, "CODEC", 1)
    msg = b.open(sealed)
    assert msg is not None and msg.payload["r"][0][0] == "m"


def test_payload_is_encrypted_on_the_wire() -> None:
    """Room state crosses the internet between regions: names and chat text must not be readable."""
    a, b = pair()
    sealed = a.seal(1, {"name": "Ada Lovelace", "text": "the passcode is 4711"})
    assert b"Ada Lovelace" not in sealed and b"4711" not in sealed and b'"a"' not in sealed
    assert b.open(sealed) is not None
