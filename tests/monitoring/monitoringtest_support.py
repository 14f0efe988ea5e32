"""Helpers of the monitoring tests: the role's files rendered by Ansible itself, and the
Prometheus tools from Debian's packages (scripts/setup.sh installs them
without starting their servers).

Every variant the tests need is rendered once per session, in one ansible-playbook run: one
inventory host per variant (its variables as host vars, all on the controller), each running the
role's config.yml into its own directory. The facts the role would read from the Swarm come as variables
(monitoring_manager_hostname, monitoring_bind)."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ansible_collections.swarmlab.cluster.tests.integration.support.local_run import LOCAL_RUN_ENV

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook") if (VENV_BIN / "ansible-playbook").exists() \
    else "ansible-playbook"
# Obviously not a secret; distinctive enough to grep for.
PLACEHOLDER_REDIS_PASSWORD = "placeholder-redis-pw-NOT-A-SECRET"
PLACEHOLDER_SENTINEL_PASSWORD = "placeholder-sentinel-pw-NOT-A-SECRET"

# What playbooks/monitoring.yml passes for the lab's stack shape (Sentinels on, a registry); the
# promtool tests (alerts_test.yml) are written for these values and the role's defaults.
BASE_VARS: dict[str, Any] = {
    "monitoring_redis_password": PLACEHOLDER_REDIS_PASSWORD,
    "monitoring_sentinel_count": 3,
    "monitoring_registry_targets": ["192.0.2.10:5001"],
    "monitoring_manager_hostname": "manager1",
    "monitoring_bind": "192.0.2.1",
}
LAB_VARS = yaml.safe_load((ROOT / "inventories/lab/group_vars/swarm/monitoring.yml").read_text())

VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    # The lab inventory's values.
    "lab": LAB_VARS,
    "custom": {
        # Pinned to a digest (issue 15): rendered as given.
        "monitoring_prometheus_image": "prom/prometheus:v2.42.0@sha256:" + "0123456789abcdef" * 4,
        "monitoring_web_replicas": 6,
        "monitoring_redis_replicas": 3,
        "monitoring_alert_for": {"RedisReplicaDown": "15s", "NodeDown": "2m30s"},
        "monitoring_redis_max_lag_seconds": 30,
        "monitoring_error_ratio_threshold": 0.1,
        "monitoring_alert_webhooks": ["https://hooks.example.com/T000/B000/XXXX"],
        "monitoring_alert_sink_enabled": True,
        "monitoring_redis_network": "swarmlab_redis",
    },
    # No edge (stack_lb_mode ingress), no Sentinel, no registry, no dockerd metrics.
    "minimal": {
        "monitoring_edge_service": "",
        "monitoring_sentinel_count": 0,
        "monitoring_registry_targets": [],
        "monitoring_dockerd_metrics_port": 0,
        "monitoring_alertmanager_port": 0,
    },
    # The same password and content, another salt: see test_config.
    "base_again": {},
    # The lab's stack: Redis and the Sentinels on TLS only, the Sentinels with their own password.
    # The CA file is made by render_variants (monitoring_redis_tls_ca_file).
    "tls": {
        "monitoring_redis_tls": True,
        "monitoring_sentinel_password": PLACEHOLDER_SENTINEL_PASSWORD,
    },
}


def tool(name: str) -> str:
    """A tool of Debian's prometheus packages (or haproxy); the suite fails, not skips, without it."""
    path = shutil.which(name)
    assert path, f"{name} not found: run scripts/setup.sh (it installs Debian's prometheus packages)"
    return path


def openssl(*args: str | Path) -> None:
    proc = subprocess.run([tool("openssl"), *map(str, args)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def make_ca(directory: Path, name: str) -> Path:
    """A CA (ca.key, ca.crt) in `directory`; returns the certificate's path."""
    directory.mkdir(parents=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", directory / "ca.key", "-out", directory / "ca.crt", "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return directory / "ca.crt"


def make_cert(ca_dir: Path, directory: Path, alt_names: list[str]) -> tuple[Path, Path]:
    """A server certificate signed by the CA in `ca_dir`, for `alt_names` (DNS:... or IP:...);
    returns (certificate, key)."""
    directory.mkdir(parents=True)
    key, csr, crt, ext = (directory / n for n in ("server.key", "server.csr", "server.crt", "ext.cnf"))
    ext.write_text(f"subjectAltName={','.join(alt_names)}\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=redis")
    openssl("x509", "-req", "-in", csr, "-CA", ca_dir / "ca.crt", "-CAkey", ca_dir / "ca.key",
            "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return crt, key


def render_variants(base: Path) -> dict[str, Path]:
    # One inventory host per variant (all local), so Ansible renders them side by side. TLS variants
    # verify against a CA made here, on "the manager" (this machine); the tests sign with it.
    hosts, dirs = {}, {}
    dirs["ca"] = base / "ca"
    ca_file = make_ca(dirs["ca"], "monitoring test CA")
    for name, extra in VARIANTS.items():
        dirs[name] = base / name
        hosts[name] = {**BASE_VARS, **extra, "monitoring_dir": str(dirs[name])}
        if extra.get("monitoring_redis_tls"):
            hosts[name]["monitoring_redis_tls_ca_file"] = str(ca_file)
    dirs["edge"] = base / "edge-haproxy.cfg"
    inventory = {"all": {"hosts": {**hosts, "edge": {}},
                         "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
    plays = [
        {
            "name": "Render the monitoring role's files, one variant per host",
            "hosts": ",".join(VARIANTS),
            "gather_facts": False,
            "tasks": [{"name": "Write the files as the role does on a manager",
                       "ansible.builtin.include_role": {"name": "swarmlab.cluster.monitoring",
                                                        "tasks_from": "config.yml"}}],
        },
        {
            "name": "Render the edge's HAProxy configuration",
            "hosts": "edge",
            "gather_facts": False,
            "vars_files": [str(ROOT / "roles/stack/defaults/main.yml"), str(ROOT / "roles/stack/vars/main.yml")],
            "tasks": [{"name": "Write haproxy.cfg as the stack role does",
                       # Plain HTTP here (no certificate in this test; tests/integration/redis/
                       # test_stack_security.py runs the HTTPS edge).
                       "vars": {"stack_edge_tls": False},
                       "ansible.builtin.template": {"src": str(ROOT / "roles/stack/templates/haproxy.cfg.j2"),
                                                    "dest": str(dirs["edge"]), "mode": "0644"}}],
        },
    ]
    proc = run_playbook(base, inventory, plays)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return dirs


def run_playbook(base: Path, inventory: dict, plays: list, **env_extra: str) -> subprocess.CompletedProcess:
    """ansible-playbook with this inventory and these plays, written under `base`."""
    (base / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (base / "render.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    env = dict(os.environ, **LOCAL_RUN_ENV, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env_extra)
    hosts = len(inventory["all"]["hosts"])
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(base / "inventory.yml"), "--forks", str(hosts),
                           str(base / "render.yml")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited with {proc.returncode}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of the Prometheus text format: (name, labels, value)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        samples.append((match.group(1), dict(LABEL.findall(match.group(2) or "")), float(match.group(3))))
    return samples


def value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float | None:
    """The value of the one sample of `name` whose labels include `labels`, or None."""
    found = [v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def metric_names_in_rules(alerts_yml: Path, prefix: str) -> set[str]:
    """Metric names starting with `prefix` that the rendered alert rules read."""
    doc = yaml.safe_load(alerts_yml.read_text())
    exprs = " ".join(rule["expr"] for group in doc["groups"] for rule in group["rules"])
    return set(re.findall(r"\b(%s[a-zA-Z0-9_]*)" % re.escape(prefix), exprs))
