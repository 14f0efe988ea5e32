"""The registry as its clients see it: real curl, python ssl and docker on the lab nodes.

Run by Molecule (scenario swarm, verifier testinfra) after converge and side_effect, before the Swarm
tests restart the manager's engine; the nodes are reached with testinfra's docker backend (the lab
nodes are containers named <lab>-<node>).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time

import pytest
import testinfra

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-swarm")
NODES = ["manager1", "worker1", "worker2"]
USER, PASSWORD = "moby", "gordon"
DATA_DIR = "/srv/registry-data"
CONFIG_DIR = "/etc/swarmlab-registry"
REPO = "swarmlab/tiny"
# Pushed by side_effect.yml before the registry container was removed and the role re-applied.
OLD_TAG = "before-recreate"

# Tries TLS 1.0-1.1, then 1.2, against the registry; prints what happened with each.
TLS_PROBE = r"""
import socket, ssl, sys, warnings
warnings.simplefilter("ignore")
host, port = sys.argv[1], int(sys.argv[2])
for name, lo, hi in (("old", ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1),
                     ("tls1.2", ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version, ctx.maximum_version = lo, hi
    try:
        with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
            print(name, "OK", tls.version())
    except ssl.SSLError as exc:
        print(name, "ERR", exc.reason)
"""


def node(name: str):
    return testinfra.get_host(f"docker://{LAB}-{name}")


@pytest.fixture(scope="module")
def worker1():
    return node("worker1")


@pytest.fixture(scope="module")
def worker2():
    return node("worker2")


def ca(address: str) -> str:
    return f"/etc/docker/certs.d/{address}/ca.crt"


def pull_with_credentials(host, image: str):
    """docker pull on a worker with the credentials a deploy hands over (--with-registry-auth): the
    worker itself is not logged in."""
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    address = image.split("/", 1)[0]
    host.check_output("mkdir -p /tmp/pull-auth && chmod 700 /tmp/pull-auth")
    host.check_output("printf '%%s' %s > /tmp/pull-auth/config.json", json.dumps({"auths": {address: {"auth": auth}}}))
    try:
        return host.run(f"docker --config /tmp/pull-auth pull {image}")
    finally:
        host.run("rm -rf /tmp/pull-auth")


def curl(host, address: str, *args: str):
    """curl against /v2/ with the CA the role wrote; returns (status, headers+body)."""
    quoted = " ".join(f"'{a}'" for a in args)
    cmd = host.run(f"curl -s -i --cacert {ca(address)} {quoted} https://{address}/v2/")
    assert cmd.rc == 0, cmd.stderr
    status = int(re.match(r"HTTP/\S+ (\d+)", cmd.stdout).group(1))
    return status, cmd.stdout


@pytest.mark.parametrize("name", NODES)
def test_every_node_trusts_the_ca_and_is_logged_in(name, address):
    host = node(name)
    cert = host.file(ca(address))
    assert cert.is_file
    assert cert.mode == 0o644
    assert "BEGIN CERTIFICATE" in cert.content_string
    config = host.file("/root/.docker/config.json")
    auths = json.loads(config.content_string).get("auths", {}) if config.exists else {}
    # Only the managers log in (issue 15): a worker holds no credentials that can push.
    assert (address in auths) == (name == "manager1")


def test_registry_listens_on_the_tls_port_of_its_address_only(manager, address):
    assert manager.socket(f"tcp://{address}").is_listening
    assert not manager.socket("tcp://0.0.0.0:5000").is_listening


def test_the_registry_itself_is_reachable_on_loopback_only(manager, worker1, address):
    """Behind its front: the registry's own port answers on the host's loopback, not from a worker."""
    ip = address.split(":")[0]
    assert manager.socket("tcp://127.0.0.1:5010").is_listening
    assert not manager.socket(f"tcp://{ip}:5010").is_listening
    cmd = worker1.run(f"curl -s -k -m 5 -o /dev/null -w '%{{http_code}}' https://{ip}:5010/v2/")
    assert cmd.rc != 0 and cmd.stdout.strip() in ("", "000"), cmd.stdout


def test_the_front_holds_no_key_or_password(manager):
    """The front only moves TLS bytes: it mounts its own configuration, nothing of the registry's."""
    info = json.loads(manager.check_output("docker inspect registry-front"))[0]
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert [(m["Source"], m["RW"]) for m in info["Mounts"]] == [(f"{CONFIG_DIR}/front", False)]
    assert sorted(manager.check_output(f"ls {CONFIG_DIR}/front").split()) == ["haproxy.cfg"]
    config = manager.file(f"{CONFIG_DIR}/front/haproxy.cfg").content_string
    assert "mode tcp" in config
    assert "server registry 127.0.0.1:5010" in config


def test_container_restarts_always_mounts_data_and_is_healthy(manager):
    info = json.loads(manager.check_output("docker inspect registry"))[0]
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "always"
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/var/lib/registry"]["Source"] == DATA_DIR
    assert mounts["/var/lib/registry"]["Type"] == "bind"
    assert mounts["/etc/docker/registry"]["RW"] is False
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["Config"]["Healthcheck"]["Test"][-1].endswith(":5001/debug/health")
    # The first check runs one interval (15 s) after the start in side_effect.
    deadline = time.monotonic() + 90
    while True:
        status = manager.check_output("docker inspect -f '{{.State.Health.Status}}' registry")
        if status == "healthy" or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert status == "healthy"


@pytest.mark.parametrize(
    "path",
    ["ca/ca.key", "registry/server.key", "registry/htpasswd", "registry/config.yml", "http.secret"],
)
def test_secret_files_are_0600(manager, path):
    f = manager.file(f"{CONFIG_DIR}/{path}")
    assert f.is_file
    assert f.mode == 0o600
    assert f.user == "root"


def test_htpasswd_has_a_bcrypt_entry(manager):
    entries = manager.file(f"{CONFIG_DIR}/registry/htpasswd").content_string.split()
    assert [e.split(":", 1)[0] for e in entries] == [USER]
    assert re.match(r"^\$2[aby]\$", entries[0].split(":", 1)[1])


def test_config_pins_minimum_tls_and_secret(manager):
    config = manager.file(f"{CONFIG_DIR}/registry/config.yml").content_string
    assert "minimumtls: tls1.2" in config
    assert "addr: 127.0.0.1:5010" in config
    assert "draintimeout: 10s" in config
    secret = manager.file(f"{CONFIG_DIR}/http.secret").content_string.strip()
    assert len(secret) >= 32
    assert f"secret: {secret}" in config


def test_tls_handshake_and_certificate_match_the_address(worker1, address):
    cmd = worker1.run(f"curl -sv -o /dev/null --cacert {ca(address)} https://{address}/v2/")
    assert cmd.rc == 0, cmd.stderr
    assert re.search(r"SSL connection using TLSv1\.[23]", cmd.stderr)
    assert "matched cert's IP address" in cmd.stderr


def test_tls_below_1_2_is_refused_by_the_server(worker1, address):
    host, port = address.split(":")
    out = worker1.check_output(f"python3 -c '{TLS_PROBE}' {host} {port}")
    assert "old ERR TLSV1_ALERT_PROTOCOL_VERSION" in out
    assert "tls1.2 OK TLSv1.2" in out


def test_plain_http_on_the_tls_port_is_refused(worker1, address):
    cmd = worker1.run(f"curl -s -i http://{address}/v2/")
    assert "HTTP/1.0 400 Bad Request" in cmd.stdout
    assert "Client sent an HTTP request to an HTTPS server" in cmd.stdout


def test_no_credentials_is_401_with_basic_challenge(worker2, address):
    status, out = curl(worker2, address)
    assert status == 401
    assert re.search(r"(?im)^www-authenticate: Basic realm=", out)


def test_wrong_password_is_401(worker2, address):
    status = curl(worker2, address, "-u", f"{USER}:not-{PASSWORD}")[0]
    assert status == 401


def test_right_password_is_200(worker2, address):
    status = curl(worker2, address, "-u", f"{USER}:{PASSWORD}")[0]
    assert status == 200


def test_push_without_login_fails(manager, address):
    manager.check_output("mkdir -p /tmp/no-login && echo '{}' > /tmp/no-login/config.json")
    cmd = manager.run(f"docker --config /tmp/no-login push {address}/{REPO}:{OLD_TAG}")
    assert cmd.rc != 0
    assert "no basic auth credentials" in cmd.stdout + cmd.stderr


def test_image_pushed_before_the_container_was_recreated_is_pullable(worker1, address):
    image = f"{address}/{REPO}:{OLD_TAG}"
    worker1.run(f"docker rmi -f {image}")
    assert worker1.run(f"docker pull {image}").rc != 0  # not logged in
    cmd = pull_with_credentials(worker1, image)
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    worker1.run(f"docker rmi -f {image}")


def test_push_from_manager_and_pull_from_worker(manager, worker2, address):
    image = f"{address}/{REPO}:verify-{int(time.time())}"
    manager.check_output(f"docker tag {address}/{REPO}:{OLD_TAG} {image}")
    push = manager.run(f"docker push {image}")
    assert push.rc == 0, push.stdout + push.stderr
    pull = pull_with_credentials(worker2, image)
    assert pull.rc == 0, pull.stdout + pull.stderr
    worker2.run(f"docker rmi -f {image}")


def test_data_directory_holds_repositories_and_blobs(manager):
    v2 = f"{DATA_DIR}/docker/registry/v2"
    assert manager.file(f"{v2}/repositories/{REPO}").is_directory
    assert manager.file(f"{v2}/repositories/{REPO}/_manifests/tags/{OLD_TAG}").is_directory
    assert manager.file(f"{v2}/blobs/sha256").is_directory
