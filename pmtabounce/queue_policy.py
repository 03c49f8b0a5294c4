"""The work queue's policy: delivery limit, dead-lettering and overflow, set through the management API.

Policies cannot be set over AMQP, only with the management API or rabbitmqctl.
`setup` uses PMTABOUNCE_RABBITMQ_API_URL, else the AMQP host on port 15672 with
the AMQP login; when neither answers it stops and prints the rabbitmqctl
command that does the same (then `setup --no-policy`). See docs/operations.md,
"The queue's policy".
"""

from __future__ import annotations

import json
import logging
import shlex

from . import queues
from .common.broker import declare_dead_letter_side, setup_broker
from .common.config import Settings
from .common.errors import FatalError, TransientError
from .common.topology import Topology

log = logging.getLogger("pmtabounce.setup")

POLICY_PRIORITY = 10  # RabbitMQ applies one policy per queue, the highest priority: above catch-all defaults


def setup_rabbitmq(settings: Settings, *, policy: bool = True) -> None:
    """`pmtabounce setup`, its RabbitMQ half: the policy first (a queue created next never exists
    without it), then the exchanges and queues (common.broker.setup_broker).

    Raises FatalError, also when no node can be reached (one line naming them, as every command says it),
    ConfigError when the management API's address is needed and cannot be derived.
    """
    try:
        if policy:
            # A wrong login, virtual host or missing permission (or TLS) is told in PMTABOUNCE_AMQP_URL's terms
            # before the API is looked for, so no policy is left behind for a queue setup cannot declare.
            declare_dead_letter_side(settings)
            apply_policy(settings, management_api(settings))
        setup_broker(settings)
    except TransientError as exc:
        raise FatalError(f"{exc}; run `pmtabounce setup` again once RabbitMQ answers") from None


def management_api(settings: Settings) -> queues.ManagementApi:
    """PMTABOUNCE_RABBITMQ_API_URL's nodes, else where the management API usually is for each node of
    PMTABOUNCE_AMQP_URL (ConfigError when that cannot be told: nodes on other ports than 5672)."""
    if settings.rabbitmq_api_urls:
        return queues.ManagementApi(settings.rabbitmq_api_urls)
    return queues.default_api(settings.amqp)


def apply_policy(settings: Settings, api: queues.ManagementApi) -> None:
    """Create or update the policy `settings.topology.policy_name` (PUT /api/policies/VHOST/NAME).

    Idempotent. Raises FatalError, with the equivalent rabbitmqctl command, when the management
    API refuses (the user needs the policymaker tag) or cannot be reached.
    """
    topology = settings.topology
    vhost = queues.vhost_of(settings.amqp)
    body = {"pattern": topology.policy_pattern(), "definition": topology.policy_definition(),
            "priority": POLICY_PRIORITY, "apply-to": "queues"}
    try:
        answered = api.node()
        queues.put_policy(api, vhost, topology.policy_name, body)
    except (FatalError, TransientError) as exc:
        raise FatalError(f"{exc} when setting policy {topology.policy_name} ({refusal_hint(str(exc))}). "
                         f"{by_hand(topology, vhost)}") from None
    log.info("broker: policy %s on %s: %s (management API of %s)", topology.policy_name, topology.queue,
             topology.policy_definition(), answered)


def refusal_hint(error: str) -> str:
    """What a management API refusal means: 401 is a login it does not accept (a wrong password, or a user
    without a management tag); anything else, most often 403, a user without the policymaker tag."""
    if " 401 " in f"{error} ":
        return ("401: the login was refused: check the password in PMTABOUNCE_RABBITMQ_API_URL (or "
                "PMTABOUNCE_AMQP_URL, whose login is used by default) and that the user has the policymaker tag")
    return "the user needs the policymaker tag"


def by_hand(topology: Topology, vhost: str) -> str:
    """What to do instead: set PMTABOUNCE_RABBITMQ_API_URL, or the rabbitmqctl command (for the virtual host of
    PMTABOUNCE_AMQP_URL, ready to paste) and --no-policy."""
    return ("Set PMTABOUNCE_RABBITMQ_API_URL to the management API, or set the policy yourself and run "
            f"`pmtabounce setup --no-policy`: rabbitmqctl set_policy -p {shlex.quote(vhost)} --apply-to queues "
            f"--priority {POLICY_PRIORITY} {topology.policy_name} {shlex.quote(topology.policy_pattern())} "
            f"{shlex.quote(json.dumps(topology.policy_definition()))}")
