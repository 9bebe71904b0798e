"""Lambda-style cold starts: per handler, a fresh interpreter imports it and serves its first request.

Each handler in ``functions/handlers.py`` gets fresh child processes (``bench.cold_child``) pointed at the
running moto server, with the same configuration the API uses. The child times the import as the Lambda
runtime does it (import ``functions.handlers``, then resolve the handler's attribute, which builds that
concern's app and imports its routes), the first invocation, and a median warm invocation of the same
request, which is the baseline: "a cold start costs N warm requests". A bare ``python -c pass`` measured in
the same run is the floor of any process start.

Each handler runs twice over: as outside Lambda (no Tracer: functions/core/observability.py builds it only
where Powertools traces) and as in Lambda with active tracing (``LAMBDA_TASK_ROOT`` and a sampled
``_X_AMZN_TRACE_ID`` set: the X-Ray SDK is imported, patches botocore, PynamoDB and http.client, and
sends its segments over UDP to 127.0.0.1:2000, where nothing listens, as a daemon would take them).
The dev venv holds more than a Lambda bundle (pyOpenSSL for aiortc, opentelemetry ...), which some imports
pick up when present; they count here.

Each recordings run gets a fresh meeting: a participant may have 2 unfinished uploads, so the first
request is a real upload start (S3 multipart) and the later warm ones mostly its quota refusal (409).

Not simulated: Lambda's own runtime bootstrap, and compiling bytecode (the venv's ``.pyc`` files are warm).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from bench.common import ROOT, BenchStack, join, new_account, new_meeting

CONCERNS = ("auth", "settings", "meetings", "chat", "recordings")


@dataclass
class ColdResult:
    concern: str
    xray: bool  # run as in Lambda with active tracing
    request: str
    runs: int
    process_wall_ms: float  # spawn to exit, as the parent sees it
    import_ms: dict[str, float]  # module import + handler resolution: the Lambda init phase's work
    module_import_ms: dict[str, float]
    handler_resolve_ms: dict[str, float]
    init_ms: dict[str, float]  # everything before the first invocation (after interpreter start)
    one_app_build_ms: dict[str, float]
    first_request_ms: dict[str, float]
    warm_request_ms: dict[str, float]
    statuses: list[int]
    ratios: dict[str, float] = field(default_factory=dict)


async def _specs(stack: BenchStack) -> dict[str, dict[str, Any]]:
    """One representative request per handler, for an account and a meeting made over the API."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        acct = await new_account(http, "Cold")
        room = await new_meeting(http, acct)
        await join(http, room, acct)
    mid, token = room["meeting_id"], acct.access_token
    recording = {"filename": "bench.webm", "content_type": "video/webm", "size": 1024 * 1024}
    return {
        "auth": {
            "method": "POST",
            "path": "/auth/login",
            "path_template": "/auth/login",
            "body": {"email": acct.email, "password": acct.password},
        },
        "settings": {"method": "GET", "path": "/settings", "path_template": "/settings", "token": token},
        "meetings": {
            "method": "POST",
            "path": f"/meetings/{mid}/join",
            "path_template": "/meetings/{id}/join",
            "body": {},
            "token": token,
        },
        "chat": {
            "method": "POST",
            "path": f"/meetings/{mid}/chat",
            "path_template": "/meetings/{id}/chat",
            "body": {"text": "cold hello"},
            "fresh_key": True,
            "token": token,
        },
        "recordings": {
            "method": "POST",
            "path": f"/meetings/{mid}/recordings",
            "path_template": "/meetings/{id}/recordings",
            "body": recording,
            "token": token,
        },
    }


#: A sampled trace header as the Lambda runtime sets it for an invocation with active tracing.
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


async def _fresh_recording_target(stack: BenchStack) -> dict[str, Any]:
    """A new meeting and participant: the recordings request starts a real upload, not a quota 409."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        acct = await new_account(http, "Rec")
        room = await new_meeting(http, acct)
        await join(http, room, acct)
    return {"path": f"/meetings/{room['meeting_id']}/recordings", "token": acct.access_token}


def _child_env(stack: BenchStack, concern: str, xray: bool = False) -> dict[str, str]:
    env = dict(stack.env)
    env.update(
        {
            "POWERTOOLS_SERVICE_NAME": f"meetup-{concern}",
            "POWERTOOLS_METRICS_DISABLED": "false",  # as in Lambda: EMF flushed on every invocation
            "PYTHONPATH": str(ROOT),
        }
    )
    for name in ("LAMBDA_TASK_ROOT", "_X_AMZN_TRACE_ID", "POWERTOOLS_TRACE_DISABLED"):
        env.pop(name, None)
    if xray:
        env.update({"LAMBDA_TASK_ROOT": str(ROOT), "_X_AMZN_TRACE_ID": TRACE_HEADER})
    return env


def _run_child(
    stack: BenchStack, spec: dict[str, Any], extra_args: list[str] | None = None, xray: bool = False
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp, "spec.json"), Path(tmp, "out.json")
        spec_path.write_text(json.dumps(spec))
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, *(extra_args or []), "-m", "bench.cold_child", str(spec_path), str(out_path)],
            cwd=ROOT,
            env=_child_env(stack, spec["concern"], xray),
            stdout=subprocess.DEVNULL,  # Powertools' request logs and EMF metrics
            stderr=subprocess.PIPE,
            check=False,
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0 or not out_path.exists():
            raise RuntimeError(f"cold start of {spec['concern']} failed:\n{proc.stderr.decode()[-3000:]}")
        result = json.loads(out_path.read_text())
        result["process_wall_ms"] = wall * 1000
        result["stderr"] = proc.stderr.decode(errors="replace")
        return result


def python_startup_ms(runs: int = 3) -> float:
    """Median wall time of ``python -c pass``: the floor under every cold start here."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _median_pair(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    return {k: statistics.median(r[key][k] for r in runs) for k in ("wall", "cpu")}


def import_profile(stack: BenchStack, spec: dict[str, Any], top: int = 8) -> list[dict[str, Any]]:
    """``-X importtime`` of one cold start, self time summed per top-level package, largest first."""
    stderr = _run_child(stack, spec, ["-X", "importtime"])["stderr"]
    per_package: dict[str, int] = defaultdict(int)
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            per_package[m.group(2).split(".")[0]] += int(m.group(1))
    ranked = sorted(per_package.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return [{"package": name, "self_ms": us / 1000} for name, us in ranked]


async def run(
    stack: BenchStack,
    repeats: int,
    warm_requests: int,
    progress: Progress | None = None,
    profile: bool = True,
) -> dict[str, Any]:
    specs = await _specs(stack)
    steps = 2 * len(CONCERNS) * repeats + 1 + int(profile)
    task = progress.add_task("Cold starts", total=steps) if progress else None
    startup = python_startup_ms()
    if progress and task is not None:
        progress.advance(task)
    results: list[ColdResult] = []
    for concern, xray in [(c, x) for x in (False, True) for c in CONCERNS]:
        if progress and task is not None:
            progress.update(task, description=f"Cold starts: {concern}{' + X-Ray' if xray else ''}")
        spec = {**specs[concern], "concern": concern, "warm_requests": warm_requests}
        runs = []
        for _ in range(repeats):
            if concern == "recordings":
                spec = {**spec, **await _fresh_recording_target(stack)}
            runs.append(_run_child(stack, spec, xray=xray))
            if progress and task is not None:
                progress.advance(task)
        res = ColdResult(
            concern=concern,
            xray=xray,
            request=runs[0]["request"],
            runs=repeats,
            process_wall_ms=statistics.median(r["process_wall_ms"] for r in runs),
            import_ms=_median_pair(runs, "import_ms"),
            module_import_ms=_median_pair(runs, "module_import_ms"),
            handler_resolve_ms=_median_pair(runs, "handler_resolve_ms"),
            init_ms=_median_pair(runs, "init_ms"),
            one_app_build_ms=_median_pair(runs, "one_app_build_ms"),
            first_request_ms=_median_pair(runs, "first_request_ms"),
            warm_request_ms=_median_pair(runs, "warm_request_ms"),
            statuses=sorted(
                {r["first_status"] for r in runs} | {s for r in runs for s in r["warm_statuses"]}
            ),
        )
        warm = res.warm_request_ms
        res.ratios = {
            "first_vs_warm_wall": res.first_request_ms["wall"] / warm["wall"],
            "first_vs_warm_cpu": res.first_request_ms["cpu"] / warm["cpu"],
            "cold_vs_warm_wall": (res.init_ms["wall"] + res.first_request_ms["wall"]) / warm["wall"],
        }
        results.append(res)
    profile_rows: list[dict[str, Any]] = []
    if profile:
        if progress and task is not None:
            progress.update(task, description="Cold starts: import profile")
        profile_rows = import_profile(stack, {**specs["auth"], "concern": "auth", "warm_requests": 1})
        if progress and task is not None:
            progress.advance(task)
    if progress and task is not None:
        progress.update(task, description="Cold starts: done")
    return {
        "python_startup_ms": startup,
        "handlers": [asdict(r) for r in results],
        "import_profile": profile_rows,
        "cpu_count": os.cpu_count(),
    }
