"""The stack's web health check and stop settings, rendered from the stack role's template and run
against the real app (gunicorn + redis-server on loopback).

Why the check matters (issue 16): Swarm rolls an update back only when a new task fails; with a
check on /healthz alone, a version whose /readyz never passes was healthy, rolled out, and the edge
(which checks /readyz) had nothing to send to. The stack's check is healthy once the task has been
ready since it started, then as long as it is alive, so a never-ready task fails while tasks that
were ready stay healthy through a Redis outage.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from ansible_collections.swarmlab.cluster.tests.integration.support.local_run import LOCAL_RUN_ENV

from apptest_support import FAST_RETRY_ENV, redis_url

REPO = Path(__file__).resolve().parents[2]
RENDER = "tests/integration/redis/playbooks/render_compose.yml"


def render(out: Path, *extra: str) -> dict:
    """The compose file the stack role writes, with its defaults and `-e` extra vars."""
    args = [arg for value in extra for arg in ("-e", value)]
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"compose_out={out}", *args, RENDER],
        cwd=REPO, env=dict(os.environ, **LOCAL_RUN_ENV, ANSIBLE_NOCOLOR="1"), capture_output=True, text=True, timeout=180,
        check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return yaml.safe_load(out.read_text())


@pytest.fixture(scope="module")
def web_service(tmp_path_factory) -> dict:
    return render(tmp_path_factory.mktemp("render") / "compose.yml")["services"]["web"]


def health_check(web_service: dict, port: int, mark: Path):
    """The rendered check, pointed at this test's gunicorn and marker file; returns a runner."""
    test = web_service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python3", "-c"], test
    code = test[3]
    assert "('127.0.0.1', 8000)" in code
    code = code.replace("('127.0.0.1', 8000)", f"('127.0.0.1', {port})").replace(
        "/tmp/.swarmlab-ready-once", str(mark))

    def run() -> int:
        return subprocess.run([sys.executable, "-c", code], timeout=30, check=False).returncode
    return run


def test_never_ready_is_unhealthy_and_ready_once_survives_a_redis_outage(web_service, lone_redis, gunicorn_factory,
                                                                         counter_key, tmp_path):
    app = gunicorn_factory({**FAST_RETRY_ENV, "REDIS_URL": redis_url(lone_redis), "COUNTER_KEY": counter_key})
    mark = tmp_path / "ready-once"
    check = health_check(web_service, app.port, mark)

    assert requests.get(f"{app.base}/readyz", timeout=5).status_code == 200
    assert check() == 0          # ready: healthy, and remembered
    assert mark.exists()

    lone_redis.stop()
    assert requests.get(f"{app.base}/readyz", timeout=5).status_code == 503
    assert requests.get(f"{app.base}/healthz", timeout=5).status_code == 200
    assert check() == 0          # was ready: a Redis outage does not make it unhealthy

    mark.unlink()                # a new task started during the outage: never ready
    assert check() == 1
    assert not mark.exists()


def test_never_ready_app_is_unhealthy(web_service, gunicorn_factory, counter_key, tmp_path):
    # The never-ready image of the drills: the app reaches no Redis at all.
    app = gunicorn_factory({**FAST_RETRY_ENV, "REDIS_URL": "redis://127.0.0.1:1/0", "COUNTER_KEY": counter_key})
    check = health_check(web_service, app.port, tmp_path / "ready-once")
    assert requests.get(f"{app.base}/healthz", timeout=5).status_code == 200
    assert check() == 1


def test_a_dead_app_is_unhealthy_even_after_being_ready(web_service, tmp_path):
    mark = tmp_path / "ready-once"
    mark.touch()
    port = 1  # nothing listens there
    assert health_check(web_service, port, mark)() == 1


def test_stop_grace_period_covers_the_drain_aware_stop(web_service):
    env = web_service["environment"]
    grace = int(str(web_service["stop_grace_period"]).rstrip("s"))
    assert grace > int(env["SHUTDOWN_DELAY"]) + int(env["GUNICORN_GRACEFUL_TIMEOUT"])
    deploy = web_service["deploy"]
    assert deploy["update_config"]["order"] == "start-first"
    assert deploy["update_config"]["failure_action"] == "rollback"
    assert deploy["rollback_config"]["order"] == "start-first"


def test_the_checks_pace_follows_the_engines(tmp_path):
    """Docker 25 runs a start interval: fast checks while a task starts (the rollout's pace), rare
    ones after. Older engines run none, so the interval stays short there (it paces rollouts). The
    role turns it on only when every node runs Docker 25 (stack_healthcheck_start_interval_active);
    the lab on Debian 13's docker.io 26 runs this file (docs/performance.md)."""
    old = render(tmp_path / "old.yml")
    assert str(old["version"]) == "3.8"      # the compose format docker 20.10's CLI reads
    checked = {name: svc["healthcheck"] for name, svc in old["services"].items() if "healthcheck" in svc}
    assert {"web", "redis-master", "redis-sentinel-1"} <= set(checked)
    assert all("start_interval" not in check for check in checked.values())
    assert checked["web"]["interval"] == "5s" and checked["redis-master"]["interval"] == "5s"

    new = render(tmp_path / "new.yml", "stack_healthcheck_start_interval_active=true",
                 "stack_healthcheck_start_interval=2s", "stack_healthcheck_steady_interval=20s")
    assert str(new["version"]) == "3.12"     # the first format with start_interval
    paced = {name: svc["healthcheck"] for name, svc in new["services"].items() if "healthcheck" in svc}
    assert set(paced) == set(checked)
    for name, check in paced.items():
        assert (check["start_interval"], check["interval"]) == ("2s", "20s"), name
        assert check["start_period"] == checked[name]["start_period"], name
