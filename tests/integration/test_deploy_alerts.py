"""deploy/prometheus/alerts.yaml: the alert rules for a trip, a held backlog, dead letters, a stale last success
and parked webhook calls.

Always: the file's structure, and that every metric an expression names is one the program serves.
With promtool (Debian's `prometheus` package; on PATH or in the venv's bin): `promtool check rules` and
`promtool test rules alerts.test.yaml`, which makes each alert fire on made-up series and not before.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from pmtabounce.common import metrics
from pmtabounce.common.topology import Topology
from prometheus_client import generate_latest

RULES = Path(__file__).parents[2] / "deploy" / "prometheus"
ALERTS = {"PmtabounceDomainTripped", "PmtabounceHeldBacklog", "PmtabounceDeadLetters", "PmtabounceStale",
          "PmtabounceQueueNotConsumed", "PmtabounceQueueNoProgress", "PmtabounceWebhooksParked",
          "PmtabounceDeadLetterQueueGrew"}
# RabbitMQ's own (rabbitmq_prometheus, /metrics/detailed families queue_coarse_metrics and queue_consumer_count).
RABBITMQ_SERIES = {"rabbitmq_detailed_queue_messages_ready", "rabbitmq_detailed_queue_consumers",
                   "rabbitmq_detailed_queue_messages"}


def promtool() -> str | None:
    return shutil.which("promtool") or shutil.which("promtool", path=str(Path(sys.executable).parent))


def test_each_alert_has_an_expression_a_severity_and_words_for_the_operator():
    groups = yaml.safe_load((RULES / "alerts.yaml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == ALERTS
    served = {
        name
        for role in metrics.ROLES
        for name in re.findall(r"^# TYPE (\w+) ", generate_latest(metrics.registry_for(role)).decode(), re.MULTILINE)
    }
    for rule in rules:
        assert rule["labels"]["severity"] in ("page", "warning")
        assert rule["annotations"]["summary"] and "pmtabounce " in rule["annotations"]["description"]
        named = set(re.findall(r"pmtabounce_\w+", rule["expr"]))
        assert named <= served, f"{rule['alert']}: {named - served} is not a metric we serve"
        broker = set(re.findall(r"rabbitmq_\w+", rule["expr"]))
        assert broker <= RABBITMQ_SERIES and (named or broker), rule["alert"]
        assert set(re.findall(r'queue="([^"]+)"', rule["expr"])) <= {Topology().queue, Topology().dead_queue}


def test_promtool_checks_the_rules_and_their_unit_tests_when_it_is_there():
    tool = promtool()
    if tool is None:  # the structure test above still ran; promtool comes with Debian's `prometheus` package
        assert not os.environ.get("CI"), "CI installs promtool (.ci/run): the alert tests must run there"
        return
    for args in (("check", "rules", "alerts.yaml"), ("test", "rules", "alerts.test.yaml")):
        done = subprocess.run([tool, *args], cwd=RULES, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
