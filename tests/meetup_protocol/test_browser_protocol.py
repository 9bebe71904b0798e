"""The browser client (web/js, plain JavaScript with no build step) follows meetup_protocol.signalling.

Read from its source: every message it sends is a client message with fields the relay accepts; every
message type it handles is one the relay sends, and every field it reads from one is in that message's
definition; it handles every relay message a participant needs; and it speaks the same version.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from meetup_protocol import signalling as p

WEB = Path(__file__).resolve().parents[2] / "web" / "js"
RELAY_JS = (WEB / "relay.js").read_text()
MEETING_JS = (WEB / "meeting.js").read_text()
#: The modules that talk to the relay (the UI under ui/ goes through meeting.js).
SOURCES = {"relay.js": RELAY_JS, "meeting.js": MEETING_JS}

CLIENT_MESSAGES: dict[str, type[p.Message]] = {
    get_args(m.model_fields["type"].annotation)[0]: m
    for m in (
        p.Join,
        p.Publish,
        p.Unpublish,
        p.SetVideoQuality,
        p.Answer,
        p.Mute,
        p.Reaction,
        p.Chat,
        p.Hand,
        p.End,
        p.Leave,
        p.Ping,
    )
}
#: Events relay.js makes itself (not relay messages): a remote track bound to its m-line, one in a codec
#: this browser cannot decode, the socket closed, the media connection changing state.
LOCAL_EVENTS = {"track": set(), "track_undecodable": set(), "closed": set(), "media_state": set()}
#: Relay messages the browser may ignore: keepalive answers (it sends no ping), and track announcements
#: (it learns each remote track from the offer's m-line, as the SDK does).
NOT_NEEDED = {"pong", "track_published"}


def fields(model: type) -> set[str]:
    return set(model.model_fields)  # type: ignore[attr-defined]


def object_literal(text: str, start: int) -> str:
    """The ``{...}`` starting at ``start``, nested braces included."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start : i + 1]
    raise AssertionError("unbalanced braces")


def top_level_keys(literal: str) -> set[str]:
    inner, depth, keys, token = literal[1:-1], 0, set(), ""
    for part in re.split(r"([{}\[\](),])", inner):
        if not part:
            continue
        if part in "{[(":
            depth += 1
        elif part in "}])":
            depth -= 1
        elif part == ",":
            continue
        elif depth == 0:
            token = part.strip()
            match = re.match(r"^(\w+)\s*(:|$)", token)
            if match:
                keys.add(match.group(1))
    return keys


def sent_messages() -> list[tuple[str, str, set[str]]]:
    found = []
    for name, text in SOURCES.items():
        for match in re.finditer(r"\{\s*type:\s*\"(\w+)\"", text):
            if re.search(r"Description\(\s*$", text[: match.start()]):
                continue  # an RTCSessionDescription, not a message
            literal = object_literal(text, match.start())
            found.append((name, match.group(1), top_level_keys(literal)))
    return found


def test_only_relay_js_and_meeting_js_talk_to_the_relay() -> None:
    talking = {
        path.name
        for path in WEB.rglob("*.js")
        if re.search(r"(connection\??\.send|_send|_ws\??\.send)\(", path.read_text())
    }
    assert talking <= set(SOURCES)


def test_the_browser_speaks_the_same_protocol_version() -> None:
    assert re.search(rf"export const PROTOCOL_VERSION = {p.PROTOCOL_VERSION};", RELAY_JS)


def test_every_message_the_browser_sends_is_a_client_message_with_known_fields() -> None:
    sent = sent_messages()
    assert {t for _, t, _ in sent} >= {
        "join",
        "answer",
        "publish",
        "unpublish",
        "mute",
        "chat",
        "reaction",
        "end",
        "leave",
    }
    for name, type_, keys in sent:
        assert type_ in CLIENT_MESSAGES, f"{name} sends {type_!r}, which the relay does not accept"
        assert keys <= fields(CLIENT_MESSAGES[type_]), (
            f"{name}: {type_} with unknown fields {keys - fields(CLIENT_MESSAGES[type_])}"
        )
        required = {f for f, info in CLIENT_MESSAGES[type_].model_fields.items() if info.is_required()}
        assert required <= keys, f"{name}: {type_} lacks {required - keys}"


def dispatch_cases() -> dict[str, set[str]]:
    """relay.js's ``_dispatch`` switch: message type -> the ``msg.`` fields its case reads."""
    body = RELAY_JS[RELAY_JS.index("_dispatch(msg) {") :]
    body = body[: body.index("this.emit(msg.type, msg);")]
    cases: dict[str, set[str]] = {}
    group: list[str] = []
    for chunk in re.split(r"(case \"\w+\":)", body)[1:]:
        label = re.match(r"case \"(\w+)\":", chunk)
        if label:
            group.append(label.group(1))
            continue
        reads = set(re.findall(r"\bmsg\.(\w+)", chunk)) - {"type"}
        for type_ in group:
            cases[type_] = reads
        if chunk.strip():
            group = []
    return cases


def meeting_handlers() -> dict[str, set[str]]:
    """meeting.js's ``connection.on(type, handler)``: type -> the fields the handler reads."""
    handlers: dict[str, set[str]] = {}
    parts = re.split(r"connection\.on\(\"(\w+)\",\s*", MEETING_JS)
    for type_, body in zip(parts[1::2], parts[2::2], strict=True):
        params = re.match(r"\(([^)]*)\)\s*=>", body)
        assert params, f"handler of {type_} is not an arrow function"
        param = params.group(1).strip()
        if param.startswith("{"):
            handlers[type_] = top_level_keys(param)
        elif param:
            handlers[type_] = set(re.findall(rf"\b{param}\.(\w+)", body))
        else:
            handlers[type_] = set()
    return handlers


def test_every_message_the_browser_reads_is_a_relay_message_with_those_fields() -> None:
    welcome = RELAY_JS[RELAY_JS.index('msg.type === "welcome"') : RELAY_JS.index('msg.type === "error"')]
    first_error = RELAY_JS[RELAY_JS.index('msg.type === "error"') : RELAY_JS.index("this._dispatch(msg);")]
    reads = {
        "welcome": set(re.findall(r"\bmsg\.(\w+)", welcome)) - {"type"},
        "error": set(re.findall(r"\bmsg\.(\w+)", first_error)) - {"type"},
    }
    checked = [*reads.items(), *dispatch_cases().items(), *meeting_handlers().items()]
    assert len(checked) > 15
    for type_, used in checked:
        if type_ in LOCAL_EVENTS:
            continue
        assert type_ in p.RELAY_MESSAGES, f"the browser handles {type_!r}, which the relay never sends"
        assert used <= fields(p.RELAY_MESSAGES[type_]), (
            f"{type_}: reads {used - fields(p.RELAY_MESSAGES[type_])}"
        )


def test_the_browser_reads_offers_as_the_protocol_defines_them() -> None:
    answer = RELAY_JS[RELAY_JS.index("async _answer(offer) {") :]
    answer = answer[: answer.index("\n  }\n")]
    assert set(re.findall(r"\boffer\.(\w+)", answer)) <= fields(p.Offer)
    assert set(re.findall(r"\bslot\.(\w+)", answer)) <= fields(p.PublishSlot) | fields(p.TrackInfo)


def test_the_browser_handles_every_relay_message_a_participant_needs() -> None:
    handled = set(dispatch_cases()) | set(meeting_handlers())
    missing = set(p.RELAY_MESSAGES) - NOT_NEEDED - handled
    assert not missing, f"the browser ignores {sorted(missing)}"


@pytest.mark.parametrize(
    ("source", "wrong"),
    [('send({ type: "chat", notice: n, extra: { a: 1 } })', "extra"), ('send({ type: "shout" })', "shout")],
)
def test_the_reading_of_literals_catches_a_wrong_message(source: str, wrong: str) -> None:
    start = source.index("{")
    type_ = re.match(r'\{\s*type:\s*"(\w+)"', source[start:]).group(1)  # type: ignore[union-attr]
    keys = top_level_keys(object_literal(source, start))
    assert wrong in keys | {type_}
    assert type_ not in CLIENT_MESSAGES or not keys <= fields(CLIENT_MESSAGES[type_])
