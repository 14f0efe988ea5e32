# Copyright: swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter redis_switchover_plan: before a node is drained, must its Redis master be handed over, and to whom."""
from __future__ import annotations

from ansible_collections.swarmlab.cluster.plugins.module_utils._switchover import switchover_plan

DOCUMENTATION = r"""
name: redis_switchover_plan
short_description: Plan the Redis switchover a node drain needs first
version_added: 2.0.0
author: swarmlab maintainers
description:
  - Takes the stack's Redis topology (the result of M(swarmlab.cluster.redis_topology_info), its instances listed by
    service name) and the stack's tasks (the C(results) of M(community.docker.docker_stack_task_info)), and says
    whether the node to drain runs the Redis master, and which replica on another node should take the role over.
  - The candidates are the replicas that are reachable, follow the master with their link up and run on another
    node; the least lagging first, then O(prefer), then by name.
  - Used by C(playbooks/node_maintenance.yml) before M(swarmlab.cluster.swarm_node_drain); the logic is the
    collection's module_utils C(_switchover).
options:
  _input:
    description: The result of M(swarmlab.cluster.redis_topology_info).
    type: dict
    required: true
  tasks:
    description: The stack's tasks, as the C(results) of M(community.docker.docker_stack_task_info).
    type: list
    elements: dict
    required: true
  node:
    description: Hostname of the node to drain, as Swarm knows it.
    type: str
    required: true
  stack:
    description: Name of the stack (its services are named C(<stack>_<service>)).
    type: str
    required: true
  prefer:
    description: Among equally up-to-date candidates, this instance first (the service deployed as the master).
    type: str
    default: redis-master
"""

EXAMPLES = r"""
- name: Plan the handover before draining worker1
  ansible.builtin.set_fact:
    plan: "{{ topology | swarmlab.cluster.redis_switchover_plan(stack_tasks.results, 'worker1', 'swarmlab') }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    needed:
      description: The master's task runs on the node.
      type: bool
    master:
      description: The master's instance (service) name; null when unknown.
      type: str
    master_node:
      description: Where the master's task runs.
      type: str
    target:
      description: The replica to promote when needed (else null).
      type: str
    target_node:
      description: Where the target's task runs.
      type: str
    candidates:
      description: Every replica that could take over, best first, as C(instance), C(node), C(lag_bytes).
      type: list
      elements: dict
    primaries:
      description: The stack service that holds the master after the handover, for swarm_node_drain's primaries; null when the master is unknown.
      type: list
      elements: str
    problem:
      description: Why Redis cannot keep serving through the drain (no single master, no candidate); null when it can.
      type: str
"""


class FilterModule:
    """Node maintenance filters."""

    def filters(self) -> dict:
        return {"redis_switchover_plan": switchover_plan}
