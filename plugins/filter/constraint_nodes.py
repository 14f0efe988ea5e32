# Copyright: swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter constraint_nodes: the Swarm nodes a service's placement constraints allow."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm import SwarmLogicError, node_satisfies

DOCUMENTATION = r"""
name: constraint_nodes
short_description: The IDs of the Swarm nodes that satisfy placement constraints
version_added: 2.0.0
author: swarmlab maintainers
description:
  - Takes the nodes of a Swarm (the C(nodes) of M(community.docker.docker_swarm_info) with C(verbose_output=true),
    the Engine API's objects) and returns the IDs of those that satisfy every constraint in O(constraints), as
    Swarm reads them (C(node.role), C(node.hostname), C(node.id), C(node.labels.*), C(engine.labels.*),
    C(node.platform.*); C(==) and C(!=); values compared case-insensitively).
  - The rule is the collection's own (module_utils C(_swarm.node_satisfies)), the one M(swarmlab.cluster.swarm_node_drain)
    uses. A node's availability and state are not considered; a drained node that the constraints allow counts.
  - The stack role installs its edge port guard on the nodes the constraints of the edge allow.
  - Fails, naming it, on a constraint it cannot read or with an unknown key.
options:
  _input:
    description: Nodes, as the C(nodes) of M(community.docker.docker_swarm_info) with C(verbose_output=true).
    type: list
    elements: dict
    required: true
  constraints:
    description: Placement constraints, e.g. C(node.role == manager); none allows every node.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: The nodes the edge may run on
  ansible.builtin.debug:
    msg: "{{ swarm.nodes | swarmlab.cluster.constraint_nodes(['node.role == manager']) }}"
"""

RETURN = r"""
_value:
  description: The IDs of the nodes that satisfy every constraint, in the order given.
  type: list
  elements: str
"""


def constraint_nodes(nodes: list[dict], constraints: list[str]) -> list[str]:
    if not isinstance(nodes, list) or not all(isinstance(node, dict) and node.get("ID") for node in nodes):
        raise AnsibleFilterError("constraint_nodes: expects the nodes of docker_swarm_info (verbose_output=true), "
                                 "each a dict with an ID")
    if isinstance(constraints, str) or not isinstance(constraints, list):
        raise AnsibleFilterError("constraint_nodes: constraints must be a list of strings, got %r" % (constraints,))
    try:
        return [node["ID"] for node in nodes if node_satisfies(node, constraints)]
    except SwarmLogicError as exc:
        raise AnsibleFilterError("constraint_nodes: %s" % exc) from exc


class FilterModule:
    """Placement filters."""

    def filters(self) -> dict:
        return {"constraint_nodes": constraint_nodes}
