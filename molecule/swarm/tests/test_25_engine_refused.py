"""An engine that refuses its new configuration, with docker_engine_restart_swarm_nodes: true, as a
user runs it: `playbooks/docker_engine.yml -e docker_engine_restart_swarm_nodes=true`.

Before (found on the ha lab, 2026-12-06), the role restarted every engine the run changed at once: a
daemon.json the engine will not start with (here a key it does not know) stopped the engine of every
node of the run. Now the engines restart in turn, and the rollout stops at the first one that does not
come back. Then the fixed configuration brings that engine back, although systemd gave up starting it
(3 failed starts in a row). The workers only (--limit), one after the other: the manager's turns are
the ha scenario's (test_50_engine_restart.py).
The same configuration left to node maintenance (the default): the cycle's hook cannot bring the
engine back either; it says so, with the way back, and the node stays drained, its tasks elsewhere.
Runs after test_20_maintenance.py (file order).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import testinfra
from lab_checks import PROJECT, run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-swarm")
testinfra_hosts = ["docker://%s-manager1" % LAB]
WORKERS = ["worker1", "worker2"]
MARKER = "/etc/docker/swarmlab-restart-pending"


def node(name: str):
    return testinfra.get_host("docker://%s-%s" % (LAB, name))


def engine_started(name: str) -> str:
    return node(name).check_output("systemctl show docker -p ActiveEnterTimestampMonotonic --value")


def workers_engine(**extra) -> subprocess.CompletedProcess:
    # No image archives: the images are not what this run is about, and loading them is slow.
    return run_playbook(LAB, "playbooks/docker_engine.yml", "--limit", ",".join(WORKERS),
                        "-e", json.dumps({"docker_engine_image_archives": [], **extra}),
                        "-e", "docker_engine_restart_swarm_nodes=true")


def said(done) -> str:
    return " ".join(done.stdout.split())


def test_an_engine_that_refuses_its_configuration_stops_the_rollout_there(host):
    started = engine_started("worker2")
    bad = workers_engine(docker_engine_daemon_options={"swarmlab-unknown": True})
    try:
        assert bad.returncode != 0
        assert "Stopped restarting the engines in turn at worker1 (Restart the engine:" in said(bad)
        assert "Not restarted, their restart left waiting (%s): worker2." % MARKER in said(bad)
        assert not node("worker1").service("docker").is_running
        # The next node of the rollout keeps its engine, with the restart marked as waiting.
        assert node("worker2").service("docker").is_running
        assert engine_started("worker2") == started
        assert node("worker2").file(MARKER).exists
        assert "the restarts in turn stopped before this node" in said(bad)
    finally:
        fixed = workers_engine()
    assert fixed.returncode == 0
    for name in WORKERS:
        assert node(name).service("docker").is_running
        assert not node(name).file(MARKER).exists
        assert "swarmlab-unknown" not in node(name).file("/etc/docker/daemon.json").content_string
    assert engine_started("worker2") != started  # the restart left waiting, done
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = sorted(host.check_output("docker node ls --filter role=worker --format '{{.Hostname}} {{.Status}}'").splitlines())
        if states == ["worker1 Ready", "worker2 Ready"]:
            break
        time.sleep(1)
    assert states == ["worker1 Ready", "worker2 Ready"]


def availability(host, name: str) -> str:
    return host.check_output("docker node inspect %s --format '{{.Spec.Availability}}'" % name)


def test_a_cycle_whose_engine_refuses_its_configuration_leaves_the_node_drained_and_says_the_way_back(host):
    left = run_playbook(LAB, "playbooks/docker_engine.yml", "--limit", "worker2",
                        "-e", json.dumps({"docker_engine_image_archives": [],
                                          "docker_engine_daemon_options": {"swarmlab-unknown": True}}))
    assert left.returncode == 0
    assert node("worker2").file(MARKER).exists  # left to node maintenance, engine still running
    assert node("worker2").service("docker").is_running
    cycle = run_playbook(LAB, "playbooks/node_maintenance.yml", "-e", "node=worker2", "-e", "maintenance=cycle",
                         "-e", "maintenance_hook=%s" % (PROJECT / "playbooks/tasks/engine_restart.yml"))
    try:
        assert cycle.returncode != 0
        text = said(cycle)
        assert "The Docker Engine of worker2 did not come back after its restart" in text
        assert "The node stays drained" in text
        assert "playbooks/docker_engine.yml --limit worker2" in text
        assert "-e node=worker2 -e maintenance=activate" in text
        assert availability(host, "worker2") == "drain"
        assert not node("worker2").service("docker").is_running
    finally:
        # The way back, as the message says.
        fixed = run_playbook(LAB, "playbooks/docker_engine.yml", "--limit", "worker2",
                             "-e", json.dumps({"docker_engine_image_archives": []}))
        activated = run_playbook(LAB, "playbooks/node_maintenance.yml", "-e", "node=worker2", "-e", "maintenance=activate")
    assert fixed.returncode == 0
    assert node("worker2").service("docker").is_running
    assert not node("worker2").file(MARKER).exists
    assert activated.returncode == 0
    assert availability(host, "worker2") == "active"
