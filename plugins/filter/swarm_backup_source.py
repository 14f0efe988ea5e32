# Copyright: swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter swarm_backup_source: which manager's engine the Swarm state's backup stops, and whether it may."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm import quorum_loss

DOCUMENTATION = r"""
name: swarm_backup_source
short_description: Choose the manager whose Swarm state the backup copies, without losing the Raft quorum
version_added: 2.0.0
author: swarmlab maintainers
description:
  - Docker copies C(/var/lib/docker/swarm) consistently only with the manager's engine stopped. This filter chooses
    that manager for C(playbooks/backup.yml) and says when stopping it would cost the Swarm its Raft quorum.
  - With 3 or more managers, a follower that is reachable and ready (never the leader, so no election; never
    one Raft cannot reach, whose copy may be stale), not the node that runs the Redis master (its drain would
    hand the master over), among the play's hosts, in their order, the first manager last (the registry and the
    monitoring run there). The backup drains it first.
  - With 3 or more managers, stopping one must leave a majority of all managers reachable. When a manager is
    already unreachable, that may not hold (3 managers, 1 down); C(problem) then says so, naming the unreachable
    ones, and the playbook refuses before anything changes. Without this check, the Swarm would have no quorum
    until the engine came back, and none at all if it did not.
  - With 1 or 2 managers (or no follower to choose), the first of the play's hosts, undrained. There is no quorum
    to keep (1 manager is the whole Raft, and 2 have no majority without each other).
  - No module of community.docker chooses a manager; the rules are the Raft ones of Docker's
    administration guide (keep a quorum of managers, back up from a non-leader).
options:
  _input:
    description: The Swarm's managers, as the C(nodes) of M(community.docker.docker_swarm_info) with
      C(nodes_filters.role=manager) (C(ID), C(Hostname), C(Status), C(ManagerStatus)).
    type: list
    elements: dict
    required: true
  hosts:
    description: The play's hosts, inventory name to Swarm node ID, in the play's order.
    type: dict
    required: true
  first:
    description: The inventory's first manager (chosen last among the followers).
    type: str
    required: true
  redis_master_node:
    description: The hostname of the node that runs the Redis master; empty without the stack.
    type: str
    default: ''
"""

EXAMPLES = r"""
- name: Choose the manager to copy the state from
  ansible.builtin.set_fact:
    source: >-
      {{ swarm_managers.nodes | swarmlab.cluster.swarm_backup_source({'manager1': 'id1', 'manager2': 'id2', 'manager3': 'id3'},
                                                                    'manager1', redis_master_node='manager2') }}
"""

RETURN = r"""
_value:
  description: The choice.
  type: dict
  contains:
    host:
      description: The inventory host whose engine stops.
      type: str
    follower:
      description: A reachable follower of 3 or more managers, which the backup drains first.
      type: bool
    managers:
      description: How many managers the Swarm has.
      type: int
    reachable:
      description: How many of them Raft reaches (the leader included).
      type: int
    unreachable:
      description: The hostnames of the managers Raft does not reach.
      type: list
      elements: str
    problem:
      description: Why the chosen manager's engine must not stop (the Raft quorum would be lost, or Raft does not
        reach it, so that its copy may be stale); empty when it may.
      type: str
"""

REACHABLE = ("leader", "reachable")


def swarm_backup_source(managers: list, hosts: dict, first: str, redis_master_node: str = "") -> dict:
    if not isinstance(managers, list) or not all(isinstance(m, dict) and m.get("ID") for m in managers):
        raise AnsibleFilterError("swarm_backup_source: expects the managers of docker_swarm_info, got %r" % (managers,))
    if not isinstance(hosts, dict) or not hosts:
        raise AnsibleFilterError("swarm_backup_source: hosts must map the play's hosts to their node IDs, got %r" % (hosts,))
    reachable = [m for m in managers if str(m.get("ManagerStatus") or "").lower() in REACHABLE]
    unreachable = sorted(str(m.get("Hostname")) for m in managers if m not in reachable)
    followers = set(m["ID"] for m in reachable
                    if str(m["ManagerStatus"]).lower() == "reachable" and m.get("Status") == "ready"
                    and (not redis_master_node or m.get("Hostname") != redis_master_node))
    candidates = [h for h, node_id in hosts.items() if node_id in followers] if len(managers) >= 3 else []
    candidates = [h for h in candidates if h != first] + [h for h in candidates if h == first]
    host = (candidates + list(hosts))[0]
    if hosts[host] not in set(m["ID"] for m in reachable):
        problem = "Raft does not reach %s, the manager to copy the state from: its copy may be stale" % host
    else:
        lost = quorum_loss([(str(m.get("Hostname")), m in reachable) for m in managers],
                           next(str(m.get("Hostname")) for m in reachable if m["ID"] == hosts[host]))
        problem = lost
    return {"host": host, "follower": bool(candidates), "managers": len(managers), "reachable": len(reachable),
            "unreachable": unreachable, "problem": problem}


class FilterModule:
    """Backup filters."""

    def filters(self) -> dict:
        return {"swarm_backup_source": swarm_backup_source}
