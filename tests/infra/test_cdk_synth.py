"""``cdk synth`` with the Node CDK CLI (``npm ci`` at the repository root installs it), exactly as a
deploy runs it: cdk.json's app command, real Lambda bundling (pip, no Docker), cdk-nag, here for three
regions given on the command line. The one test that bundles; the others skip bundling."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.infra.synth import NEEDS_CDK, REPO, TEST_ACCOUNT

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)

CDK = REPO / "node_modules" / ".bin" / "cdk"
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-1")


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CDK.exists():
        pytest.skip("the CDK CLI is not installed: run `npm ci` at the repository root")
    out = tmp_path_factory.mktemp("cli.out")
    env = {
        **os.environ,
        # cdk.json runs `python -m infra.app`: this interpreter's environment first on PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
    }
    for var in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
    ):
        env.pop(var, None)  # synth must need no AWS at all
    started = time.monotonic()
    result = subprocess.run(
        [
            str(CDK),
            "synth",
            "--quiet",
            "--output",
            str(out),
            "-c",
            f"meetup:regions={','.join(REGIONS)}",
            *(arg for key, value in TEST_ACCOUNT.items() for arg in ("-c", f"{key}={value}")),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    print(f"cdk synth: {time.monotonic() - started:.1f} s")
    return out


def test_every_stack_is_synthesised_for_every_region(assembly: Path) -> None:
    manifest = json.loads((assembly / "manifest.json").read_text())
    stacks = {
        name: artifact["environment"]
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    expected = {"MeetupEdge-Data", "MeetupEdge-Api", "MeetupEdge-Routing", "MeetupEdge-Web"} | {
        f"MeetupEdge-{kind}-{r}" for r in REGIONS for kind in ("Relays", "Turn")
    }
    assert set(stacks) == expected
    for region in REGIONS:
        assert stacks[f"MeetupEdge-Relays-{region}"].endswith(f"/{region}")
        assert stacks[f"MeetupEdge-Turn-{region}"].endswith(f"/{region}")
    data = json.loads((assembly / "MeetupEdge-Data.template.json").read_text())
    replicas = {
        r["Region"]
        for t in data["Resources"].values()
        if t["Type"] == "AWS::DynamoDB::GlobalTable"
        for r in t["Properties"]["Replicas"]
    }
    assert replicas == set(REGIONS)
    report = json.loads((assembly / "validation-report.json").read_text())
    assert [p["conclusion"] for p in report["pluginReports"]] == ["success"]


def _lambda_bundle(assembly: Path) -> Path:
    assets = json.loads((assembly / "MeetupEdge-Api.assets.json").read_text())
    (code,) = [a for a in assets["files"].values() if a["source"]["packaging"] == "zip"]
    return assembly / code["source"]["path"]


def test_lambda_bundle_is_built_for_the_lambda_runtime(assembly: Path) -> None:
    bundle = _lambda_bundle(assembly)
    assert (bundle / "functions" / "handlers.py").exists()
    assert (bundle / "infra" / "runtime" / "join_keys.py").exists()
    binaries = [p.name for p in bundle.rglob("*.so")]
    assert binaries and all("x86_64" not in name for name in binaries)
    assert any("aarch64" in name for name in binaries)
    assert not (bundle / "aiortc").exists() and not (bundle / "moto").exists()
    assert not list(bundle.rglob("__pycache__"))
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert size < 200 * 1024 * 1024  # Lambda's limit is 250 MB unzipped


def test_lambda_bundle_has_every_module_the_handlers_import(assembly: Path) -> None:
    """The functions project's dependencies (functions/pyproject.toml), as bundled, cover its imports."""
    bundle = _lambda_bundle(assembly)
    imported: set[str] = set()
    for source in [*(REPO / "functions").rglob("*.py"), REPO / "infra" / "runtime" / "join_keys.py"]:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"functions", "infra", "__future__"}
    assert third_party, "expected third-party imports in functions/"
    missing = {m for m in third_party if not (bundle / m).exists() and not list(bundle.glob(f"{m}.*"))}
    assert not missing, f"imported by functions/ but not in the Lambda bundle: {sorted(missing)}"
