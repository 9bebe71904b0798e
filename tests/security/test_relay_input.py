"""Deeply nested JSON, and anything else a client sends, never raises out of a relay session.

200,000 ``[`` in one 200 KB frame used to raise RecursionError past the parser and close the session
with 1011, dropping the participant. Now nesting is bounded before parsing, on every decoder that reads
from the network: the signalling socket, the cascade link, the cluster wire, and the SDK's reader.
"""

from __future__ import annotations

import json
import secrets

import pytest

from client_sdk.media.sources import PatternVideoTrack
from edge_relay.cluster import wire
from meetup_protocol.signalling import (
    MAX_NESTING,
    ProtocolError,
    load_json,
    parse_client_message,
    too_deep,
)
from tests.conftest import Api
from tests.edge_relay.media import join, wait_until
from tests.edge_relay.test_bad_input import exchange, relay_url

DEEP = "[" * 200_000  # 200 KB: under the frame limit, far over any parser's recursion


@pytest.mark.parametrize(
    "text",
    [
        DEEP,
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 30_000 + "1" + "}" * 30_000,
        "[1," * 60_000 + "1" + "]" * 60_000,
        '{"type": "ping", "x": ' + "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1) + "}",
    ],
)
def test_too_deep_is_refused_before_parsing(text: str) -> None:
    assert too_deep(text)
    with pytest.raises(ProtocolError) as refused:
        parse_client_message(text)
    assert refused.value.code == "too_deep"


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "ping"}',
        json.dumps(
            {"type": "answer", "negotiation": 1, "sdp": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ {{{{{{{{{{{{"}
        ),
        json.dumps({"s": '\\"' + "[" * 100}),  # brackets inside strings, escaped quotes, do not count
        json.dumps([{"a": [1, 2]}] * 20_000),  # wide is fine
        "[" * MAX_NESTING + "]" * MAX_NESTING,
    ],
)
def test_legitimate_nesting_and_brackets_in_strings_pass(text: str) -> None:
    assert not too_deep(text)
    assert load_json(text) == json.loads(text)


def test_malformed_brackets_are_malformed_not_a_crash() -> None:
    for text in ("[}", "[[[", "]]]]", '["unterminated', "{" * 10):
        with pytest.raises(ProtocolError):
            load_json(text)


def test_cluster_wire_counts_a_too_deep_body_as_malformed(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = wire.Codec("a", ["secret"]), wire.Codec("b", ["secret"])
    for codec, body in [(2, DEEP.encode()), (1, b"\x91" * 200_000 + b"\xc0")]:  # JSON, msgpack
        head = wire.MAGIC + bytes([codec])
        nonce = secrets.token_bytes(wire.NONCE_LEN)
        assert b.open(head + nonce + a.keys[0].encrypt(nonce, body, head)) is None
    assert b.rejected["malformed"] == 2


async def test_a_deep_frame_costs_the_sender_an_error_not_its_meeting(api: Api, stack) -> None:
    # Before joining: refused, socket still open.
    replies, code = await exchange(relay_url(stack), DEEP)
    assert replies[0]["code"] == "too_deep" and code is None

    meeting, host, (guest,) = api.joined_meeting(1)
    publisher = await join(stack, host, meeting, {"camera": PatternVideoTrack(320, 240)})
    attacker = await join(stack, guest, meeting, {})
    track_id = f"{publisher.conn.participant_id}/camera"
    try:
        assert await wait_until(lambda: attacker.frames(track_id) >= 5, 15)
        await attacker.conn._ws.send(DEEP)
        await attacker.conn._ws.send('{"type": "x", "y": ' + "{" * 1000 + "}" * 1000 + "}")
        assert await wait_until(
            lambda: sum(e.data.get("code") == "too_deep" for e in attacker.events if e.type == "error") == 2,
            5,
        )
        await attacker.send_raw({"type": "ping"})
        assert await wait_until(lambda: "pong" in attacker.event_types(), 5)
        frames = attacker.frames(track_id)
        assert await wait_until(lambda: attacker.frames(track_id) >= frames + 10, 10)
        assert not attacker.conn.closed.is_set()
    finally:
        await publisher.close()
        await attacker.close()
