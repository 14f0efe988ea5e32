"""Autolock (swarm_autolock, on in this scenario's converge): the unlock key is kept only on the
controller, 0600, and never printed; a manager whose Docker Engine restarts comes back locked, and
playbooks/swarm_unlock.yml unlocks it with that key. Runs after test_20_maintenance.py (file
order): the restart takes the Swarm's only manager away for a few seconds."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
from lab_checks import converge_log, run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-swarm")
# inventories/lab/group_vars/swarm/swarm.yml
KEY_FILE = Path.home() / ".cache" / "swarmlab" / LAB / "swarm-unlock-key"
testinfra_hosts = ["docker://%s-manager1" % LAB]


def swarm_state(host) -> dict:
    return json.loads(host.check_output("docker info --format '{{json .Swarm}}'"))


def unlock_playbook() -> subprocess.CompletedProcess:
    """ansible-playbook -v playbooks/swarm_unlock.yml from the checkout, as a user runs it."""
    return run_playbook(LAB, "playbooks/swarm_unlock.yml", "-v", timeout=300, show=False)


@pytest.fixture(scope="module")
def key(host) -> str:
    # The manager's own view of the key, compared here and never printed.
    return host.check_output("docker swarm unlock-key -q").strip()


def test_the_swarm_is_locked_and_the_key_is_only_in_a_0600_file_on_the_controller(host, key):
    assert swarm_state(host)["Cluster"]["Spec"]["EncryptionConfig"]["AutoLockManagers"] is True
    assert key.startswith("SWMKEY-1-")
    mode = KEY_FILE.stat().st_mode
    assert stat.S_IMODE(mode) == 0o600, oct(mode)
    assert stat.S_IMODE(KEY_FILE.parent.stat().st_mode) == 0o700
    assert KEY_FILE.read_text().strip() == key, "the controller's key file is not the Swarm's key"
    # Nowhere on the nodes: the role writes it on the controller only.
    for name in ("manager1", "worker1", "worker2"):
        node = host.get_host("docker://%s-%s" % (LAB, name))
        found = node.run("grep -rlsF -- %s /root /etc /opt /tmp /var/tmp" % key[:24])
        assert found.stdout.strip() == "", (name, found.stdout)


def test_converge_and_idempotence_at_v_never_show_the_key(key):
    log = converge_log("SWARMLAB_SWARM_LOG", "swarm", "Read the join tokens (and the unlock key")
    assert key not in log and "SWMKEY-" not in log


def test_a_restarted_manager_is_locked_and_the_playbook_unlocks_it(host, key):
    host.check_output("systemctl restart docker")
    deadline = time.monotonic() + 60
    while (state := host.run("docker info --format '{{.Swarm.LocalNodeState}}'").stdout.strip()) != "locked":
        assert time.monotonic() < deadline, "the manager is %r after the restart, not locked" % state
        time.sleep(1)
    assert host.run("docker node ls").rc != 0

    done = unlock_playbook()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"manager1\s+: ok=\d+\s+changed=1\s", done.stdout), done.stdout[-3000:]
    assert key not in done.stdout + done.stderr and "SWMKEY-" not in done.stdout + done.stderr
    state = swarm_state(host)
    assert state["LocalNodeState"] == "active" and state["ControlAvailable"] is True
    deadline = time.monotonic() + 60
    while host.run("docker node ls --format '{{.Status}}'").stdout.split() != ["Ready"] * 3:
        assert time.monotonic() < deadline, host.run("docker node ls").stdout
        time.sleep(2)

    again = unlock_playbook()
    assert again.returncode == 0 and re.search(r"manager1\s+: ok=\d+\s+changed=0\s", again.stdout), again.stdout[-3000:]


def test_the_engines_restarted_in_turn_stop_at_the_manager_that_comes_back_locked(host, key):
    """docker_engine.yml with docker_engine_restart_swarm_nodes: true and a new configuration: the
    manager's engine restarts locked, the rollout stops there and says to unlock it. Its restart is
    done, so no restart is left waiting: once unlocked, the same run changes nothing (a restart left
    marked would lock it again on every run)."""
    current = json.loads(host.file("/etc/docker/daemon.json").content_string)["log-opts"]["max-file"]
    args = ["--limit", "manager1", "-e", json.dumps({"docker_engine_image_archives": []}),
            "-e", "docker_engine_restart_swarm_nodes=true", "-e", "docker_engine_log_max_file=%d" % (int(current) + 1)]
    done = run_playbook(LAB, "playbooks/docker_engine.yml", *args)
    assert done.returncode != 0
    assert "Stopped restarting the engines in turn at manager1 (Stop at a locked manager:" in " ".join(done.stdout.split())
    assert "playbooks/swarm_unlock.yml" in done.stdout
    assert swarm_state(host)["LocalNodeState"] == "locked"
    assert not host.file("/etc/docker/swarmlab-restart-pending").exists
    assert key not in done.stdout + done.stderr

    assert unlock_playbook().returncode == 0
    assert swarm_state(host)["LocalNodeState"] == "active"
    again = run_playbook(LAB, "playbooks/docker_engine.yml", *args)
    assert again.returncode == 0
    assert re.search(r"manager1\s+: ok=\d+\s+changed=0\s", again.stdout), again.stdout[-3000:]
    assert swarm_state(host)["LocalNodeState"] == "active"
