"""AWS CDK app of meetup-edge: ``cdk synth`` (cdk.json runs ``python -m infra.app``). See infra/README.md."""

import os

# jsii runs on the machine's Node; Node 20 otherwise prints an end-of-life banner on every import.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
