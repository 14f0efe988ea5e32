"""Manager (leader) loss, as a user runs the drill: playbooks/ha_drill.yml with ansible-playbook.

The drill stops the Raft leader's node container, measures from another manager, updates a probe
service through the new leader and starts the old leader again. Its JSON report is checked here, and
the outcome is read back independently from the nodes. Runs after test_10_raft.py (file order).
"""

from __future__ import annotations

import json
import os

import pytest
import testinfra
from lab_checks import run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-ha")
testinfra_hosts = ["docker://%s-manager1" % LAB]


def node(name: str):
    return testinfra.get_host("docker://%s-%s" % (LAB, name))


def managers_seen(host) -> list[dict]:
    ids = host.check_output("docker node ls -q --filter role=manager").split()
    return json.loads(host.check_output("docker node inspect %s" % " ".join(ids)))


def leader(host) -> str:
    return [n["Description"]["Hostname"] for n in managers_seen(host) if n["ManagerStatus"].get("Leader")][0]


@pytest.fixture(scope="module")
def drill(host, tmp_path_factory):
    old_leader = leader(host)
    report = tmp_path_factory.mktemp("drill") / "drill.json"
    done = run_playbook(LAB, "playbooks/ha_drill.yml", "-e", "drill_report=%s" % report)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    result = json.loads(report.read_text())
    print("drill row:", result["row"])
    return old_leader, result


def test_the_drill_stopped_the_leader(drill):
    old_leader, result = drill
    assert result["old_leader"] == old_leader
    assert result["watcher"]["stop_seen"]


def test_a_new_leader_within_30_s(drill):
    old_leader, result = drill
    watched = result["watcher"]
    assert watched["new_leader"] and watched["new_leader"] != old_leader
    assert watched["leader_after_s"] <= 30, watched
    assert watched["services_ok_after_s"] is not None, watched


def test_a_service_update_succeeds_without_the_old_leader(drill):
    result = drill[1]
    assert result["update_ok"], result["update_output"]


def test_the_old_leader_boots_again_and_is_reachable(drill):
    old_leader, result = drill
    back = node(old_leader)
    # A stopped node container started again boots systemd and the engine by itself.
    assert back.run("systemctl is-system-running").stdout.strip() in ("running", "degraded")
    assert back.service("docker").is_running
    assert json.loads(back.check_output("docker info --format '{{json .Swarm}}'"))["ControlAvailable"] is True
    assert result["address_kept"], "the node came back on another address"


def test_raft_is_whole_again(drill, host):
    result = drill[1]
    managers = managers_seen(host)
    assert [n["ManagerStatus"]["Reachability"] for n in managers] == ["reachable"] * 3
    assert sum(1 for n in managers if n["ManagerStatus"].get("Leader")) == 1
    assert leader(host) == result["leader_after_drill"]


def test_the_probe_is_gone(host, drill):
    assert host.run("docker service inspect %s" % "drill-probe").rc != 0
