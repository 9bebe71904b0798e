"""The Lambda code asset changes whenever the bundle does: also when only what the bundling copies in
from outside ``functions/`` (``infra/runtime``) or the wheels pip resolved change. Otherwise ``cdk
deploy`` sees the same asset hash and keeps the old code.

pip is replaced by a stand-in that "resolves" a version given by the test, and the repository by a
small copy, so this runs offline in a second; the real bundling is exercised by test_cdk_synth.py.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.infra.synth import NEEDS_CDK, REPO

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_

from infra.constructs import lambda_bundle


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for package in ("functions", "infra", "infra/runtime"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "functions" / "app.py").write_text("APP = 1\n")
    (tmp_path / "infra" / "runtime" / "join_keys.py").write_text("KEYS = 1\n")
    for project in ("functions", "meetup_protocol"):  # where the bundle's requirements come from
        (tmp_path / project).mkdir(exist_ok=True)
        shutil.copy2(REPO / project / "pyproject.toml", tmp_path / project / "pyproject.toml")
    monkeypatch.setattr(lambda_bundle, "REPO", tmp_path)
    monkeypatch.setattr(lambda_bundle, "CACHE", tmp_path / "build" / "lambda-deps")
    resolved = {"fastapi": "0.115.0"}

    def install(self: lambda_bundle.LocalPipBundling, target: Path) -> None:  # pip's stand-in
        target.mkdir(parents=True)
        for name, version in resolved.items():
            (target / f"{name}-{version}.dist-info").mkdir()
            (target / f"{name}-{version}.dist-info" / "METADATA").write_text(f"Version: {version}\n")

    monkeypatch.setattr(lambda_bundle.LocalPipBundling, "_install", install)
    return resolved


def _asset_hash(tmp: Path, name: str) -> str:
    app = cdk.App(outdir=str(tmp / name))
    stack = cdk.Stack(app, "S", env=cdk.Environment(account="123456789012", region="us-east-1"))
    lambda_.Function(
        stack,
        "F",
        code=lambda_bundle.lambda_code("3.13"),
        handler="functions.app.handler",
        runtime=lambda_.Runtime.PYTHON_3_13,
    )
    assembly = app.synth()
    template = json.loads(Path(assembly.get_stack_by_name("S").template_full_path).read_text())
    (function,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    return str(function["Properties"]["Code"]["S3Key"])


def test_the_asset_hash_follows_the_bundle(repo: dict[str, str], tmp_path: Path) -> None:
    first = _asset_hash(tmp_path, "a")
    assert _asset_hash(tmp_path, "b") == first  # nothing changed: same asset, nothing redeployed

    (lambda_bundle.REPO / "infra" / "runtime" / "join_keys.py").write_text("KEYS = 2\n")
    copied_in = _asset_hash(tmp_path, "c")
    assert copied_in != first  # outside functions/, but in the bundle

    repo["fastapi"] = "0.116.0"  # a newer release within the same requirement bounds...
    assert _asset_hash(tmp_path, "d") == copied_in  # ...is not picked up while the cache stands
    for cached in lambda_bundle.CACHE.iterdir():
        for item in sorted(cached.rglob("*"), reverse=True):
            item.rmdir() if item.is_dir() else item.unlink()
        cached.rmdir()
    assert _asset_hash(tmp_path, "e") != copied_in  # re-resolved: a new asset

    (lambda_bundle.REPO / "functions" / "app.py").write_text("APP = 2\n")
    assert _asset_hash(tmp_path, "f") not in (first, copied_in)


def _distribution(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]).lower()


def test_requirements_are_the_functions_projects_own() -> None:
    """The bundle installs meetup-edge-api's dependencies (functions/pyproject.toml), meetup-edge-protocol's
    in place of that project (its sources are copied in), and nothing of the relay, the SDK or the
    development workspace."""
    requirements = lambda_bundle.lambda_requirements()
    names = [_distribution(r) for r in requirements]
    assert len(names) == len(set(names)), requirements
    control_plane = {"fastapi", "mangum", "aws-lambda-powertools", "pynamodb", "boto3", "pydantic", "pyjwt"}
    assert control_plane <= set(names)
    assert not {n for n in names if n.startswith("meetup-edge")}, "own projects are copied in, not installed"
    assert not {"aiortc", "moto", "uvicorn", "mediapipe", "httpx", "aws-cdk-lib"} & set(names)


def test_every_distribution_the_functions_import_is_required() -> None:
    """Every third-party module imported by what the bundle copies (functions/, meetup_protocol/, the
    custom resource handlers of infra/runtime) belongs to a distribution the bundle installs."""
    imported: set[str] = set()
    sources = [p for package in lambda_bundle.PACKAGES for p in (REPO / package).rglob("*.py")]
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    own = {"functions", "meetup_protocol", "infra", "__future__"}
    third_party = imported - set(sys.stdlib_module_names) - own
    assert {"fastapi", "pynamodb", "jwt"} <= third_party
    distributions = importlib.metadata.packages_distributions()
    required = {_distribution(r) for r in lambda_bundle.lambda_requirements()}
    missing = {
        module: distributions.get(module)
        for module in third_party
        if not {_distribution(d) for d in distributions.get(module, [])} & required
    }
    assert not missing, f"imported by the bundled code, not in the functions project: {missing}"
