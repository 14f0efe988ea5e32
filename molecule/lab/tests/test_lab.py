"""The lab's nodes as a user of the lab sees them: booted, with python3, on one network."""
from __future__ import annotations

import os

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
