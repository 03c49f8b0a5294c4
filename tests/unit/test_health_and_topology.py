"""Readiness logging, each role's metric series, and the work queue's policy as data."""

from __future__ import annotations

import logging
import re

import pytest
from pmtabounce.common import metrics
from pmtabounce.common.health import Readiness
from pmtabounce.common.topology import Topology

DB_DOWN = "the database does not answer"


@pytest.mark.parametrize("states, logged", [
    ([None, None, None], []),  # ready from the start: nothing to say
    ([DB_DOWN, DB_DOWN, DB_DOWN], [f"not ready (/readyz answers 503): {DB_DOWN}"]),
    ([None, DB_DOWN, DB_DOWN, None, None],
     [f"not ready (/readyz answers 503): {DB_DOWN}", "ready (/readyz answers 200)"]),
    ([DB_DOWN, "not consuming", "not consuming"],
     [f"not ready (/readyz answers 503): {DB_DOWN}", "not ready (/readyz answers 503): not consuming"]),
])
def test_readiness_logs_each_change_once(states, logged, caplog):
    answers = iter(states)
    readiness = Readiness(lambda: next(answers))
    with caplog.at_level(logging.INFO, logger="pmtabounce.http"):
        assert [readiness() for _ in states] == states
    assert [r.getMessage() for r in caplog.records] == logged


def test_a_check_that_raises_is_not_ready_with_its_reason():
    def broken():
        raise RuntimeError("boom")

    assert Readiness(broken)() == "the readiness check failed (RuntimeError: boom)"


def series(role: str) -> set[str]:
    return {metric.name for metric in metrics.registry_for(role).collect()}


@pytest.mark.parametrize("role, has, lacks", [
    ("producer",
     {"pmtabounce_pending_files", "pmtabounce_records_published", "pmtabounce_last_success_timestamp_seconds"},
     {"pmtabounce_records_processed", "pmtabounce_batch_duration_seconds", "pmtabounce_dead_lettered"}),
    ("worker", {"pmtabounce_records_processed", "pmtabounce_batch_duration_seconds", "pmtabounce_dead_lettered"},
     {"pmtabounce_pending_files", "pmtabounce_oldest_pending_file_age_seconds", "pmtabounce_records_published"}),
])
def test_each_role_exports_its_own_series(role, has, lacks):
    found = series(role)
    assert has <= found and not lacks & found
    assert "process_cpu_seconds" in found or "python_info" in found


@pytest.mark.parametrize("prefix, name, matches", [
    ("pmtabounce", "pmtabounce.bounces", True),
    ("pmtabounce", "pmtabounce.bounces.migrating", True),
    ("pmtabounce", "pmtabounce.dead-letter", False),
    ("pmtabounce", "pmtabounceXbounces", False),  # the dot is literal
    ("pmtabounce", "other.pmtabounce.bounces", False),
    ("pmtabounce-demo", "pmtabounce-demo.bounces", True),
    ("pmtabounce-demo", "pmtabounce.bounces", False),
])
def test_the_policy_pattern_covers_the_work_and_migration_queues_only(prefix, name, matches):
    assert bool(re.search(Topology(prefix).policy_pattern(), name)) == matches


def test_the_queue_is_declared_with_its_type_only_and_the_rest_is_policy():
    topology = Topology("p", delivery_limit=7)
    assert topology.queue_arguments() == {"x-queue-type": "quorum"}
    assert topology.policy_definition() == {
        "delivery-limit": 7, "dead-letter-exchange": "p.dead-letter", "dead-letter-routing-key": "bounce",
        "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}
