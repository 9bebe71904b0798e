"""JSON text from the network: bounded size and nesting, one error type."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import TypeAdapter, ValidationError

MAX_MESSAGE_BYTES = 256 * 1024  # an SDP with dozens of m-lines fits; anything larger is refused
#: Arrays and objects inside each other: the deepest real message (a cascade state) has 6 levels.
MAX_NESTING = 16


class ProtocolError(Exception):
    """A client message the relay refuses; ``code`` goes back to the client in an ``error`` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


def too_deep(text: str, limit: int = MAX_NESTING) -> bool:
    """Whether JSON ``text`` nests arrays and objects deeper than ``limit``, found before parsing (Python's
    json recurses once per level: 200,000 ``[`` would raise RecursionError). Every step is a regular
    expression over the whole text, so the cost is a few linear passes in C, whatever the input."""
    skeleton = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    for _ in range(limit):
        if not skeleton:
            return False
        skeleton, removed = _INNERMOST.subn("", skeleton)
        if not removed:  # unbalanced: not JSON; short enough for the parser to say so safely?
            return len(skeleton) > limit
    return bool(skeleton)


def load_json(raw: str) -> Any:
    """``json.loads`` for text from the network: bounded nesting, one error type (ProtocolError)."""
    if too_deep(raw):
        raise ProtocolError("too_deep", f"JSON nested deeper than {MAX_NESTING} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("malformed_json", "the message is not valid JSON") from None


def parse_message(raw: str | bytes, messages: TypeAdapter[Any]) -> Any:
    """One JSON text frame, validated as one of ``messages`` (a discriminated union on ``type``).

    Raises ProtocolError: ``binary_frame``, ``message_too_large``, ``too_deep``, ``malformed_json``,
    ``unknown_type`` or ``invalid_message`` (with where and why), a code the sender can act on."""
    if isinstance(raw, bytes):
        raise ProtocolError("binary_frame", "send JSON text frames")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError("message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    data = load_json(raw)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("invalid_message", "a message is a JSON object with a string 'type'")
    try:
        return messages.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "union_tag_invalid" and not first["loc"]:  # the message's own type
            raise ProtocolError("unknown_type", f"unknown message type {data['type'][:40]!r}") from None
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise ProtocolError("invalid_message", f"{data['type'][:40]}: {where}: {first['msg']}") from None
