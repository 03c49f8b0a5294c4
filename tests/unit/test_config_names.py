"""Misspelt settings, unknown URL options and TLS options: refused by name, with the near match."""

import ssl
import subprocess

import pytest
from pmtabounce.common.broker import parameters
from pmtabounce.common.config import Settings, parse_mysql_url
from pmtabounce.common.errors import ConfigError


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"PMTABOUNCE_BATCHSIZE": "100"}, ["PMTABOUNCE_BATCHSIZE", "did you mean PMTABOUNCE_BATCH_SIZE?"]),
        ({"PMTABOUNCE_SOFT_TRESHOLD": "3"}, ["PMTABOUNCE_SOFT_TRESHOLD", "PMTABOUNCE_SOFT_THRESHOLD?"]),
        ({"PMTABOUNCE_AMPQ_URL": "amqp://mq/"}, ["PMTABOUNCE_AMPQ_URL", "PMTABOUNCE_AMQP_URL?"]),
        ({"PMTABOUNCE_TABLEPREFIX": "iem_"}, ["PMTABOUNCE_TABLEPREFIX", "PMTABOUNCE_TABLE_PREFIX?"]),
        ({"PMTABOUNCE_HEALTH_PORT": "9100"}, ["PMTABOUNCE_HEALTH_PORT"]),
        ({"PMTABOUNCE_": "x"}, ["PMTABOUNCE_"]),
    ],
)
def test_an_unknown_variable_is_named_with_its_near_match(environ, words):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ)
    for word in words:
        assert word in str(caught.value)


def test_every_documented_variable_and_the_test_suites_own_are_accepted():
    environ = {f"PMTABOUNCE_{name}": value for name, value in (
        ("MYSQL_URL", "mysql://u@h/db"), ("AMQP_URL", "amqp://u:p@mq/v"), ("TABLE_PREFIX", "email_"),
        ("BOUNCE_DIR", "/tmp"), ("DONE_ACTION", "rename"), ("HARD_CATEGORIES", "bad-mailbox"),
        ("SOFT_CATEGORIES", "quota-issues"), ("SOFT_THRESHOLD", "5"), ("BATCH_SIZE", "500"),
        ("PUBLISH_WINDOW", "2000"), ("QUEUE_PREFIX", "pmtabounce"), ("DELIVERY_LIMIT", "20"),
        ("MAX_REPLAYS", "3"), ("RETRY_MAX_WAIT", "30"), ("RESCAN_SECONDS", "5"), ("METRICS_PORT", "0"),
        ("RABBITMQ_API_URL", "http://u:p@mq:15672"), ("LOG_FORMAT", "text"), ("LOG_LEVEL", "INFO"),
        ("DLQ_AUDIT_FILE", "/tmp/audit"), ("TEST_MYSQL_URL", "mysql://root@h/test"),
        ("TEST_AMQP_HOST", "127.0.0.1"), ("TEST_RABBITMQ_API_URL", "http://mq:15672"),
    )}
    assert Settings.from_env(environ).batch_size == 500


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("batch_sise = 10", ["'batch_sise'", "did you mean batch_size?"]),
        ("[policy]\nsoft_treshold = 3", ["'soft_treshold'", "[policy]", "did you mean soft_threshold?"]),
        ("[policy]\nhard_categories = ['x']", ["'hard_categories'", "[policy]"]),
        ("mysql_ulr = 'mysql://u@h/db'", ["'mysql_ulr'", "mysql_url?"]),
        ("policy = 3", ["[policy] section"]),
    ],
)
def test_an_unknown_key_in_the_file_is_named_with_its_near_match(tmp_path, text, words):
    path = tmp_path / "pmtabounce.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"PMTABOUNCE_CONFIG": str(path)})
    for word in words + [str(path)]:
        assert word in str(caught.value)


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    """A self-signed certificate with its key in one PEM file (openssl's command line makes it)."""
    path = tmp_path_factory.mktemp("tls") / "self.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=db.example",
                    "-days", "2", "-keyout", str(path), "-out", str(path)], check=True, capture_output=True)
    return str(path)


@pytest.mark.parametrize("query", ["ssl_ca={broken}", "ssl_ca={pem}&ssl_cert={broken}"])
def test_a_certificate_file_that_does_not_load_is_refused_at_start(pem, tmp_path, query):
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    with pytest.raises(ConfigError, match="PMTABOUNCE_MYSQL_URL: .*not a usable PEM"):
        parse_mysql_url("mysql://u@db/iem?" + query.format(pem=pem, broken=broken))
    with pytest.raises(ConfigError, match="PMTABOUNCE_AMQP_URL: cacertfile=.*not a usable PEM"):
        Settings.from_env({"PMTABOUNCE_AMQP_URL": f"amqps://u:p@mq/v?cacertfile={broken}"})


def test_mysql_tls_options_reach_pymysql(pem):
    target = parse_mysql_url(f"mysql://u:p@db/iem?ssl_ca={pem}&ssl_verify_identity=true&ssl_cert={pem}&ssl_key={pem}")
    context = target.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "db.example"),),)]
    assert parse_mysql_url("mysql://u@db/iem").ssl_context() is None


@pytest.mark.parametrize(
    ("query", "verify", "host_name"),
    [
        ("ssl_verify_cert=false", ssl.CERT_NONE, False),  # was: no context at all, a connection in clear
        ("ssl_verify_identity=false", ssl.CERT_REQUIRED, False),  # was: in clear too
        ("ssl_verify_cert=true", ssl.CERT_REQUIRED, False),
        ("ssl_ca={pem}", ssl.CERT_REQUIRED, False),  # PyMySQL alone did not verify with ssl_ca only
        ("ssl_ca={pem}&ssl_verify_cert=false", ssl.CERT_NONE, False),
        ("ssl_verify_identity=true", ssl.CERT_REQUIRED, True),
    ],
)
def test_every_mysql_tls_option_means_tls(pem, query, verify, host_name):
    context = parse_mysql_url("mysql://u@db/iem?" + query.format(pem=pem)).ssl_context()
    assert (context.verify_mode, context.check_hostname) == (verify, host_name)


def test_host_name_check_without_certificate_check_is_refused():
    with pytest.raises(ConfigError, match="ssl_verify_identity=true .* ssl_verify_cert=false"):
        parse_mysql_url("mysql://u@db/iem?ssl_verify_cert=false&ssl_verify_identity=true")


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("ssl_ca=/nonexistent/ca.pem&sslmode=REQUIRED", ["unknown option 'sslmode'"]),  # the issue's own
        ("ssl_ca=/nonexistent/ca.pem", ["ssl_ca=/nonexistent/ca.pem", "not a readable file"]),
        ("sslmode=REQUIRED", ["unknown option 'sslmode'", "ssl_ca"]),
        ("ssl-ca=/etc/ca.pem", ["unknown option 'ssl-ca'", "did you mean ssl_ca?"]),
        ("ssl_verify_identity=maybe", ["ssl_verify_identity", "true or false"]),
        ("charset=latin1", ["unknown option 'charset'"]),
    ],
)
def test_unknown_or_bad_mysql_options_are_refused_by_name(query, words):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"PMTABOUNCE_MYSQL_URL": f"mysql://u@db/iem?{query}"})
    for word in words + ["PMTABOUNCE_MYSQL_URL"]:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("amqps://u:p@mq/v?cacert=/etc/ca.pem", ["unknown option 'cacert'", "did you mean cacertfile?"]),
        ("amqps://u:p@mq/v?cacertfile=/nonexistent.pem", ["cacertfile=/nonexistent.pem", "not a readable file"]),
        ("amqp://u:p@mq/v?cacertfile=CA", ["cacertfile applies only to amqps://"]),
        ("amqp://u:p@mq/v?heartbeat=5", ["unknown option 'heartbeat'"]),
    ],
)
def test_unknown_or_bad_amqp_options_are_refused_by_name(url, words):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"PMTABOUNCE_AMQP_URL": url})
    for word in words + ["PMTABOUNCE_AMQP_URL"]:
        assert word in str(caught.value)


def test_amqps_verifies_the_broker_certificate_and_its_name():
    params = parameters("amqps://u:p@mq.example/v", "test")
    context = params.ssl_options.context
    assert params.port == 5671
    assert context.check_hostname and context.verify_mode.name == "CERT_REQUIRED"
    assert params.ssl_options.server_hostname == "mq.example"
    assert parameters("amqp://u:p@mq.example/v", "test").ssl_options is None
