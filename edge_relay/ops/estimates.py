"""/metrics lines for the subscribers' bandwidth estimates (edge_relay.sfu.bwe), read only when scraped.

The spread over every live connection as histograms (bounded: fixed buckets), plus a per-peer gauge for at
most :data:`MAX_PEERS` of them (the lowest estimates: the subscribers an operator looks for first).
"""

from __future__ import annotations

from collections.abc import Iterable

from edge_relay.sfu.bwe import LIVE, STATS

MAX_PEERS = 20
ESTIMATE_BUCKETS = (100e3, 250e3, 500e3, 1e6, 2e6, 5e6, 10e6)
RTT_BUCKETS = (10, 25, 50, 100, 200, 400, 1000)
LOSS_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def _histogram(name: str, help_: str, values: list[float], buckets: Iterable[float]) -> list[str]:
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
    for le in buckets:
        lines.append(f'{name}_bucket{{le="{le:g}"}} {sum(1 for v in values if v <= le)}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {len(values)}')
    lines.append(f"{name}_sum {round(sum(values), 3)}")
    lines.append(f"{name}_count {len(values)}")
    return lines


def render() -> list[str]:
    live = [b for b in list(LIVE) if b.label]
    estimated = [(b, b.source, b.estimate_bps) for b in live]
    estimated = [(b, s, e) for b, s, e in estimated if e is not None]
    lines = _histogram(
        "relay_subscriber_estimate_bps",
        "Subscribers' downlink estimates (transport-cc, else REMB), bit/s.",
        [e for _, _, e in estimated],
        ESTIMATE_BUCKETS,
    )
    lines += _histogram(
        "relay_subscriber_rtt_ms",
        "Subscribers' round-trip time from their receiver reports, ms.",
        [b.rtt_ms for b in live if b.rtt_ms is not None],
        RTT_BUCKETS,
    )
    lines += _histogram(
        "relay_subscriber_loss_ratio",
        "Subscribers' fraction lost in their last receiver report.",
        [b.loss for b in live if b.loss is not None],
        LOSS_BUCKETS,
    )
    lines += [
        "# HELP relay_subscriber_estimate_source Subscribers by estimate source.",
        "# TYPE relay_subscriber_estimate_source gauge",
    ]
    for source in ("transport-cc", "remb"):
        count = sum(1 for _, s, _ in estimated if s == source)
        lines.append(f'relay_subscriber_estimate_source{{source="{source}"}} {count}')
    lines += [
        "# HELP relay_subscriber_estimate Lowest subscriber estimates, bit/s, by peer.",
        "# TYPE relay_subscriber_estimate gauge",
    ]
    for b, source, estimate in sorted(estimated, key=lambda t: t[2])[:MAX_PEERS]:
        lines.append(f'relay_subscriber_estimate{{peer="{b.label}",source="{source}"}} {estimate}')
    for name, help_, value in (
        ("relay_transport_feedback_total", "Transport-cc feedback packets used.", STATS.feedback),
        (
            "relay_transport_feedback_malformed_total",
            "Transport-cc feedback dropped as malformed.",
            STATS.feedback_malformed,
        ),
        (
            "relay_transport_feedback_absurd_total",
            "Transport-cc feedback dropped for absurd arrival times.",
            STATS.feedback_absurd,
        ),
        (
            "relay_subscriber_rtcp_malformed_total",
            "Subscriber RTCP compounds dropped as malformed.",
            STATS.rtcp_malformed,
        ),
    ):
        lines += [f"# HELP {name} {help_}", f"# TYPE {name} counter", f"{name} {value}"]
    return lines
