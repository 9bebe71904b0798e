"""The SDK and the relay run with nothing but what their projects require.

Each check runs in a subprocess (tests/projects/isolated.py) where every module outside the project's
dependency closure cannot be imported: the other projects of this repository, the development
workspace (local_stack, infra), and every installed distribution the project does not require,
directly or not (FastAPI, moto, the CDK, PynamoDB, mediapipe, OpenCV ... for the SDK). That is what an
install of the project alone gives; the development .venv has everything, which would hide a missing
dependency.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.install_sizes import PROJECTS, REPO, canonical, closure, requirements_of

ISOLATED = Path(__file__).with_name("isolated.py")
FIRST_PARTY = {*PROJECTS, "local_stack", "infra", "bench", "tests"}


def blocked_for(folder: str, extras: tuple[str, ...] = ()) -> list[str]:
    """Top-level modules an install of ``folder``'s project (with ``extras``) would not have."""
    requirements, own = requirements_of(folder, extras)
    keep = set(closure(requirements).distributions)
    blocked = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if not {canonical(d) for d in dists} & keep
    }
    # setuptools' distutils-precedence.pth imports _distutils_hack at every start, in any venv
    return sorted((blocked | FIRST_PARTY) - set(own) - set(sys.stdlib_module_names) - {"_distutils_hack"})


def isolated(blocked: list[str], code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, str(ISOLATED), json.dumps(blocked), code],
        cwd=tmp_path,  # not the checkout: only PYTHONPATH's packages are importable from the sources
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


IMPORT_ALL = """
import importlib, json, pkgutil
package = importlib.import_module({package!r})
failed = {{}}
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if module.name.endswith(".__main__"):  # runs the program: tested with --help
        continue
    try:
        importlib.import_module(module.name)
    except Exception as exc:
        failed[module.name] = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps({{"failed": failed, "refused": sorted(blocker.refused)}}))
"""


def _import_all(package: str, blocked: list[str], tmp_path: Path) -> dict[str, str]:
    result = isolated(blocked, IMPORT_ALL.format(package=package), tmp_path)
    assert result.returncode == 0, result.stderr
    report: dict[str, str] = json.loads(result.stdout.splitlines()[-1])["failed"]
    return report


RUN = "import runpy; sys.argv = {argv!r}; runpy.run_module({module!r}, run_name='__main__')"


def _meet(args: list[str], blocked: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return isolated(blocked, RUN.format(argv=["meet", *args], module="client_sdk.cli.main"), tmp_path)


@pytest.fixture(scope="module")
def sdk_blocked() -> list[str]:
    blocked = blocked_for("client_sdk")
    named = {"functions", "edge_relay", "local_stack", "infra", "fastapi", "moto", "aws_cdk", "pynamodb"}
    assert named | {"mediapipe", "cv2"} <= set(blocked)
    return blocked


def test_every_sdk_module_imports_without_the_rest(sdk_blocked: list[str], tmp_path: Path) -> None:
    failed = _import_all("client_sdk", sdk_blocked, tmp_path)
    # background effects are the extra: asking for them says how to get them
    effects = failed.pop("client_sdk.media.background", "")
    assert effects.startswith("EffectsNotInstalled:") and "pip install 'meetup-edge-sdk[effects]'" in effects
    assert not failed


def test_meet_runs_without_the_rest(sdk_blocked: list[str], tmp_path: Path) -> None:
    result = _meet(["--help"], sdk_blocked, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "join" in result.stdout and "load-test" in result.stdout


@pytest.mark.parametrize("args", [["demo"], ["local", "up"]])
def test_the_local_stack_commands_say_what_is_missing(
    sdk_blocked: list[str], tmp_path: Path, args: list[str]
) -> None:
    result = _meet(args, sdk_blocked, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "development checkout" in message and "meetup-edge-sdk" in message
    assert ("./dev up" if args[0] == "local" else "./dev demo") in message


def test_the_demo_against_a_running_stack_needs_only_the_sdk(sdk_blocked: list[str], tmp_path: Path) -> None:
    """``meet demo --api URL`` uses a stack that runs elsewhere: nothing of the checkout; an API that
    cannot be reached is an error line, not a traceback."""
    result = _meet(["demo", "--api", "http://127.0.0.1:9"], sdk_blocked, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "cannot reach the API at http://127.0.0.1:9" in message and "development checkout" not in message


def test_a_background_setting_without_the_extra_is_a_clear_error(
    sdk_blocked: list[str], tmp_path: Path
) -> None:
    """Meeting.join applies the account's background setting to the camera: blur without the effects
    extra fails there with EffectsNotInstalled (a MeetupError: `meet join` prints it, exit 1)."""
    code = """
import asyncio
from types import SimpleNamespace
from client_sdk.errors import EffectsNotInstalled, MeetupError
from client_sdk.meeting import apply_background_setting

class Client:
    async def settings(self):
        return SimpleNamespace(background=SimpleNamespace(mode="blur"), background_image_url=None)

try:
    asyncio.run(apply_background_setting(Client(), camera=None))
except EffectsNotInstalled as exc:
    assert isinstance(exc, MeetupError) and isinstance(exc, ImportError)
    assert exc.code == "effects_not_installed"
    print(exc)
"""
    result = isolated(sdk_blocked, code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pip install 'meetup-edge-sdk[effects]'" in result.stdout


def test_every_relay_module_imports_without_the_rest(tmp_path: Path) -> None:
    blocked = blocked_for("edge_relay")
    assert {"functions", "client_sdk", "fastapi", "pynamodb", "moto", "local_stack", "typer"} <= set(blocked)
    assert not _import_all("edge_relay", blocked, tmp_path)
    result = isolated(blocked, RUN.format(argv=["edge_relay", "--help"], module="edge_relay"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--region" in result.stdout
