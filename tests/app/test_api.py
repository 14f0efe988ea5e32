"""The counter API against a real Redis master (and replica): endpoints and bad input."""
from __future__ import annotations

import socket

import pytest

from apptest_support import RedisProcess, free_port, redis_url


def assert_json(resp, status: int) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    assert resp.headers["X-Served-By"] == socket.gethostname()
    return resp.get_json()


def test_get_starts_at_zero(client) -> None:
    assert assert_json(client.get("/api/counter"), 200) == {"value": 0}


def test_increment_decrement_reset_roundtrip(client, redis_pair, counter_key) -> None:
    master, _replica = redis_pair
    assert assert_json(client.post("/api/counter/increment"), 200) == {"value": 1}
    assert assert_json(client.post("/api/counter/increment", json={"by": 41}), 200) == {"value": 42}
    assert assert_json(client.post("/api/counter/decrement"), 200) == {"value": 41}
    assert assert_json(client.post("/api/counter/decrement", json={"by": 50}), 200) == {"value": -9}
    assert assert_json(client.get("/api/counter"), 200) == {"value": -9}
    # The value really lives in Redis under the configured key.
    assert master.client().get(counter_key) == "-9"
    assert assert_json(client.post("/api/counter/reset"), 200) == {"value": 0}
    assert master.client().get(counter_key) == "0"
    assert assert_json(client.get("/api/counter"), 200) == {"value": 0}


@pytest.mark.parametrize("by", [1, 1_000_000])
def test_by_bounds_are_accepted(client, by: int) -> None:
    assert assert_json(client.post("/api/counter/increment", json={"by": by}), 200) == {"value": by}
    assert assert_json(client.post("/api/counter/decrement", json={"by": by}), 200) == {"value": 0}


def test_empty_object_body_means_default_step(client) -> None:
    assert assert_json(client.post("/api/counter/increment", json={}), 200) == {"value": 1}
    assert assert_json(client.post("/api/counter/reset", json={}), 200) == {"value": 0}


@pytest.mark.parametrize("path", ["/api/counter/increment", "/api/counter/decrement"])
@pytest.mark.parametrize("body, fragment", [
    ('{"by": ', "malformed JSON"),
    ("not json", "malformed JSON"),
    ('[1, 2]', "must be an object"),
    ('{"by": "5"}', "must be an integer"),
    ('{"by": 2.5}', "must be an integer"),
    ('{"by": 3.0}', "must be an integer"),
    ('{"by": true}', "must be an integer"),
    ('{"by": null}', "must be an integer"),
    ('{"by": 0}', "between 1 and 1000000"),
    ('{"by": -3}', "between 1 and 1000000"),
    ('{"by": 1000001}', "between 1 and 1000000"),
    ('{"by": 99999999999999999999999}', "between 1 and 1000000"),
    ('{"by": 1, "step": 2}', "unknown field(s): step"),
])
def test_bad_input_is_400_and_changes_nothing(client, path: str, body: str, fragment: str) -> None:
    data = assert_json(client.post(path, data=body, content_type="application/json"), 400)
    assert fragment in data["error"]
    assert assert_json(client.get("/api/counter"), 200) == {"value": 0}


def test_reset_takes_no_fields(client) -> None:
    client.post("/api/counter/increment")
    data = assert_json(client.post("/api/counter/reset", json={"value": 5}), 400)
    assert "unknown field(s): value" in data["error"]
    assert assert_json(client.get("/api/counter"), 200) == {"value": 1}


@pytest.mark.parametrize("method, path", [
    ("post", "/api/counter"),
    ("delete", "/api/counter"),
    ("get", "/api/counter/increment"),
    ("get", "/api/counter/decrement"),
    ("put", "/api/counter/reset"),
    ("post", "/healthz"),
])
def test_wrong_method_is_405_json(client, method: str, path: str) -> None:
    data = assert_json(getattr(client, method)(path), 405)
    assert data["error"]
    assert "Allow" in client.open(path, method=method.upper()).headers


def test_unknown_path_is_404_json(client) -> None:
    assert assert_json(client.get("/api/nope"), 404)["error"]


def test_overflow_is_409_not_500(client, redis_pair, counter_key) -> None:
    master, _replica = redis_pair
    master.client().set(counter_key, 2**63 - 1)
    data = assert_json(client.post("/api/counter/increment"), 409)
    assert "64-bit" in data["error"]
    assert master.client().get(counter_key) == str(2**63 - 1)


def test_corrupt_value_is_500_json_without_traceback(client, redis_pair, counter_key) -> None:
    # Someone else wrote a non-number under our key: the client sees a plain JSON error.
    master, _replica = redis_pair
    master.client().set(counter_key, "banana")
    resp = client.post("/api/counter/increment")
    data = assert_json(resp, 500)
    assert data == {"error": "internal error"}
    assert "Traceback" not in resp.get_data(as_text=True)


def test_health_and_ready(client) -> None:
    assert assert_json(client.get("/healthz"), 200) == {"status": "ok"}
    assert assert_json(client.get("/readyz"), 200) == {"status": "ready"}


def test_page_shows_value_buttons_and_replica(client) -> None:
    client.post("/api/counter/increment", json={"by": 7})
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    assert resp.headers["X-Served-By"] == socket.gethostname()
    html = resp.get_data(as_text=True)
    assert '<div id="value" aria-live="polite">7</div>' in html
    for button in ("Increment", "Decrement", "Reset"):
        assert f">{button}</button>" in html
    assert f'<code id="page-served-by">{socket.gethostname()}</code>' in html


# --- replicas -------------------------------------------------------------------------------

def _get_calls(server: RedisProcess) -> int:
    stats = server.client().info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


def test_reads_go_to_replica_and_writes_to_master(make_client, redis_pair, counter_key) -> None:
    master, replica = redis_pair
    client = make_client(REDIS_URL=redis_url(master),
                         REDIS_REPLICAS=f"127.0.0.1:{replica.port}")
    assert assert_json(client.post("/api/counter/increment", json={"by": 5}), 200) == {"value": 5}
    replica.wait_in_sync(master)
    master_gets, replica_gets = _get_calls(master), _get_calls(replica)
    for _attempt in range(5):
        assert assert_json(client.get("/api/counter"), 200) == {"value": 5}
    assert _get_calls(replica) - replica_gets == 5
    assert _get_calls(master) - master_gets == 0


def test_dead_replica_falls_back_to_master(make_client, redis_pair, counter_key) -> None:
    master, _replica = redis_pair
    master.client().set(counter_key, 12)
    client = make_client(REDIS_URL=redis_url(master), REDIS_REPLICAS=f"127.0.0.1:{free_port()}")
    before = _get_calls(master)
    assert assert_json(client.get("/api/counter"), 200) == {"value": 12}
    assert assert_json(client.get("/api/counter"), 200) == {"value": 12}
    assert _get_calls(master) - before == 2


def test_bad_config_fails_fast() -> None:
    from counter import create_app
    from counter.config import ConfigError

    with pytest.raises(ConfigError, match="REDIS_REPLICAS"):
        create_app({"REDIS_REPLICAS": "no-port-here"})
    with pytest.raises(ConfigError, match="REDIS_RETRIES"):
        create_app({"REDIS_RETRIES": "many"})


# --- password from a secret file (the Swarm stack mounts /run/secrets/redis_password) -------

def test_password_file_is_used_and_wins_over_the_url(make_client, redis_pair, tmp_path) -> None:
    from apptest_support import PASSWORD

    master, replica = redis_pair
    secret = tmp_path / "redis_password"
    secret.write_text(PASSWORD + "\n")  # secret files often end with a newline
    no_password = make_client(REDIS_URL=f"redis://127.0.0.1:{master.port}/0",
                              REDIS_PASSWORD_FILE=str(secret),
                              REDIS_REPLICAS=f"127.0.0.1:{replica.port}")
    assert assert_json(no_password.post("/api/counter/increment"), 200) == {"value": 1}
    wrong_in_url = make_client(REDIS_URL=f"redis://:wrong@127.0.0.1:{master.port}/0",
                               REDIS_PASSWORD_FILE=str(secret))
    assert assert_json(wrong_in_url.post("/api/counter/increment"), 200) == {"value": 2}
    replica.wait_in_sync(master)
    assert assert_json(no_password.get("/api/counter"), 200) == {"value": 2}


def test_wrong_password_is_503_not_500(make_client, redis_pair) -> None:
    master, _replica = redis_pair
    client = make_client(REDIS_URL=f"redis://127.0.0.1:{master.port}/0", REDIS_PASSWORD="wrong")
    assert "error" in assert_json(client.post("/api/counter/increment"), 503)


def test_unreadable_password_file_fails_fast(tmp_path) -> None:
    from counter import create_app
    from counter.config import ConfigError

    with pytest.raises(ConfigError, match="REDIS_PASSWORD_FILE"):
        create_app({"REDIS_PASSWORD_FILE": str(tmp_path / "missing")})


def test_numeric_settings_name_the_variable_the_kind_and_the_minimum() -> None:
    from counter.config import ConfigError, Settings

    assert Settings.from_env({"REDIS_RETRIES": " 7 ", "REDIS_BACKOFF_CAP": "2.5"}).retries == 7
    assert Settings.from_env({"REDIS_BACKOFF_CAP": "2.5"}).backoff_cap == 2.5
    assert Settings.from_env({"REDIS_BACKOFF_CAP": ""}).backoff_cap == Settings.backoff_cap
    for env, message in [
        ({"REDIS_RETRIES": "2.5"}, "REDIS_RETRIES must be an integer, got '2.5'"),
        ({"REDIS_BACKOFF_CAP": "soon"}, "REDIS_BACKOFF_CAP must be a number, got 'soon'"),
        ({"REDIS_RETRIES": "-1"}, "REDIS_RETRIES must be >= 0, got -1"),
        ({"REDIS_BACKOFF_BASE": "-0.5"}, "REDIS_BACKOFF_BASE must be >= 0, got -0.5"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES must be >= 1, got 0"),
    ]:
        with pytest.raises(ConfigError) as caught:
            Settings.from_env(env)
        assert str(caught.value) == message
