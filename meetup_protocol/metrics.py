"""The relays' ``/metrics`` (Prometheus text exposition), read back by the tools that watch relays: the
demo, ``meet load-test``'s reports, the tests and the benchmarks."""

from __future__ import annotations


def parse(text: str) -> dict[str, float]:
    """The exposition back into values, keyed by series with its labels (``name{label="v"}``)."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            values[series] = float(value)
    return values
