"""One synthesis of the whole CDK app (cdk.json's context, cdk-nag on, Lambda bundling skipped), shared
by every assertion test: a synth costs seconds, an assertion microseconds.

Templates are read from the cloud assembly on disk, so they are available even when cdk-nag fails the
synth (it validates after writing them); test_nag.py reports that failure with its findings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.infra.synth import TEST_ACCOUNT, Synth, cdk_json_context


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    import aws_cdk as cdk

    from infra.app import build

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = cdk.App(
        outdir=str(outdir), context=cdk_json_context(**TEST_ACCOUNT, **{"aws:cdk:bundling-stacks": []})
    )
    meetup = build(app, nag=True)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # jsii: ValidationFailed when cdk-nag reports findings
        error = str(exc)
    yield Synth(meetup=meetup, outdir=outdir, error=error)
