"""Unit tests of the constraint_nodes filter (the nodes as docker_swarm_info returns them, verbose)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.swarmlab.cluster.plugins.filter.constraint_nodes import constraint_nodes


def node(node_id, hostname, role="worker", labels=None, availability="active"):
    return {"ID": node_id, "Spec": {"Role": role, "Labels": labels or {}, "Availability": availability},
            "Description": {"Hostname": hostname, "Platform": {"OS": "linux", "Architecture": "x86_64"}}}


NODES = [node("m1", "manager1", "manager"), node("w1", "worker1", labels={"edge": "true"}),
         node("w2", "worker2", availability="drain", labels={"edge": "TRUE"})]


def test_the_default_edge_constraint_keeps_the_managers():
    assert constraint_nodes(NODES, ["node.role == manager"]) == ["m1"]


def test_labels_and_several_constraints_as_swarm_reads_them():
    # Values compare case-insensitively; a drained node the constraints allow counts.
    assert constraint_nodes(NODES, ["node.labels.edge == true"]) == ["w1", "w2"]
    assert constraint_nodes(NODES, ["node.labels.edge == true", "node.hostname != worker1"]) == ["w2"]
    assert constraint_nodes(NODES, ["node.labels.zone != a"]) == ["m1", "w1", "w2"]  # no such label


def test_no_constraint_allows_every_node():
    assert constraint_nodes(NODES, []) == ["m1", "w1", "w2"]


@pytest.mark.parametrize("nodes, constraints, message", [
    (NODES, ["node.role ~ manager"], "Cannot read the placement constraint"),
    (NODES, ["node.colour == red"], "Unknown placement constraint key"),
    (NODES, "node.role == manager", "must be a list"),
    ([{"Hostname": "manager1"}], ["node.role == manager"], "each a dict with an ID"),
])
def test_bad_input_fails_naming_it(nodes, constraints, message):
    with pytest.raises(AnsibleFilterError, match=message):
        constraint_nodes(nodes, constraints)
