"""Every synthesised template of a three-region app, checked by CloudFormation's own rules (cfn-lint:
the resource specification's property types, allowed values, patterns and cross-property rules), which
neither CDK's types nor cdk-nag check. A template that fails here would fail ``cdk deploy``.

One in-process synth (bundling skipped, cdk-nag off: test_nag.py covers it), then cfnlint's Python API
over each template with that stack's own region (the specification differs by region).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.infra.synth import NEEDS_CDK, TEST_ACCOUNT, cdk_json_context

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)
cfnlint_api = pytest.importorskip("cfnlint.api", reason="cfn-lint is not installed: ./dev setup")

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-1")
#: Rules not applied, each with its reason. Keep this short: an entry hides a class of deploy failures.
IGNORED: dict[str, str] = {}


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, dict[str, Any]]]:
    """Stack name -> (region, template) of one three-region synth."""
    import aws_cdk as cdk

    from infra.app import build

    outdir = tmp_path_factory.mktemp("cfn-lint.out")
    context = cdk_json_context(
        **TEST_ACCOUNT, **{"meetup:regions": list(REGIONS), "aws:cdk:bundling-stacks": []}
    )
    app = cdk.App(outdir=str(outdir), context=context)
    meetup = build(app, nag=False)
    app.synth()
    stacks = [meetup.data, meetup.api, meetup.routing, meetup.web, *meetup.relays.values()]
    return {
        s.stack_name: (s.region, json.loads((Path(outdir) / s.template_file).read_text())) for s in stacks
    }


def test_the_synth_has_every_stack_of_three_regions(templates: dict[str, tuple[str, dict]]) -> None:
    assert {region for region, _ in templates.values()} >= set(REGIONS)
    assert len(templates) == 4 + len(REGIONS)


def test_every_template_passes_cfn_lint(templates: dict[str, tuple[str, dict]]) -> None:
    from cfnlint.api import ManualArgs, lint

    started = time.monotonic()
    errors, warnings = [], []
    for name, (region, template) in sorted(templates.items()):
        config = ManualArgs(regions=[region], ignore_checks=sorted(IGNORED))
        for match in lint(json.dumps(template), config=config):
            where = "/".join(map(str, match.path or []))
            line = f"{name} ({region}): {match.rule.id} {match.message} at {where}"
            (errors if match.rule.id.startswith("E") else warnings).append(line)
    elapsed = time.monotonic() - started
    print(f"cfn-lint: {len(templates)} templates in {elapsed:.1f} s, {len(warnings)} warnings")
    for line in warnings:
        print("  warning:", line)
    assert not errors, "\n".join(errors)


def test_cfn_lint_does_catch_what_a_deploy_would_refuse() -> None:
    """The check has teeth: a Fargate size that does not exist and a misspelt property are errors."""
    from cfnlint.api import ManualArgs, lint

    template = {
        "Resources": {
            "Task": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {
                    "RequiresCompatibilities": ["FARGATE"],
                    "NetworkMode": "awsvpc",
                    "Cpu": "1024",
                    "Memory": "512",
                    "ContainerDefinitions": [{"Name": "x", "Image": "x", "Essentail": True}],
                },
            }
        }
    }
    rules = {m.rule.id for m in lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))}
    assert any(rule.startswith("E") for rule in rules), rules
