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

ROOT = Path(__file__).resolve().parents[2]
CONCERNS = ("auth", "settings", "meetings", "chat", "recordings")
#: A concern's other route modules, as functions/routes/__init__.py's PARTS says (checked below).
PARTS = {"meetings": ("meetings_router", "host_controls")}

_INIT = """
import gc, json, sys
import functions.handlers as handlers
from functions.routes import CONCERNS
before = set(sys.modules)
handler = getattr(handlers, sys.argv[1])
assert callable(handler)
modules = sorted(sys.modules)
collector = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}

# PynamoDB's tables share this thread's botocore session (functions/models/base.py patches a private seam).
from functions.core import aws
from functions.models import MeetingModel, UserModel
from functions.models.base import _connection
sessions = [UserModel._get_connection().connection.session, MeetingModel._get_connection().connection.session]
sessions.append(_connection().session)
shared = all(s is aws.session() for s in sessions)
found = {"concerns": list(CONCERNS), "modules": modules, "module_only": sorted(before), "shared": shared}
found["gc"] = collector
print(json.dumps(found))
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
        assert "fastapi" not in init["module_only"]  # the attribute builds; the module import is bare


def test_the_garbage_collector_is_back_on_after_init(inits) -> None:
    """Off while a handler is built (two full collections cost ~85 ms there), on again afterwards, with
    what the build made frozen out of later collections."""
    for init in inits.values():
        assert init["gc"]["enabled"] and init["gc"]["frozen"] > 10_000


@pytest.mark.parametrize("concern", CONCERNS)
def test_a_handler_imports_only_its_own_routes(inits, concern: str) -> None:
    routes = {m for m in _loaded(inits, concern) if m.startswith("functions.routes.")}
    assert routes == {f"functions.routes.{m}" for m in (concern, *PARTS.get(concern, ()))}


def test_the_parts_listed_here_are_the_routes_packages() -> None:
    from functions.routes import PARTS as declared

    assert declared == PARTS


def _present(inits, concern: str, *prefixes: str) -> list[str]:
    return sorted(m for m in _loaded(inits, concern) if m.split(".")[0] in prefixes or m in prefixes)


def test_only_the_hashing_handlers_load_argon2(inits) -> None:
    """auth (passwords) and meetings (passcodes) hash secrets; the others must not pay for argon2."""
    for concern in ("settings", "chat", "recordings"):
        assert not _present(inits, concern, "argon2"), concern


def test_only_the_upload_handlers_load_the_s3_code(inits) -> None:
    for concern in ("auth", "meetings", "chat"):
        assert not _present(inits, concern, "functions.storage"), concern
    for concern in CONCERNS:  # S3 goes through botocore directly: boto3 and s3transfer are never loaded
        assert not _present(inits, concern, "boto3", "s3transfer"), concern


def test_every_table_uses_the_threads_shared_botocore_session(inits) -> None:
    assert all(init["shared"] for init in inits.values())


def test_no_xray_sdk_outside_lambda(inits) -> None:
    """Powertools' Tracer disables itself outside Lambda; it is not even built there (its X-Ray recorder
    builds botocore clients at import)."""
    for concern in CONCERNS:
        assert not _present(inits, concern, "aws_xray_sdk"), concern


_TRACING_RULE = """
import itertools, json, os
from aws_lambda_powertools.tracing.tracer import Tracer
from functions.core.observability import tracing_enabled
names = ["LAMBDA_TASK_ROOT", "AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE", "POWERTOOLS_TRACE_DISABLED"]
disagree = []
for values in itertools.product([None, "true", "false", "1"], repeat=len(names)):
    for name, value in zip(names, values):
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value
    if tracing_enabled() != (not Tracer._is_tracer_disabled()):
        disagree.append(values)
print(json.dumps(disagree))
"""


def test_tracing_follows_powertools_rule() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _TRACING_RULE],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_in_lambda_the_handler_is_traced() -> None:
    """Traced in Lambda, with X-Ray patching what the control plane calls (botocore, PynamoDB, urllib's
    http.client) and not importing the rest of what it could patch (sqlite3, httpx ...)."""
    code = (
        "import sys, functions.handlers as h\n"
        "from functions.core.observability import tracer\n"
        "h.chat\n"
        "from aws_xray_sdk.core.patcher import _PATCHED_MODULES\n"
        "assert _PATCHED_MODULES == {'botocore', 'pynamodb', 'httplib'}, _PATCHED_MODULES\n"
        "assert not {'sqlite3', 'httpx', 'requests'} & set(sys.modules), 'patched what is not called'\n"
        "print(tracer is not None and not tracer.disabled and 'aws_xray_sdk.core' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAMBDA_TASK_ROOT": str(ROOT)}
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "True"


def test_a_failing_build_is_not_reported_as_a_missing_handler(monkeypatch) -> None:
    """The Lambda runtime turns an AttributeError from ``getattr(module, "chat")`` into "Handler 'chat'
    missing on module": one raised while building the handler must surface as the error it is."""
    from functions import handlers

    def broken(concern: str) -> None:
        raise AttributeError("'NoneType' object has no attribute 'router'")

    monkeypatch.setattr(handlers, "_build", broken)
    monkeypatch.delitem(vars(handlers), "chat", raising=False)
    with pytest.raises(RuntimeError, match="building the chat handler failed"):
        handlers.chat  # noqa: B018
    with pytest.raises(AttributeError):
        handlers.nonsense  # noqa: B018
