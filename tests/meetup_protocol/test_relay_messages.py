"""Relay -> client messages: the relay can send only what the protocol defines; clients parse leniently."""

from __future__ import annotations

import json

import pytest

from meetup_protocol import signalling as p

TRACK = p.TrackInfo(track_id="a/camera", participant_id="a", source="camera", kind="video")


def test_every_relay_message_round_trips() -> None:
    samples = {
        "welcome": dict(participant_id="a", meeting_id="m", role="host", participants=[]),
        "offer": dict(negotiation=1, sdp="v=0", tracks={"0": {"publish": "camera"}, "1": TRACK}),
        "participant_joined": dict(participant=p.ParticipantInfo(participant_id="b", name="B", role="guest")),
        "participant_left": dict(participant_id="b", reason="left"),
        "track_published": dict(track=TRACK),
        "track_unpublished": dict(track_id="a/camera"),
        "track_muted": dict(track_id="a/camera", muted=True),
        "reaction": dict(participant_id="a", name="A", emoji="👍", reaction_id="r1"),
        "chat": dict(participant_id="a", name="A", message_id="m1", text="hi", created_at=None),
        "chat_ack": dict(message_id="m1"),
        "meeting_ended": dict(reason="host_ended"),
        "removed": dict(reason="left"),
        "migrate": dict(reason="relay_draining"),
        "error": dict(code="not_host", message="only the host can end the meeting"),
        "pong": {},
        "speakers_changed": dict(speakers=[{"participant_id": "a", "level": 0.25}], dominant="a"),
        "role_changed": dict(participant_id="a", role="co_host"),
        "muted_by_host": dict(source="microphone", muted=True, can_unmute=False),
        "hand_changed": dict(participant_id="a", raised=True, raised_at=1.5, by=None),
    }
    assert set(samples) == set(p.RELAY_MESSAGES)
    for type_, fields in samples.items():
        text = p.message(type_, **fields)
        assert json.loads(text)["type"] == type_
        parsed = p.parse_relay_message(text)
        assert isinstance(parsed, p.RELAY_MESSAGES[type_])
        assert p.message(type_, **parsed.model_dump(exclude={"type"})) == text


def test_an_offer_keeps_each_slot_kind() -> None:
    text = p.message(
        "offer",
        negotiation=2,
        sdp="v=0",
        tracks={"0": {"publish": "camera"}, "1": TRACK},
    )
    offer = p.parse_relay_message(text)
    assert isinstance(offer, p.Offer)
    assert isinstance(offer.tracks["0"], p.PublishSlot)
    assert offer.tracks["1"] == TRACK


@pytest.mark.parametrize(
    ("type_", "fields", "complaint"),
    [
        ("shout", {}, "no relay message"),
        ("pong", {"extra": 1}, "unknown fields"),
        ("chat_ack", {}, "Field required"),
        ("speakers_changed", {"speakers": [{"participant_id": "a", "level": 2}]}, "less than or equal"),
        ("role_changed", {"participant_id": "a", "role": "owner"}, "Input should be"),
        ("muted_by_host", {"source": "keyboard"}, "Input should be"),
        ("track_muted", {"track_id": "t", "muted": "yes please"}, "bool"),
    ],
)
def test_the_relay_cannot_send_what_the_protocol_lacks(type_: str, fields: dict, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        p.message(type_, **fields)


def test_a_relayed_event_is_one_the_participants_protocol_defines() -> None:
    newer = {"type": "track_muted", "track_id": "a/camera", "muted": True, "volume": 3}
    relayed = p.Relayed(type="relayed", event=newer)
    assert relayed.event == {"type": "track_muted", "track_id": "a/camera", "muted": True}
    for event in ({"type": "welcome"}, {"type": "chat", "text": "no sender"}, {"type": "track_muted"}):
        with pytest.raises(p.ProtocolError) as refused:
            p.parse_client_message(p.encode_cascade(p.Relayed.model_construct(type="relayed", event=event)))
        assert refused.value.code == "invalid_message"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"type":"pong"}', "binary_frame"),
        ("[" * 100_000, "too_deep"),
        ("{nope", "malformed_json"),
        ('["pong"]', "invalid_message"),
        ('{"type":"surprise"}', "unknown_type"),
        ('{"type":"welcome","participant_id":"a"}', "invalid_message"),
        ('{"type":"offer","negotiation":1,"sdp":"v=0","tracks":{"0":{"what":1}}}', "invalid_message"),
        ('{"type":"pong","pad":"' + "x" * p.MAX_MESSAGE_BYTES + '"}', "message_too_large"),
    ],
)
def test_a_client_refuses_a_broken_relay_message_with_a_code(raw: str | bytes, code: str) -> None:
    with pytest.raises(p.ProtocolError) as refused:
        p.parse_relay_message(raw)
    assert refused.value.code == code


def test_a_newer_relays_extra_fields_are_ignored() -> None:
    parsed = p.parse_relay_message('{"type":"meeting_ended","reason":"host_ended","at":"2026-12-06"}')
    assert parsed == p.MeetingEnded(reason="host_ended")
