"""Build the production image from the lab's local base and run it against a real Redis."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from typing import Iterator

import pytest
import requests

from apptest_support import APP_DIR, wait_for

BASE_IMAGE = "swarmlab-lab/python:bookworm"
REDIS_IMAGE = "swarmlab-lab/redis:bookworm"

SHUTDOWN_DELAY = 2

pytestmark = pytest.mark.docker


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


def _docker_answers() -> str | None:
    """None if a daemon answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=15)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    return None if result.returncode == 0 else f"no docker daemon answers: {result.stderr.strip()}"


@pytest.fixture
def lab() -> Iterator[dict[str, str]]:
    reason = _docker_answers()
    if reason:
        pytest.skip(reason)
    for image in (BASE_IMAGE, REDIS_IMAGE):
        if docker("image", "inspect", image, check=False).returncode != 0:
            pytest.skip(f"local lab image {image} is missing (built by the lab role)")
    name = f"swarmlab-apptest-{uuid.uuid4().hex[:10]}"
    names = {"image": f"{name}:test", "network": name, "app": f"{name}-app",
             "redis": f"{name}-redis"}
    try:
        yield names
    finally:
        docker("rm", "-f", "-v", names["app"], names["redis"], check=False)
        docker("network", "rm", names["network"], check=False)
        docker("rmi", names["image"], check=False)


def _inspect(container: str) -> dict:
    return json.loads(docker("inspect", container).stdout)[0]


def test_image_builds_from_lab_base_and_serves_as_non_root(lab: dict[str, str]) -> None:
    build = docker("build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", lab["image"],
                   str(APP_DIR), check=False, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    docker("network", "create", lab["network"])

    # The app starts first, with no Redis at all (as Swarm may do): it must come up, not exit.
    docker("run", "-d", "--name", lab["app"], "--network", lab["network"],
           "-e", f"REDIS_URL=redis://:pw-in-test@{lab['redis']}:6379/0",
           "-e", "REDIS_STARTUP_TIMEOUT=2", "-e", f"SHUTDOWN_DELAY={SHUTDOWN_DELAY}",
           lab["image"])
    app = _inspect(lab["app"])
    ip = app["NetworkSettings"]["Networks"][lab["network"]]["IPAddress"]
    base = f"http://{ip}:8000"
    wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).ok, 30, "container /healthz")
    assert requests.get(f"{base}/readyz", timeout=10).status_code == 503

    # Non-root: both the image's configured user and the running gunicorn master.
    assert app["Config"]["User"] not in ("", "0", "root", "0:0")
    status = docker("exec", lab["app"], "cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert all(uid != "0" for uid in uid_line.split()[1:]), uid_line
    assert "gunicorn" in docker("exec", lab["app"], "cat", "/proc/1/cmdline").stdout

    docker("run", "-d", "--name", lab["redis"], "--network", lab["network"], REDIS_IMAGE,
           "redis-server", "--requirepass", "pw-in-test", "--protected-mode", "no")
    wait_for(lambda: requests.get(f"{base}/readyz", timeout=10).ok, 30, "container /readyz")
    resp = requests.post(f"{base}/api/counter/increment", json={"by": 3}, timeout=10)
    assert resp.status_code == 200 and resp.json() == {"value": 3}
    assert resp.headers["X-Served-By"] == app["Config"]["Hostname"]
    assert requests.get(f"{base}/api/counter", timeout=10).json() == {"value": 3}

    # The image's own HEALTHCHECK (interval 10 s) must report healthy.
    wait_for(lambda: _inspect(lab["app"])["State"]["Health"]["Status"] == "healthy", 45,
             "docker health status healthy", interval=1)
    # Still the process that started before Redis existed: it never exited.
    state = _inspect(lab["app"])["State"]
    assert state["Running"] and state["Pid"] == app["State"]["Pid"]

    # Metrics: on their own port, which the image does not expose (only the web port).
    assert set(app["Config"]["ExposedPorts"]) == {"8000/tcp"}
    assert requests.get(f"{base}/metrics", timeout=5).status_code == 404
    metrics = requests.get(f"http://{ip}:9102/metrics", timeout=5).text
    assert 'counter_operations_total{operation="increment",outcome="ok"} 1.0' in metrics

    # docker stop: SIGTERM to gunicorn's master (PID 1). /readyz fails at once while the app
    # still serves for SHUTDOWN_DELAY, then the container exits by itself, cleanly.
    started = time.monotonic()
    stopping = subprocess.Popen(["docker", "stop", "-t", "30", lab["app"]],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: requests.get(f"{base}/readyz", timeout=2).status_code == 503, 3,
                 "/readyz 503 after docker stop")
        assert requests.get(f"{base}/api/counter", timeout=2).json() == {"value": 3}
        assert stopping.wait(timeout=40) == 0
    finally:
        if stopping.poll() is None:
            stopping.kill()
    elapsed = time.monotonic() - started
    state = _inspect(lab["app"])["State"]
    assert state["ExitCode"] == 0 and not state["OOMKilled"]
    assert SHUTDOWN_DELAY <= elapsed < 30, elapsed
