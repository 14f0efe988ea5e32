"""Node maintenance as a user runs it: playbooks/node_maintenance.yml against the scenario's lab.

A probe service (4 replicas of the lab's python image, dnsrr, no published port) is created on the
Swarm; the playbook is run with ansible-playbook from the checkout, and the outcome is read back from
the manager's dockerd. Runs after test_10_swarm.py (file order).
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time

import pytest
import testinfra
from lab_checks import PROJECT, recap, run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-swarm")
testinfra_hosts = ["docker://%s-manager1" % LAB]
PROBE = "probe"
PINNED = "probe-pinned"
START_FIRST = "probe-start-first"
SPREAD = "probe-spread"


def playbook(*extra: str) -> subprocess.CompletedProcess:
    """ansible-playbook playbooks/node_maintenance.yml -e <extra>..., from the checkout."""
    return run_playbook(LAB, "playbooks/node_maintenance.yml", *[a for item in extra for a in ("-e", item)])


def running_per_node(host, service: str) -> dict[str, int]:
    lines = host.check_output(
        "docker service ps %s --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'" % service)
    counts = {"manager1": 0, "worker1": 0, "worker2": 0}
    for line in lines.splitlines():
        node, state = line.split(" ", 1)
        if state.startswith("Running"):
            counts[node] = counts.get(node, 0) + 1
    return counts


def replicas(host, service: str) -> str:
    """running/desired; without the " (max N per node)" that docker service ls appends for such services."""
    out = host.check_output("docker service ls --filter name=%s --format '{{.Replicas}}'" % service).strip()
    return out.split(" ", 1)[0]


def wait_for(host, service: str, expected: str, timeout: int = 90) -> None:
    deadline = time.monotonic() + timeout
    while replicas(host, service) != expected:
        assert time.monotonic() < deadline, "%s is %s, not %s" % (service, replicas(host, service), expected)
        time.sleep(2)


def availability(host, node: str) -> str:
    return host.check_output("docker node inspect %s --format '{{.Spec.Availability}}'" % node).strip()


@pytest.fixture(scope="module", autouse=True)
def probe(host):
    # sleep as PID 1 ignores SIGTERM: a short grace period keeps the rolling restarts quick.
    host.run("docker service rm %s %s %s %s" % (PROBE, PINNED, START_FIRST, SPREAD))
    host.check_output(
        "docker service create --detach --name %s --replicas 4 --endpoint-mode dnsrr --stop-grace-period 1s "
        "swarmlab-lab/python:bookworm sleep infinity" % PROBE)
    wait_for(host, PROBE, "4/4")
    yield
    host.run("docker service rm %s %s %s %s" % (PROBE, PINNED, START_FIRST, SPREAD))
    for node in ("manager1", "worker1", "worker2"):
        host.run("docker node update --availability active %s" % node)


def test_drain_moves_every_task_and_keeps_the_replicas(host):
    before = running_per_node(host, PROBE)
    assert before["worker1"] >= 1, before
    done = playbook("node=worker1", "maintenance=drain")
    assert done.returncode == 0
    assert availability(host, "worker1") == "drain"
    after = running_per_node(host, PROBE)
    assert after["worker1"] == 0, after
    assert sum(after.values()) == 4
    assert replicas(host, PROBE) == "4/4"
    assert "running tasks per node after" in done.stdout


def test_drain_again_changes_nothing(host):
    done = playbook("node=worker1", "maintenance=drain")
    assert done.returncode == 0
    assert "changed=0" in done.stdout


def test_tasks_do_not_come_back_by_themselves(host):
    # What the seed lab saw: after reactivation Swarm leaves the running tasks where they are.
    host.check_output("docker node update --availability active worker1")
    time.sleep(10)
    assert running_per_node(host, PROBE)["worker1"] == 0
    host.check_output("docker node update --availability drain worker1")


def test_activate_rebalances(host):
    done = playbook("node=worker1", "maintenance=activate")
    assert done.returncode == 0
    assert "rebalanced (surge): probe" in done.stdout
    assert availability(host, "worker1") == "active"
    after = running_per_node(host, PROBE)
    assert after["worker1"] >= 1, after
    assert max(after.values()) - min(after.values()) <= 1, after
    assert replicas(host, PROBE) == "4/4"


def test_activate_when_even_changes_nothing(host):
    done = playbook("node=worker1", "maintenance=activate")
    assert done.returncode == 0
    assert "changed=0" in done.stdout
    assert "nothing (already even)" in done.stdout


def test_cycle(host):
    done = playbook("node=worker2", "maintenance=cycle")
    assert done.returncode == 0
    assert availability(host, "worker2") == "active"
    after = running_per_node(host, PROBE)
    assert after["worker2"] >= 1, after
    assert replicas(host, PROBE) == "4/4"


def engine_started(node: str) -> str:
    """When the node's Docker Engine last started (systemd)."""
    return testinfra.get_host("docker://%s-%s" % (LAB, node)).check_output(
        "systemctl show docker -p ActiveEnterTimestamp --value").strip()


def engine_config(node: str, *extra: str) -> subprocess.CompletedProcess:
    return run_playbook(LAB, "playbooks/docker_engine.yml", "--limit", node, *[a for item in extra for a in ("-e", item)])


def test_a_new_engine_configuration_waits_for_node_maintenance_which_restarts_it_drained(host):
    # A restart stops every task of an active Swarm node (no live-restore in swarm mode), and a run
    # that changed every node's daemon.json restarted every engine at once (the engine-config drill).
    node = testinfra.get_host("docker://%s-worker2" % LAB)
    marker = node.file("/etc/docker/swarmlab-restart-pending")
    started = engine_started("worker2")
    done = engine_config("worker2", "docker_engine_log_max_file=4")
    assert done.returncode == 0
    assert engine_started("worker2") == started  # left waiting, not restarted
    assert '"max-file": "4"' in node.file("/etc/docker/daemon.json").content_string
    assert marker.exists
    assert "runs with its previous configuration" in done.stdout
    again = engine_config("worker2", "docker_engine_log_max_file=4")
    assert recap(again.stdout)["worker2"]["changed"] == 0
    assert "runs with its previous configuration" in again.stdout  # said on every run until then

    cycle = playbook("node=worker2", "maintenance=cycle",
                     "maintenance_hook=%s" % (PROJECT / "playbooks/tasks/engine_restart.yml"))
    assert cycle.returncode == 0
    assert engine_started("worker2") != started
    assert not marker.exists
    assert availability(host, "worker2") == "active"
    assert running_per_node(host, PROBE)["worker2"] >= 1
    assert replicas(host, PROBE) == "4/4"

    # Back to the inventory's configuration, left waiting again; then restarts asked at once: the run
    # changes no file, yet restarts the engine the earlier run left waiting, and clears its mark.
    back = engine_config("worker2")
    assert back.returncode == 0
    assert marker.exists
    assert '"max-file": "3"' in node.file("/etc/docker/daemon.json").content_string
    started = engine_started("worker2")
    now = engine_config("worker2", "docker_engine_restart_swarm_nodes=true")
    assert now.returncode == 0
    assert engine_started("worker2") != started
    assert not marker.exists
    assert "runs with its previous configuration" not in now.stdout
    wait_for(host, PROBE, "4/4")
    assert recap(engine_config("worker2", "docker_engine_restart_swarm_nodes=true").stdout)["worker2"]["changed"] == 0


def running_binary(node, unit: str) -> str:
    """The executable a unit's main process runs: ' (deleted)' once a package replaced it."""
    return node.check_output("readlink /proc/$(systemctl show --property MainPID --value %s)/exe" % unit)


def test_an_engine_upgrade_waits_for_node_maintenance_too(host):
    # Debian's docker.io does not restart dockerd on an upgrade: the old daemon ran on unnoticed beside
    # the new binaries (a security fix not in effect). Other packages' scripts (docker-ce's dockerd,
    # Debian's containerd) restart at once, on every node of the run; on an active Swarm node the role
    # holds those back with its policy-rc.d during its apt run.
    node = testinfra.get_host("docker://%s-worker2" % LAB)
    marker = node.file("/etc/docker/swarmlab-restart-pending")
    started = engine_started("worker2")
    containerd_pid = node.check_output("systemctl show --property MainPID --value containerd")
    # The packages installed again by dpkg (from apt's cache): binaries replaced as an upgrade does,
    # with the packages' own scripts, under the role's policy-rc.d.
    policy = base64.b64encode((PROJECT / "roles/docker_engine/files/policy-rc.d").read_bytes()).decode()
    node.check_output("echo %s | base64 -d > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d" % policy)
    try:
        node.check_output("DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -q containerd docker.io")
    finally:
        node.check_output("rm -f /usr/sbin/policy-rc.d")
    assert node.check_output("systemctl show --property MainPID --value containerd") == containerd_pid
    assert engine_started("worker2") == started
    assert running_binary(node, "docker").endswith(" (deleted)")
    assert running_binary(node, "containerd").endswith(" (deleted)")

    done = engine_config("worker2")
    assert done.returncode == 0
    assert engine_started("worker2") == started  # left waiting, not restarted
    assert "replaced binaries: containerd, docker; left to node maintenance" in done.stdout
    assert marker.exists
    assert "runs with its previous configuration or binaries" in done.stdout
    again = engine_config("worker2")
    assert recap(again.stdout)["worker2"]["changed"] == 0
    assert "runs with its previous configuration or binaries" in again.stdout

    cycle = playbook("node=worker2", "maintenance=cycle",
                     "maintenance_hook=%s" % (PROJECT / "playbooks/tasks/engine_restart.yml"))
    assert cycle.returncode == 0
    assert engine_started("worker2") != started
    assert not running_binary(node, "docker").endswith(" (deleted)")
    assert not running_binary(node, "containerd").endswith(" (deleted)")
    assert not marker.exists
    assert availability(host, "worker2") == "active"
    wait_for(host, PROBE, "4/4")
    # Upgrades asked for, none available: the role's hold on the restarts comes and goes unseen.
    started = engine_started("worker2")
    latest = engine_config("worker2", "docker_engine_package_state=latest")
    assert latest.returncode == 0
    assert recap(latest.stdout)["worker2"]["changed"] == 0
    assert not node.file("/usr/sbin/policy-rc.d").exists
    assert engine_started("worker2") == started


def test_last_active_node_is_refused(host):
    host.check_output("docker node update --availability drain worker1")
    host.check_output("docker node update --availability drain worker2")
    try:
        # The CLI returns before the tasks moved: wait until all four run on manager1.
        deadline = time.monotonic() + 90
        while running_per_node(host, PROBE)["manager1"] != 4 or replicas(host, PROBE) != "4/4":
            assert time.monotonic() < deadline, running_per_node(host, PROBE)
            time.sleep(2)
        done = playbook("node=manager1", "maintenance=drain")
        assert done.returncode != 0
        assert "Refusing to drain manager1: manager1 is the last active node" in done.stdout + done.stderr
        assert availability(host, "manager1") == "active"
        assert replicas(host, PROBE) == "4/4"
    finally:
        host.check_output("docker node update --availability active worker1")
        host.check_output("docker node update --availability active worker2")


def test_constraint_only_this_node_satisfies_is_refused(host):
    host.check_output(
        "docker service create --detach --name %s --replicas 1 --endpoint-mode dnsrr --stop-grace-period 1s "
        "--constraint node.hostname==worker2 swarmlab-lab/python:bookworm sleep infinity" % PINNED)
    wait_for(host, PINNED, "1/1")
    done = playbook("node=worker2", "maintenance=drain")
    assert done.returncode != 0
    assert ("service %s would stop: no node but worker2 satisfies its placement constraints" % PINNED
            in done.stdout + done.stderr)
    assert availability(host, "worker2") == "active"
    host.run("docker service rm %s" % PINNED)


def running_tasks(host, service: str) -> dict[str, str]:
    """Running task ID -> node of a service."""
    lines = host.check_output("docker service ps %s --filter desired-state=running "
                              "--format '{{.ID}} {{.Node}} {{.CurrentState}}'" % service)
    return {task_id: node for task_id, node, state in (line.split(" ", 2) for line in lines.splitlines())
            if state.startswith("Running")}


def test_drain_starts_replacements_first_and_accepts_a_spread_service(host):
    # A start-first service never runs fewer than its replicas while worker1 drains; its tasks on the
    # other nodes are left alone. A service of three, one per node (max_replicas_per_node 1), cannot
    # move and keeps two: the drain is accepted without force.
    host.check_output(
        "docker service create --detach --name %s --replicas 4 --endpoint-mode dnsrr --stop-grace-period 1s "
        "--update-order start-first --update-parallelism 1 swarmlab-lab/python:bookworm sleep infinity" % START_FIRST)
    host.check_output(
        "docker service create --detach --name %s --replicas 3 --replicas-max-per-node 1 --endpoint-mode dnsrr "
        "--stop-grace-period 1s swarmlab-lab/python:bookworm sleep infinity" % SPREAD)
    wait_for(host, START_FIRST, "4/4")
    wait_for(host, SPREAD, "3/3")
    before = running_tasks(host, START_FIRST)
    assert "worker1" in before.values(), before
    lowest, stop = [4], threading.Event()

    def watch():
        while not stop.is_set():
            lowest[0] = min(lowest[0], len(running_tasks(host, START_FIRST)))
            time.sleep(0.2)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        done = playbook("node=worker1", "maintenance=drain")
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0
    assert lowest[0] >= 4, "%s dipped to %d/4 during the drain" % (START_FIRST, lowest[0])
    after = running_tasks(host, START_FIRST)
    assert "worker1" not in after.values(), after
    kept = {tid: node for tid, node in before.items() if node != "worker1"}
    assert kept.items() <= after.items(), (before, after)  # only worker1's tasks were replaced
    assert replicas(host, SPREAD) == "2/3"
    assert "reduced (fewer tasks while drained, the others keep serving): %s" % SPREAD in done.stdout
    constraints = host.check_output("docker service inspect %s --format '{{json .Spec.TaskTemplate.Placement}}'"
                                    % START_FIRST)
    assert "node.id!=" in constraints

    done = playbook("node=worker1", "maintenance=activate")
    assert done.returncode == 0
    assert "node.id!=" not in host.check_output(
        "docker service inspect %s --format '{{json .Spec.TaskTemplate.Placement}}'" % START_FIRST)
    wait_for(host, SPREAD, "3/3")  # its pending task goes back to worker1 by itself
    assert running_per_node(host, START_FIRST)["worker1"] >= 1
    host.run("docker service rm %s %s" % (START_FIRST, SPREAD))
