"""Settings from PMTABOUNCE_* variables and an optional TOML file: every value, every refusal."""

import re
from pathlib import Path

import pytest
from pmtabounce.common.config import Settings, parse_mysql_url
from pmtabounce.common.errors import ConfigError
from pmtabounce.common.policy import DEFAULT_HARD, DEFAULT_SOFT
from pmtabounce.store.db import Tables


def test_defaults():
    s = Settings.from_env({})
    assert (s.mysql_url, s.amqp_url, s.bounce_dir) == (None, None, None)
    assert s.table_prefix == "email_" and s.done_action == "rename" and s.batch_size == 500
    assert s.policy.hard == DEFAULT_HARD and s.policy.soft == DEFAULT_SOFT and s.policy.soft_threshold == 5
    assert (s.guard, s.guard_min, s.guard_factor, s.guard_window) == (True, 100, 3.0, 600)


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("PMTABOUNCE_MYSQL_URL", "mysql://u:p@db:3307/iem", "mysql_url", "mysql://u:p@db:3307/iem"),
        ("PMTABOUNCE_AMQP_URL", "amqp://u:p@mq:5672/v", "amqp_url", "amqp://u:p@mq:5672/v"),
        ("PMTABOUNCE_TABLE_PREFIX", "iem_", "table_prefix", "iem_"),
        ("PMTABOUNCE_TABLE_PREFIX", "", "table_prefix", "email_"),  # empty means unset
        ("PMTABOUNCE_BOUNCE_DIR", "/var/log/pmta/bounces", "bounce_dir", Path("/var/log/pmta/bounces")),
        ("PMTABOUNCE_DONE_ACTION", "delete", "done_action", "delete"),
        ("PMTABOUNCE_BATCH_SIZE", "1", "batch_size", 1),
        ("PMTABOUNCE_QUEUE_PREFIX", "bounces.eu-1", "queue_prefix", "bounces.eu-1"),
        ("PMTABOUNCE_DELIVERY_LIMIT", "7", "delivery_limit", 7),
        ("PMTABOUNCE_MAX_REPLAYS", "0", "max_replays", 0),
        ("PMTABOUNCE_LOG_FORMAT", "json", "log_format", "json"),
        ("PMTABOUNCE_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("PMTABOUNCE_METRICS_PORT", "9100", "metrics_port", 9100),
        ("PMTABOUNCE_RESCAN_SECONDS", "0.5", "rescan_seconds", 0.5),
        ("PMTABOUNCE_RETRY_MAX_WAIT", "2", "retry_max_wait", 2.0),
        ("PMTABOUNCE_GUARD", "off", "guard", False),
        ("PMTABOUNCE_GUARD", "On", "guard", True),
        ("PMTABOUNCE_GUARD_MIN", "250", "guard_min", 250),
        ("PMTABOUNCE_GUARD_FACTOR", "2.5", "guard_factor", 2.5),
        ("PMTABOUNCE_GUARD_WINDOW", "300", "guard_window", 300),
        ("PMTABOUNCE_EVENT_HOLD", "0", "event_hold", 0.0),
        ("PMTABOUNCE_EVENT_HOLD", "2.5", "event_hold", 2.5),
        ("PMTABOUNCE_EVENT_HOLD", "3600", "event_hold", 3600.0),
    ],
)
def test_each_variable(variable, value, attribute, expected):
    assert getattr(Settings.from_env({variable: value}), attribute) == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PMTABOUNCE_MYSQL_URL", "postgres://u@h/db"),
        ("PMTABOUNCE_MYSQL_URL", "mysql://u@h:3306/"),
        ("PMTABOUNCE_MYSQL_URL", "mysql://u@h:notaport/db"),
        ("PMTABOUNCE_MYSQL_URL", "mysql://u@h:99999/db"),
        ("PMTABOUNCE_MYSQL_URL", "just words"),
        ("PMTABOUNCE_AMQP_URL", "http://mq/"),
        ("PMTABOUNCE_TABLE_PREFIX", "x`; DROP TABLE email_lists; --"),
        ("PMTABOUNCE_TABLE_PREFIX", "email_`"),
        ("PMTABOUNCE_TABLE_PREFIX", "email-"),
        ("PMTABOUNCE_TABLE_PREFIX", "e mail"),
        ("PMTABOUNCE_TABLE_PREFIX", "email_\n"),
        ("PMTABOUNCE_TABLE_PREFIX", "x" * 33),
        ("PMTABOUNCE_TABLE_PREFIX", "émail_"),
        ("PMTABOUNCE_QUEUE_PREFIX", "a b"),
        ("PMTABOUNCE_QUEUE_PREFIX", "bounces\n"),
        ("PMTABOUNCE_DONE_ACTION", "move"),
        ("PMTABOUNCE_LOG_FORMAT", "xml"),
        ("PMTABOUNCE_LOG_LEVEL", "loud"),
        ("PMTABOUNCE_BATCH_SIZE", "0"),
        ("PMTABOUNCE_BATCH_SIZE", "ten"),
        ("PMTABOUNCE_BATCH_SIZE", "10001"),
        ("PMTABOUNCE_BATCH_SIZE", "2.5"),
        ("PMTABOUNCE_DELIVERY_LIMIT", "0"),
        ("PMTABOUNCE_MAX_REPLAYS", "-1"),
        ("PMTABOUNCE_METRICS_PORT", "65536"),
        ("PMTABOUNCE_RESCAN_SECONDS", "0"),
        ("PMTABOUNCE_RESCAN_SECONDS", "-1"),
        ("PMTABOUNCE_RESCAN_SECONDS", "nan"),
        ("PMTABOUNCE_RETRY_MAX_WAIT", "inf"),
        ("PMTABOUNCE_RETRY_MAX_WAIT", "soon"),
        ("PMTABOUNCE_SOFT_THRESHOLD", "0"),
        ("PMTABOUNCE_SOFT_THRESHOLD", "five"),
        ("PMTABOUNCE_CONFIG", "/nonexistent/pmtabounce.toml"),
        ("PMTABOUNCE_GUARD", "maybe"),
        ("PMTABOUNCE_GUARD_MIN", "0"),
        ("PMTABOUNCE_GUARD_FACTOR", "0"),
        ("PMTABOUNCE_GUARD_WINDOW", "86401"),
        ("PMTABOUNCE_EVENT_HOLD", "-1"),
        ("PMTABOUNCE_EVENT_HOLD", "3601"),
        ("PMTABOUNCE_EVENT_HOLD", "1e9"),
        ("PMTABOUNCE_EVENT_HOLD", "nan"),
        ("PMTABOUNCE_EVENT_HOLD", "soon"),
    ],
)
def test_an_invalid_value_names_its_variable(variable, value):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_a_policy_with_a_category_both_hard_and_soft_is_refused():
    with pytest.raises(ConfigError, match="both hard and soft"):
        Settings.from_env({"PMTABOUNCE_SOFT_CATEGORIES": "bad-mailbox"})


def test_the_policy_from_the_environment():
    policy = Settings.from_env({
        "PMTABOUNCE_HARD_CATEGORIES": "bad-mailbox, HARDBNC",
        "PMTABOUNCE_SOFT_CATEGORIES": "quota-issues",
        "PMTABOUNCE_SOFT_THRESHOLD": "3",
    }).policy
    assert policy.hard == {"bad-mailbox", "hardbnc"} and policy.soft == {"quota-issues"}
    assert policy.soft_threshold == 3
    assert policy.classify("hardbnc") == "hard" and policy.classify("bad-domain") == "ignore"


POLICY_TOML = """
table_prefix = "iem_"
batch_size = 50

[policy]
hard = ["bad-mailbox", "Invalid-Mailbox"]
soft = ["quota-issues", "no-answer-from-host"]
soft_threshold = 3
"""


def test_a_toml_file_with_a_policy_section(tmp_path):
    path = tmp_path / "pmtabounce.toml"
    path.write_text(POLICY_TOML)
    s = Settings.from_env({"PMTABOUNCE_CONFIG": str(path)})
    assert s.table_prefix == "iem_" and s.batch_size == 50
    assert s.policy.hard == {"bad-mailbox", "invalid-mailbox"}
    assert s.policy.soft == {"quota-issues", "no-answer-from-host"}
    assert s.policy.soft_threshold == 3
    assert s.policy.classify("bad-domain") == "ignore"


def test_the_environment_wins_over_the_file(tmp_path):
    path = tmp_path / "pmtabounce.toml"
    path.write_text(POLICY_TOML)
    s = Settings.from_env({"PMTABOUNCE_CONFIG": str(path), "PMTABOUNCE_TABLE_PREFIX": "x_",
                           "PMTABOUNCE_SOFT_THRESHOLD": "7", "PMTABOUNCE_HARD_CATEGORIES": "hardbnc"})
    assert s.table_prefix == "x_" and s.policy.soft_threshold == 7 and s.policy.hard == {"hardbnc"}
    assert s.policy.soft == {"quota-issues", "no-answer-from-host"}  # still from the file


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("table_prefix = 'x`; DROP'", "table_prefix in"),
        ("batch_size = 'many'", "batch_size in"),
        ("[policy]\nsoft_threshold = 0", "soft_threshold in"),
        ("[policy]\nsoft_threshold = 'x'", "soft_threshold in"),
        ("this is = = not toml", "PMTABOUNCE_CONFIG"),
        ("event_hold = true", "event_hold in"),  # TOML's true is no number of seconds
        ("guard_factor = false", "guard_factor in"),
    ],
)
def test_a_bad_value_in_the_file_names_the_file_and_the_key(tmp_path, text, named):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named) as caught:
        Settings.from_env({"PMTABOUNCE_CONFIG": str(path)})
    assert "PMTABOUNCE_CONFIG" in str(caught.value) or str(path) in str(caught.value)


def test_a_missing_mysql_url_is_named_when_it_is_needed():
    with pytest.raises(ConfigError, match="PMTABOUNCE_MYSQL_URL is not set"):
        Settings.from_env({}).mysql  # noqa: B018
    with pytest.raises(ConfigError, match="PMTABOUNCE_AMQP_URL is not set"):
        Settings.from_env({}).amqp  # noqa: B018


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://root@127.0.0.1:3306/test", ("127.0.0.1", 3306, "root", "", "test", None)),
        ("mysql://iem:s%40cr%2Ft@db.example:3307/iem_prod", ("db.example", 3307, "iem", "s@cr/t", "iem_prod", None)),
        ("mariadb://u:p@h/db", ("h", 3306, "u", "p", "db", None)),
        ("mysql://u@localhost/db?unix_socket=%2Frun%2Fmysqld%2Fmysqld.sock",
         ("localhost", 3306, "u", "", "db", "/run/mysqld/mysqld.sock")),
    ],
)
def test_parse_mysql_url(url, expected):
    t = parse_mysql_url(url)
    assert (t.host, t.port, t.user, t.password, t.database, t.unix_socket) == expected


def test_the_password_stays_out_of_logs_and_reprs():
    s = Settings.from_env({"PMTABOUNCE_MYSQL_URL": "mysql://iem:hunter2@db:3306/iem",
                           "PMTABOUNCE_AMQP_URL": "amqp://u:hunter3@mq/v"})
    assert "hunter2" not in repr(s) and "hunter3" not in repr(s)
    assert "hunter2" not in repr(s.mysql) and "hunter2" not in s.mysql.safe_url()
    assert s.mysql.safe_url() == "mysql://iem@db:3306/iem"


@pytest.mark.parametrize("prefix", ["email_", "", "IEM2_", "x" * 32])
def test_tables_take_a_valid_prefix(prefix):
    assert Tables(prefix).subscribers == f"`{prefix}list_subscribers`"
    assert Tables(prefix).ledger == f"`{prefix}pmtabounce_ledger`"


@pytest.mark.parametrize("prefix", ["x`; DROP TABLE email_lists; --", "email_\n", "a.b", "x" * 33])
def test_tables_refuse_an_unsafe_prefix(prefix):
    with pytest.raises(ConfigError):
        Tables(prefix)


def test_require_bounce_dir(tmp_path):
    s = Settings.from_env({"PMTABOUNCE_BOUNCE_DIR": str(tmp_path)})
    assert s.require_bounce_dir() == tmp_path
    (tmp_path / "given").mkdir()
    assert s.require_bounce_dir(tmp_path / "given") == tmp_path / "given"  # DIR wins over the variable
    with pytest.raises(ConfigError, match="PMTABOUNCE_BOUNCE_DIR"):
        Settings.from_env({}).require_bounce_dir()
    with pytest.raises(ConfigError, match="does not exist"):
        s.require_bounce_dir(tmp_path / "missing")


@pytest.mark.parametrize(
    ("environ", "types", "scope"),
    [
        ({}, {"abuse", ""}, "all"),
        ({"PMTABOUNCE_COMPLAINT_TYPES": "abuse"}, {"abuse"}, "all"),
        ({"PMTABOUNCE_COMPLAINT_TYPES": "Abuse, empty, fraud"}, {"abuse", "", "fraud"}, "all"),
        ({"PMTABOUNCE_COMPLAINT_TYPES": "None"}, set(), "all"),  # said on purpose: complaints only recorded
        ({"PMTABOUNCE_COMPLAINT_SCOPE": "Campaign"}, {"abuse", ""}, "campaign"),
        ({"PMTABOUNCE_COMPLAINT_SCOPE": "row"}, {"abuse", ""}, "row"),
    ],
)
def test_the_complaint_policy_from_the_environment(environ, types, scope):
    policy = Settings.from_env(environ).policy
    assert (policy.complaint_types, policy.complaint_scope) == (types, scope)
    assert policy.complaint_acts("ABUSE") is ("abuse" in types) and policy.complaint_acts("") is ("" in types)


@pytest.mark.parametrize("value", [" ", ",", " , ", "none,abuse"])
def test_complaint_types_that_name_no_type_are_refused_unless_none(value):
    with pytest.raises(ConfigError, match="PMTABOUNCE_COMPLAINT_TYPES=.*'none' alone"):
        Settings.from_env({"PMTABOUNCE_COMPLAINT_TYPES": value})


@pytest.mark.parametrize(("toml", "types"), [("[]", None), ('["none"]', set()), ('"none"', set()), ('[""]', {""})])
def test_an_empty_complaint_types_list_in_the_file_is_refused_naming_it(tmp_path, toml, types):
    path = tmp_path / "pmtabounce.toml"
    path.write_text(f"[policy]\ncomplaint_types = {toml}\n")
    if types is None:
        with pytest.raises(ConfigError, match=r"\[policy\] complaint_types in .*pmtabounce.toml=\[\]"):
            Settings.from_env({"PMTABOUNCE_CONFIG": str(path)})
    else:
        assert Settings.from_env({"PMTABOUNCE_CONFIG": str(path)}).policy.complaint_types == types


def test_the_complaint_policy_from_a_toml_file_and_a_bad_scope_named(tmp_path):
    path = tmp_path / "pmtabounce.toml"
    path.write_text('[policy]\ncomplaint_types = ["abuse", "", "other"]\ncomplaint_scope = "row"\n')
    policy = Settings.from_env({"PMTABOUNCE_CONFIG": str(path)}).policy
    assert (policy.complaint_types, policy.complaint_scope) == ({"abuse", "", "other"}, "row")
    with pytest.raises(ConfigError, match="PMTABOUNCE_COMPLAINT_SCOPE='everyone'"):
        Settings.from_env({"PMTABOUNCE_COMPLAINT_SCOPE": "everyone"})
    path.write_text('[policy]\ncomplaint_scope = "list"\n')
    with pytest.raises(ConfigError, match="pmtabounce.toml"):
        Settings.from_env({"PMTABOUNCE_CONFIG": str(path)})


@pytest.mark.parametrize("environ, toml, named", [
    ({"PMTABOUNCE_HARD_CATEGORIES": ""}, "", "PMTABOUNCE_HARD_CATEGORIES"),
    ({"PMTABOUNCE_SOFT_CATEGORIES": " , "}, "", "PMTABOUNCE_SOFT_CATEGORIES"),
    ({}, "[policy]\nhard = 5\n", "[policy] hard"),
    ({}, "[policy]\nsoft = [\"quota-issues\", 3]\n", "[policy] soft"),
    ({}, "[policy]\nhard = []\n", "[policy] hard"),
    ({}, "[policy]\nsoft = \",\"\n", "[policy] soft"),
])
def test_category_lists_that_name_nothing_or_are_not_text_are_refused(tmp_path, environ, toml, named):
    config = tmp_path / "pmtabounce.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(named)):
        Settings.from_env({**environ, "PMTABOUNCE_CONFIG": str(config)})


@pytest.mark.parametrize("environ, warned", [
    ({}, []),
    ({"PMTABOUNCE_HARD_CATEGORIES": "bad-mialbox"}, ["'bad-mialbox' in the policy is not one PowerMTA assigns "
                                                     "(did you mean bad-mailbox?)"]),
    ({"PMTABOUNCE_HARD_CATEGORIES": "bad-mailbox,hardbnc"}, ["'hardbnc' in the policy is not one PowerMTA "
                                                             "assigns (fine if your bounce-category-patterns"]),
    ({"PMTABOUNCE_SOFT_CATEGORIES": "quota-isues"}, ["'quota-isues' in the policy is not one PowerMTA assigns "
                                                     "(did you mean quota-issues?)"]),
])
def test_categories_powermta_does_not_assign_are_warned_with_the_nearest(environ, warned):
    warnings = Settings.from_env(environ).policy_warnings()
    assert len(warnings) == len(warned)
    assert all(expected in warning for expected, warning in zip(warned, warnings, strict=True))


def test_a_unix_socket_that_does_not_exist_is_a_configuration_error_naming_it():
    with pytest.raises(ConfigError, match="unix_socket=/nonexistent/mysqld.sock"):
        Settings.from_env({"PMTABOUNCE_MYSQL_URL": "mysql://u@127.0.0.1/iem?unix_socket=/nonexistent/mysqld.sock"})


def test_the_url_in_logs_names_the_socket_not_the_unused_host(tmp_path):
    import socket

    path = tmp_path / "mysqld.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    try:
        settings = Settings.from_env({"PMTABOUNCE_MYSQL_URL": f"mysql://u:secret@127.0.0.1/iem?unix_socket={path}"})
    finally:
        listener.close()
    assert settings.mysql.safe_url() == f"mysql://u@localhost/iem?unix_socket={path}"
