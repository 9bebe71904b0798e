"""What each Lambda handler loads in its init phase: structural facts about cold starts.

The timings live in the benchmark (``python -m bench --api --skip-load``, bench/cold_start.py); here only
*what* gets imported is checked, in a fresh interpreter per handler doing what the Lambda runtime does for
``functions.handlers.<concern>``: import the module, read the attribute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONCERNS = ("auth", "settings", "meetings", "chat", "recordings")

_INIT = """
import json, sys
import functions.handlers as handlers
from functions.app import CONCERNS
before = set(sys.modules)
handler = getattr(handlers, sys.argv[1])
assert callable(handler)
print(json.dumps({"concerns": list(CONCERNS), "modules": sorted(sys.modules), "module_only": sorted(before)}))
"""


def _init(concern: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_", "AWS_LAMBDA_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", _INIT, concern], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def inits() -> dict[str, dict[str, list[str]]]:
    return {concern: _init(concern) for concern in CONCERNS}


def _loaded(inits: dict[str, dict[str, list[str]]], concern: str) -> set[str]:
    return set(inits[concern]["modules"])


def test_the_handlers_are_the_concerns(inits) -> None:
    assert all(tuple(init["concerns"]) == CONCERNS for init in inits.values())


def test_importing_the_handlers_module_loads_no_routes(inits) -> None:
    for init in inits.values():
        assert not [m for m in init["module_only"] if m.startswith("functions.routes.")]


@pytest.mark.parametrize("concern", CONCERNS)
def test_a_handler_imports_only_its_own_routes(inits, concern: str) -> None:
    routes = {m for m in _loaded(inits, concern) if m.startswith("functions.routes.")}
    assert routes == {f"functions.routes.{concern}"}
