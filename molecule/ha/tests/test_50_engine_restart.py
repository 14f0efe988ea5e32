"""A new engine configuration with docker_engine_restart_swarm_nodes: true on 3 managers and 2 workers,
as a user runs it: `playbooks/docker_engine.yml -e docker_engine_restart_swarm_nodes=true`.

Before (found on this lab, 2026-12-06): the role's handler restarted the engine of every node the run
changed at once, all 3 managers included. The Raft group lost its leader and its quorum until they
were all back, and a daemon.json the engine refused stopped every engine of the Swarm, not one.
Now the engines restart in turn: workers first, the Raft leader last, each back in the Swarm, its
tasks running again, before the next one stops. (The rollout that stops at an engine that refuses its
configuration: the swarm scenario's test_25_engine_refused.py.)
Runs after test_40_manager_down.py (file order); leaves the new configuration on every node.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest
import testinfra
from lab_checks import recap, run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-ha")
testinfra_hosts = ["docker://%s-manager1" % LAB]
MANAGERS = ["manager1", "manager2", "manager3"]
WORKERS = ["worker1", "worker2"]
MARKER = "/etc/docker/swarmlab-restart-pending"
# Two tasks on each of the five nodes, no more: a node's restart can cost 2, the rest keep running.
PROBE, REPLICAS = "restart-probe", 10


def node(name: str):
    return testinfra.get_host("docker://%s-%s" % (LAB, name))


def engine_times(names: list[str]) -> dict[str, tuple[int, int]]:
    """(when docker.service last stopped, when it last became active) per node, in µs of the one
    kernel's monotonic clock that every node container shares: comparable across nodes."""
    times = {}
    for name in names:
        shown = dict(line.split("=", 1) for line in node(name).check_output(
            "systemctl show docker -p ActiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic").splitlines())
        times[name] = (int(shown["ActiveExitTimestampMonotonic"]), int(shown["ActiveEnterTimestampMonotonic"]))
    return times


def engine_config(*args: str) -> subprocess.CompletedProcess:
    # No image archives: the images are not what this run is about, and loading them is slow.
    return run_playbook(LAB, "playbooks/docker_engine.yml", "-e", json.dumps({"docker_engine_image_archives": []}),
                        "-e", "docker_engine_restart_swarm_nodes=true", *args)


class QuorumWatch:
    """Asks each manager's engine every 0.25 s until stopped (all at once) whether it is an active
    Swarm node, and counts those that say so within 5 s: the managers whose engines keep the Raft
    group's majority. (While an engine restarts, systemd holds its socket: a question waits for the
    new engine, hence the limit. Not `docker node ls`: while the leader restarts, the others have no
    leader until they elect one, which Raft needs whatever the order.) In the same tick, each node's
    engine says how many of the probe's containers it runs: what serves, not the managers' view."""

    def __init__(self) -> None:
        self.ticks: list[int] = []
        self.probe: list[tuple[int, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _ask(name: str, *question: str) -> subprocess.Popen:
        return subprocess.Popen(["docker", "exec", "%s-%s" % (LAB, name), "timeout", "5", "docker", *question],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 300  # bounded, whatever the run does
        while not self._stop.is_set() and time.monotonic() < deadline:
            asked = [self._ask(name, "info", "--format", "{{.Swarm.LocalNodeState}}") for name in MANAGERS]
            counted = [self._ask(name, "ps", "--quiet", "--filter", "label=com.docker.swarm.service.name=" + PROBE)
                       for name in MANAGERS + WORKERS]
            self.ticks.append(sum(1 for each in asked if each.communicate(timeout=30)[0].strip() == "active"
                                  and each.returncode == 0))
            # Per node, in MANAGERS + WORKERS order; a node whose engine does not answer runs none.
            self.probe.append(tuple(len(out.split()) if each.returncode == 0 else 0
                                    for each, out in ((each, each.communicate(timeout=30)[0]) for each in counted)))
            self._stop.wait(0.25)

    def __enter__(self) -> QuorumWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def rollout(host):
    """The lab's engines given a new log option (max-file one more than now), restarted in turn, under
    watch, with a probe service of two tasks on each node; then the same run again."""
    current = json.loads(node("worker1").file("/etc/docker/daemon.json").content_string)["log-opts"]["max-file"]
    option = ["-e", "docker_engine_log_max_file=%d" % (int(current) + 1)]
    leader = host.check_output("docker node ls --filter role=manager --format '{{.Hostname}} {{.ManagerStatus}}'")
    leader = [line.split()[0] for line in leader.splitlines() if line.endswith(" Leader")][0]
    host.run("docker service rm %s" % PROBE)
    deadline = time.monotonic() + 60
    while sum(probe_containers(name) for name in MANAGERS + WORKERS):  # an earlier run's, still stopping
        assert time.monotonic() < deadline
        time.sleep(1)
    host.check_output("docker service create -d --name %s --replicas %d --replicas-max-per-node 2 --stop-grace-period 1s "
                      "swarmlab-lab/python:bookworm python3 -m http.server 8000" % (PROBE, REPLICAS))
    deadline = time.monotonic() + 120
    while probe_running(host) < REPLICAS:
        assert time.monotonic() < deadline, host.run("docker service ps %s" % PROBE).stdout
        time.sleep(1)
    before = engine_times(MANAGERS + WORKERS)
    with QuorumWatch() as watch:
        done = engine_config(*option)
    after = engine_times(MANAGERS + WORKERS)
    again = engine_config(*option)
    result = {"option": option, "max_file": str(int(current) + 1), "leader": leader, "before": before,
              "done": done, "after": after, "watch": watch, "again": again, "after_again": engine_times(MANAGERS + WORKERS),
              "probe_after": probe_running(host)}
    yield result
    host.run("docker service rm %s" % PROBE)


def probe_containers(name: str) -> int:
    return len(node(name).check_output("docker ps --quiet --filter label=com.docker.swarm.service.name=%s" % PROBE).split())


def probe_running(host) -> int:
    return host.check_output("docker service ps %s --filter desired-state=running --format '{{.CurrentState}}'"
                             % PROBE).count("Running")


def test_every_engine_restarts_with_the_new_configuration(rollout):
    assert rollout["done"].returncode == 0
    for name in MANAGERS + WORKERS:
        assert rollout["after"][name][1] > rollout["before"][name][1], name
        daemon = json.loads(node(name).file("/etc/docker/daemon.json").content_string)
        assert daemon["log-opts"]["max-file"] == rollout["max_file"]
        assert not node(name).file(MARKER).exists, name


def test_one_engine_at_a_time_workers_first_and_the_leader_last(rollout):
    after = rollout["after"]
    order = sorted(after, key=lambda name: after[name][0])
    assert set(order[:2]) == set(WORKERS), order
    assert order[-1] == rollout["leader"], order
    for earlier, later in zip(order, order[1:]):
        # The next engine stopped only once the one before it was running again.
        assert after[later][0] > after[earlier][1], (earlier, later, after)


def test_the_managers_keep_their_quorum_throughout(host, rollout):
    ticks = rollout["watch"].ticks
    assert len(ticks) >= 20, ticks  # watched the whole rollout, not a moment of it
    # 2 of the 3 managers' engines in the Swarm at every moment: one restarting at a time.
    assert min(ticks) >= 2, ticks
    # And a leader again at the end, every manager reachable.
    assert sorted(host.check_output("docker node ls --filter role=manager --format '{{.ManagerStatus}}'").split()) == \
        ["Leader", "Reachable", "Reachable"]


def test_each_node_runs_its_tasks_again_before_the_next_engine_stops(rollout):
    """Before (found on this lab, 2026-12-06): the next engine stopped as soon as the managers said the
    node was ready, which they say from before the restart too, while its tasks were still down."""
    probe = [sum(tick) for tick in rollout["watch"].probe]
    assert len(probe) >= 20 and max(probe) == REPLICAS, rollout["watch"].probe
    # One node's two tasks down at a time at most.
    assert min(probe) >= REPLICAS - 2, rollout["watch"].probe
    assert rollout["probe_after"] == REPLICAS


def test_a_second_run_restarts_nothing(rollout):
    assert rollout["again"].returncode == 0
    assert all(counts["changed"] == 0 for counts in recap(rollout["again"].stdout).values()), recap(rollout["again"].stdout)
    assert rollout["after_again"] == rollout["after"]
