# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure decision of a node drain on the stack: does the node hold the Redis master, and to which
replica on another node is it handed over first.

Works on what redis_topology_info returns (the instances listed by service name) and on the stack's
tasks as docker_stack_task_info returns them (task name ``<stack>_<service>.<slot>``, node hostname).
Nothing here talks to Redis or Docker. Private to this collection: the names may change without notice.
"""

from __future__ import annotations

import typing as t


def running_nodes(tasks: t.Iterable[dict[str, t.Any]], stack: str) -> dict[str, list[str]]:
    """Short service name -> hostnames of the nodes where a task of it runs and is meant to run."""
    prefix = stack + '_'
    found: dict[str, list[str]] = {}
    for task in tasks:
        name = str(task.get('Name', '')).strip().lstrip('\\_ ').rsplit('.', 1)[0]
        if not name.startswith(prefix):
            continue
        desired = str(task.get('DesiredState', '')).lower()
        current = str(task.get('CurrentState', '')).split(' ', 1)[0].lower()
        if desired == 'running' and current == 'running' and task.get('Node'):
            found.setdefault(name[len(prefix):], []).append(str(task['Node']))
    return found


def switchover_plan(topology: dict[str, t.Any], tasks: t.Iterable[dict[str, t.Any]], node: str, stack: str,
                    prefer: str = 'redis-master') -> dict[str, t.Any]:
    """What a drain of ``node`` needs from Redis.

    - ``needed``: the master's task runs on the node (a drain would stop it: writes fail until the
      Sentinels promote someone, seconds later).
    - ``candidates``: the replicas that may take over: reachable, following the master with their
      link up, with a running task on another node; the least lagging first, then ``prefer`` (the
      deployed master's service, so a drain moves the role home when it can), then by name.
    - ``target``: the first candidate when needed, else None.
    - ``primaries``: the stack's service that holds the master once the handover is done (the
      target's, else the master's), for swarm_node_drain; None when the master is unknown.
    - ``problem``: why the drain cannot keep Redis serving (no single master, its task not found,
      no candidate); None otherwise. The caller refuses unless forced.
    """
    where = running_nodes(tasks, stack)
    instances = {item.get('address'): item for item in topology.get('instances') or []}
    master_address = topology.get('master')
    plan: dict[str, t.Any] = {
        'node': node, 'needed': False, 'master': None, 'master_node': None, 'target': None, 'target_node': None,
        'candidates': [], 'primaries': None, 'problem': None,
    }
    master = instances.get(master_address)
    if not master_address or master is None:
        plan['problem'] = 'cannot tell which node holds the Redis master: %s' % (
            topology.get('summary') or 'no single master among %s' % ', '.join(sorted(a for a in instances if a)))
        return plan
    plan['master'] = master['host']
    nodes = where.get(master['host'], [])
    if len(nodes) != 1:
        plan['problem'] = 'the Redis master %s runs %s' % (
            master['host'], 'no task of the stack %s' % stack if not nodes else 'on several nodes: %s' % ', '.join(nodes))
        return plan
    plan['master_node'] = nodes[0]
    plan['needed'] = nodes[0] == node
    for item in topology.get('instances') or []:
        places = where.get(item.get('host'), [])
        if (item.get('reachable') and item.get('role') == 'replica' and item.get('master') == master_address
                and item.get('link_status') == 'up' and len(places) == 1 and places[0] != node):
            plan['candidates'].append({'instance': item['host'], 'node': places[0], 'lag_bytes': item.get('lag_bytes') or 0})
    plan['candidates'].sort(key=lambda c: (c['lag_bytes'], c['instance'] != prefer, c['instance']))
    holder = master['host']
    if plan['needed']:
        if not plan['candidates']:
            plan['problem'] = ('the Redis master %s runs on %s and no replica on another node can take over '
                               '(reachable, following it with its link up): %s' % (
                                   master['host'], node, topology.get('summary') or 'no replica'))
            plan['primaries'] = [stack + '_' + holder]
            return plan
        plan['target'], plan['target_node'] = plan['candidates'][0]['instance'], plan['candidates'][0]['node']
        holder = plan['target']
    plan['primaries'] = [stack + '_' + holder]
    return plan
