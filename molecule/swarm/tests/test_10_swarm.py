"""The Swarm as the nodes see it, after converge: real dockerd in every lab node.

Run by Molecule (verifier testinfra); the nodes are reached with testinfra's docker backend (the
lab nodes are containers named <lab>-<node>).
"""

from __future__ import annotations

import json
import os

import pytest
from lab_checks import lab_node, swarm_nodes

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-swarm")
NODES = ["manager1", "worker1", "worker2"]
testinfra_hosts = ["docker://%s-%s" % (LAB, name) for name in NODES]


@pytest.fixture(scope="module")
def manager():
    return lab_node(LAB, "manager1")


def test_engine_enabled_and_running(host):
    docker = host.service("docker")
    assert docker.is_enabled
    assert docker.is_running


def test_node_is_in_the_swarm_with_its_role(host):
    info = json.loads(host.check_output("docker info --format '{{json .Swarm}}'"))
    assert info["LocalNodeState"] == "active"
    is_manager = host.backend.get_hostname().endswith("manager1")
    assert info["ControlAvailable"] is is_manager


def test_three_nodes_ready_and_active(manager):
    nodes = swarm_nodes(manager)
    seen = sorted((n["Description"]["Hostname"], n["Status"]["State"], n["Spec"]["Availability"]) for n in nodes)
    assert seen == [(name, "ready", "active") for name in NODES]


def test_one_leader_every_manager_reachable(manager):
    managers = [n for n in swarm_nodes(manager) if n["Spec"]["Role"] == "manager"]
    assert [n["Description"]["Hostname"] for n in managers] == ["manager1"]
    assert all(n["ManagerStatus"]["Reachability"] == "reachable" for n in managers)
    assert sum(1 for n in managers if n["ManagerStatus"].get("Leader")) == 1


def test_manager_listens_on_the_management_port(manager):
    assert manager.socket("tcp://2377").is_listening
