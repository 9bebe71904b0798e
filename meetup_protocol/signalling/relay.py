"""Relay -> client messages."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel


def message(type_: str, **fields: Any) -> str:
    """Serialise a relay -> client message."""
    body: dict[str, Any] = {"type": type_}
    for key, value in fields.items():
        body[key] = value.model_dump() if isinstance(value, BaseModel) else value
    return json.dumps(body, separators=(",", ":"), default=_dump)


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    raise TypeError(f"cannot serialise {type(value).__name__}")
