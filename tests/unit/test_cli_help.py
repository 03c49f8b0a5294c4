"""Each command's --help names the PMTABOUNCE_* variables it reads, and only real ones."""

import re

import click
import pytest
from click.testing import CliRunner
from pmtabounce.common.config import known_names

from pmtabounce.cli import main

main.every_command()  # each command's module is imported when asked for: here all of them, to walk them
VARIABLES = {f"PMTABOUNCE_{name.upper()}" for name in (*known_names(), "config")}


def every_command(group: click.Group, path=()):
    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from every_command(command, (*path, name))


def help_of(*path: str) -> str:
    done = CliRunner().invoke(main, [*path, "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    return done.output


@pytest.mark.parametrize("path", list(every_command(main)), ids=" ".join)
def test_every_command_names_the_variables_it_reads_and_only_real_ones(path):
    named = set(re.findall(r"PMTABOUNCE_[A-Z_]+[A-Z]", help_of(*path).split("Reads ", 1)[-1]))
    assert {"PMTABOUNCE_CONFIG", "PMTABOUNCE_LOG_FORMAT", "PMTABOUNCE_LOG_LEVEL"} <= named
    assert named <= VARIABLES, named - VARIABLES


@pytest.mark.parametrize(("path", "reads", "not_reads"), [
    (("process",), {"PMTABOUNCE_MYSQL_URL", "PMTABOUNCE_BOUNCE_DIR", "PMTABOUNCE_COMPLAINT_SCOPE"},
     {"PMTABOUNCE_AMQP_URL"}),
    (("producer",), {"PMTABOUNCE_AMQP_URL", "PMTABOUNCE_BOUNCE_DIR", "PMTABOUNCE_PUBLISH_WINDOW"},
     {"PMTABOUNCE_MYSQL_URL"}),
    (("worker",), {"PMTABOUNCE_AMQP_URL", "PMTABOUNCE_MYSQL_URL", "PMTABOUNCE_GUARD_MIN"}, {"PMTABOUNCE_BOUNCE_DIR"}),
    (("dlq", "replay"), {"PMTABOUNCE_AMQP_URL", "PMTABOUNCE_MAX_REPLAYS", "PMTABOUNCE_DLQ_AUDIT_FILE"},
     {"PMTABOUNCE_MYSQL_URL"}),
    (("guard", "release"), {"PMTABOUNCE_MYSQL_URL", "PMTABOUNCE_DLQ_AUDIT_FILE"}, {"PMTABOUNCE_AMQP_URL"}),
    # release applies held records through the workers' apply path: their policy, batch size and events
    (("guard", "release"), {"PMTABOUNCE_HARD_CATEGORIES", "PMTABOUNCE_SOFT_THRESHOLD", "PMTABOUNCE_COMPLAINT_SCOPE",
                            "PMTABOUNCE_BATCH_SIZE", "PMTABOUNCE_WEBHOOKS", "PMTABOUNCE_EVENT_STREAM"}, set()),
    (("undo",), {"PMTABOUNCE_BATCH_SIZE", "PMTABOUNCE_WEBHOOKS", "PMTABOUNCE_EVENT_STREAM"}, {"PMTABOUNCE_AMQP_URL"}),
    (("setup",), {"PMTABOUNCE_RABBITMQ_API_URL", "PMTABOUNCE_DELIVERY_LIMIT"}, {"PMTABOUNCE_BOUNCE_DIR"}),
])
def test_a_command_names_what_it_acts_on(path, reads, not_reads):
    named = set(re.findall(r"PMTABOUNCE_[A-Z_]+[A-Z]", help_of(*path).split("Reads ", 1)[-1]))
    assert reads <= named and not (not_reads & named)
