#!/usr/bin/python
# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_node_drain
short_description: Drain a Docker Swarm node without a dip, wait until its work runs elsewhere, or activate it again
version_added: 1.0.0
description:
  - Sets a Swarm node's availability to C(drain), then waits until no task of any replicated service
    still occupies the node and every replicated service runs its desired number of replicas again.
  - Before draining, with O(move_first=true) (the default), it moves the tasks of every replicated
    service that can run elsewhere off the node with a service update that adds the placement
    constraint C(node.id!=<node>) and records it in the service label
    C(org.swarmlab.maintenance.excluded-nodes). The update follows the service's own C(update_config);
    with C(order=start-first) each replacement runs, healthy, on another node before the task it
    replaces stops, so the service never runs fewer healthy tasks than its replicas; Swarm replaces only
    the tasks on this node (a change of placement constraints alone leaves tasks on nodes that satisfy
    them alone). Only then is the node set to drain. When such an update fails (Swarm rolls it back or
    pauses it, or it does not finish within O(wait_timeout)), the constraints added are removed and the
    drain is refused; the node is left active.
  - Before changing anything it plans the drain, per service that has tasks on the node or could run
    there. A service that cannot place all its tasks on the other nodes but keeps at least one running
    elsewhere is I(reduced) (for example one service of three Sentinels with C(max_replicas_per_node=1)
    on three nodes, or a global service); that is accepted, reported in RV(reduced), and waited for only
    down to the tasks it keeps. A service of which nothing would run anywhere is I(stranded) (pinned
    with C(node.hostname == <node>), the only task of a global service, any service of the last active
    node); its work would be lost, so the drain is refused unless O(force=true). The last active node
    is always refused without O(force). CPU and memory reservations are not checked.
  - A manager is drained to be taken down (a reboot, an engine restart). With 3 or more managers, its
    drain is refused unless O(force=true) when the managers Raft reaches without it would be fewer than
    a majority of all (another manager already unreachable); the Swarm would lose its quorum while it is
    down. Docker itself drains such a manager without a word.
  - Separate services that are redundant for one another, each pinned to its own node with its data
    there (the stack's Redis replicas and Sentinels), carry the service labels
    C(org.swarmlab.redundancy.group=<group>) and C(org.swarmlab.redundancy.min=<n>) (default 1). Such a
    service that would be stranded is I(reduced) instead (it keeps 0 tasks, and is not waited for) when
    at least C(n) other services of its group keep running elsewhere; below that it is stranded.
  - The I(primary) of such a group is the member the others depend on (the stack's Redis master).
    O(primaries) names the services that hold that role now; without it, the services labelled
    C(org.swarmlab.redundancy.role=primary) (the role as deployed, C(redis-master)). A primary with a
    task on the node is stranded, so the drain is refused unless O(force=true); hand its role to a
    member on another node first (C(playbooks/node_maintenance.yml) does, with a Redis switchover).
    A primary never counts among the members that keep its group running.
  - With O(state=absent) it sets the node active again and removes the constraints a drain added for
    it (a change of constraints alone restarts no task). Swarm does not move tasks back to a reactivated
    node by itself; run M(swarmlab.cluster.swarm_rebalance) after it.
  - Reports what moved (per service, how long, where its tasks run now), what is reduced or stranded and
    why, the running tasks of replicated services per node before and after, and the times.
author: "swarmlab maintainers (!UNKNOWN)"
extends_documentation_fragment:
  - swarmlab.cluster.swarm
attributes:
  check_mode:
    description: Plans the drain and reports whether the node would change and what would move; updates and waits for nothing.
  diff_mode:
    description: No diff; the before and after task counts are in the result.
options:
  node:
    description:
      - Hostname (as registered in Swarm) or ID of the node.
    type: str
    required: true
  state:
    description:
      - V(present) drains the node; V(absent) sets it active again and removes the placement constraints
        a drain added for it.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Drain even when the plan finds work that would be lost (stranded services, the last active node).
      - The problems found are still returned and raised as warnings; stranded services are left out of
        the wait.
    type: bool
    default: false
  primaries:
    description:
      - Services (names or IDs) that hold the primary role of their redundancy group now, for example
        the service that runs the Redis master as the Sentinels name it. Replaces, for this drain,
        the services labelled C(org.swarmlab.redundancy.role=primary). A name that is no service is
        an error.
      - Not given, the labels decide.
    type: list
    elements: str
  move_first:
    description:
      - Move the tasks of the services that can run elsewhere off the node with a service update before
        draining it (see the description). V(false) drains at once; Swarm then stops the node's tasks and
        starts their replacements at the same time.
      - The move is always waited for, whatever O(wait) says.
    type: bool
    default: true
  wait:
    description:
      - Wait until the node runs no task of a replicated service and every replicated service is back at
        its replica count (a reduced one at the tasks it keeps; with O(force=true), every one but the
        stranded ones).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds the module may spend moving and waiting in all, before failing with the services still
        short and the tasks still on the node.
    type: int
    default: 300
notes:
  - The node's own update is honest in check mode; the move and the wait are skipped there.
  - Global services are not moved nor waited for; their task on a drained node just stops.
  - A service whose own update order is C(stop-first) is moved in that order (one that must never run
    twice, or holds a volume, asked for it); it runs one task fewer while each task moves.
  - A later C(docker stack deploy) of a service replaces its spec, constraint and label included; on a
    node still drained nothing runs there anyway.
seealso:
  - module: swarmlab.cluster.swarm_rebalance
  - module: community.docker.docker_node
"""

EXAMPLES = r"""
- name: Drain worker1; its tasks start elsewhere first, then it is drained
  swarmlab.cluster.swarm_node_drain:
    node: worker1
    wait_timeout: 180
  delegate_to: manager1

- name: Drain even if work would be lost (a service pinned to the node stops)
  swarmlab.cluster.swarm_node_drain:
    node: worker2
    force: true

- name: Drain worker1 after the Redis master moved off it (its service is no longer the primary)
  swarmlab.cluster.swarm_node_drain:
    node: worker1
    primaries: [swarmlab_redis-master]

- name: Back to active, without the constraints the drain added
  swarmlab.cluster.swarm_node_drain:
    node: worker1
    state: absent

- name: Spread the tasks over every active node again
  swarmlab.cluster.swarm_rebalance:
"""

RETURN = r"""
node:
  description: The node.
  returned: success, and with the failure when refused or timed out
  type: dict
  contains:
    id:
      description: Node ID.
      type: str
      sample: 9j4z7c2q1r8s0t5u6v3w2x1y0
    hostname:
      description: Hostname as registered in Swarm.
      type: str
      sample: worker1
    role:
      description: C(manager) or C(worker).
      type: str
      sample: worker
    availability_before:
      description: Availability before the module ran.
      type: str
      sample: active
    availability:
      description: Availability after the module ran (unchanged in check mode).
      type: str
      sample: drain
  sample:
    id: 9j4z7c2q1r8s0t5u6v3w2x1y0
    hostname: worker1
    role: worker
    availability_before: active
    availability: drain
capacity_problems:
  description: Why the drain would lose work, or the Raft quorum once the manager is down (the reasons of a refusal); empty when it would not.
  returned: success, and with the failure when refused or timed out
  type: list
  elements: str
  sample: ["service swarmlab_redis-master would stop: no node but manager1 satisfies its placement constraints ['node.hostname == manager1']."]
stranded:
  description:
    - Services of which no task would run anywhere while the node is drained, each with the reason.
      Computed before the drain.
    - With O(force=true) they are not waited for; without it they are the reasons of a refusal.
  returned: success, and with the failure when refused or timed out
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
      sample: swarmlab_redis-master
    reason:
      description: Why it cannot run elsewhere.
      type: str
      sample: "no node but manager1 satisfies its placement constraints ['node.hostname == manager1']"
  sample: [{name: swarmlab_redis-master, reason: "no node but manager1 satisfies its placement constraints ['node.hostname == manager1']"}]
primaries:
  description: The services that held the primary role of their redundancy group for the plan (O(primaries), else by label).
  returned: success, and with the failure when refused or timed out
  type: list
  elements: str
  sample: [swarmlab_redis-replica-1]
reduced:
  description:
    - Services that run fewer tasks while the node is drained but keep some running on other nodes
      (accepted), with the tasks they keep and the reason.
  returned: success, and with the failure when refused or timed out
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
      sample: swarmlab_redis-sentinel
    replicas:
      description: Its desired tasks (for a global service, the tasks it runs now).
      type: int
      sample: 3
    keeps:
      description: Tasks it can run while the node is drained.
      type: int
      sample: 2
    reason:
      description: Why it cannot run all of them.
      type: str
      sample: "max_replicas_per_node 1 on 2 other eligible node(s) (manager1, worker2) holds 2 of 3 replicas; 2 of 3 keep running"
  sample:
    - name: swarmlab_redis-sentinel
      replicas: 3
      keeps: 2
      reason: "max_replicas_per_node 1 on 2 other eligible node(s) (manager1, worker2) holds 2 of 3 replicas; 2 of 3 keep running"
moved:
  description: The replicated services whose tasks on the node moved to other nodes (in check mode, would move).
  returned: success, and with the failure when refused or timed out
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
      sample: swarmlab_web
    tasks:
      description: Its tasks that were on the node.
      type: int
      sample: 2
    order:
      description: The service's update order, which the move followed.
      type: str
      sample: start-first
    how:
      description: C(moved first) (a service update before the drain) or C(drain) (with O(move_first=false)).
      type: str
      sample: moved first
    update:
      description: The service's UpdateStatus state at the end of the move (null when not moved first).
      type: str
      sample: completed
    seconds:
      description: Seconds from the service update until no task of it was wanted on the node and it ran all its replicas.
      type: float
      sample: 31.4
    nodes:
      description: Its running tasks per node hostname at the end.
      type: dict
      sample: {manager1: 2, worker2: 2}
  sample: [{name: swarmlab_web, tasks: 2, order: start-first, how: moved first, update: completed, seconds: 31.4, nodes: {manager1: 2, worker2: 2}}]
restored:
  description: With O(state=absent), the services whose constraint keeping them off the node was removed.
  returned: success
  type: list
  elements: str
  sample: [swarmlab_web]
times:
  description: Seconds spent moving tasks first (C(move)), waiting for the drained node (C(drain)), and in all (C(total)).
  returned: success, and with the failure when refused or timed out
  type: dict
  sample: {move: 31.4, drain: 8.1, total: 40.2}
tasks_before:
  description: Running tasks of replicated services per node hostname, before.
  returned: success, and with the failure when refused or timed out
  type: dict
  sample: {manager1: 1, worker1: 2, worker2: 1}
tasks_after:
  description: Running tasks of replicated services per node hostname, after the wait (before it in check mode or without wait).
  returned: success, and with the failure when refused or timed out
  type: dict
  sample: {manager1: 2, worker1: 0, worker2: 2}
services:
  description: Every replicated service with its desired and running replica counts, at the end.
  returned: success, and with the failure when refused or timed out
  type: list
  elements: dict
  sample: [{name: probe, id: x1y2z3, replicas: 4, running: 4}]
services_short:
  description:
    - Replicated services running fewer tasks than their replicas at the end, reduced and stranded ones included.
  returned: success, and with the failure when refused or timed out
  type: list
  elements: dict
  sample: [{name: swarmlab_redis-sentinel, replicas: 3, running: 2}]
tasks_left_on_node:
  description: Number of tasks of replicated services still occupying the node at the end.
  returned: success, and with the failure when refused or timed out
  type: int
  sample: 0
waited:
  description: Seconds spent waiting for the drained node.
  returned: success, and with the failure when refused or timed out
  type: float
  sample: 6.2
"""

import typing as t

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm import (
    desired_replicas,
    drain_plan,
    drain_wait_targets,
    excluded_nodes,
    find_node,
    live_tasks_on_node,
    node_availability,
    node_hostname,
    node_totals,
    running_count,
    service_counts,
    service_name,
    service_report,
    short_services,
    spec_excluding,
    spec_including,
    update_outcome,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm_api import (
    SwarmResultError,
    SwarmWorker,
    swarm_module_main,
)


class NodeDrainer(SwarmWorker):
    """Plans, moves, drains and waits (or activates); the module only builds it and reports what it returns."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = 0.0

    def _snapshot(self) -> tuple[list, list, list]:
        return self.api.nodes(), self.api.services(), self.api.tasks()

    def run(self) -> dict[str, t.Any]:
        self.require_manager()
        started = self.clock()
        self.deadline = started + self.params['wait_timeout']
        nodes, services, tasks = self._snapshot()
        node = find_node(nodes, self.params['node'])
        before = node_availability(node)
        result: dict[str, t.Any] = {
            'changed': False,
            'node': {'id': node['ID'], 'hostname': node_hostname(node), 'role': node['Spec'].get('Role', ''),
                     'availability_before': before, 'availability': before},
            'tasks_before': node_totals(services, tasks, nodes),
            'capacity_problems': [], 'stranded': [], 'reduced': [], 'moved': [], 'restored': [], 'primaries': [],
            'times': {'move': 0.0, 'drain': 0.0, 'total': 0.0},
            'waited': 0.0,
        }
        if self.params['state'] == 'absent':
            nodes, services, tasks = self._activate(node, services, result)
        else:
            nodes, services, tasks = self._drain(node, nodes, services, tasks, result)
        self._finish(result, nodes, services, tasks)
        result['times']['total'] = round(self.clock() - started, 1)
        return result

    # Drain

    def _drain(self, node: dict[str, t.Any], nodes: list, services: list, tasks: list,
               result: dict[str, t.Any]) -> tuple[list, list, list]:
        plan = drain_plan(node, nodes, services, tasks, self.params['primaries'])
        result['primaries'] = plan['primaries']
        result['stranded'] = plan['stranded']
        result['reduced'] = [dict((k, v) for k, v in item.items() if k != 'id') for item in plan['reduced']]
        result['capacity_problems'] = plan['problems']
        hostname = node_hostname(node)
        if node_availability(node) != 'drain':
            result['changed'] = True
            if plan['problems'] and not self.params['force']:
                self._finish(result, nodes, services, tasks)
                raise RefusedError('Refusing to drain %s: %s Set force=true to drain anyway.'
                                   % (hostname, ' '.join(plan['problems'])), result)
            for problem in plan['problems']:
                self.module.warn('Draining %s although %s' % (hostname, problem))
            already_short = short_services(services, tasks, nodes)
            if already_short:
                self.module.warn('Services already short before the drain: %s'
                                 % ', '.join('%(name)s %(running)d/%(replicas)d' % s for s in already_short))
            how = 'moved first' if self.params['move_first'] else 'drain'
            result['moved'] = [{'name': item['name'], 'tasks': item['tasks'], 'order': item['order'], 'how': how,
                                'update': None, 'seconds': None, 'nodes': {}} for item in plan['move']]
            if not self.module.check_mode:
                if self.params['move_first'] and plan['move']:
                    start = self.clock()
                    self._move_first(node, plan['move'], result)
                    result['times']['move'] = round(self.clock() - start, 1)
                fresh = next(item for item in self.api.nodes() if item['ID'] == node['ID'])
                self.api.update_node(fresh, dict(fresh['Spec'], Availability='drain'))
                result['node']['availability'] = 'drain'
        if self.params['force'] and plan['stranded']:
            self.module.warn('Not waiting for the services that cannot run anywhere while %s is drained: %s.'
                             % (hostname, describe(plan['stranded'])))
        if plan['reduced']:
            self.module.warn('Running fewer tasks while %s is drained (their other tasks keep serving): %s.'
                             % (hostname, describe(plan['reduced'])))
        if self.params['wait'] and not self.module.check_mode:
            start = self.clock()
            nodes, services, tasks = self._wait_drained(node, plan, result)
            result['times']['drain'] = round(self.clock() - start, 1)
        for item in result['moved']:
            service = next((svc for svc in services if service_name(svc) == item['name']), None)
            if service is not None:
                item['nodes'] = dict((k, v) for k, v in service_counts(service, tasks, nodes).items() if v)
        return nodes, services, tasks

    def _move_first(self, node: dict[str, t.Any], moves: list[dict[str, t.Any]], result: dict[str, t.Any]) -> None:
        """Keep each movable service's tasks off the node with a service update (its own update_config:
        with start-first a replacement runs, healthy, before the task it replaces stops), and wait until
        no task of it is wanted on the node and it runs all its replicas. A failed or rolled back update
        removes the constraints added and refuses the drain: the node is left as it was."""
        pending: dict[str, tuple[str | None, float]] = {}
        for item in moves:
            service = self.api.service(item['id'])
            spec = spec_excluding(service['Spec'], node['ID'])
            if spec is None:
                continue
            pending[item['id']] = ((service.get('UpdateStatus') or {}).get('StartedAt'), self.clock())
            self.api.update_service(service, spec)
        entries = {item['name']: item for item in result['moved']}
        names = {item['id']: item['name'] for item in moves}
        failures = []
        while pending:
            nodes, services, tasks = self._snapshot()
            for service in services:
                if service['ID'] not in pending:
                    continue
                started_before, since = pending[service['ID']]
                outcome = update_outcome(service, started_before)
                entry = entries[service_name(service)]
                entry['update'] = (service.get('UpdateStatus') or {}).get('State') or outcome
                wanted_here = [task for task in tasks if task.get('ServiceID') == service['ID']
                               and task.get('NodeID') == node['ID'] and task.get('DesiredState') == 'running']
                moved = not wanted_here and running_count(service, tasks, nodes) >= desired_replicas(service)
                if outcome == 'failed':
                    status = service.get('UpdateStatus') or {}
                    failures.append('%s: the update ended as %s (%s)' % (service_name(service), status.get('State'),
                                                                         status.get('Message', '')))
                elif moved and outcome in ('completed', 'pending'):
                    entry['seconds'] = round(self.clock() - since, 1)
                else:
                    continue
                del pending[service['ID']]
            if pending and self.clock() >= self.deadline:
                failures.extend('%s: still moving after %ds' % (names[sid], self.params['wait_timeout'])
                                for sid in pending)
                break
            if pending:
                self.sleep(self.params['poll_interval'])
        if failures:
            undone = self._include(node['ID'], [item['id'] for item in moves])
            nodes, services, tasks = self._snapshot()
            self._finish(result, nodes, services, tasks)
            raise RefusedError(
                'Could not move the tasks of %s off %s before draining it: %s. The node was not drained%s.'
                % (', '.join(names[item['id']] for item in moves), node_hostname(node), '; '.join(failures),
                   ' and the constraints keeping them off it were removed (%s)' % ', '.join(undone) if undone else ''),
                result)

    def _include(self, node_id: str, service_ids: list[str]) -> list[str]:
        """Remove the exclusion of the node from the services (those the drain added); their names."""
        done = []
        for service_id in service_ids:
            service = self.api.service(service_id)
            spec = spec_including(service['Spec'], node_id)
            if spec is None:
                continue
            if not self.module.check_mode:
                self.api.update_service(service, spec)
            done.append(service_name(service))
        return done

    def _wait_drained(self, node: dict[str, t.Any], plan: dict[str, t.Any],
                      result: dict[str, t.Any]) -> tuple[list, list, list]:
        start = self.clock()
        while True:
            nodes, services, tasks = self._snapshot()
            left = live_tasks_on_node(node['ID'], services, tasks)
            short = drain_wait_targets(short_services(services, tasks, nodes), plan, self.params['force'])
            result['waited'] = round(self.clock() - start, 1)
            if not left and not short:
                return nodes, services, tasks
            if self.clock() >= self.deadline:
                self._finish(result, nodes, services, tasks)
                raise RefusedError(
                    'Timed out after %ds waiting for the drain of %s: %d task(s) still on the node; services short: %s.%s'
                    % (self.params['wait_timeout'], node_hostname(node), len(left),
                       ', '.join('%(name)s %(running)d/%(replicas)d' % s for s in short) or 'none',
                       ' Not waited for (stranded): %s.' % describe(plan['stranded'])
                       if self.params['force'] and plan['stranded'] else ''),
                    result)
            self.sleep(self.params['poll_interval'])

    # Activate

    def _activate(self, node: dict[str, t.Any], services: list, result: dict[str, t.Any]) -> tuple[list, list, list]:
        if node_availability(node) != 'active':
            result['changed'] = True
            if not self.module.check_mode:
                self.api.update_node(node, dict(node['Spec'], Availability='active'))
                result['node']['availability'] = 'active'
        excluding = [service['ID'] for service in services if node['ID'] in excluded_nodes(service.get('Spec', {}))]
        if excluding:
            result['changed'] = True
            result['restored'] = self._include(node['ID'], excluding)
        return self._snapshot()

    def _finish(self, result: dict[str, t.Any], nodes: list, services: list, tasks: list) -> None:
        result['tasks_after'] = node_totals(services, tasks, nodes)
        result['services'] = service_report(services, tasks, nodes)
        result['services_short'] = short_services(services, tasks, nodes)
        result['tasks_left_on_node'] = len(live_tasks_on_node(result['node']['id'], services, tasks))


def describe(items: list[dict[str, t.Any]]) -> str:
    return '; '.join('%(name)s (%(reason)s)' % item for item in items)


class RefusedError(SwarmResultError):
    """A refusal or failure that carries the partial result."""


def main() -> None:
    swarm_module_main({
        'node': {'type': 'str', 'required': True},
        'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
        'force': {'type': 'bool', 'default': False},
        'primaries': {'type': 'list', 'elements': 'str'},
        'move_first': {'type': 'bool', 'default': True},
        'wait': {'type': 'bool', 'default': True},
        'wait_timeout': {'type': 'int', 'default': 300},
    }, NodeDrainer)


if __name__ == '__main__':
    main()
