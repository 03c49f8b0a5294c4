"""TLS options reach the real connections: a server without TLS refuses them, and the command stops at once
(exit 1) naming the variable, instead of connecting in clear or retrying forever."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys

import pytest
from conftest import SAMPLES
from worker_fleet import worker_env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                          timeout=30)


def test_mysql_ssl_ca_asks_for_tls_and_a_server_without_it_stops_the_command(iem_db, vhost, tmp_path):
    ca = tmp_path / "self.pem"  # any loadable certificate: the server refuses TLS before it is used
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=db.example",
                    "-days", "2", "-keyout", str(ca), "-out", str(ca)], check=True, capture_output=True)
    assert run(["setup", "--no-broker"], worker_env(iem_db.url, vhost.url)).returncode == 0  # in clear: fine
    (tmp_path / "bounces").mkdir()
    shutil.copy(SAMPLES / "bounces-2024-11-19-1000.csv", tmp_path / "bounces")  # so `process` connects
    for args in (["setup", "--no-broker"], ["process", str(tmp_path / "bounces")]):
        done = run(args, worker_env(f"{iem_db.url}?ssl_ca={ca}&ssl_verify_identity=true", vhost.url))
        said = done.stdout + done.stderr
        assert done.returncode == 1, (args, said)
        assert "PMTABOUNCE_MYSQL_URL" in said and "SSL" in said and "Traceback" not in said


@pytest.mark.parametrize("query", ["ssl_verify_cert=false", "ssl_verify_identity=false"])
def test_any_mysql_tls_option_alone_refuses_a_server_without_tls(iem_db, vhost, query):
    """Each of these alone once meant a connection in clear (PyMySQL makes no context for false values)."""
    done = run(["setup", "--no-broker"], worker_env(f"{iem_db.url}?{query}", vhost.url))
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "PMTABOUNCE_MYSQL_URL" in said and "2026" in said and "Traceback" not in said


def test_amqps_to_a_plain_port_stops_every_command_at_once(iem_db, vhost, tmp_path):
    url = f"amqps://guest:guest@127.0.0.1:5672/{vhost.name}"
    for args in (["setup"], ["worker"], ["producer", "--once", str(tmp_path)], ["dlq", "list"]):
        done = run(args, worker_env(iem_db.url, url))
        said = done.stdout + done.stderr
        assert done.returncode == 1, (args, said)
        assert "TLS" in said and f"PMTABOUNCE_AMQP_URL=amqps://guest:****@127.0.0.1:5672/{vhost.name}" in said


def test_connections_whose_url_asks_for_no_tls_share_one_context(iem_db):
    """PyMySQL 1.2 on tries TLS when the server offers it ("PREFERRED", no certificate check) and built a
    context, loading the system's certificate authorities, for every connection: 40-50 ms of CPU each
    (store/db.py _SharedPreferredTls). One context serves them all; what it checks is PyMySQL's."""
    connections = [iem_db.connect() for _ in range(3)]
    try:
        contexts = [getattr(connection, "ctx", None) for connection in connections]
        assert all(context is contexts[0] for context in contexts)
        if contexts[0] is not None:  # PyMySQL 1.1 makes none
            assert contexts[0].verify_mode == ssl.CERT_NONE and not contexts[0].check_hostname
    finally:
        for connection in connections:
            connection.close()
