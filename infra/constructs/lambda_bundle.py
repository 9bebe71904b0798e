"""The control plane's Lambda code asset, bundled on this machine (no Docker) for the Lambda runtime.

``pip install --platform manylinux..._aarch64 --python-version 3.13 --only-binary=:all:`` fetches the
wheels of the *Lambda's* interpreter and CPU, not the host's, so a synth on any Linux/macOS box gives
the same bundle. Only the control plane's dependencies go in: its own project's
(``functions/pyproject.toml``, meetup-edge-api: FastAPI, Mangum, Powertools, PynamoDB, boto3, pydantic,
PyJWT, argon2), with meetup-edge-protocol's in place of that project, whose sources are copied in like the
functions' own; never aiortc or moto. Installed wheels are cached under
``build/lambda-deps/<hash of the requirements>``, so a synth after the first costs a copy; delete that
directory to pick up newer releases within the same requirements.

The asset's hash is the hash of the **bundle** (``AssetHashType.OUTPUT``), not of ``functions/`` and the
bundling options: the bundle also holds what is copied in from elsewhere (``infra/runtime``, the
``infra`` package's ``__init__``) and the wheels pip resolved, and a change in any of them must give a
new asset, or ``cdk deploy`` would keep the old code.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "lambda-deps"

#: Source trees copied into the bundle: the shared protocol, the functions, and the custom resource
#: handlers of infra.
PACKAGES = ("meetup_protocol", "functions", "infra/runtime")
#: Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34).
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project(folder: str) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]
    return project


def lambda_requirements(project: str = "functions") -> list[str]:
    """The requirement strings (with their version bounds) the bundle installs: ``project``'s
    dependencies, each of this repository's own projects among them replaced by its dependencies (its
    sources are copied into the bundle, see ``PACKAGES``), each requirement once, in order."""
    own = {_canonical(_project(folder)["name"]): folder for folder in PACKAGES if "/" not in folder}
    picked: list[str] = []
    for requirement in _project(project)["dependencies"]:
        name = _canonical(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0])
        for needed in lambda_requirements(own[name]) if name in own else [requirement]:
            if needed not in picked:
                picked.append(needed)
    return picked


def _copy_sources(out: Path) -> None:
    # a project's pyproject.toml and what building or installing it leaves behind are not code
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "pyproject.toml", "build", "*.egg-info")
    for package in PACKAGES:
        shutil.copytree(REPO / package, out / package, ignore=ignore, dirs_exist_ok=True)
        # parent packages (``infra`` for ``infra/runtime``) need their __init__ to be importable
        for parent in Path(package).parents:
            if parent != Path(".") and (REPO / parent / "__init__.py").exists():
                shutil.copy2(REPO / parent / "__init__.py", out / parent / "__init__.py")


@jsii.implements(ILocalBundling)
class LocalPipBundling:
    """Bundles with the host's pip (jsii calls ``try_bundle(output_dir, options)`` positionally)."""

    def __init__(self, python_version: str, requirements: list[str]) -> None:
        self.python_version = python_version
        self.requirements = requirements

    def cache_key(self) -> str:
        spec = {"python": self.python_version, "platforms": PLATFORMS, "requirements": self.requirements}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def _install(self, target: Path) -> None:
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--quiet", "--disable-pip-version-check",
                "--target", str(target), *platforms, "--implementation", "cp",
                "--python-version", self.python_version, "--only-binary=:all:", "--no-compile",
                *self.requirements,
            ],
            check=True,
        )  # fmt: skip

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        cached = CACHE / self.cache_key()
        if not cached.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
                self._install(Path(tmp) / "site")
                (Path(tmp) / "site").rename(cached)  # atomic: a half-done install is never cached
        shutil.copytree(cached, output_dir, dirs_exist_ok=True)
        _copy_sources(Path(output_dir))
        return True


def python_runtime(python_version: str) -> lambda_.Runtime:
    """``3.13`` -> ``Runtime.PYTHON_3_13`` (looked up by name: older aws-cdk-lib lack the newest)."""
    return getattr(lambda_.Runtime, f"PYTHON_{python_version.replace('.', '_')}")  # type: ignore[no-any-return]


def lambda_code(python_version: str) -> lambda_.Code:
    """The one code asset every control-plane function (and infra custom resource) runs from.

    The asset's source is ``functions/`` (what CDK stages when bundling is skipped, in tests); the
    bundle itself is built from the repository by :class:`LocalPipBundling`, and hashed as built.
    """
    return lambda_.Code.from_asset(
        str(REPO / "functions"),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            # Docker is only a fallback CDK would use if local bundling declined; it never does.
            image=python_runtime(python_version).bundling_image,
            local=LocalPipBundling(python_version, lambda_requirements()),  # type: ignore[arg-type]
        ),
    )
