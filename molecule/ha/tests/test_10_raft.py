"""The HA Swarm after converge: 3 managers (1 Leader, 2 Reachable) and 2 workers, and the lab
inventory that lists them (inventories/lab lists the nodes by their labels).

Run by Molecule (verifier testinfra); nodes are reached with testinfra's docker backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra
from lab_checks import lab_node, swarm_nodes

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-ha")
MANAGERS = ["manager%d" % i for i in range(1, int(os.environ.get("SWARMLAB_LAB_MANAGERS", "3")) + 1)]
WORKERS = ["worker%d" % i for i in range(1, int(os.environ.get("SWARMLAB_LAB_WORKERS", "2")) + 1)]
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
testinfra_hosts = ["docker://%s-%s" % (LAB, name) for name in MANAGERS + WORKERS]


@pytest.fixture(scope="module")
def manager():
    return lab_node(LAB, "manager1")


def inventory_groups(**env: str) -> dict:
    """ansible-inventory --list of the lab inventory directory, as a user's ansible.cfg reads it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_", "SWARMLAB_LAB_"))}
    environ.update(env, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "--list"], cwd=PROJECT,
                          env=environ, capture_output=True, text=True, timeout=120, check=True)
    data = json.loads(done.stdout)
    return {group: sorted(data.get(group, {}).get("hosts", [])) for group in ("swarm_managers", "swarm_workers")}


def test_engine_running_and_node_in_the_swarm(host):
    assert host.service("docker").is_running
    info = json.loads(host.check_output("docker info --format '{{json .Swarm}}'"))
    assert info["LocalNodeState"] == "active"
    assert info["ControlAvailable"] is any(host.backend.name.endswith(m) for m in MANAGERS)


def test_every_node_ready_with_its_role(manager):
    seen = sorted((n["Description"]["Hostname"], n["Spec"]["Role"], n["Status"]["State"]) for n in swarm_nodes(manager))
    want = sorted([(m, "manager", "ready") for m in MANAGERS] + [(w, "worker", "ready") for w in WORKERS])
    assert seen == want


def test_one_leader_and_the_other_managers_reachable(manager):
    managers = [n for n in swarm_nodes(manager) if n["Spec"]["Role"] == "manager"]
    assert len(managers) == 3
    assert [n["ManagerStatus"]["Reachability"] for n in managers] == ["reachable"] * 3
    assert sum(1 for n in managers if n["ManagerStatus"].get("Leader")) == 1


def test_every_manager_listens_on_the_management_port():
    for name in MANAGERS:
        assert testinfra.get_host("docker://%s-%s" % (LAB, name)).socket("tcp://2377").is_listening, name


def test_lab_inventory_lists_the_nodes_by_their_labels():
    """The lab inventory (swarmlab.cluster.lab) lists the nodes that exist, whatever size the
    environment asks for; a lab nobody runs has empty groups (playbooks/lab.yml still works)."""
    assert inventory_groups(SWARMLAB_LAB_NAME=LAB) == {
        "swarm_managers": ["manager1", "manager2", "manager3"], "swarm_workers": ["worker1", "worker2"]}
    assert inventory_groups(SWARMLAB_LAB_NAME=LAB, SWARMLAB_LAB_MANAGERS="1") == inventory_groups(SWARMLAB_LAB_NAME=LAB)
    assert inventory_groups(SWARMLAB_LAB_NAME=LAB + "-nobody") == {"swarm_managers": [], "swarm_workers": []}
