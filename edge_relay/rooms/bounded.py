"""A dict with a bound: what a relay remembers of hostile or endless input never grows without limit."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class BoundedDict(OrderedDict[str, Any]):
    """A dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)
