"""The lab's nodes as a user of the lab sees them: booted, with python3, on one network, and
reachable over SSH as the lab's unprivileged user with sudo (inventories/lab-ssh, issue 21)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-lab")
NODES = ["manager1", "worker1", "worker2"]
testinfra_hosts = [f"docker://{LAB}-{node}" for node in NODES]


def test_systemd_is_running(host):
    state = host.run("systemctl is-system-running")
    assert state.stdout.strip() == "running", state.stdout + state.stderr


def test_python3_present(host):
    assert host.exists("python3")
    assert host.run("python3 -c 'import sys; print(sys.version_info[0])'").stdout.strip() == "3"


def test_hostname_is_the_node_name(host):
    assert host.backend.name.endswith(host.check_output("hostname"))


def test_sees_the_other_nodes(host):
    me = host.check_output("hostname")
    for node in NODES:
        if node == me:
            continue
        # Docker's embedded DNS resolves container names on a user-defined network.
        ping = host.run(f"ping -c1 -W2 {LAB}-{node}")
        assert ping.rc == 0, f"{me} cannot reach {node}: {ping.stdout}{ping.stderr}"


def test_no_docker_engine_preinstalled(host):
    # Installing the engine is the docker_engine role's job, as on a real server.
    assert not host.exists("dockerd")


KEY = Path("/var/cache/swarmlab-lab/ssh") / LAB / "id_ed25519"


def ssh(host, user: str, command: str) -> subprocess.CompletedProcess:
    """ssh from the controller to the node's lab address, as a real host is reached."""
    # The node's address on the lab network, as the inventory plugin gives it (not hostname -I: once
    # Docker runs in the node, docker0's address may come first).
    address = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", host.backend.name],
        capture_output=True, text=True, check=True).stdout.split()[0]
    return subprocess.run(
        ["ssh", "-i", str(KEY), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", f"{user}@{address}", command],
        capture_output=True, text=True, timeout=60, check=False)


def test_the_lab_key_pair_is_the_controllers_own_and_private():
    assert KEY.stat().st_mode & 0o777 == 0o600
    assert KEY.parent.stat().st_mode & 0o777 == 0o700


def test_sshd_lets_the_lab_user_in_with_the_labs_key_and_sudo_needs_no_password(host):
    assert host.service("ssh").is_running
    keys = host.file("/home/swarmlab/.ssh/authorized_keys")
    assert keys.user == "swarmlab" and keys.mode == 0o600
    assert keys.content_string.split()[:2] == Path(str(KEY) + ".pub").read_text().split()[:2]
    login = ssh(host, "swarmlab", "id -un; sudo -n id -u")
    assert login.returncode == 0, login.stderr
    assert login.stdout.split() == ["swarmlab", "0"]


def test_root_cannot_log_in_over_ssh(host):
    refused = ssh(host, "root", "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr


def test_each_node_has_its_own_ssh_host_key(host):
    mine = host.check_output("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").split()[1]
    for node in NODES:
        other = host.get_host(f"docker://{LAB}-{node}")
        if other.check_output("hostname") != host.check_output("hostname"):
            assert other.check_output("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").split()[1] != mine
