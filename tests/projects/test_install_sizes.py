"""bench/install_sizes.py (offline: it reads this venv's installed metadata) keeps working, and each
deployable's dependency closure stays a fraction of what the single distribution installed before."""

from __future__ import annotations

from bench.install_sizes import all_sizes


def test_every_deployable_installs_less_than_everything_did() -> None:
    before, sdk, effects, relay, functions = all_sizes()
    assert before.name.startswith("before") and not before.missing
    for after in (sdk, relay, functions):
        assert not after.missing, (after.name, after.missing)
        assert after.bytes < before.bytes / 2, after.name
        assert after.distributions < before.distributions
    assert sdk.bytes < effects.bytes <= before.bytes
    assert "mediapipe" not in dict(sdk.biggest) and "mediapipe" not in dict(relay.biggest)
