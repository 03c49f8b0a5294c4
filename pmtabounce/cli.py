"""The `pmtabounce` command: every subcommand, registered by name.

Each command's module is imported when that command is run or listed: `pmtabounce process` does not
load what `dlq`, `demo` or `explain` need (a tenth of a second of every run, issue 20). A command whose
module cannot be imported stops the program with the import error when it is run, and `--help`, which
lists them all, fails the same way: it never goes missing from the list quietly.
"""

from __future__ import annotations

import importlib
import sys

import click

from .common import logs
from .common.config import known_names, log_format_asked

# command name -> the module (under pmtabounce) whose attribute of that name is the click command
COMMAND_MODULES = {
    "setup": "commands.setup", "process": "commands.process", "producer": "commands.producer",
    "worker": "commands.worker", "dlq": "dlq.command", "status": "commands.status", "demo": "demo.command",
    "explain": "commands.explain", "undo": "commands.undo", "guard": "commands.guard", "prune": "commands.prune",
    "relay": "commands.relay", "webhooks": "commands.webhooks",
}


class Commands(click.Group):
    """The top-level group; with PMTABOUNCE_LOG_FORMAT=json click's own refusals (usage errors: a bad
    option value, an unknown command, a missing argument; Ctrl-C at a prompt) are JSON fatal lines too,
    as docs/operations.md (Logs) promises of every stderr line. Exit codes stay click's: 2 for usage, 1 for an abort."""

    def main(self, *args, **kwargs):
        if log_format_asked() != "json" or kwargs.get("standalone_mode") is False:
            return super().main(*args, **kwargs)
        try:
            done = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.ClickException as exc:
            command = f"{exc.ctx.command_path}: " if isinstance(exc, click.UsageError) and exc.ctx else ""
            logs.fatal(f"{command}{exc.format_message()} (see --help)", type(exc).__name__, "json")
            sys.exit(exc.exit_code)
        except click.Abort:
            logs.fatal("aborted", "Abort", "json")
            sys.exit(1)
        sys.exit(done if isinstance(done, int) else 0)  # non-standalone click returns --help's exit code

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command `cmd_name`, its module imported (and its --help told the settings it reads) the first
        time it is asked for; None for a name we do not have. An import error is raised as it is."""
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            command = getattr(importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}"), cmd_name)
            _name_settings(command, READS[cmd_name])
            self.add_command(command)
        return self.commands.get(cmd_name)

    def every_command(self) -> dict[str, click.Command]:
        """Every command by name, each module imported (for --help's checks and the docs' tests)."""
        context = click.Context(self)
        return {name: command for name in self.list_commands(context)
                if (command := self.get_command(context, name)) is not None}


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pmtabounce")
def main() -> None:
    """PowerMTA bounce logs into Interspire Email Marketer, exactly once.

    Configure with PMTABOUNCE_MYSQL_URL, PMTABOUNCE_AMQP_URL,
    PMTABOUNCE_TABLE_PREFIX and PMTABOUNCE_BOUNCE_DIR (see docs/configuration.md).
    """


_POLICY = ("hard_categories", "soft_categories", "soft_threshold", "complaint_types", "complaint_scope")
_GUARD = ("guard", "guard_min", "guard_factor", "guard_window")
_DATABASE = ("mysql_url", "table_prefix")
_BROKER = ("amqp_url", "queue_prefix", "delivery_limit")
_EVENTS = ("webhooks", "event_stream", "webhook_timeout", "webhook_attempts", "event_retry_max_wait")
_AUDIT = ("dlq_audit_file", "audit_require_reason")
# The settings each command acts on (every command reads and checks them all: a misspelt one is refused).
READS: dict[str, tuple[str, ...]] = {
    "setup": (*_DATABASE, *_BROKER, "rabbitmq_api_url"),
    "process": (*_DATABASE, "bounce_dir", "done_action", "batch_size", "retry_max_wait", *_POLICY, *_GUARD,
                *_EVENTS),
    "producer": ("amqp_url", "queue_prefix", "bounce_dir", "done_action", "publish_window", "rescan_seconds",
                 "retry_max_wait", "metrics_port"),
    "worker": (*_DATABASE, *_BROKER, "batch_size", "retry_max_wait", "metrics_port", *_POLICY, *_GUARD, *_EVENTS,
               "event_hold"),
    "dlq": (*_BROKER, "max_replays", *_AUDIT),
    "status": (*_DATABASE, *_BROKER, "rabbitmq_api_url", "bounce_dir", "guard"),
    "demo": (*_DATABASE, "amqp_url", "queue_prefix", "bounce_dir"),
    "explain": _DATABASE,
    "undo": (*_DATABASE, "batch_size", *_AUDIT, *_EVENTS),
    # guard release applies held records through the workers' path (their policy, batches, events)
    "guard": (*_DATABASE, *_GUARD, *_AUDIT, "batch_size", *_POLICY, *_EVENTS),
    "prune": _DATABASE,
    "relay": (*_DATABASE, "amqp_url", "queue_prefix", "retry_max_wait", "metrics_port", *_EVENTS),
    "webhooks": (*_DATABASE, "webhooks", "webhook_timeout", "webhook_attempts", *_AUDIT),
}
_EVERY_COMMAND = ("PMTABOUNCE_CONFIG", "PMTABOUNCE_LOG_FORMAT", "PMTABOUNCE_LOG_LEVEL")


def _name_settings(command: click.Command, names: tuple[str, ...]) -> None:
    """Append to `command`'s --help (and its subcommands') the PMTABOUNCE_* variables it reads."""
    unknown = set(names) - set(known_names())
    if unknown:
        raise RuntimeError(f"cli.READS names settings that do not exist: {sorted(unknown)}")
    variables = ", ".join(f"PMTABOUNCE_{name.upper()}" for name in names)
    command.epilog = f"Reads {variables}; and, as every command, {', '.join(_EVERY_COMMAND)}."
    for sub in getattr(command, "commands", {}).values():
        _name_settings(sub, names)
