"""What the monitoring role writes, checked by the tools that will read it: promtool (Prometheus's
configuration), amtool (Alertmanager's), haproxy -c (the gateway's), and the compose file's shape."""
from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitoringtest_support import (BASE_VARS, PLACEHOLDER_REDIS_PASSWORD, PLACEHOLDER_SENTINEL_PASSWORD, VARIANTS,
                                    run_playbook, tool)

TASK_JOBS = {"alertmanager", "node", "edge", "web"}


def prometheus(directory: Path) -> dict:
    return yaml.safe_load((directory / "prometheus.yml").read_text())


def jobs(directory: Path) -> dict[str, dict]:
    return {job["job_name"]: job for job in prometheus(directory)["scrape_configs"]}


def compose(directory: Path) -> dict:
    return yaml.safe_load((directory / "docker-compose.monitoring.yml").read_text())


@pytest.mark.parametrize("variant", ["base", "lab", "custom", "minimal", "tls"])
def test_promtool_accepts_the_configuration(variants, variant, tmp_path):
    # The rule file's path is the one inside the container; point it at the rendered copy.
    shutil.copy(variants[variant] / "alerts.yml", tmp_path / "alerts.yml")
    config = (variants[variant] / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/alerts.yml", "alerts.yml"))
    proc = subprocess.run([tool("promtool"), "check", "config", "prometheus.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_jobs_follow_what_is_deployed(variants):
    assert set(jobs(variants["base"])) == {"prometheus", "alertmanager", "node", "dockerd", "edge", "web",
                                           "redis", "registry"}
    assert set(jobs(variants["minimal"])) == {"prometheus", "alertmanager", "node", "web", "redis"}


def test_tasks_and_nodes_are_discovered_not_listed(variants):
    got = jobs(variants["base"])
    sd = [job["dockerswarm_sd_configs"] for name, job in got.items() if name in TASK_JOBS]
    # One identical discovery config: Prometheus runs one provider for all of them.
    assert all(config == sd[0] for config in sd), sd
    assert sd[0][0]["role"] == "tasks" and sd[0][0]["host"] == "unix:///var/run/docker.sock"
    assert got["dockerd"]["dockerswarm_sd_configs"][0]["role"] == "nodes"
    for name in TASK_JOBS | {"dockerd"}:
        assert "static_configs" not in got[name], name


def test_each_task_job_keeps_its_service_on_the_shared_network_at_its_port(variants):
    got = jobs(variants["custom"])

    def keep(job: str, label: str) -> str:
        return next(r["regex"] for r in got[job]["relabel_configs"]
                    if r.get("action") == "keep" and r["source_labels"] == [label])

    assert keep("web", "__meta_dockerswarm_service_name") == "swarmlab_web"
    # The frontend (issue 15): Prometheus never joins the backend, where Redis is.
    assert keep("web", "__meta_dockerswarm_network_name") == "swarmlab_frontend"
    assert keep("edge", "__meta_dockerswarm_service_name") == "swarmlab_edge"
    assert keep("node", "__meta_dockerswarm_service_name") == r"swarmlab\-monitoring_node\-exporter"
    assert keep("node", "__meta_dockerswarm_network_name") == r"swarmlab\-monitoring_monitoring"
    ports = {job: next(r["replacement"] for r in got[job]["relabel_configs"]
                       if r.get("target_label") == "__address__") for job in TASK_JOBS}
    assert ports == {"alertmanager": "${1}:9093", "node": "${1}:9100", "edge": "${1}:8405", "web": "${1}:9102"}


def redis_targets(directory: Path) -> dict[str, str]:
    return {group["labels"]["redis_service"]: group["targets"][0] for group in jobs(directory)["redis"]["static_configs"]}


@pytest.mark.parametrize("variant, scheme, sentinel_password", [
    # TLS off, no Sentinel password of its own: the stack's Sentinels then use the Redis password.
    ("base", "redis", PLACEHOLDER_REDIS_PASSWORD),
    ("tls", "rediss", PLACEHOLDER_SENTINEL_PASSWORD),
])
def test_redis_targets_and_their_passwords(variants, variant, scheme, sentinel_password):
    directory = variants[variant]
    targets = redis_targets(directory)
    assert targets == {
        "redis-master": f"{scheme}://swarmlab_redis-master:6379",
        "redis-replica-1": f"{scheme}://swarmlab_redis-replica-1:6379",
        "redis-replica-2": f"{scheme}://swarmlab_redis-replica-2:6379",
        "redis-sentinel-1": f"{scheme}://swarmlab_redis-sentinel-1:26379",
        "redis-sentinel-2": f"{scheme}://swarmlab_redis-sentinel-2:26379",
        "redis-sentinel-3": f"{scheme}://swarmlab_redis-sentinel-3:26379",
    }
    passwords = json.loads((directory / "secrets/redis_passwords.json").read_text())
    # The exporter looks the password up by the exact URI Prometheus sends.
    assert passwords == {uri: sentinel_password if name.startswith("redis-sentinel-") else PLACEHOLDER_REDIS_PASSWORD
                         for name, uri in targets.items()}
    assert len(redis_targets(variants["custom"])) == 4 + 3


def test_with_tls_the_exporter_verifies_against_the_ca_given_as_a_secret(variants):
    doc = compose(variants["tls"])
    exporter = doc["services"]["redis-exporter"]
    assert "-tls-ca-cert-file=/run/secrets/redis_tls_ca.crt" in exporter["command"]
    assert not [arg for arg in exporter["command"] if "skip-tls" in arg or "tls-client" in arg]
    assert {"source": "redis_tls_ca", "target": "redis_tls_ca.crt"} in exporter["secrets"]
    secret = doc["secrets"]["redis_tls_ca"]
    assert secret["file"] == "./redis_tls_ca.crt"
    assert (variants["tls"] / secret["file"]).read_bytes() == (variants["ca"] / "ca.crt").read_bytes()
    # Named by its content: another CA is another secret, and the exporter restarts onto it.
    digest = hashlib.sha1((variants["ca"] / "ca.crt").read_bytes()).hexdigest()[:12]
    assert secret["name"] == f"swarmlab-monitoring_redis_tls_ca_{digest}"
    base = compose(variants["base"])
    assert "redis_tls_ca" not in base["secrets"]
    assert not [arg for arg in base["services"]["redis-exporter"]["command"] if "tls" in arg]
    assert not (variants["base"] / "redis_tls_ca.crt").exists()


def validate_failures(tmp_path: Path, hosts: dict[str, dict]) -> dict[str, dict]:
    """Run the role's checks (validate.yml) on local "managers" named by `hosts` (their extra
    variables over BASE_VARS, each its own monitoring_dir), with no Docker Engine answering
    (DOCKER_HOST points nowhere). Returns {host: {"task", "msg"}} of where each one failed."""
    inventory = {"all": {"hosts": {name: {**BASE_VARS, "monitoring_dir": str(tmp_path / name), **extra}
                                   for name, extra in hosts.items()},
                         "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
    plays = [{"name": "Run the role's checks", "hosts": "all", "gather_facts": False, "tasks": [
        {"name": "Check", "block": [{"name": "Run validate.yml", "ansible.builtin.include_role": {
            "name": "swarmlab.cluster.monitoring", "tasks_from": "validate.yml"}}],
         "rescue": [{"name": "Keep where it failed", "ansible.builtin.copy": {
             "content": "{{ {'task': ansible_failed_task.name, 'msg': ansible_failed_result.msg} | to_json }}",
             "dest": str(tmp_path) + "/{{ inventory_hostname }}.json", "mode": "0644"}}]}]}]
    proc = run_playbook(tmp_path, inventory, plays, DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in hosts}


def test_tls_without_its_ca_file_fails_in_the_checks(variants, tmp_path):
    """The role's checks (validate.yml, which runs before anything is written) on three "managers":
    TLS without a CA file, with one that does not exist, and with the real one. No Docker Engine
    answers here (DOCKER_HOST points nowhere): the good one gets past the CA checks to the first
    question to the Engine, and fails there."""
    hosts = {
        "no_ca": {"monitoring_redis_tls_ca_file": ""},
        "missing_ca": {"monitoring_redis_tls_ca_file": str(tmp_path / "nowhere/ca.crt")},
        "good_ca": {"monitoring_redis_tls_ca_file": str(variants["ca"] / "ca.crt")},
    }
    failed = validate_failures(tmp_path, {name: {**extra, "monitoring_redis_tls": True} for name, extra in hosts.items()})
    assert failed["no_ca"]["task"] == "Check that the CA of the Redis certificate is given with TLS"
    assert "monitoring_redis_tls_ca_file must be the absolute path" in failed["no_ca"]["msg"]
    assert failed["missing_ca"]["task"] == "Check that the CA file exists"
    assert f"{tmp_path}/nowhere/ca.crt is not a file on missing_ca" in failed["missing_ca"]["msg"]
    assert failed["good_ca"]["task"] == "Read this host's Docker Engine", failed["good_ca"]
    assert not any((tmp_path / name).exists() for name in hosts)


def test_the_password_is_only_in_the_0600_secret_file(variants):
    for name in VARIANTS:
        directory = variants[name]
        for password in (PLACEHOLDER_REDIS_PASSWORD, PLACEHOLDER_SENTINEL_PASSWORD):
            holding = {p.relative_to(directory).as_posix() for p in directory.rglob("*")
                       if p.is_file() and password in p.read_text(errors="replace")}
            given = password == PLACEHOLDER_REDIS_PASSWORD or VARIANTS[name].get("monitoring_sentinel_password")
            assert holding == ({"secrets/redis_passwords.json"} if given else set()), (name, password, holding)
        for secret in (directory / "secrets").iterdir():
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
        assert stat.S_IMODE((directory / "secrets").stat().st_mode) == 0o700


def test_secret_names_are_salted_and_config_names_follow_the_content(variants):
    first, again = compose(variants["base"]), compose(variants["base_again"])
    # Same content, another manager (salt): the secrets' names differ, so a name reveals nothing.
    assert first["secrets"]["redis_passwords"]["name"] != again["secrets"]["redis_passwords"]["name"]
    assert first["secrets"]["alertmanager_yml"]["name"] != again["secrets"]["alertmanager_yml"]["name"]
    assert first["configs"] == again["configs"]
    assert first["configs"]["alerts_yml"]["name"] != compose(variants["custom"])["configs"]["alerts_yml"]["name"]


@pytest.mark.parametrize("variant", ["base", "custom", "minimal"])
def test_amtool_accepts_alertmanagers_configuration(variants, variant):
    path = variants[variant] / "secrets/alertmanager.yml"
    proc = subprocess.run([tool("amtool"), "check-config", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alertmanager_posts_to_each_webhook_and_the_sink(variants):
    config = yaml.safe_load((variants["custom"] / "secrets/alertmanager.yml").read_text())
    assert config["receivers"] == [{"name": "webhooks", "webhook_configs": [
        {"url": "https://hooks.example.com/T000/B000/XXXX", "send_resolved": True},
        {"url": "http://swarmlab-monitoring_alert-sink:9095/", "send_resolved": True},
    ]}]
    assert yaml.safe_load((variants["base"] / "secrets/alertmanager.yml").read_text())["receivers"] == [
        {"name": "webhooks"}]


def test_nothing_in_the_stack_is_published_and_only_prometheus_mounts_the_socket(variants):
    for name in ("base", "custom", "lab"):
        services = compose(variants[name])["services"]
        assert all("ports" not in svc for svc in services.values()), name
        mounting = {svc_name for svc_name, svc in services.items()
                    if any("docker.sock" in json.dumps(v) for v in svc.get("volumes", []))}
        assert mounting == {"prometheus"}
    prom = compose(variants["base"])["services"]["prometheus"]
    sock = next(v for v in prom["volumes"] if isinstance(v, dict))
    assert sock == {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock",
                    "read_only": True}
    assert prom["deploy"]["placement"]["constraints"] == ["node.hostname == manager1"]


def test_networks_of_the_app_stack_are_joined_as_external(variants):
    base = compose(variants["base"])
    # The frontend for Prometheus, the backend (Redis, Sentinels) for the Redis exporter only.
    assert base["networks"]["app"] == {"external": True, "name": "swarmlab_frontend"}
    assert base["networks"]["app-redis"] == {"external": True, "name": "swarmlab_backend"}
    assert base["services"]["redis-exporter"]["networks"] == ["monitoring", "app-redis"]
    assert base["services"]["prometheus"]["networks"] == ["monitoring", "app"]
    custom = compose(variants["custom"])
    assert custom["networks"]["app-redis"] == {"external": True, "name": "swarmlab_redis"}
    assert custom["services"]["redis-exporter"]["networks"] == ["monitoring", "app-redis"]
    assert "alert-sink" in custom["services"] and "alert-sink" not in base["services"]
    assert base["networks"]["monitoring"]["attachable"] is True


def test_the_lab_runs_the_images_it_built(variants):
    services = compose(variants["lab"])["services"]
    assert {services[s]["image"] for s in ("prometheus", "alertmanager", "node-exporter", "redis-exporter")} == {
        "swarmlab-lab/monitoring:bookworm"}
    assert services["alert-sink"]["image"] == "swarmlab-lab/python:bookworm"
    base = compose(variants["base"])["services"]
    assert base["prometheus"]["image"] == "prom/prometheus:v2.42.0"
    assert base["redis-exporter"]["image"] == "oliver006/redis_exporter:v1.45.0"
    custom = compose(variants["custom"])["services"]
    assert custom["prometheus"]["image"] == "prom/prometheus:v2.42.0@sha256:" + "0123456789abcdef" * 4


def test_a_malformed_image_digest_fails_in_the_checks(tmp_path):
    """validate.yml, before anything is written: an image pinned to a digest that is not sha256 and 64
    hex digits is refused, naming the variable (no Docker Engine is asked)."""
    failed = validate_failures(tmp_path, {"bad_digest": {"monitoring_gateway_image": "haproxy:2.6@sha256:1234"}})["bad_digest"]
    assert failed["task"] == "Check the image references (a digest is sha256 and 64 hex digits)", failed
    assert "monitoring_gateway_image: 'sha256:1234' is not an image digest" in failed["msg"], failed
    assert not (tmp_path / "bad_digest").exists()


@pytest.mark.parametrize("variant", ["base", "minimal"])
def test_haproxy_accepts_the_gateways_configuration(variants, variant):
    cfg = variants[variant] / "gateway.cfg"
    proc = subprocess.run([tool("haproxy"), "-c", "-f", str(cfg)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = cfg.read_text()
    assert "server prometheus swarmlab-monitoring_prometheus:9090" in text
    assert ("frontend alertmanager" in text) == (variant == "base")
