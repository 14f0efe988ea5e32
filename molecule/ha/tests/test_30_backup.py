"""The Swarm state's backup with 3 managers, as a user runs it: playbooks/backup.yml with
ansible-playbook (no stack and no registry on this lab: -e backup_redis=false -e backup_registry=false).

Docker copies /var/lib/docker/swarm only with the engine stopped. The playbook drains the manager it
chose first, so a replicated service keeps all its tasks running through the backup. Before the fix,
the engine stopped undrained and the probe ran 8 of its 10 tasks for several seconds (the same run
with -e backup_swarm_drain=false). Runs after test_20_leader_loss.py (file order).
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import testinfra
import yaml
from lab_checks import run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-ha")
testinfra_hosts = ["docker://%s-manager1" % LAB]
PROBE = "backup-probe"
REPLICAS = 10


def node(name: str):
    return testinfra.get_host("docker://%s-%s" % (LAB, name))


def managers(host) -> list[dict]:
    ids = host.check_output("docker node ls -q --filter role=manager").split()
    return json.loads(host.check_output("docker node inspect %s" % " ".join(ids)))


def running(host) -> int:
    states = host.check_output(
        "docker service ps %s --filter desired-state=running --format '{{.CurrentState}}'" % PROBE)
    return sum(1 for line in states.splitlines() if line.startswith("Running"))


@pytest.fixture(scope="module")
def leader(host):
    name = [n["Description"]["Hostname"] for n in managers(host) if n["ManagerStatus"].get("Leader")][0]
    return node(name)


@pytest.fixture(scope="module")
def backup(leader, tmp_path_factory):
    """The probe (start-first, as the stack's web), then the backup while the leader counts the
    probe's running tasks every 0.3 s."""
    leader.run("docker service rm %s" % PROBE)
    leader.check_output(
        "docker service create -d --name %s --replicas %d --update-order start-first "
        "swarmlab-lab/python:bookworm python3 -m http.server 8000" % (PROBE, REPLICAS))
    deadline = time.monotonic() + 120
    while running(leader) < REPLICAS and time.monotonic() < deadline:
        time.sleep(1)
    assert running(leader) == REPLICAS
    samples: list[int] = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            samples.append(running(leader))
            stop.wait(0.3)

    watcher = threading.Thread(target=count)
    watcher.start()
    backups = tmp_path_factory.mktemp("backups")
    try:
        done = run_playbook(LAB, "playbooks/backup.yml", "-e", "backup_dir=%s" % backups,
                            "-e", "backup_redis=false", "-e", "backup_registry=false")
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    (path,) = [p for p in backups.iterdir() if p.is_dir()]
    manifest = yaml.safe_load((path / "manifest.yml").read_text())
    print("probe's running tasks:", samples)
    yield path, manifest, samples
    leader.run("docker service rm %s" % PROBE)


def test_the_state_comes_from_a_drained_follower(backup, leader):
    path, manifest = backup[:2]
    swarm = manifest["swarm"]
    assert swarm["managers"] == 3
    assert swarm["node"] != leader.check_output("hostname")
    assert swarm["drained"] is True
    assert PROBE in swarm["moved"], swarm
    assert manifest["parts"] == {"redis": False, "registry": False, "swarm": True}
    assert (path / "swarm/swarm.tar.gz").stat().st_size > 0


def test_no_task_of_a_replicated_service_stopped_with_the_engine(backup):
    samples = backup[2]
    assert len(samples) >= 10, "the watcher did not run through the backup"
    assert min(samples) >= REPLICAS, samples


def test_the_manager_is_active_again_and_rebalanced(backup, leader):
    swarm = backup[1]["swarm"]
    inspected = json.loads(leader.check_output("docker node inspect %s" % swarm["node_id"]))[0]
    assert inspected["Spec"]["Availability"] == "active"
    assert inspected["ManagerStatus"]["Reachability"] == "reachable"
    labels = json.loads(leader.check_output("docker service inspect %s" % PROBE))[0]["Spec"]["Labels"]
    assert not labels.get("org.swarmlab.maintenance.excluded-nodes"), labels
    there = leader.check_output(
        "docker service ps %s --filter desired-state=running --filter node=%s -q" % (PROBE, swarm["node_id"]))
    assert there.split(), "no probe task back on %s after the rebalance" % swarm["node"]


def test_raft_is_whole_after_the_backup(backup, host):
    assert [n["ManagerStatus"]["Reachability"] for n in managers(host)] == ["reachable"] * 3


def test_a_redis_backup_without_the_stack_is_refused(tmp_path):
    """Refused before anything is saved or stopped: no manifest, no engine restarted."""
    names = ["manager1", "manager2", "manager3"]
    started = {n: node(n).check_output("systemctl show docker -p ActiveEnterTimestamp --value") for n in names}
    done = run_playbook(LAB, "playbooks/backup.yml", "-e", "backup_dir=%s" % tmp_path, "-e", "backup_registry=false")
    assert done.returncode != 0
    assert "No service swarmlab_redis-master" in done.stdout
    assert not list(tmp_path.glob("*/manifest.yml"))
    assert {n: node(n).check_output("systemctl show docker -p ActiveEnterTimestamp --value") for n in names} == started
