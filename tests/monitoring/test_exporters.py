"""The metrics the alert rules read, from the real exporters: Debian's redis_exporter in front of
real redis-server and redis-sentinel processes, and HAProxy with the stack role's own edge
configuration (its binds moved to free loopback ports). A rule about a metric name no exporter
gives could never fire, and its promtool test would not notice."""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from ansible_collections.swarmlab.cluster.tests.integration.support.ports import free_port
from monitoringtest_support import (PLACEHOLDER_REDIS_PASSWORD, PLACEHOLDER_SENTINEL_PASSWORD, make_ca, make_cert,
                                    metric_names_in_rules, parse_metrics, stop, tool, value, wait_for_port)

pytestmark = pytest.mark.integration

PASSWORD = "exporter-test-pw"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Redis:
    """One redis-server (or Sentinel) on a free loopback port, its files in a temp dir. With `tls`
    (certificate, key, CA) it listens on TLS only, as the stack's redis-boot.sh configures it."""

    def __init__(self, base: Path, name: str, conf: str, sentinel: bool = False,
                 tls: tuple[Path, Path, Path] | None = None) -> None:
        self.port = free_port()
        self.dir = base / name
        self.dir.mkdir()
        self.conf = self.dir / "redis.conf"
        listen = f"port {self.port}\n"
        if tls:
            listen = (f"port 0\ntls-port {self.port}\ntls-cert-file {tls[0]}\ntls-key-file {tls[1]}\n"
                      f"tls-ca-cert-file {tls[2]}\ntls-auth-clients no\ntls-replication yes\n")
        self.conf.write_text(f"{listen}bind 127.0.0.1\ndir {self.dir}\nsave \"\"\n{conf}\n")
        self.cmd = [tool("redis-server"), str(self.conf)] + (["--sentinel"] if sentinel else [])
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def redis_exporter(tmp_path_factory):
    """A master, a replica and a Sentinel with a password (the Redis one, as the stack's Sentinels
    have without stack_sentinel_password), and redis_exporter with a password file in the role's
    format (URI -> password)."""
    base = tmp_path_factory.mktemp("redis")
    master = Redis(base, "master", f"requirepass {PASSWORD}\nmasterauth {PASSWORD}")
    replica = Redis(base, "replica", f"requirepass {PASSWORD}\nmasterauth {PASSWORD}\n"
                                     f"replicaof 127.0.0.1 {master.port}")
    sentinel = Redis(base, "sentinel", f"requirepass {PASSWORD}\nsentinel sentinel-pass {PASSWORD}\n"
                                       f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                                       f"sentinel auth-pass mymaster {PASSWORD}", sentinel=True)
    passwords = base / "redis_passwords.json"
    passwords.write_text(json.dumps({master.uri: PASSWORD, replica.uri: PASSWORD, sentinel.uri: PASSWORD}))
    port = free_port()
    exporter = subprocess.Popen([tool("prometheus-redis-exporter"), "-redis.addr=",
                                 f"-redis.password-file={passwords}", f"-web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers = [master, replica, sentinel]
    try:
        for server in servers:
            server.start()
        wait_for_port(port, exporter)
        scrape = Scraper(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while value(scrape(replica), "redis_master_link_up") != 1 or \
                value(scrape(sentinel), "redis_sentinel_master_ckquorum_status", master_name="mymaster") != 1:
            assert time.monotonic() < deadline, "replica or Sentinel not ready in 30 s"
            time.sleep(0.5)
        yield scrape, master, replica, sentinel
    finally:
        stop(exporter)
        for server in servers:
            server.stop()


class Scraper:
    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, server: Redis | str):
        target = server if isinstance(server, str) else server.uri
        status, text = get(f"{self.url}/scrape?target={target}")
        assert status == 200, text
        return parse_metrics(text)


def test_the_redis_rules_read_metrics_the_exporter_gives(redis_exporter, rendered):
    scrape, master, replica, sentinel = redis_exporter
    samples = scrape(master) + scrape(replica) + scrape(sentinel)
    given = {name for name, _labels, _value in samples}
    wanted = metric_names_in_rules(rendered / "alerts.yml", "redis_")
    assert wanted >= {"redis_up", "redis_instance_info", "redis_connected_slaves", "redis_master_link_up",
                      "redis_connected_slave_lag_seconds", "redis_sentinel_master_ckquorum_status"}
    assert wanted <= given, wanted - given


def test_roles_links_and_quorum_as_the_rules_expect_them(redis_exporter):
    scrape, master, replica, sentinel = redis_exporter
    m, r, s = scrape(master), scrape(replica), scrape(sentinel)
    assert value(m, "redis_up") == 1 and value(r, "redis_up") == 1
    assert [lab["role"] for n, lab, v in m if n == "redis_instance_info"] == ["master"]
    assert [lab["role"] for n, lab, v in r if n == "redis_instance_info"] == ["slave"]
    # A Sentinel's role is empty: RedisMultipleMasters / RedisMasterMissing do not count it.
    assert [lab["role"] for n, lab, v in s if n == "redis_instance_info"] == [""]
    assert value(r, "redis_master_link_up") == 1
    assert value(m, "redis_connected_slave_lag_seconds", slave_port=str(replica.port)) is not None
    assert value(s, "redis_sentinel_master_ckquorum_status", master_name="mymaster") == 1


def test_the_password_file_is_looked_up_by_the_exact_target(redis_exporter):
    """Why prometheus.yml's targets and the password file are written from one list."""
    scrape, master, _replica, _sentinel = redis_exporter
    assert value(scrape(master.uri), "redis_up") == 1
    assert value(scrape(f"redis://localhost:{master.port}"), "redis_up") == 0


def test_a_stopped_replica_shows_where_the_replica_rules_look(redis_exporter):
    scrape, master, replica, _sentinel = redis_exporter
    replica.stop()
    try:
        deadline = time.monotonic() + 20
        while value(scrape(master), "redis_connected_slaves") != 0:
            assert time.monotonic() < deadline, "the master still counts the stopped replica"
            time.sleep(0.5)
        assert value(scrape(replica), "redis_up") == 0
    finally:
        replica.start()
        deadline = time.monotonic() + 30
        while value(scrape(replica), "redis_master_link_up") != 1:
            assert time.monotonic() < deadline, "the replica did not resync"
            time.sleep(0.5)


def redis_cli(server: Redis, ca_file: Path, password: str, *command: str) -> str:
    """One command over TLS, the password from the environment (not argv)."""
    proc = subprocess.run([tool("redis-cli"), "--tls", "--cacert", str(ca_file), "-h", "127.0.0.1",
                           "-p", str(server.port), "--raw", *command],
                          env=dict(os.environ, REDISCLI_AUTH=password), capture_output=True, text=True,
                          timeout=10, check=False)
    return proc.stdout


def exporter_service(variant: Path) -> tuple[dict, dict[str, Path]]:
    """The rendered compose file's redis-exporter service, and the file on the manager behind each
    of its secrets, by the secret's target (/run/secrets/<target>)."""
    doc = yaml.safe_load((variant / "docker-compose.monitoring.yml").read_text())
    service = doc["services"]["redis-exporter"]
    return service, {s["target"]: variant / doc["secrets"][s["source"]]["file"] for s in service["secrets"]}


def start_exporter(variant: Path, files: dict[str, Path], port: int) -> subprocess.Popen:
    """Debian's redis_exporter with the rendered redis-exporter service's arguments; each
    /run/secrets/<target> is the file given for that target."""
    service, secrets = exporter_service(variant)
    assert set(files) == set(secrets)
    args = []
    for arg in service["command"]:
        for target, path in files.items():
            arg = arg.replace(f"/run/secrets/{target}", str(path))
        args.append(f"-web.listen-address=127.0.0.1:{port}" if arg.startswith("-web.listen-address=") else arg)
    proc = subprocess.Popen([tool("prometheus-redis-exporter"), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    return proc


@pytest.fixture(scope="module")
def tls_stack(variants, tmp_path_factory):
    """The stack as the lab runs it (stack_redis_tls, stack_sentinel_password): a master, a replica
    and a Sentinel on TLS only, the Sentinel with its own password, certificates from the CA the
    "tls" variant was rendered with. Names such as swarmlab_redis-master do not resolve here, so
    each rendered target URI is mapped to 127.0.0.1 and its port, keeping its scheme and its
    password from the rendered password file; the exporter runs with the rendered arguments and CA.
    A second exporter gets another CA."""
    base = tmp_path_factory.mktemp("redis-tls")
    ca_file = variants["ca"] / "ca.crt"
    # Like the stack's certificate: service names and 127.0.0.1, not "localhost".
    tls = (*make_cert(variants["ca"], base / "tls", ["DNS:swarmlab_redis-master", "DNS:redis-master",
                                                     "IP:127.0.0.1"]), ca_file)
    pw, sentinel_pw = PLACEHOLDER_REDIS_PASSWORD, PLACEHOLDER_SENTINEL_PASSWORD
    master = Redis(base, "master", f"requirepass {pw}\nmasterauth {pw}", tls=tls)
    replica = Redis(base, "replica", f"requirepass {pw}\nmasterauth {pw}\nreplicaof 127.0.0.1 {master.port}",
                    tls=tls)
    sentinel = Redis(base, "sentinel", f"requirepass {sentinel_pw}\nsentinel sentinel-pass {sentinel_pw}\n"
                                       f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                                       f"sentinel auth-pass mymaster {pw}", sentinel=True, tls=tls)
    servers = {"redis-master": master, "redis-replica-1": replica, "redis-sentinel-1": sentinel}

    variant = variants["tls"]
    _service, secrets = exporter_service(variant)
    rendered = json.loads(secrets["redis_passwords.json"].read_text())
    [job] = [j for j in yaml.safe_load((variant / "prometheus.yml").read_text())["scrape_configs"]
             if j["job_name"] == "redis"]
    targets = {group["labels"]["redis_service"]: group["targets"][0] for group in job["static_configs"]}
    local = {name: urllib.parse.urlsplit(targets[name])._replace(netloc=f"127.0.0.1:{server.port}").geturl()
             for name, server in servers.items()}
    passwords = {local[name]: rendered.get(targets[name], "") for name in servers}
    # The master by a name its certificate does not hold: host names are verified.
    unnamed = local["redis-master"].replace("127.0.0.1", "localhost")
    passwords[unnamed] = passwords[local["redis-master"]]
    (base / "passwords.json").write_text(json.dumps(passwords))
    wrong_ca = make_ca(base / "other-ca", "another CA")

    exporters, scrapers = [], {}
    try:
        for server in servers.values():
            server.start()
        deadline = time.monotonic() + 30
        while "master_link_status:up" not in redis_cli(replica, ca_file, pw, "INFO", "replication") or \
                not redis_cli(sentinel, ca_file, sentinel_pw, "SENTINEL", "CKQUORUM", "mymaster").startswith("OK"):
            assert time.monotonic() < deadline, "replica or Sentinel not ready in 30 s"
            time.sleep(0.5)
        for name, ca in (("right", None), ("wrong", wrong_ca)):
            files = {target: (ca if ca and target != "redis_passwords.json" else path)
                     for target, path in secrets.items()}
            files["redis_passwords.json"] = base / "passwords.json"
            port = free_port()
            exporters.append(start_exporter(variant, files, port))
            scrapers[name] = Scraper(f"http://127.0.0.1:{port}")
        yield scrapers, local, unnamed
    finally:
        for proc in exporters:
            stop(proc)
        for server in servers.values():
            server.stop()


def test_tls_and_the_sentinel_password_reach_the_exporter_through_the_rendered_files(tls_stack, variants):
    scrapers, local, _unnamed = tls_stack
    scrape = scrapers["right"]
    m, r, s = (scrape(local[n]) for n in ("redis-master", "redis-replica-1", "redis-sentinel-1"))
    assert [value(x, "redis_up") for x in (m, r, s)] == [1, 1, 1]
    assert [lab["role"] for n, lab, v in m if n == "redis_instance_info"] == ["master"]
    assert value(m, "redis_connected_slaves") == 1
    assert value(r, "redis_master_link_up") == 1
    assert value(s, "redis_sentinel_master_ckquorum_status", master_name="mymaster") == 1
    wanted = metric_names_in_rules(variants["tls"] / "alerts.yml", "redis_")
    assert wanted <= {name for x in (m, r, s) for name, _labels, _value in x}


def test_tls_fails_with_another_ca_or_a_name_not_in_the_certificate(tls_stack):
    scrapers, local, unnamed = tls_stack
    for name in ("redis-master", "redis-sentinel-1"):
        assert value(scrapers["right"](local[name]), "redis_up") == 1, name
        assert value(scrapers["wrong"](local[name]), "redis_up") == 0, name
    assert value(scrapers["right"](unnamed), "redis_up") == 0
    # Plaintext to a TLS-only server: what the exporter did before monitoring_redis_tls.
    assert value(scrapers["right"](local["redis-master"].replace("rediss://", "redis://")), "redis_up") == 0


@pytest.fixture(scope="module")
def edge(variants, tmp_path_factory):
    """HAProxy with the stack role's haproxy.cfg; its binds moved to free loopback ports and its
    resolver to a port where nothing answers (tasks.web does not exist here: no web server)."""
    public, metrics, dns = free_port(), free_port(), free_port()
    config = variants["edge"].read_text()
    assert "    bind :8080\n" in config and "    bind :8405\n" in config
    config = (config.replace("    bind :8080\n", f"    bind 127.0.0.1:{public}\n")
                    .replace("    bind :8405\n", f"    bind 127.0.0.1:{metrics}\n")
                    .replace("127.0.0.11:53", f"127.0.0.1:{dns}"))
    path = tmp_path_factory.mktemp("edge") / "haproxy.cfg"
    path.write_text(config)
    proc = subprocess.Popen([tool("haproxy"), "-db", "-f", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_port(public, proc)
        wait_for_port(metrics, proc)
        yield f"http://127.0.0.1:{public}", f"http://127.0.0.1:{metrics}/metrics"
    finally:
        stop(proc)


def test_the_edge_serves_its_metrics_only_on_the_metrics_port(edge):
    public, metrics = edge
    status, body = get(public + "/metrics")
    assert status == 503 and "haproxy_" not in body
    status, body = get(metrics)
    assert status == 200 and "haproxy_frontend_http_requests_total" in body


def test_the_edge_counts_each_request_once_and_the_rules_read_its_metrics(edge, rendered):
    public, metrics = edge
    before = parse_metrics(get(metrics)[1])
    for _request in range(25):
        assert get(public + "/api/counter")[0] == 503  # no web server here
    after = parse_metrics(get(metrics)[1])

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("haproxy_frontend_http_requests_total", proxy="http") == 25
    assert grew("haproxy_frontend_http_responses_total", proxy="http", code="5xx") == 25
    # Scrapes go to the metrics frontend, not the users' one.
    assert grew("haproxy_frontend_http_requests_total", proxy="metrics") == 1
    assert value(after, "haproxy_backend_active_servers", proxy="web") == 0
    wanted = metric_names_in_rules(rendered / "alerts.yml", "haproxy_")
    assert wanted == {"haproxy_backend_active_servers", "haproxy_frontend_http_responses_total"}
    assert wanted <= {name for name, _labels, _value in after}
