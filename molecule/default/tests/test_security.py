"""Issue 15 on the lab after site.yml: what an attacker inside one container, on a worker, or
reading the deploy's output could get. docs/security.md lists each control with its test."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import testinfra
import yaml
from lab_checks import converge_log

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-default")
STACK = "swarmlab"
ROOT = Path(__file__).resolve().parents[3]
testinfra_hosts = [f"docker://{LAB}-manager1"]


def node(name: str):
    return testinfra.get_host(f"docker://{LAB}-{name}")


def web_image(host) -> str:
    return host.check_output(
        f"docker service inspect {STACK}_web --format '{{{{.Spec.TaskTemplate.ContainerSpec.Image}}}}'").split("@")[0]


def container_of(host, service: str) -> str:
    ids = host.check_output(f"docker ps -q --filter label=com.docker.swarm.service.name={STACK}_{service}").split()
    assert ids, f"no {service} task on this manager"
    return ids[0]


def backend_address(host, service: str) -> str:
    fmt = "{{ (index .NetworkSettings.Networks \"%s_backend\").IPAddress }}" % STACK
    return host.check_output(f"docker inspect {container_of(host, service)} --format '{fmt}'").strip()


# Run in a task's network namespace: names it resolves, and whether a Redis server or Sentinel
# really answers at an address: a TLS handshake verified against the stack's Redis CA (the lab runs
# Redis with TLS). A bare TCP connect proves nothing here: this machine's egress completes the TCP
# handshake to any address (10.0.1.2:6379 "connected" from the host itself), so the edge's default
# route made the first version of this test see a Redis that was not there.
PROBE = r"""
import json, socket, ssl, sys
out = {}
for name in ("redis-master", "redis-sentinel-1", "tasks.web"):
    try:
        out["dns " + name] = sorted({a[4][0] for a in socket.getaddrinfo(name, None)})
    except OSError as exc:
        out["dns " + name] = str(exc)
ctx = ssl.create_default_context(cafile="/redis-ca.crt")
ctx.check_hostname = False
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=3) as sock:
            if port == "8000":
                sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                out[target] = "answered" if sock.recv(12).startswith(b"HTTP/1.") else "no answer"
            else:
                with ctx.wrap_socket(sock) as tls:
                    out[target] = "answered" if tls.getpeercert() else "no answer"
    except (OSError, ssl.SSLError) as exc:
        out[target] = "no answer: %s" % exc
print(json.dumps(out))
"""


def probe_from(host, container: str, targets: list[str]) -> dict:
    return json.loads(host.check_output(
        f"docker run --rm --network container:{container} -v /opt/swarmlab/stack/tls/ca/ca.crt:/redis-ca.crt:ro "
        f"--entrypoint python3 {web_image(host)} -c %s " + " ".join(targets), PROBE))


def test_the_edge_cannot_reach_redis_or_the_sentinels(host):
    master, sentinel = backend_address(host, "redis-master"), backend_address(host, "redis-sentinel-1")
    web = json.loads(host.check_output(
        f"docker run --rm --network container:{container_of(host, 'edge')} --entrypoint python3 {web_image(host)} -c %s",
        "import json, socket; print(json.dumps(sorted({a[4][0] for a in socket.getaddrinfo('tasks.web', None)})))"))
    assert web, "the edge resolves no web task"
    targets = [f"{master}:6379", f"{sentinel}:26379", f"{web[0]}:8000"]
    # The probe finds them where they are: in the master's own network (the backend) Redis and the
    # Sentinel answer.
    control = probe_from(host, container_of(host, "redis-master"), targets)
    assert control[f"{master}:6379"] == "answered" and control[f"{sentinel}:26379"] == "answered", control
    out = probe_from(host, container_of(host, "edge"), targets)
    # The edge reaches web (frontend) ...
    assert out[f"{web[0]}:8000"] == "answered", out
    # ... but neither resolves nor reaches Redis or a Sentinel (backend only).
    assert out[f"{master}:6379"] != "answered", out
    assert out[f"{sentinel}:26379"] != "answered", out
    assert not isinstance(out["dns redis-master"], list), out
    assert not isinstance(out["dns redis-sentinel-1"], list), out


def test_the_backend_is_internal_and_not_attachable(host):
    net = json.loads(host.check_output(f"docker network inspect {STACK}_backend"))[0]
    assert net["Internal"] is True and net["Attachable"] is False
    joined = host.run(f"docker run --rm --network {STACK}_backend --entrypoint true {web_image(host)}")
    assert joined.rc != 0 and "attach" in joined.stderr.lower(), joined.stderr
    front = json.loads(host.check_output(f"docker network inspect {STACK}_frontend"))[0]
    assert front["Internal"] is False


@pytest.mark.parametrize("name", ["worker1", "worker2"])
def test_workers_hold_no_registry_credentials_and_still_run_web(host, name):
    worker = node(name)
    config = worker.file("/root/.docker/config.json")
    auths = json.loads(config.content_string).get("auths", {}) if config.exists else {}
    registry = web_image(host).split("/", 1)[0]
    assert registry not in auths, auths
    # The manager (which builds and deploys) is logged in; the workers pull with the deploy's
    # credentials (--with-registry-auth): web runs on them from the private registry.
    assert registry in json.loads(host.file("/root/.docker/config.json").content_string)["auths"]
    hostname = worker.check_output("hostname")
    nodes = host.check_output(
        f"docker service ps {STACK}_web --filter desired-state=running --format '{{{{.Node}}}} {{{{.CurrentState}}}}'")
    assert any(line.startswith(hostname + " Running") for line in nodes.splitlines()), nodes


def test_haproxy_runs_as_haproxy_and_only_it_reads_the_certificates_key(host):
    # The edge's HAProxy (master and worker, -W) on this manager; Redis and the Sentinels are checked
    # in test_site.py (test_redis_and_sentinel_run_as_redis_...). The lab's image runs as uid 99, the
    # official image's haproxy user (stack_edge_uid).
    lines = host.check_output("ps -C haproxy -o uid=,args=").splitlines()
    edge = [line for line in lines if "/usr/local/etc/haproxy/haproxy.cfg" in line]
    assert len(edge) >= 2, lines  # the master and its worker (the gateway's are here too)
    for line in lines:
        assert line.split(None, 1)[0] != "0", lines
    cid = container_of(host, "edge")
    assert host.check_output(f"docker exec {cid} id -u").strip() == "99"
    assert host.check_output(f"docker exec {cid} stat -c '%u %a' /run/secrets/edge_tls.pem").split() == ["99", "400"]


def test_files_that_name_secrets_are_root_only(host):
    for path in ("/opt/swarmlab/stack/docker-compose.swarm.yml", "/opt/swarmlab/monitoring/docker-compose.monitoring.yml",
                 "/opt/swarmlab/stack/secrets/redis_password", "/opt/swarmlab/stack/secrets/name_salt"):
        f = host.file(path)
        assert f.user == "root" and f.mode == 0o600, (path, oct(f.mode))


def test_the_registry_and_the_edge_publish_on_the_managers_address_only(host):
    registry = web_image(host).split("/", 1)[0]
    assert host.socket(f"tcp://{registry}").is_listening
    assert not host.socket("tcp://0.0.0.0:5000").is_listening
    # The edge (host mode, through docker_gwbridge's binding address: swarm_publish_address).
    address = host.check_output("docker info --format '{{.Swarm.NodeAddr}}'").strip()
    assert host.socket(f"tcp://{address}:8080").is_listening
    assert not host.socket("tcp://0.0.0.0:8080").is_listening
    assert host.run("curl -s -m 3 -o /dev/null http://127.0.0.1:8080/").rc != 0


def lab_passwords() -> list[str]:
    # The lab's own credentials (plain in inventories/lab; the same values in inventories/lab-ssh's vault).
    creds = yaml.safe_load((ROOT / "inventories/lab/group_vars/swarm/credentials.yml").read_text())
    return [creds["stack_redis_password"], creds["stack_sentinel_password"]] + [u["password"] for u in creds["registry_users"]]


def test_site_vvv_output_has_no_join_token_password_or_key(host):
    # The log is of check, converge and idempotence at -vvv: results, module arguments and the
    # connection's commands are in it.
    log = converge_log("SWARMLAB_SITE_LOG", "default", "Initialise the Swarm on the first manager")
    assert "=> " in log or "ok: [manager1] =>" in log, "the log has no result shown at -vvv"
    assert "ESTABLISH SSH CONNECTION" in log and "module_args" in log, "the log is not at -vvv"
    tokens = [host.check_output(f"docker swarm join-token -q {kind}") for kind in ("worker", "manager")]
    secrets = tokens + lab_passwords() + [
        host.check_output("cat /opt/swarmlab/stack/secrets/name_salt"),
        host.check_output("cat /opt/swarmlab/monitoring/secrets/salt")]
    leaked = [s[:6] + "..." for s in secrets if s and s in log]
    assert not leaked, f"secrets in the site.yml -vvv output: {leaked}"
    assert "SWMTKN-" not in log and "PRIVATE KEY" not in log


def test_https_at_the_edge_with_the_roles_ca(host):
    address = host.check_output("docker info --format '{{.Swarm.NodeAddr}}'").strip()
    ca = "/opt/swarmlab/stack/edge-tls/ca/ca.crt"
    out = host.check_output(f"curl -sS -i -m 5 --cacert {ca} https://{address}:8443/api/counter")
    head = out.replace("\r\n", "\n").split("\n\n", 1)[0].lower()
    assert head.split()[1] == "200", out
    assert "strict-transport-security: max-age=31536000" in head, head
    # Without the CA the certificate is not trusted; TLS 1.1 is refused.
    assert host.run(f"curl -sS -m 5 -o /dev/null https://{address}:8443/api/counter").rc != 0
    assert host.run(f"curl -sS -m 5 -o /dev/null --cacert {ca} --tls-max 1.1 https://{address}:8443/").rc != 0
