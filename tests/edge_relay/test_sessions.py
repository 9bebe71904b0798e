"""The signalling sessions on their own: a socket's first message picks its session, each session takes
the messages of its table and refuses the rest (fake sockets, real rooms; no network)."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import pytest

from edge_relay.cluster.credentials import LinkClaims, issue_link_token
from edge_relay.config import RelayConfig
from edge_relay.rooms.directory import Rooms
from edge_relay.signalling.connection import Connection
from edge_relay.signalling.link_session import DialedLinkSession, LinkSession
from edge_relay.signalling.participant_session import ParticipantSession
from edge_relay.signalling.session import Closed
from edge_relay.signalling.wire import AcceptedLinkWire, ParticipantWire
from meetup_protocol import signalling as p
from meetup_protocol.tokens import (
    JoinClaims,
    generate_join_keypair,
    issue_join_token,
    load_private_key,
    load_public_key,
)
from tests.edge_relay.fakes import FakeParticipant, Heard, info, link_state

SECRET = "a-cluster-secret-of-32-bytes-or-more"
PRIVATE_PEM, PUBLIC_PEM = generate_join_keypair()


class Socket:
    """One fake WebSocket: what the relay sent on it, decoded, and whether it was closed."""

    def __init__(self, rooms: Rooms, config: RelayConfig) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: str | None = None
        self.connection = Connection(
            config, rooms, p_key(config), self._send, self._disconnect, lambda: False
        )

    async def _send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def _disconnect(self, reason: str) -> None:
        self.closed = reason

    async def say(self, **body: Any) -> None:
        await self.connection.handle(json.dumps(body))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]

    def errors(self) -> list[str]:
        return [m["code"] for m in self.of("error")]


def p_key(config: RelayConfig) -> Any:
    return load_public_key(config.join_public_key)


@pytest.fixture
def config() -> RelayConfig:
    return RelayConfig(MEETUP_JOIN_PUBLIC_KEY=PUBLIC_PEM, MEETUP_CLUSTER_SECRET=SECRET)  # type: ignore[call-arg]


def join_token(participant_id: str, role: Literal["host", "guest"] = "guest") -> str:
    now = int(time.time())
    claims = JoinClaims(
        "m1", participant_id, f"user-{participant_id}", participant_id, role, now + 60, now + 3600, 10
    )
    return issue_join_token(claims, load_private_key(PRIVATE_PEM))


def link_token(relay_id: str, meeting_id: str = "m1") -> str:
    return issue_link_token(SECRET, LinkClaims(relay_id, meeting_id, 10, int(time.time()) + 3600))


async def joined(
    rooms: Rooms, config: RelayConfig, participant_id: str, role: Literal["host", "guest"] = "guest"
) -> Socket:
    socket = Socket(rooms, config)
    await socket.say(type="join", token=join_token(participant_id, role))
    assert isinstance(socket.connection.session, ParticipantSession)
    return socket


async def test_only_a_join_opens_a_session(config: RelayConfig) -> None:
    rooms = Rooms()
    socket = Socket(rooms, config)
    await socket.say(type="publish", source="camera")
    await socket.say(type="cascade_update", state={"relay_id": "r"})
    assert socket.errors() == ["not_joined", "not_joined"] and socket.connection.session is None


async def test_a_bad_join_token_closes_the_socket(config: RelayConfig) -> None:
    socket = Socket(Rooms(), config)
    with pytest.raises(Closed) as closed:
        await socket.say(type="join", token="not-a-token")
    assert closed.value.code == 4401 and socket.errors() == ["token_invalid"]


async def test_a_participant_is_welcomed_and_served_by_its_table(config: RelayConfig) -> None:
    rooms = Rooms()
    alice = await joined(rooms, config, "alice", role="host")
    bob = await joined(rooms, config, "bob")
    assert bob.of("welcome")[0]["participants"][0]["participant_id"] == "alice"
    assert alice.of("participant_joined")[0]["participant"]["participant_id"] == "bob"
    await bob.say(type="ping")
    await bob.say(type="join", token=join_token("bob"))
    await bob.say(type="cascade_update", state={"relay_id": "r"})
    await bob.say(type="unpublish", source="camera")
    await bob.say(type="answer", negotiation=7, sdp="v=0")
    await bob.say(type="end")
    assert bob.of("pong") == [{"type": "pong"}]
    assert bob.errors() == ["already_joined", "not_allowed", "not_published", "unexpected_answer", "not_host"]
    await bob.say(type="mute", source="camera", muted=True)
    assert alice.of("track_muted") == [{"type": "track_muted", "track_id": "bob/camera", "muted": True}]
    with pytest.raises(Closed) as left:
        await bob.say(type="leave")
    assert left.value.code == 1000
    await bob.connection.close("left")
    assert alice.of("participant_left") == [
        {"type": "participant_left", "participant_id": "bob", "reason": "left"}
    ]
    await alice.say(type="end")
    assert alice.of("meeting_ended") == [{"type": "meeting_ended", "reason": "host_ended"}]
    assert alice.closed == "host_ended" and "m1" in rooms.ended


async def test_publishing_makes_an_offer_with_a_publish_slot(config: RelayConfig) -> None:
    rooms = Rooms()
    alice = await joined(rooms, config, "alice")
    await alice.say(type="publish", source="microphone")
    offer = alice.of("offer")[0]
    assert offer["negotiation"] == 1 and list(offer["tracks"].values()) == [{"publish": "microphone"}]
    assert "m=audio" in offer["sdp"] and "a=recvonly" in offer["sdp"]
    await alice.say(type="publish", source="microphone")
    assert alice.errors() == ["already_published"]
    await alice.connection.close("left")
    assert not rooms.rooms


async def test_a_relay_joins_as_a_link_served_by_its_own_table(config: RelayConfig) -> None:
    rooms = Rooms()
    rooms.relay_id = "relay-a"
    alice = await joined(rooms, config, "alice")
    relay = Socket(rooms, config)
    carol = FakeParticipant("carol")
    await relay.say(
        type="cascade_join", token=link_token("relay-b"), state=link_state("relay-b", (carol,)).model_dump()
    )
    assert isinstance(relay.connection.session, LinkSession)
    assert rooms.rooms["m1"].links["relay-b"] is relay.connection.session.link
    assert alice.of("participant_joined")[0]["participant"]["participant_id"] == "carol"
    update = p.parse_link_message(json.dumps(relay.of("cascade_update")[0]))
    assert isinstance(update, p.CascadeUpdate) and update.state.participants[0].participant_id == "alice"
    for refused in (
        {"type": "publish", "source": "camera"},
        {"type": "leave"},
        {"type": "join", "token": "x"},
    ):
        await relay.say(**refused)
    assert relay.errors() == ["not_allowed"] * 3
    reaction = {
        "type": "reaction",
        "participant_id": "carol",
        "name": "Carol",
        "emoji": "+1",
        "reaction_id": "r1",
    }
    await relay.say(type="relayed", event={**reaction, "from_a_newer_relay": True})
    assert alice.of("reaction") == [reaction]  # what the protocol defines, and nothing else
    await relay.say(type="relayed", event={"type": "reaction", "participant_id": "carol", "emoji": "+1"})
    assert relay.errors()[-1] == "invalid_message" and len(alice.of("reaction")) == 1
    await relay.say(type="cascade_update", state=link_state("relay-b").model_dump())
    assert alice.of("participant_left")[0]["participant_id"] == "carol"
    await relay.connection.close("disconnected")
    assert not rooms.rooms["m1"].links and relay.closed == "unlinked"


async def test_a_link_is_refused_without_participants_or_with_a_foreign_token(config: RelayConfig) -> None:
    relay = Socket(Rooms(), config)
    with pytest.raises(Closed) as closed:
        await relay.say(type="cascade_join", token=link_token("relay-b"), state={"relay_id": "relay-b"})
    assert closed.value.code == 4404 and relay.errors() == ["no_participants"]
    relay = Socket(Rooms(), config)
    with pytest.raises(Closed) as closed:
        await relay.say(type="cascade_join", token=link_token("relay-c"), state={"relay_id": "relay-b"})
    assert closed.value.code == 4401 and relay.errors() == ["token_invalid"]


async def test_the_dialing_end_dispatches_what_the_peer_says() -> None:
    link = Heard()
    link.relay_id = "relay-b"  # type: ignore[attr-defined]
    session = DialedLinkSession(link)  # type: ignore[arg-type]
    offer = p.LinkOffer(
        type="offer",
        negotiation=1,
        sdp="v=0",
        tracks={"0": p.PublishTrackSlot(publish_track="a/camera"), "1": info("b/camera")},
    )
    for frame in (
        offer.model_dump_json(),
        '{"type": "cascade_update", "state": {"relay_id": "relay-b"}}',
        '{"type": "relayed", "event": {"type": "chat", "participant_id": "b", "name": "B", '
        '"message_id": "c1", "text": "hi"}}',
        '{"type": "relayed", "event": {"type": "chat"}}',  # not a chat message: refused
        '{"type": "error", "code": "no_participants", "message": "none"}',
        '{"type": "pong"}',
        b"\xff",
        "not json",
    ):
        await session.handle(frame)
    assert [name for name, _ in link.calls] == ["on_offer", "apply_state", "on_relayed"]
    assert link.of("on_offer")[0][0] == offer


async def test_the_wires_write_the_protocol() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    async def disconnect(_: str) -> None:
        pass

    event = {"type": "chat", "participant_id": "a", "name": "A", "message_id": "c1", "text": "hi"}
    await ParticipantWire(send, disconnect).event(event)
    assert sent[-1] == p.message("chat", participant_id="a", name="A", message_id="c1", text="hi")
    tracks: dict[str, Any] = {"0": p.PublishTrackSlot(publish_track="b/camera"), "1": info("a/camera")}
    await AcceptedLinkWire(send, disconnect).offer(3, "v=0", tracks)
    parsed = p.parse_link_message(sent[-1])
    assert isinstance(parsed, p.LinkOffer) and parsed.tracks == tracks and parsed.negotiation == 3
