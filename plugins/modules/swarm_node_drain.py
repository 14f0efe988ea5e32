#!/usr/bin/python
# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_node_drain
short_description: Drain a Docker Swarm node and wait until its work runs elsewhere
version_added: 1.0.0
description:
  - Sets a Swarm node's availability to C(drain), then waits until no task of any replicated service
    still occupies the node and every replicated service runs its desired number of replicas again.
  - Before changing anything it checks that the other nodes can take the work, and refuses to drain
    when they cannot, unless O(force=true). Refused are the last active node, a node that is the only
    active node satisfying a service's placement constraints, and a drain after which
    C(max_replicas_per_node) leaves too few slots for a service's replicas. CPU and memory
    reservations are not checked.
  - A service that cannot run on any other node once this one is drained (for example one pinned with
    C(node.hostname == <node>), or any service of the last active node) is I(stranded). Without
    O(force) it makes the module refuse. With O(force=true) the module drains anyway, reports the
    stranded services in RV(stranded) with the reason, and does not wait for them to get their replicas
    back (they cannot while the node is drained); it still waits for every other replicated service.
  - Reports the running tasks of replicated services per node before and after the drain, and the
    services still short of their replica count.
  - To set a node back to active use M(community.docker.docker_node), then M(swarmlab.cluster.swarm_rebalance);
    Swarm does not move tasks back to a reactivated node by itself.
author: "swarmlab maintainers (!UNKNOWN)"
extends_documentation_fragment:
  - swarmlab.cluster.swarm
attributes:
  check_mode:
    support: full
    description: Checks capacity and reports whether the node would change; does not wait.
  diff_mode:
    support: none
    description: No diff; the before and after task counts are in the result.
options:
  node:
    description:
      - Hostname (as registered in Swarm) or ID of the node to drain.
    type: str
    required: true
  force:
    description:
      - Drain even when the capacity check finds that the other nodes cannot take the work.
      - The problems found are still returned and raised as warnings.
      - Services stranded by the drain (see RV(stranded)) are then left out of the wait.
    type: bool
    default: false
  wait:
    description:
      - Wait until the node runs no task of a replicated service and every replicated service is back at
        its replica count (with O(force=true), every one but the stranded ones).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait before failing with the services still short and the tasks still on the node.
    type: int
    default: 300
notes:
  - The node's own update is honest in check mode; the wait is skipped there.
  - Global services are not waited for; their task on a drained node just stops.
  - A service that only loses room because of C(max_replicas_per_node) is not stranded (it still runs
    elsewhere); with O(force=true) the wait for it times out unless its replicas fit again.
seealso:
  - module: swarmlab.cluster.swarm_rebalance
  - module: community.docker.docker_node
"""

EXAMPLES = r"""
- name: Drain worker1 and wait until its tasks run elsewhere
  swarmlab.cluster.swarm_node_drain:
    node: worker1
    wait_timeout: 180
  delegate_to: manager1

- name: Drain even if the other nodes cannot hold every replica
  swarmlab.cluster.swarm_node_drain:
    node: worker2
    force: true
"""

RETURN = r"""
node:
  description: The node drained.
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
  description: Why the other nodes could not take the work; empty when they can. Also returned on refusal.
  returned: success, and with the failure when refused or timed out
  type: list
  elements: str
  sample: ["service probe: no other active node satisfies its placement constraints ['node.hostname==worker1']."]
stranded:
  description:
    - Replicated services that cannot run on any node but this one, so stay short of their replicas
      while it is drained, each with the reason. Computed before the drain.
    - With O(force=true) they are not waited for; without it they are among the reasons of a refusal.
  returned: success, and with the failure when refused or timed out
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
      sample: swarmlab_sentinel-worker1
    reason:
      description: Why it cannot run elsewhere.
      type: str
      sample: "no node but worker1 satisfies its placement constraints ['node.hostname==worker1']"
  sample: [{name: swarmlab_sentinel-worker1, reason: "no node but worker1 satisfies its placement constraints ['node.hostname==worker1']"}]
tasks_before:
  description: Running tasks of replicated services per node hostname, before the drain.
  returned: success, and with the failure when refused or timed out
  type: dict
  sample: {manager1: 1, worker1: 2, worker2: 1}
tasks_after:
  description: Running tasks of replicated services per node hostname, after the wait (before it in check mode or without wait).
  returned: success, and with the failure when refused or timed out
  type: dict
  sample: {manager1: 2, worker1: 0, worker2: 2}
services:
  description: Every replicated service with its desired and running replica counts, after the wait.
  returned: success, and with the failure when refused or timed out
  type: list
  elements: dict
  sample: [{name: probe, id: x1y2z3, replicas: 4, running: 4}]
services_short:
  description:
    - Replicated services running fewer tasks than their replicas at the end, stranded ones included. Also returned on timeout.
  returned: success, and with the failure when refused or timed out
  type: list
  elements: dict
  sample: []
tasks_left_on_node:
  description: Number of tasks of replicated services still occupying the node at the end. Also returned on timeout.
  returned: success, and with the failure when refused or timed out
  type: int
  sample: 0
waited:
  description: Seconds spent waiting.
  returned: success, and with the failure when refused or timed out
  type: float
  sample: 6.2
"""

import time
import traceback
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm import (
    SwarmLogicError,
    drain_problems,
    find_node,
    live_tasks_on_node,
    node_availability,
    node_hostname,
    node_totals,
    service_report,
    short_services,
    stranded_services,
    wait_targets,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm_api import (
    SWARM_API_ARGUMENT_SPEC,
    DockerApiError,
    SwarmApi,
)


class NodeDrainer:
    """Checks, drains and waits; the module only builds it and reports what it returns."""

    def __init__(self, module: t.Any, api: t.Any, sleep: t.Callable[[float], None] = time.sleep,
                 clock: t.Callable[[], float] = time.monotonic) -> None:
        self.module = module
        self.api = api
        self.params = module.params
        self.sleep = sleep
        self.clock = clock

    def _snapshot(self) -> tuple[list, list, list]:
        return self.api.nodes(), self.api.services(), self.api.tasks()

    def run(self) -> dict[str, t.Any]:
        if not self.api.swarm_manager():
            raise SwarmLogicError('This host is not a Swarm manager; run the module on (or delegate it to) a manager.')
        nodes, services, tasks = self._snapshot()
        node = find_node(nodes, self.params['node'])
        before = node_availability(node)
        result: dict[str, t.Any] = {
            'changed': before != 'drain',
            'node': {'id': node['ID'], 'hostname': node_hostname(node), 'role': node['Spec'].get('Role', ''),
                     'availability_before': before, 'availability': before},
            'tasks_before': node_totals(services, tasks, nodes),
            'capacity_problems': [],
            'stranded': stranded_services(node, nodes, services, tasks),
            'waited': 0.0,
        }
        if before != 'drain':
            problems = drain_problems(node, nodes, services, tasks)
            result['capacity_problems'] = problems
            if problems and not self.params['force']:
                self._finish(result, nodes, services, tasks)
                raise RefusedError('Refusing to drain %s: %s Set force=true to drain anyway.'
                                   % (node_hostname(node), ' '.join(problems)), result)
            for problem in problems:
                self.module.warn('Draining %s although %s' % (node_hostname(node), problem))
            already_short = short_services(services, tasks, nodes)
            if already_short:
                self.module.warn('Services already short before the drain: %s'
                                 % ', '.join('%(name)s %(running)d/%(replicas)d' % s for s in already_short))
            if not self.module.check_mode:
                spec = dict(node['Spec'], Availability='drain')
                self.api.update_node(node, spec)
                result['node']['availability'] = 'drain'
        if self.params['force'] and result['stranded']:
            self.module.warn('Not waiting for the services that cannot run anywhere while %s is drained: %s.'
                             % (node_hostname(node), describe_stranded(result['stranded'])))
        if self.params['wait'] and not self.module.check_mode:
            nodes, services, tasks = self._wait(node, result)
        self._finish(result, nodes, services, tasks)
        return result

    def _finish(self, result: dict[str, t.Any], nodes: list, services: list, tasks: list) -> None:
        result['tasks_after'] = node_totals(services, tasks, nodes)
        result['services'] = service_report(services, tasks, nodes)
        result['services_short'] = short_services(services, tasks, nodes)
        result['tasks_left_on_node'] = len(live_tasks_on_node(result['node']['id'], services, tasks))

    def _wait(self, node: dict[str, t.Any], result: dict[str, t.Any]) -> tuple[list, list, list]:
        start = self.clock()
        while True:
            nodes, services, tasks = self._snapshot()
            left = live_tasks_on_node(node['ID'], services, tasks)
            short = wait_targets(short_services(services, tasks, nodes), result['stranded'], self.params['force'])
            result['waited'] = round(self.clock() - start, 1)
            if not left and not short:
                return nodes, services, tasks
            if self.clock() - start >= self.params['wait_timeout']:
                self._finish(result, nodes, services, tasks)
                raise RefusedError(
                    'Timed out after %ds waiting for the drain of %s: %d task(s) still on the node; services short: %s.%s'
                    % (self.params['wait_timeout'], node_hostname(node), len(left),
                       ', '.join('%(name)s %(running)d/%(replicas)d' % s for s in short) or 'none',
                       ' Not waited for (stranded): %s.' % describe_stranded(result['stranded'])
                       if self.params['force'] and result['stranded'] else ''),
                    result)
            self.sleep(self.params['poll_interval'])


def describe_stranded(stranded: list[dict[str, t.Any]]) -> str:
    return '; '.join('%(name)s (%(reason)s)' % item for item in stranded)


class RefusedError(Exception):
    """A failure that carries the partial result, so the user sees what was observed."""

    def __init__(self, message: str, result: dict[str, t.Any]) -> None:
        super().__init__(message)
        self.result = result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            'node': {'type': 'str', 'required': True},
            'force': {'type': 'bool', 'default': False},
            'wait': {'type': 'bool', 'default': True},
            'wait_timeout': {'type': 'int', 'default': 300},
            **SWARM_API_ARGUMENT_SPEC,
        },
        supports_check_mode=True,
    )
    try:
        api = SwarmApi(module.params['docker_host'], module.params['api_timeout'])
        result = NodeDrainer(module, api).run()
    except RefusedError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    except (DockerApiError, SwarmLogicError) as exc:
        module.fail_json(msg=str(exc), exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == '__main__':
    main()
