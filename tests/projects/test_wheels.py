"""Each project's wheel, built here offline (``pip wheel --no-deps --no-build-isolation --no-index`` from a
copy of its folder): the import names it puts into site-packages, the files it carries, the
distributions it requires (``Requires-Dist``) and its scripts."""

from __future__ import annotations

import email.parser
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from bench.install_sizes import PROJECTS, REPO, canonical, source_files

if Version(importlib.metadata.version("setuptools")) < Version("77"):
    pytest.skip(
        "building the wheels offline needs the dev extra's setuptools>=77 in this venv: ./dev setup",
        allow_module_level=True,
    )

#: What no one installing the SDK (without extras) should get.
NOT_FOR_THE_SDK = {
    "fastapi", "starlette", "mangum", "aws-lambda-powertools", "pynamodb", "argon2-cffi", "boto3", "moto",
    "uvicorn", "aws-cdk-lib", "constructs", "cdk-nag", "mediapipe", "opencv-contrib-python", "opencv-python",
    "msgpack", "pydantic-settings",
}  # fmt: skip
#: What the relay image should not carry.
NOT_FOR_THE_RELAY = {
    "fastapi", "mangum", "aws-lambda-powertools", "pynamodb", "argon2-cffi", "moto", "aws-cdk-lib",
    "mediapipe", "opencv-contrib-python", "opencv-python", "typer", "rich", "httpx", "numpy",
}  # fmt: skip
#: What the Lambda bundle should not carry.
NOT_FOR_THE_FUNCTIONS = {
    "aiortc", "aioice", "av", "moto", "uvicorn", "aws-cdk-lib", "mediapipe", "opencv-contrib-python",
    "typer", "rich", "httpx", "numpy", "websockets", "msgpack",
}  # fmt: skip


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zipfile.ZipFile]:
    """folder -> its wheel. Built from a copy, so that no build/ or egg-info lands in the checkout."""
    tmp = tmp_path_factory.mktemp("wheels")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")
    built = {}
    for folder, name in PROJECTS.items():
        shutil.copytree(REPO / folder, tmp / "src" / folder, ignore=ignore)
        subprocess.run(
            [
                sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                "--no-index", "--wheel-dir", str(tmp / "dist"), str(tmp / "src" / folder),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        (wheel,) = (tmp / "dist").glob(f"{name.replace('-', '_')}-*.whl")
        built[folder] = zipfile.ZipFile(wheel)
    return built


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (path,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.parser.Parser().parsestr(wheel.read(path).decode())


def _requires(wheel: zipfile.ZipFile, extra: str = "") -> set[str]:
    """Canonical names of what installing the wheel (with ``extra``, or none) brings in."""
    return {
        canonical(r.name)
        for r in map(Requirement, _metadata(wheel).get_all("Requires-Dist") or [])
        if r.marker is None or r.marker.evaluate({"extra": extra})
    }


def _entry_points(wheel: zipfile.ZipFile) -> str:
    paths = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    return wheel.read(paths[0]).decode() if paths else ""


@pytest.mark.parametrize("folder", PROJECTS)
def test_a_wheel_holds_its_folder_and_nothing_else(wheels: dict[str, zipfile.ZipFile], folder: str) -> None:
    names = [n for n in wheels[folder].namelist() if not n.split("/")[0].endswith(".dist-info")]
    assert {n.split("/")[0] for n in names} == {folder}  # one import name: its own, nothing generic
    assert sorted(names) == sorted(str(p.relative_to(REPO)) for p in source_files(folder))  # .py only


def test_the_sdk_wheel(wheels: dict[str, zipfile.ZipFile]) -> None:
    sdk = wheels["client_sdk"]
    base, effects = _requires(sdk), _requires(sdk, "effects")
    assert {"meetup-edge-protocol", "aiortc", "httpx", "typer", "rich", "websockets", "numpy"} <= base
    assert not base & NOT_FOR_THE_SDK, base & NOT_FOR_THE_SDK
    assert effects - base == {"mediapipe", "opencv-contrib-python"}
    assert _metadata(sdk).get_all("Provides-Extra") == ["effects"]
    assert "Requires-Dist: aiortc==1.16.0" in str(_metadata(sdk))
    assert "meet = client_sdk.cli.main:app" in _entry_points(sdk)


def test_the_relay_wheel(wheels: dict[str, zipfile.ZipFile]) -> None:
    relay = _requires(wheels["edge_relay"])
    assert {"meetup-edge-protocol", "aiortc", "boto3", "msgpack", "websockets", "uvicorn"} <= relay
    assert not relay & NOT_FOR_THE_RELAY, relay & NOT_FOR_THE_RELAY
    assert "Requires-Dist: aiortc==1.16.0" in str(_metadata(wheels["edge_relay"]))
    assert _entry_points(wheels["edge_relay"]) == ""  # `python -m edge_relay`


def test_the_functions_and_protocol_wheels(wheels: dict[str, zipfile.ZipFile]) -> None:
    functions = _requires(wheels["functions"])
    assert {"meetup-edge-protocol", "fastapi", "mangum", "pynamodb", "boto3", "argon2-cffi"} <= functions
    assert not functions & NOT_FOR_THE_FUNCTIONS, functions & NOT_FOR_THE_FUNCTIONS
    assert _requires(wheels["meetup_protocol"]) == {"pydantic", "pyjwt", "cryptography"}
    for folder in PROJECTS:
        assert _metadata(wheels[folder])["License-Expression"] == "Apache-2.0"
