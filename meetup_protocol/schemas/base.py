"""Shared pieces of the request/response models."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

#: Client-generated key that makes a retried write land once (letters, digits, ``_`` and ``-``).
IdempotencyKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
#: What a name or a title may not contain: C0 and C1 control characters (terminal escapes) and the
#: bidirectional overrides and isolates, which make a name read as something else ("Trojan Source").
NAME_CHARACTERS = r"^[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]+$"
#: A human-readable name: trimmed, 1 to 64 characters, none of the above.
DisplayName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=NAME_CHARACTERS)
]
#: A meeting id as people type it: ten digits, with optional spaces or dashes.
MeetingIdPath = Annotated[str, StringConstraints(pattern=r"^[0-9][0-9 -]{8,14}[0-9]$")]


class StrictRequest(BaseModel):
    """Base of every request body: wrong types are errors (``false`` is not an int), extras too.

    One leniency: JSON Schema's ``integer`` admits ``10.0``, so integral floats become ints (``10.5``,
    ``"10"`` and ``true`` are still refused).
    """

    model_config = ConfigDict(strict=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _integral_floats_to_int(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        ints = {
            name
            for name, field in cls.model_fields.items()
            if field.annotation is int or int in get_args(field.annotation)
        }
        return {
            key: int(value) if key in ints and isinstance(value, float) and value.is_integer() else value
            for key, value in data.items()
        }


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list, oldest first.

    Pass ``next_cursor`` back as ``cursor`` for the next page. It is set whenever the list is not empty,
    so a client can also keep it to poll for newer items later; ``has_more`` says more may exist now.
    """

    items: list[T]
    next_cursor: str | None
    has_more: bool
