"""deploy/: what can be checked without a container engine or a cluster here.

The compose file and the Kubernetes manifests are parsed and checked for the
things that make them work (every role, a scalable worker, non-root, probes on
/readyz and /healthz, secrets by reference, settings the program accepts); the
systemd units parse and pass `systemd-analyze verify`; the PowerMTA snippet
configures files our parser reads.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pmtabounce.common.accounting import AccountingFile
from pmtabounce.common.complaint import ComplaintRecord
from pmtabounce.common.config import Settings
from pmtabounce.common.record import BounceRecord
from pmtabounce.common.topology import Topology

from pmtabounce.dlq.selection import parse_age

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
DEFAULTS = re.compile(r"\$\{(\w+):-([^}]*)\}")  # compose's ${NAME:-default}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_settings(service: dict) -> Settings:
    """What the program makes of a service's environment, with compose's defaults filled in."""
    env = {key: DEFAULTS.sub(lambda m: m.group(2), str(value)) for key, value in service["environment"].items()}
    return Settings.from_env(env)


def test_compose_runs_every_role_from_one_image_and_scales_workers():
    services = compose()["services"]
    assert {"rabbitmq", "mariadb", "setup", "producer", "worker"} <= set(services)
    assert "management" in services["rabbitmq"]["image"]
    ours = {name: s for name, s in services.items() if s.get("image") == "pmtabounce:latest"}
    assert {"setup", "producer", "worker", "status"} == set(ours)
    assert {name: s["command"][0] for name, s in ours.items()} == {
        "setup": "setup", "producer": "producer", "worker": "worker", "status": "status"}
    assert all(s["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"} for s in ours.values())

    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N needs both absent
    assert worker["deploy"]["replicas"] >= 2
    for name in ("producer", "worker"):
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert services[name]["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
    assert services["setup"]["restart"] == "no"
    assert services["setup"]["depends_on"] == {"mariadb": {"condition": "service_healthy"},
                                               "rabbitmq": {"condition": "service_healthy"}}


def test_compose_settings_are_accepted_and_the_producer_watches_its_volume():
    services = compose()["services"]
    settings = compose_settings(services["producer"])
    assert settings.bounce_dir == Path("/bounces") and settings.metrics_port == 9300
    assert settings.mysql.user == "pmtabounce" and settings.mysql.database == "iem"
    assert any(volume.endswith(":/bounces") for volume in services["producer"]["volumes"])
    healthcheck = " ".join(services["producer"]["healthcheck"]["test"])
    assert f":{settings.metrics_port}/readyz" in healthcheck


def test_compose_seeds_mariadb_from_files_that_exist():
    mounts = compose()["services"]["mariadb"]["volumes"]
    sources = [m.split(":")[0] for m in mounts if m.startswith(".")]
    assert len(sources) == 4
    for source in sources:
        assert (DEPLOY / source).resolve().is_file(), source
    init = sorted(m.split(":")[1] for m in mounts if "docker-entrypoint-initdb.d" in m)
    assert [Path(p).name for p in init] == ["10-iem-schema.sql", "20-demo-seed.sql", "30-grants.sh"]


def test_dockerfile_installs_the_package_as_a_non_root_user_with_pmtabounce_as_entrypoint():
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    user = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert 'ENTRYPOINT ["pmtabounce"]' in instructions
    assert re.search(r"pip install [^\n]*\s\.(\s|$)", text)
    copied = {line.split()[1] for line in instructions if line.startswith("COPY ")}
    # Every folder pyproject maps into the package is copied, and every copied path exists.
    package_dirs = set(re.findall(r'"pmtabounce[.\w]*" = "(\w+)"', (ROOT / "pyproject.toml").read_text()))
    assert package_dirs and package_dirs <= copied
    assert all((ROOT / path).exists() for path in copied)


def k8s() -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[(doc["kind"], doc["metadata"]["name"] if "metadata" in doc else path.name)] = doc
    return found


def test_kustomization_lists_every_manifest_but_the_secret_example():
    manifests = k8s()
    listed = set(manifests[("Kustomization", "kustomization.yaml")]["resources"])
    on_disk = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("name", ["pmtabounce-worker", "pmtabounce-producer"])
def test_k8s_deployments_run_non_root_with_probes_and_secret_urls(name):
    manifests = k8s()
    config = manifests[("ConfigMap", "pmtabounce")]["data"]
    spec = manifests[("Deployment", name)]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    port = int(config["PMTABOUNCE_METRICS_PORT"])
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    urls = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert all(ref["name"] == "pmtabounce" for ref in urls.values())
    assert "PMTABOUNCE_AMQP_URL" in urls
    assert container["args"] == [name.split("-")[1]]
    Settings.from_env(config)  # the ConfigMap holds only values the program accepts


def test_k8s_producer_is_a_single_replica_on_a_volume_and_keda_scales_the_workers_on_the_queue():
    manifests = k8s()
    producer = manifests[("Deployment", "pmtabounce-producer")]["spec"]
    assert producer["replicas"] == 1 and producer["strategy"]["type"] == "Recreate"
    (claim,) = [v["persistentVolumeClaim"]["claimName"] for v in producer["template"]["spec"]["volumes"]]
    assert ("PersistentVolumeClaim", claim) in manifests
    (mount,) = producer["template"]["spec"]["containers"][0]["volumeMounts"]
    assert mount["mountPath"] == manifests[("ConfigMap", "pmtabounce")]["data"]["PMTABOUNCE_BOUNCE_DIR"]

    scaled = manifests[("ScaledObject", "pmtabounce-worker")]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "pmtabounce-worker"
    assert "replicas" not in manifests[("Deployment", "pmtabounce-worker")]["spec"]  # an apply would reset KEDA's
    (job,) = [doc for (kind, _), doc in manifests.items() if kind == "Job"]
    setup_env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert setup_env["PMTABOUNCE_RABBITMQ_API_URL"]["valueFrom"]["secretKeyRef"]["key"] == "rabbitmq-api-url"
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "rabbitmq" and trigger["metadata"]["mode"] == "QueueLength"
    assert trigger["metadata"]["queueName"] == Topology().queue
    auth = manifests[("TriggerAuthentication", trigger["authenticationRef"]["name"])]["spec"]
    assert auth["secretTargetRef"] == [{"parameter": "host", "name": "pmtabounce", "key": "keda-amqp-url"}]
    secret = yaml.safe_load((DEPLOY / "k8s" / "secret.example.yaml").read_text())["stringData"]
    assert "," not in secret["keda-amqp-url"], "KEDA's trigger reads one host, never the node list"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


@pytest.mark.parametrize("name, role", [("pmtabounce-producer@.service", "producer"),
                                        ("pmtabounce-worker@.service", "worker")])
def test_systemd_units_have_their_sections_an_environment_file_and_hardening(name, role):
    parsed = unit(name)
    assert set(parsed.sections()) == {"Unit", "Service", "Install"}
    service = parsed["Service"]
    assert f"pmtabounce {role}" in service["ExecStart"]
    assert service["EnvironmentFile"] == "/etc/pmtabounce/pmtabounce.env"
    assert service["User"] == "pmtabounce" and service["KillSignal"] == "SIGTERM"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2"  # config errors
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


def test_worker_instances_get_a_metrics_port_each_and_the_producer_may_write_only_the_bounce_directory():
    assert "%i" in unit("pmtabounce-worker@.service")["Service"]["ExecStart"]
    producer = unit("pmtabounce-producer@.service")["Service"]
    # The instance name is the directory: what it works and what it may write cannot disagree.
    assert producer["ExecStart"].endswith("pmtabounce producer %f") and producer["ReadWritePaths"] == "%f"
    env = dict(line.split("=", 1) for line in (DEPLOY / "systemd" / "pmtabounce.env").read_text().splitlines()
               if line and not line.startswith("#"))
    settings = Settings.from_env(env)
    snippet = (DEPLOY / "pmta" / "acct-file.conf").read_text()
    assert re.search(r"^\s*move-to (\S+)$", snippet, re.M).group(1) == str(settings.bounce_dir)
    # The directory's group in the PowerMTA snippet is the producer's group.
    (owner_group,) = set(re.findall(r"chown \w+:(\w+) " + re.escape(str(settings.bounce_dir)), snippet))
    assert owner_group == producer["Group"] and "SupplementaryGroups" not in producer


def test_prune_runs_daily_from_a_timer_and_a_cronjob_with_a_valid_age():
    service, timer = unit("pmtabounce-prune.service"), unit("pmtabounce-prune.timer")
    assert timer["Timer"]["Unit"] == "pmtabounce-prune.service" and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    command = service["Service"]["ExecStart"].split()
    assert command[1:3] == ["prune", "--older-than"] and parse_age(command[3]).days >= 30
    assert service["Service"]["Type"] == "oneshot" and service["Service"]["User"] == "pmtabounce"
    job = k8s()[("CronJob", "pmtabounce-prune")]["spec"]
    assert job["concurrencyPolicy"] == "Forbid"  # two prunes at once would only fight over the same rows
    pod = job["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == command[1:] and pod["securityContext"]["runAsNonRoot"] is True
    (url,) = container["env"]
    secret = yaml.safe_load((DEPLOY / "k8s" / "secret.example.yaml").read_text())["stringData"]
    assert url["valueFrom"]["secretKeyRef"]["key"] in secret


def test_systemd_analyze_verifies_the_units(tmp_path):
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is part of this machine's tools"
    binary = Path(sys.executable).with_name("pmtabounce")
    units = []
    for name, target in (("pmtabounce-producer@.service", "pmtabounce-producer@var-log-pmta-bounces.service"),
                         ("pmtabounce-worker@.service", "pmtabounce-worker@3.service"),
                         ("pmtabounce-prune.service", "pmtabounce-prune.service"),
                         ("pmtabounce-prune.timer", "pmtabounce-prune.timer")):
        text = (DEPLOY / "systemd" / name).read_text().replace("/usr/local/bin/pmtabounce", str(binary))
        (tmp_path / target).write_text(text)
        units.append(str(tmp_path / target))
    done = subprocess.run([tool, "verify", "--man=no", *units], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_powermta_snippet_logs_what_the_parser_needs(tmp_path):
    text = (DEPLOY / "pmta" / "acct-file.conf").read_text()
    assert re.search(r"^\s*records b, rb, f\s*$", text, re.M)
    fields = {kind: [f.strip() for f in rest.split(",")]
              for kind, rest in re.findall(r"^\s*record-fields (\w+)\s+(.+)$", text, re.M)}
    assert set(fields) == {"b", "rb", "f"} and fields["b"] == fields["rb"]
    assert re.search(r"^\s*map-header-to-field f header_X-HmXmrOriginalRecipient rcpt\s*$", text, re.M)
    move_to = re.search(r"^\s*move-to (\S+)$", text, re.M).group(1)
    assert move_to == "/var/log/pmta/bounces"  # what the systemd EnvironmentFile points the producer at

    # A file as PowerMTA writes it with this configuration parses into the bounce it describes.
    path = tmp_path / "bounces-2024-11-19-0000.csv"
    values = {"timeLogged": "1732010733", "rcpt": "john@example.com", "dsnAction": "failed",
              "dsnStatus": "5.1.1 (bad destination mailbox address)", "dsnDiag": "smtp;550 5.1.1 unknown",
              "bounceCat": "bad-mailbox", "header_X-Mailer-LID": "3,7", "header_X-Mailer-SID": "42"}
    path.write_text(",".join(["type", *fields["b"]]) + "\r\n" + ",".join(
        ["b", *(f'"{values[f]}"' for f in fields["b"])]) + "\r\n")
    (record,) = list(AccountingFile(path))
    assert isinstance(record, BounceRecord)
    assert (record.rcpt, record.time_logged, record.category, record.list_ids, record.statid) == (
        "john@example.com", 1732010733, "bad-mailbox", (3, 7), 42)

    # A mixed file (the union of the fields) gives the complaint with everything the contract uses.
    union = list(dict.fromkeys(fields["b"] + fields["f"]))
    values.update(rcpt="", feedbackType="abuse", format="arf", userAgent="Yahoo!-Mail-Feedback/2.0",
                  reportingMta="mta.example.net",
                  **{"header_List-Unsubscribe": "<https://iem.example.com/unsubscribe.php?M=7&C=ab&L=3&N=42>"})
    row = {f: values[f] for f in fields["f"]}
    cells = ["f", *(f'"{row.get(f, "")}"' for f in union)]
    path.write_text(",".join(["type", *union]) + "\r\n" + ",".join(cells) + "\r\n")
    (complaint,) = list(AccountingFile(path))
    assert isinstance(complaint, ComplaintRecord) and complaint.feedback_type == "abuse"
    assert (complaint.link.subscriberid, complaint.link.confirmcode, complaint.list_ids) == (7, "ab", (3, 7))


def test_no_unit_runs_setup_and_the_producer_needs_only_amqp():
    """setup belongs to the release: on every restart it tied the producer to the management API."""
    for path in (DEPLOY / "systemd").glob("*.service"):
        service = unit(path.name)["Service"]
        commands = [service.get(key, "") for key in ("ExecStartPre", "ExecStart", "ExecStartPost")]
        assert not any("pmtabounce setup" in command for command in commands), path.name
    producer = unit("pmtabounce-producer@.service")["Unit"]["After"].split()
    assert "rabbitmq-server.service" in producer and not {"mariadb.service", "mysql.service"} & set(producer)


def test_the_units_documentation_is_installed_by_the_documented_steps():
    steps = (DEPLOY / "README.md").read_text().split("## systemd", 1)[1].split("\n## ", 1)[0]
    for path in (DEPLOY / "systemd").glob("pmtabounce*.[st]*"):
        for link in unit(path.name)["Unit"].get("Documentation", "").split():
            assert link.startswith("file://"), link
            installed = link.removeprefix("file://")
            assert re.search(rf"install\b.*\s(\S+)\s+{re.escape(installed)}\b", steps), (path.name, installed)
            source = re.search(rf"install\b.*\s(\S+)\s+{re.escape(installed)}\b", steps).group(1)
            assert (DEPLOY.parent / source).is_file(), source


def test_k8s_upgrade_runs_this_releases_setup_job_before_the_new_workers():
    """A fixed-name Job refused a new image (its template is immutable) and nothing ordered setup first."""
    manifests = k8s()
    (image,) = manifests[("Kustomization", "kustomization.yaml")]["images"]
    (job,) = [doc for (kind, _), doc in manifests.items() if kind == "Job"]
    assert job["metadata"]["name"] == "pmtabounce-setup-" + image["newTag"].replace(".", "-")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["setup"]
    worker = manifests[("Deployment", "pmtabounce-worker")]["spec"]["template"]["spec"]
    (wait,) = worker["initContainers"]
    (container,) = worker["containers"]
    assert wait["image"] == container["image"] == image["name"]  # the same release's image, so its schema
    assert wait["args"][:2] == ["setup", "--wait"] and int(wait["args"][2]) >= 300
    mysql = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in wait["env"]}["PMTABOUNCE_MYSQL_URL"]
    assert mysql == {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}["PMTABOUNCE_MYSQL_URL"]
    assert wait["securityContext"] == container["securityContext"]
    done = subprocess.run([sys.executable, "-m", "pmtabounce", *wait["args"], "--help"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and "--wait SECONDS" in done.stdout  # a command this image has
    steps = (DEPLOY / "README.md").read_text()
    assert "rename the setup\nJob" in steps and job["metadata"]["name"] in steps
