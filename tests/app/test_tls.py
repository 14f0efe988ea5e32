"""The app over TLS, with authenticated Sentinels that report host names, as the stack runs it:
real TLS-only redis-server and Sentinel processes on loopback, the CA from a file, the Sentinel
password from a secret file."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from ansible_collections.swarmlab.cluster.tests.integration.support.tls import TlsFiles
from apptest_support import PASSWORD, REDIS_SENTINEL, SENTINEL_PASSWORD, TlsRedis, free_port, wait_for

pytestmark = pytest.mark.integration


def assert_json(resp, status: int) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture
def tls_group(redis_workdir: Path, tmp_path: Path) -> Iterator[dict]:
    """TLS master + replica (announced as localhost) and three Sentinels with requirepass,
    sentinel-pass and host names, watching the master."""
    tls = TlsFiles(tmp_path / "tls")
    server = (f"requirepass {PASSWORD}\nmasterauth {PASSWORD}\nsave \"\"\nappendonly no\n"
              "replica-announce-ip localhost\nrepl-diskless-sync-delay 0\n")
    master = TlsRedis(redis_workdir, f"tls-master-{tmp_path.name}", tls, server).start()
    replica = TlsRedis(redis_workdir, f"tls-replica-{tmp_path.name}", tls,
                       server + f"replicaof localhost {master.port}\n").start()
    sentinel = (f"requirepass {SENTINEL_PASSWORD}\nsentinel sentinel-pass {SENTINEL_PASSWORD}\n"
                "sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n"
                "sentinel announce-ip localhost\n"
                f"sentinel monitor mymaster localhost {master.port} 2\n"
                f"sentinel auth-pass mymaster {PASSWORD}\n"
                "sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 10000\n")
    sentinels = [TlsRedis(redis_workdir, f"tls-sentinel-{i}-{tmp_path.name}", tls, sentinel, sentinel=True)
                 for i in range(3)]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis_password").write_text(PASSWORD)
    (secrets / "sentinel_password").write_text(SENTINEL_PASSWORD + "\n")
    try:
        for s in sentinels:
            s.start()
        wait_for(lambda: all(len(s.client().sentinel_slaves("mymaster")) == 1
                             and len(s.client().sentinel_sentinels("mymaster")) == 2 for s in sentinels),
                 20, "Sentinels to find the replica and each other")
        env = {
            # Only the credentials and db of REDIS_URL count with Sentinel: a closed port here.
            "REDIS_URL": f"redis://localhost:{free_port()}/0",
            "REDIS_PASSWORD_FILE": str(secrets / "redis_password"),
            "REDIS_SENTINELS": ",".join(f"localhost:{s.port}" for s in sentinels),
            "REDIS_SENTINEL_PASSWORD_FILE": str(secrets / "sentinel_password"),
            "REDIS_TLS": "1", "REDIS_TLS_CA_FILE": str(tls.ca),
            "REDIS_RETRIES": "6", "REDIS_BACKOFF_BASE": "0.1", "REDIS_BACKOFF_CAP": "1",
        }
        yield {"tls": tls, "master": master, "replica": replica, "sentinels": sentinels, "env": env,
               "secrets": secrets}
    finally:
        for s in (*sentinels, replica, master):
            s.stop()


@pytest.mark.skipif(not Path(REDIS_SENTINEL).exists(), reason="redis-sentinel is not installed")
def test_tls_and_sentinel_password_file_follow_a_failover(make_client, tls_group):
    g = tls_group
    client = make_client(**g["env"])
    assert assert_json(client.post("/api/counter/increment", json={"by": 5}), 200) == {"value": 5}
    store = client.application.extensions["counter_store"]
    # Sentinel reports the master by name; redis-py checked that name against the certificate.
    assert store.describe_master() == f"localhost:{g['master'].port}"

    g["sentinels"][0].client().execute_command("SENTINEL", "FAILOVER", "mymaster")
    wait_for(lambda: g["master"].client().info("replication")["role"] == "slave", 20,
             "the old master to be demoted")
    assert assert_json(client.post("/api/counter/increment"), 200) == {"value": 6}
    assert g["replica"].client().get(store.key) == "6"
    assert store.describe_master() == f"localhost:{g['replica'].port}"


@pytest.mark.skipif(not Path(REDIS_SENTINEL).exists(), reason="redis-sentinel is not installed")
def test_without_the_ca_without_tls_or_with_a_wrong_sentinel_password_it_is_503(make_client, tls_group):
    g = tls_group
    env = {**g["env"], "REDIS_RETRIES": "0", "REDIS_STARTUP_TIMEOUT": "0"}
    no_ca = dict(env)
    del no_ca["REDIS_TLS_CA_FILE"]  # the system's CAs do not know ours: verification fails
    plain = {**env, "REDIS_TLS": "0"}
    wrong = g["secrets"] / "wrong"
    wrong.write_text("not-the-sentinel-password")
    wrong_sentinel_password = {**env, "REDIS_SENTINEL_PASSWORD_FILE": str(wrong)}
    for case in (no_ca, plain, wrong_sentinel_password):
        assert "error" in assert_json(make_client(**case).post("/api/counter/increment"), 503)
    # And a plain connection straight to the server gets nowhere: it has no plaintext port.
    import redis

    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="localhost", port=g["master"].port, password=PASSWORD,
                    socket_timeout=1, socket_connect_timeout=1).ping()


def test_tls_settings_are_checked_at_start(tmp_path):
    from counter.config import ConfigError, Settings

    assert Settings.from_env({"REDIS_URL": "rediss://redis-master:6379/0"}).tls is True
    assert Settings.from_env({"REDIS_URL": "redis://redis-master:6379/0"}).tls is False
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings.from_env({"REDIS_TLS": "yes", "REDIS_TLS_CA_FILE": str(ca)})
    assert settings.tls is True and settings.tls_ca_file == str(ca)
    with pytest.raises(ConfigError, match="REDIS_TLS must be a boolean"):
        Settings.from_env({"REDIS_TLS": "maybe"})
    with pytest.raises(ConfigError, match="REDIS_TLS_CA_FILE"):
        Settings.from_env({"REDIS_TLS": "1", "REDIS_TLS_CA_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="REDIS_SENTINEL_PASSWORD_FILE"):
        Settings.from_env({"REDIS_SENTINEL_PASSWORD_FILE": str(tmp_path / "missing")})
    secret = tmp_path / "sentinel_password"
    secret.write_text("from-the-file\n")
    assert Settings.from_env({"REDIS_SENTINEL_PASSWORD_FILE": str(secret),
                              "REDIS_SENTINEL_PASSWORD": "env"}).sentinel_password == "from-the-file"
