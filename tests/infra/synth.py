"""What the infra tests share: the committed cdk.json context and a view of one synthesised assembly.

(A plain module, not conftest.py: tests/infra has no __init__.py, since a package named ``infra`` there
would shadow the real one, so test modules import this as ``tests.infra.synth``.)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from infra.app import MeetupApp

# jsii runs on Node 20 here, which otherwise prints an end-of-life banner on every import.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
REPO = Path(__file__).resolve().parents[2]
#: Test modules that synthesise start with this (the cdk extra is optional for the rest of the suite).
NEEDS_CDK = "the cdk extra is not installed: ./dev setup"


#: The placeholder account, given explicitly: the synth tests use cdk.json's placeholder domain and
#: hosted zone, which infra/config.py accepts with this account only (whatever credentials are around).
TEST_ACCOUNT = {"meetup:account": "123456789012"}


def cdk_json_context(**overrides: Any) -> dict[str, Any]:
    """The context the CDK CLI would pass, from the committed cdk.json, plus ``overrides``."""
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    return {**context, **overrides}


@dataclass
class Synth:
    meetup: MeetupApp
    outdir: Path
    error: str | None

    def template(self, stack: cdk.Stack) -> Template:
        from aws_cdk.assertions import Template

        return Template.from_json(json.loads((self.outdir / stack.template_file).read_text()))

    def resources(self, stack: cdk.Stack, type_: str) -> dict[str, dict[str, Any]]:
        template = json.loads((self.outdir / stack.template_file).read_text())
        return {k: r for k, r in template["Resources"].items() if r["Type"] == type_}

    def validation_report(self) -> dict[str, Any]:
        path = self.outdir / "validation-report.json"
        return json.loads(path.read_text()) if path.exists() else {}
