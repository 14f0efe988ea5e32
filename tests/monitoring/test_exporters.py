"""The metrics the alert rules read, from the real exporters: Debian's redis_exporter in front of
real redis-server and redis-sentinel processes, and HAProxy with the stack role's own edge
configuration (its binds moved to free loopback ports). A rule about a metric name no exporter
gives could never fire, and its promtool test would not notice."""
from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from monitoringtest_support import (free_port, metric_names_in_rules, parse_metrics, stop, tool, value,
                                    wait_for_port)

pytestmark = pytest.mark.integration

PASSWORD = "exporter-test-pw"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Redis:
    """One redis-server (or Sentinel) on a free loopback port, its files in a temp dir."""

    def __init__(self, base: Path, name: str, conf: str, sentinel: bool = False) -> None:
        self.port = free_port()
        self.dir = base / name
        self.dir.mkdir()
        self.conf = self.dir / "redis.conf"
        self.conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nsave \"\"\n{conf}\n")
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
    """A master, a replica and a Sentinel with a password, and redis_exporter with a password file
    in the role's format (URI -> password; the Sentinel not listed)."""
    base = tmp_path_factory.mktemp("redis")
    master = Redis(base, "master", f"requirepass {PASSWORD}\nmasterauth {PASSWORD}")
    replica = Redis(base, "replica", f"requirepass {PASSWORD}\nmasterauth {PASSWORD}\n"
                                     f"replicaof 127.0.0.1 {master.port}")
    sentinel = Redis(base, "sentinel", f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                                       f"sentinel auth-pass mymaster {PASSWORD}", sentinel=True)
    passwords = base / "redis_passwords.json"
    passwords.write_text(json.dumps({master.uri: PASSWORD, replica.uri: PASSWORD}))
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
