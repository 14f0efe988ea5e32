# Copyright: swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter drain_silences: the alerts a node drain is known to fire, as silences for Alertmanager."""
from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: drain_silences
short_description: The alerts a node drain is known to fire, to silence from the drain to the activation
version_added: 2.0.0
author: swarmlab maintainers
description:
  - Takes the result of M(swarmlab.cluster.swarm_node_drain) (its plan, from check mode, is enough) and returns
    the silences for the monitoring role's entry point C(silence) (its C(monitoring_silence_alerts)), one mapping
    of label to full-match regular expression per silence, naming only what the drain stops.
  - C(NodeDown) of the node (a hook may restart its engine or reboot it).
  - C(RedisInstanceDown) and C(RedisReplicaLinkDown) of the stack's Redis servers and Sentinels the drain reduces
    or strands (their tasks stop), by their C(instance) label (the service name without the stack's prefix).
  - C(RedisReplicaDown) (the master has one replica fewer), only when a Redis server is among them.
  - Used by C(playbooks/node_maintenance.yml) and C(playbooks/backup.yml); the alert rules are the monitoring
    role's C(templates/alerts.yml.j2).
options:
  _input:
    description: The result of M(swarmlab.cluster.swarm_node_drain) (C(reduced), C(stranded), each item with C(name)).
    type: dict
    required: true
  node:
    description: The node's hostname, as Swarm and the C(dockerd) job's C(node) label know it.
    type: str
    required: true
  stack:
    description: The app stack's name (its services are C(<stack>_<service>)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Silence what the drain of worker2 fires
  ansible.builtin.include_role:
    name: swarmlab.cluster.monitoring
    tasks_from: silence.yml
  vars:
    monitoring_silence_subject: node maintenance of worker2
    monitoring_silence_alerts: "{{ drain_plan | swarmlab.cluster.drain_silences('worker2', 'swarmlab') }}"
"""

RETURN = r"""
_value:
  description: One mapping per silence, label name to a regular expression; NodeDown's first.
  type: list
  elements: dict
"""

REDIS_INSTANCE = re.compile(r"^redis-(master|replica-[0-9]+|sentinel-[0-9]+)$")


def drain_silences(drain: dict, node: str, stack: str) -> list[dict[str, str]]:
    if not isinstance(drain, dict):
        raise AnsibleFilterError("drain_silences: expects the result of swarm_node_drain, got %r" % (drain,))
    if not isinstance(node, str) or not node or not isinstance(stack, str) or not stack:
        raise AnsibleFilterError("drain_silences: node and stack must be non-empty strings")
    prefix = stack + "_"
    instances = []
    for item in list(drain.get("reduced") or []) + list(drain.get("stranded") or []):
        name = item.get("name", "") if isinstance(item, dict) else ""
        short = name[len(prefix):] if name.startswith(prefix) else ""
        if REDIS_INSTANCE.match(short) and short not in instances:
            instances.append(short)
    silences = [{"alertname": "NodeDown", "node": re.escape(node)}]
    if instances:
        silences.append({"alertname": "RedisInstanceDown|RedisReplicaLinkDown",
                         "instance": "|".join(re.escape(name) for name in sorted(instances))})
    if any(not name.startswith("redis-sentinel-") for name in instances):
        silences.append({"alertname": "RedisReplicaDown"})
    return silences


class FilterModule:
    """Node maintenance filters."""

    def filters(self) -> dict:
        return {"drain_silences": drain_silences}
