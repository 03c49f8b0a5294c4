"""PMTABOUNCE_AMQP_URL as a list of nodes: the syntax, its refusals, and the order a process tries them in."""

from __future__ import annotations

import random

import pytest
from pmtabounce.common import broker
from pmtabounce.common.config import Settings
from pmtabounce.common.errors import ConfigError, FatalError, TransientError

from pmtabounce.queues import ManagementApi, default_api

ONE = "amqp://u:secret@mq1:5672/v"
THREE = ["amqp://u:secret@mq1:5672/v", "amqp://u:secret@mq2:5673/v", "amqp://other:pw@mq3/v"]


@pytest.mark.parametrize("setting", [
    ONE,
    ",".join(THREE),
    " ".join(THREE),
    "\n  ".join(THREE) + "\n",
    ", ".join(THREE),
])
def test_one_url_or_full_urls_separated_by_commas_or_whitespace(setting):
    settings = Settings.from_env({"PMTABOUNCE_AMQP_URL": setting})
    expected = [ONE] if setting == ONE else THREE
    assert sorted(broker.Nodes(settings.amqp, "test").urls) == sorted(expected)


@pytest.mark.parametrize("setting, named", [
    # the shapes that used to pass as one URL: a traceback, an outage for ever, a vhost named after a URL
    ("amqp://u:secret@mq1:5672,mq2:5672,mq3:5672/v", "entry 2 (mq2:5672)"),
    ("amqp://u:secret@mq1,mq2,mq3/v", "entry 2 (mq2)"),
    ("amqp://u:secret@mq1:5672/v,amqp://u:secret@mq2:x/v", "entry 2 (amqp://u:****@mq2:x/v) has a port"),
    ("amqp://u:secret@mq1:5672/v amqp://u:secret@mq2:5672/w", "entry 2 (amqp://u:****@mq2:5672/w) names virtual"),
    ("amqp://u:secret@mq1:5672/v, http://mq2:15672", "entry 2 (http://mq2:15672) must start with amqp://"),
    ("amqp://u:secret@:5672/v", "PMTABOUNCE_AMQP_URL names no host"),
    ("amqp://u:secret@mq1:99999/v", "PMTABOUNCE_AMQP_URL has a port"),
    # a comma or space in a password cuts the URL in two; neither half may be shown, both hold part of it
    ("amqp://u:secret,x@mq1:5672/v", "PMTABOUNCE_AMQP_URL entry 1: its password holds a comma or a space"),
    ("amqp://u:x secret@mq1:5672/v", "PMTABOUNCE_AMQP_URL entry 1: its password holds a comma or a space"),
    ("amqp://u:p@mq1/v,amqp://u:secret,x@mq2/v", "PMTABOUNCE_AMQP_URL entry 2: its password holds a comma"),
    # URLs joined by a separator of another client (Celery's ';'), read as a virtual host's name
    ("amqp://u:p@mq1/v;amqp://u:secret@mq2/v", "several URLs joined by another separator"),
    ("amqp://u:p@mq0/v amqp://u:p@mq1/v|amqp://u:secret@mq2/v", "several URLs joined by another separator"),
])
def test_a_malformed_list_is_refused_at_start_naming_the_entry(setting, named):
    assert_refused("PMTABOUNCE_AMQP_URL", setting, named)


def assert_refused(variable: str, setting: str, named: str) -> None:
    """Settings refuse `variable`=`setting` with a message holding `named` and no password ("secret")."""
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({variable: setting})
    assert named in str(refused.value)
    assert "secret" not in str(refused.value)


def test_each_process_shuffles_the_nodes_so_a_fleet_spreads():
    setting = ",".join(THREE)
    firsts = {broker.Nodes(setting, "test", random.Random(seed)).in_turn()[0] for seed in range(30)}
    assert firsts == set(THREE)


def test_a_lost_connection_starts_the_next_attempt_at_the_next_node():
    nodes = broker.Nodes(",".join(THREE), "test", random.Random(1))
    order = nodes.in_turn()
    assert nodes.first_answering(lambda url: url) == order[0]
    nodes.lost()
    assert nodes.in_turn() == order[1:] + order[:1]
    assert nodes.first_answering(lambda url: url) == order[1]


def test_unreachable_nodes_pass_the_turn_and_all_unreachable_names_each():
    nodes = broker.Nodes(",".join(THREE), "test", random.Random(2))
    order = nodes.in_turn()
    tried = []

    def attempt(url):
        tried.append(url)
        if url != order[2]:
            raise TransientError(f"cannot reach {url}")
        return "connected"

    assert nodes.first_answering(attempt) == "connected"
    assert tried == order
    assert nodes.in_turn()[0] == order[2], "the node that answered is tried first next time"

    def nobody(url):
        raise OSError("connection refused")

    with pytest.raises(TransientError) as none:
        nodes.first_answering(nobody)
    assert "no RabbitMQ node answers" in str(none.value)
    assert all(broker.safe_url(url) in str(none.value) for url in THREE)
    assert "secret" not in str(none.value)


def test_a_refusal_an_operator_must_fix_stops_at_the_first_node():
    nodes = broker.Nodes(",".join(THREE), "test", random.Random(3))
    tried = []

    def refused(url):
        tried.append(url)
        raise FatalError("RabbitMQ refused the login")

    with pytest.raises(FatalError):
        nodes.first_answering(refused)
    assert len(tried) == 1


def test_logs_name_the_node_and_say_when_a_process_moved(caplog):
    nodes = broker.Nodes(",".join(THREE), "worker", random.Random(4))
    order = nodes.in_turn()
    with caplog.at_level("INFO", logger="pmtabounce.broker"):
        nodes.first_answering(lambda url: url)
        nodes.lost()
        nodes.first_answering(lambda url: url)
    first, moved = caplog.records[-2].getMessage(), caplog.records[-1].getMessage()
    assert f"worker on RabbitMQ node {broker.safe_url(order[0])}" in first
    assert f"worker moved from RabbitMQ node {broker.safe_url(order[0])} to {broker.safe_url(order[1])}" in moved


def test_safe_and_masked_forms_of_a_list_name_every_node_without_passwords():
    setting = ",".join(THREE)
    assert broker.safe_url(setting) == "amqp://mq1:5672/v, amqp://mq2:5673/v, amqp://mq3:5672/v"
    assert broker.masked_url(setting) == ("amqp://u:****@mq1:5672/v,amqp://u:****@mq2:5673/v,"
                                          "amqp://other:****@mq3/v")


def test_the_management_api_is_derived_per_node_on_the_usual_ports():
    api = default_api("amqp://u:p@mq1:5672/v, amqp://u:p@mq2/v, amqps://u:p@mq3:5671/v")
    assert api.urls == ("http://u:p@mq1:15672", "http://u:p@mq2:15672", "https://u:p@mq3:15671")


def test_the_management_api_is_required_when_a_node_is_on_another_port():
    with pytest.raises(ConfigError) as refused:
        default_api("amqp://u:p@mq1:5672/v, amqp://u:p@mq1:5673/v")
    assert "amqp://mq1:5673/v is not on port 5672" in str(refused.value)
    assert "PMTABOUNCE_RABBITMQ_API_URL" in str(refused.value)


def test_a_management_api_list_is_checked_entry_by_entry():
    settings = Settings.from_env({"PMTABOUNCE_RABBITMQ_API_URL": "http://a:15672, http://b:15673"})
    assert settings.rabbitmq_api_urls == ("http://a:15672", "http://b:15673")
    with pytest.raises(ConfigError, match=r"entry 2 \(b:15673\) must start with http"):
        Settings.from_env({"PMTABOUNCE_RABBITMQ_API_URL": "http://a:15672,b:15673"})


def test_masked_hides_every_password_of_text_that_is_not_one_url():
    assert broker.masked_url("amqp://u:p@mq1/v;amqps://w:topsecret@mq2/v") == "amqp://u:****@mq1/v;amqps://w:****@mq2/v"


def test_a_virtual_host_with_a_slash_must_be_written_percent_2f():
    # pika reads amqp://h/a/b as virtual host "a"; the check of one virtual host for all read "a/b"
    with pytest.raises(ConfigError, match="%2F"):
        Settings.from_env({"PMTABOUNCE_AMQP_URL": "amqp://u:p@mq1/a%2Fb,amqp://u:p@mq2/a/b"})
    setting = "amqp://u:p@mq1/a%2Fb, amqp://u:p@mq2/a%2Fb"
    assert broker.safe_url(Settings.from_env({"PMTABOUNCE_AMQP_URL": setting}).amqp) == (
        "amqp://mq1:5672/a%2Fb, amqp://mq2:5672/a%2Fb")


@pytest.mark.parametrize("setting, named", [
    ("http://a:15672,http://b:1567x", "entry 2 (http://b:1567x) has a port that is not a number"),
    ("http://", "PMTABOUNCE_RABBITMQ_API_URL names no host"),
    ("http://g:top,secret@a:15672", "PMTABOUNCE_RABBITMQ_API_URL entry 1: its password holds a comma"),
])
def test_a_management_api_entry_without_host_or_with_a_bad_port_is_refused_at_start(setting, named):
    assert_refused("PMTABOUNCE_RABBITMQ_API_URL", setting, named)


def test_ipv6_nodes_keep_their_brackets_in_logs_and_the_derived_management_api():
    setting = "amqp://u:p@[::1]:5672/v, amqps://u:p@[fd00::7]/v"
    assert broker.safe_url(setting) == "amqp://[::1]:5672/v, amqps://[fd00::7]:5671/v"
    assert default_api(setting).urls == ("http://u:p@[::1]:15672", "https://u:p@[fd00::7]:15671")


def test_an_ipv6_management_api_is_asked_at_its_address():
    # port 1 on the loopback is closed: the API cannot be reached, which is told, not a traceback
    with pytest.raises(TransientError, match=r"cannot reach the management API at http://\[::1\]:1/"):
        ManagementApi(("http://u:p@[::1]:1",)).node()


def test_the_config_file_may_list_the_nodes_as_an_array(tmp_path):
    path = tmp_path / "pmtabounce.toml"
    path.write_text('amqp_url = ["amqp://u:secret@mq1:5672/v", "amqp://u:secret@mq2:5672/v"]\n'
                    'rabbitmq_api_url = ["http://u:secret@mq1:15672", "http://u:secret@mq2:15672"]\n')
    settings = Settings.from_env({"PMTABOUNCE_CONFIG": str(path)})
    assert sorted(broker.Nodes(settings.amqp, "test").urls) == ["amqp://u:secret@mq1:5672/v",
                                                                "amqp://u:secret@mq2:5672/v"]
    assert settings.rabbitmq_api_urls == ("http://u:secret@mq1:15672", "http://u:secret@mq2:15672")


@pytest.mark.parametrize("line, named", [
    ('amqp_url = 5672', "amqp_url in"),
    ('amqp_url = ["amqp://u:secret@mq1/v", 2]', "amqp_url in"),
    ('mysql_url = ["mysql://u:secret@db/iem"]', "mysql_url in"),
])
def test_a_url_setting_of_another_toml_type_is_refused_without_its_value(tmp_path, line, named):
    path = tmp_path / "pmtabounce.toml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"PMTABOUNCE_CONFIG": str(path)})
    assert named in str(refused.value) and "in quotes" in str(refused.value)
    assert "secret" not in str(refused.value)
