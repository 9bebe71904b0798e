"""Shared pieces of the request/response models."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints

#: Client-generated key that makes a retried write land once (letters, digits, ``_`` and ``-``).
IdempotencyKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
#: A human-readable name: trimmed, 1 to 64 characters, no control characters.
DisplayName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]
#: A meeting id as people type it: ten digits, with optional spaces or dashes.
MeetingIdPath = Annotated[str, StringConstraints(pattern=r"^[0-9][0-9 -]{8,14}[0-9]$")]


class StrictRequest(BaseModel):
    """Base of every request body: wrong types are errors (``false`` is not an int), extras too."""

    model_config = ConfigDict(strict=True, extra="forbid")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list, oldest first.

    Pass ``next_cursor`` back as ``cursor`` for the next page. It is set whenever the list is not empty,
    so a client can also keep it to poll for newer items later; ``has_more`` says more may exist now.
    """

    items: list[T]
    next_cursor: str | None
    has_more: bool
