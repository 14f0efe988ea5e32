#!/usr/bin/python
# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_topology_info
short_description: Report the replication topology of a set of Redis instances and whether it is healthy
version_added: 1.0.0
description:
  - Reads C(INFO server), C(INFO replication) and C(ROLE) from every listed instance and reports the
    master(s), the master each replica follows, link state, byte lag, seconds since the last ACK,
    replication ids, unreachable instances, and the flags RV(healthy) and RV(split_brain).
  - Why not M(community.general.redis_info)? It shows one instance at a time and has no view of
    the whole topology; it cannot tell that two instances both think they are master, or that a
    replica follows a server that is not in the set.
  - A replica's master address may be an alias (a service name, another IP of the same host). The
    module maps it to a listed instance by address (including the IPs a listed name resolves to),
    then by the C(run_id) of the server at that address when it can be reached from where the
    module runs, then by replication id.
  - Shared code lives in the collection's C(_redis) module utils.
author: "swarmlab maintainers (!UNKNOWN)"
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  fail_on_unhealthy:
    description:
      - Fail the task when the topology is not healthy, with a summary of every problem found.
      - The facts are returned with the failure too.
    type: bool
    default: false
extends_documentation_fragment:
  - swarmlab.cluster.redis
  - swarmlab.cluster.redis.instances
notes:
  - Unreachable instances (including a wrong password) do not fail the task unless
    O(fail_on_unhealthy=true); they are listed in RV(unreachable_instances) with the reason. The
    return value is not named C(unreachable) - Ansible reads a true top-level C(unreachable) as "the
    host is unreachable", which ignores C(ignore_errors) and C(retries) and stops the play.
seealso:
  - module: swarmlab.cluster.redis_replication
  - module: swarmlab.cluster.redis_failover
  - module: community.general.redis_info
"""

EXAMPLES = r"""
- name: Check the Redis replication set and fail with a summary when it is broken
  swarmlab.cluster.redis_topology_info:
    instances:
      - host: 10.0.0.11
      - host: 10.0.0.12
      - host: 10.0.0.13
    login_password: "{{ redis_password }}"
    fail_on_unhealthy: true
  register: redis_topology
  no_log: true

- name: Show the byte lag of every replica
  ansible.builtin.debug:
    msg: "{{ item.address }} is {{ item.lag_bytes }} bytes behind {{ item.master }}"
  loop: "{{ redis_topology.instances | selectattr('role', 'equalto', 'replica') }}"
"""

RETURN = r"""
healthy:
  description:
    - Exactly one master, every instance reachable, every replica following that master with its
      link up and initial sync done, and no split brain.
  returned: always
  type: bool
  sample: true
split_brain:
  description:
    - More than one master, or replicas following different masters, or a connected replica with a
      replication id that differs from the master's.
  returned: always
  type: bool
  sample: false
master:
  description: The master (C(host:port) as listed) when there is exactly one, else null.
  returned: always
  type: str
  sample: 10.0.0.11:6379
masters:
  description: Every listed instance that reports the master role.
  returned: always
  type: list
  elements: str
  sample: [10.0.0.11:6379]
replicas:
  description: Every listed instance that reports the replica role.
  returned: always
  type: list
  elements: str
  sample: [10.0.0.12:6379, 10.0.0.13:6379]
unreachable_instances:
  description:
    - Instances the module could not connect to or authenticate with (the reason is in
      RV(instances[].error)).
    - Named so because Ansible reads a top-level C(unreachable) as "the host is unreachable".
  returned: always
  type: list
  elements: str
  sample: []
problems:
  description: One line per problem found; empty when healthy.
  returned: always
  type: list
  elements: str
  sample: ["10.0.0.13:6379: link to its master is down"]
summary:
  description: A one-line readable summary.
  returned: always
  type: str
  sample: "healthy: master 10.0.0.11:6379"
instances:
  description: What the module saw on every listed instance.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: The instance's C(host:port), as listed in O(instances).
      type: str
      sample: 10.0.0.12:6379
    host:
      description: Host as listed.
      type: str
      sample: 10.0.0.12
    port:
      description: Port as listed.
      type: int
      sample: 6379
    reachable:
      description: Whether the module could connect and authenticate.
      type: bool
      sample: true
    error:
      description: Why the instance is unreachable, naming C(host:port).
      type: str
      sample: null
    role:
      description: V(master) or V(replica); null when unreachable.
      type: str
      sample: replica
    run_id:
      description: Run id of the server.
      type: str
      sample: 5b4c2b3e3c0f6f2e0a1d5e8d2a1d0c9b8a7f6e5d
    redis_version:
      description: Redis version of the server.
      type: str
      sample: 7.0.15
    replid:
      description: Replication id (C(master_replid)).
      type: str
      sample: 4f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a
    replid2:
      description: Secondary replication id (C(master_replid2)), kept after a promotion.
      type: str
      sample: "0000000000000000000000000000000000000000"
    offset:
      description: Replication offset (C(master_repl_offset) of a master, C(slave_repl_offset) of a replica).
      type: int
      sample: 182734
    master:
      description: The listed instance a replica follows, null when it follows none of them.
      type: str
      sample: 10.0.0.11:6379
    master_reported:
      description: The master address as the replica reports it (may be an alias).
      type: str
      sample: redis-master:6379
    master_resolved_by:
      description: How RV(instances[].master) was found, V(address), V(run_id) or V(replid).
      type: str
      sample: address
    link_status:
      description: C(master_link_status) of a replica.
      type: str
      sample: up
    link_state:
      description: Link state from C(ROLE) of a replica (V(connect), V(connecting), V(sync), V(connected)).
      type: str
      sample: connected
    sync_in_progress:
      description: Whether a replica's initial sync is running.
      type: bool
      sample: false
    lag_bytes:
      description:
        - The master's C(master_repl_offset) minus the replica's offset (never negative).
        - Replicas are read after the masters, so writes taken while the module runs do not count; a
          replica behind the offset its master had when read is read again for up to one second (for all
          replicas together), so what was in flight then (the master's periodic PING, a write) does not
          count either.
      type: int
      sample: 0
    last_ack_seconds:
      description: Seconds since the replica's last ACK, from the master's C(slaveN) line.
      type: int
      sample: 0
    connected_replicas:
      description: C(connected_slaves) of the instance.
      type: int
      sample: 2
"""

import typing as t

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis import analyze_topology
from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_client import collect_topology
from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_module import (
    RedisManager,
    redis_module,
    run_manager,
)


class TopologyReader(RedisManager):
    def run(self) -> dict[str, t.Any]:
        records = collect_topology(self.p['instances'], self.p, settle=True)
        result = analyze_topology(records)
        result['changed'] = False
        return result


def main() -> None:
    module = redis_module({'fail_on_unhealthy': {'type': 'bool', 'default': False}}, instances='required')
    result = run_manager(module, TopologyReader)
    if module.params['fail_on_unhealthy'] and not result['healthy']:
        module.fail_json(msg='Redis topology is %s' % result['summary'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
