"""Relay metrics into CloudWatch: a CloudWatch agent sidecar scrapes the relay's Prometheus ``/metrics``.

Auto scaling on participant count needs ``relay_participants`` in CloudWatch. The relay only exposes
Prometheus text, and teaching it a second metrics path would put AWS code in the media process; the
agent (a non-essential container in the same task) scrapes ``localhost`` every 15 s and writes the chosen
series as embedded metric format, which CloudWatch turns into metrics. All tasks of a service share one
dimension (``Service``), so the metric's Average is participants *per task*: the right target for
target tracking, as ``ALBRequestCountPerTarget`` is for web servers.
"""

from __future__ import annotations

import json

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

NAMESPACE = "MeetupEdge/Relay"
#: The relay's series worth keeping in CloudWatch (edge_relay/ops/metrics.py names them).
SERIES = (
    "relay_participants",
    "relay_rooms",
    "relay_tracks",
    "relay_draining",
    "relay_cluster_live_peers",  # other relays this one sees alive: a split cluster shows here
    "relay_cascade_links",
)
SCRAPE_INTERVAL_S = 15


def prometheus_config(port: int, service: str) -> str:
    """The agent's Prometheus scrape configuration (YAML is a superset of JSON)."""
    return json.dumps(
        {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "scrape_timeout": "5s"},
            "scrape_configs": [
                {
                    "job_name": "relay",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [f"localhost:{port}"], "labels": {"Service": service}}],
                }
            ],
        }
    )


def agent_config(log_group_name: str) -> str:
    """The agent's own configuration: Prometheus in, EMF out, only :data:`SERIES`, one dimension."""
    return json.dumps(
        {
            "agent": {"debug": False},
            "logs": {
                "metrics_collected": {
                    "prometheus": {
                        "log_group_name": log_group_name,
                        "prometheus_config_path": "env:PROMETHEUS_CONFIG_CONTENT",
                        "emf_processor": {
                            "metric_namespace": NAMESPACE,
                            "metric_declaration": [
                                {
                                    "source_labels": ["job"],
                                    "label_matcher": "^relay$",
                                    "dimensions": [["Service"]],
                                    "metric_selectors": [f"^{name}$" for name in SERIES],
                                }
                            ],
                        },
                    }
                },
                "force_flush_interval": 5,
            },
        }
    )


def series(name: str, service: str, statistic: str) -> cloudwatch.Metric:
    """One of :data:`SERIES` across the service's tasks, per minute."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"Service": service},
        statistic=statistic,
        period=Duration.minutes(1),
    )


def live_peers(service: str) -> cloudwatch.Metric:
    """The fewest other relays any task of the service sees alive."""
    return series("relay_cluster_live_peers", service, "Minimum")


def participants_per_task(service: str) -> cloudwatch.Metric:
    return series("relay_participants", service, "Average")
