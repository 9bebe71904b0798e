"""Run Python code where some modules cannot be imported, as if they were not installed.

``python isolated.py BLOCKED_JSON CODE``: ``BLOCKED_JSON`` is a JSON list of top-level module names; a
``sys.meta_path`` finder put first raises ``ModuleNotFoundError`` for each of them (and their submodules),
which is what Python raises for a module that is not there. Then ``CODE`` runs. A plain script, so that
nothing but the standard library is imported before the blocker is in place.
"""

from __future__ import annotations

import importlib.abc
import json
import sys


class Blocker(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.refused: set[str] = set()

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] in self.names:
            self.refused.add(fullname)
            raise ModuleNotFoundError(f"No module named {fullname!r} (not installed)", name=fullname)


blocker = Blocker(set(json.loads(sys.argv[1])))
already = sorted(name for name in sys.modules if name.partition(".")[0] in blocker.names)
if already:  # imported at startup (a .pth file): the blocker would come too late for them
    sys.exit(f"isolated.py: blocked modules already imported at startup: {already}")
sys.meta_path.insert(0, blocker)
exec(sys.argv[2])  # noqa: S102 - the test's own code
