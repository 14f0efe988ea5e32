#!/usr/bin/python
# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_rebalance
short_description: Spread Docker Swarm service tasks evenly again after a node comes back
version_added: 1.0.0
description:
  - Swarm does not move running tasks to a node that becomes active again (after a drain, a reboot or
    a join); they stay where they were rescheduled. This module finds the replicated services whose
    running tasks are spread unevenly over their eligible nodes, and spreads them again.
  - With O(method=surge) (the default) it scales each such service up by the tasks its idlest nodes
    lack, waits until they run (healthy, where the service has a health check), and scales it back.
    Swarm places new tasks on the nodes that run the fewest of the service and, scaling down, removes
    tasks from those that run the most. Only the surplus tasks stop, and the service never runs fewer
    than its replicas. Up to three rounds, until the spread is even.
  - With O(method=force) it force-updates them (what C(docker service update --force) does), so the
    scheduler places every task again; with C(order=start-first) and a placement preference, Swarm
    was seen to put the tasks back on the nodes they came from (2+2+0 stayed 2+2+0 on the lab).
  - A spread is uneven when the busiest eligible node runs more than one task more than the idlest, or
    more than ceil(replicas / eligible nodes). Eligible nodes are active and ready, and satisfy the
    placement constraints of the service.
  - Each force update runs with the service's own C(update_config) (parallelism, delay, order,
    failure action); the services are handled one after the other, and with O(wait=true) the module
    waits for each to complete and for the service to run all its replicas before the next. A surge
    always waits (its tasks must run before the scale back), and always scales back, also on failure.
  - Reports the running tasks per node, overall and per service, before and after.
author: "swarmlab maintainers (!UNKNOWN)"
extends_documentation_fragment:
  - swarmlab.cluster.swarm
attributes:
  check_mode:
    description: Reports the services that would be spread again; changes nothing.
  diff_mode:
    description: No diff; the before and after task counts are in the result.
options:
  services:
    description:
      - Names or IDs of the services to consider. All replicated services when empty.
    type: list
    elements: str
    default: []
  method:
    description:
      - How to spread the tasks again, see the description.
    type: str
    choices: [surge, force]
    default: surge
  wait:
    description:
      - Wait for each force update to complete and the service to run all its replicas (a surge
        always waits).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for each service before failing.
    type: int
    default: 300
notes:
  - Placement preferences (spread over a label) and resource reservations are not taken into account
    when judging a spread; the scheduler still honours them when it places the updated tasks.
  - A force update restarts every task of the service, following its update_config; with
    C(order=stop-first) and C(parallelism=1) (the defaults) one replica is down at a time. A surge
    changes the service's replica count for a while; a C(docker stack deploy) meanwhile would set it
    back to the compose file's count, and an interrupted run leaves the higher count, which the
    stack's next deploy restores.
seealso:
  - module: swarmlab.cluster.swarm_node_drain
  - module: community.docker.docker_node
"""

EXAMPLES = r"""
- name: Reactivate worker1
  community.docker.docker_node:
    hostname: worker1
    availability: active

- name: Spread the tasks over every active node again
  swarmlab.cluster.swarm_rebalance:
    wait_timeout: 180
  register: rebalance

- name: Show the per-node task counts
  ansible.builtin.debug:
    msg: "before {{ rebalance.tasks_before }}, after {{ rebalance.tasks_after }}"

- name: Only look at two services, force-updating them, and do not wait
  swarmlab.cluster.swarm_rebalance:
    services: [web, worker]
    method: force
    wait: false
"""

RETURN = r"""
services_updated:
  description: Services spread again, by surge or force update (in check mode, those that would be).
  returned: success
  type: list
  elements: str
  sample: [probe]
unbalanced_before:
  description: The unevenly spread services found, with their running tasks per eligible node.
  returned: success
  type: list
  elements: dict
  sample:
    - name: probe
      id: x1y2z3
      replicas: 4
      counts: {manager1: 2, worker1: 0, worker2: 2}
      reason: "busiest eligible node runs 2 task(s), idlest 0 (even spread: at most 2 per node)"
unbalanced_after:
  description: Services still spread unevenly at the end (same form as RV(unbalanced_before)).
  returned: success
  type: list
  elements: dict
  sample: []
tasks_before:
  description: Running tasks of replicated services per node hostname, before.
  returned: success
  type: dict
  sample: {manager1: 2, worker1: 0, worker2: 2}
tasks_after:
  description: Running tasks of replicated services per node hostname, after (equal to RV(tasks_before) in check mode).
  returned: success
  type: dict
  sample: {manager1: 1, worker1: 2, worker2: 1}
service_tasks_before:
  description: Running tasks per node hostname of each service considered, before.
  returned: success
  type: dict
  sample: {probe: {manager1: 2, worker1: 0, worker2: 2}}
service_tasks_after:
  description: Running tasks per node hostname of each service considered, after.
  returned: success
  type: dict
  sample: {probe: {manager1: 1, worker1: 2, worker2: 1}}
services_short:
  description: Replicated services running fewer tasks than their replicas at the end. Also returned on failure.
  returned: success
  type: list
  elements: dict
  sample: []
method:
  description: The method used (O(method)).
  returned: success
  type: str
  sample: surge
surges:
  description: With O(method=surge), each scale up and back, per service.
  returned: success
  type: list
  elements: dict
  sample: [{service: probe, replicas: 4, surge: 1, round: 1}]
waited:
  description: Seconds spent waiting for the updates.
  returned: success
  type: float
  sample: 12.4
"""

import typing as t

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm import (
    desired_replicas,
    imbalance,
    is_replicated,
    node_totals,
    running_count,
    select_services,
    service_counts,
    service_name,
    short_services,
    update_outcome,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm_api import (
    SwarmResultError,
    SwarmWorker,
    swarm_module_main,
)


class RebalanceError(SwarmResultError):
    """A failure that carries the partial result."""


class Rebalancer(SwarmWorker):
    """Finds uneven services, force-updates them one by one, waits, and reports the spread."""

    def _look(self, result: dict[str, t.Any], suffix: str) -> list[dict[str, t.Any]]:
        """Record the spread under *_<suffix>; return the uneven services."""
        nodes, services, tasks = self.api.nodes(), self.api.services(), self.api.tasks()
        chosen = [service for service in select_services(services, self.params['services'])
                  if is_replicated(service)]
        result['tasks_' + suffix] = node_totals(services, tasks, nodes)
        result['service_tasks_' + suffix] = {service_name(service): service_counts(service, tasks, nodes)
                                             for service in chosen}
        result['services_short'] = short_services(chosen, tasks, nodes)
        uneven = [found for found in (imbalance(service, nodes, tasks) for service in chosen) if found]
        result['unbalanced_' + suffix] = uneven
        return uneven

    def run(self) -> dict[str, t.Any]:
        self.require_manager()
        result: dict[str, t.Any] = {'changed': False, 'services_updated': [], 'waited': 0.0,
                                    'method': self.params['method'], 'surges': []}
        uneven = self._look(result, 'before')
        if not uneven:
            for key in ('tasks', 'service_tasks', 'unbalanced'):
                result[key + '_after'] = result[key + '_before']
            return result
        result['changed'] = True
        if self.module.check_mode:
            result['services_updated'] = [found['name'] for found in uneven]
            for key in ('tasks', 'service_tasks', 'unbalanced'):
                result[key + '_after'] = result[key + '_before']
            return result
        start = self.clock()
        for found in uneven:
            result['services_updated'].append(found['name'])
            if self.params['method'] == 'surge':
                self._surge(found, result)
                continue
            self._force_update(found['id'], result)
            if self.params['wait']:
                self._wait(found['id'], result)
        result['waited'] = round(self.clock() - start, 1)
        self._look(result, 'after')
        return result

    def _surge(self, found: dict[str, t.Any], result: dict[str, t.Any]) -> None:
        """Scale up by what the idlest eligible nodes lack, wait until those tasks run, scale back;
        again while the spread is uneven, three rounds at most."""
        for round_ in (1, 2, 3):
            replicas = found['replicas']
            floor = replicas // len(found['counts'])
            surge = sum(max(0, floor - count) for count in found['counts'].values()) or 1
            result['surges'].append({'service': found['name'], 'replicas': replicas, 'surge': surge, 'round': round_})
            try:
                self._scale(found['id'], replicas + surge)
                self._wait_scaled(found['id'], replicas + surge, result)
            finally:
                self._scale(found['id'], replicas)
            self._wait_scaled(found['id'], replicas, result)
            nodes, services, tasks = self.api.nodes(), self.api.services(), self.api.tasks()
            service = next((s for s in services if s['ID'] == found['id']), None)
            again = imbalance(service, nodes, tasks) if service else None
            if not again:
                return
            found = again

    def _scale(self, service_id: str, replicas: int) -> None:
        service = self.api.service(service_id)
        spec = dict(service['Spec'])
        mode = dict(spec.get('Mode', {}))
        mode['Replicated'] = dict(mode.get('Replicated', {}), Replicas=replicas)
        spec['Mode'] = mode
        self.api.update_service(service, spec)

    def _wait_scaled(self, service_id: str, replicas: int, result: dict[str, t.Any]) -> None:
        """Until the service runs ``replicas`` tasks, Swarm wants no more running, and the tasks a
        scale down removes have stopped (they serve until then: a stop grace period)."""
        start = self.clock()
        while True:
            service, tasks = self.api.service(service_id), self.api.tasks()
            mine = [task for task in tasks if task.get('ServiceID') == service_id]
            wanted = sum(1 for task in mine if task.get('DesiredState') == 'running')
            alive = sum(1 for task in mine if (task.get('Status') or {}).get('State') == 'running')
            running = running_count(service, tasks, self.api.nodes())
            if running >= replicas and wanted <= replicas and alive <= replicas:
                return
            if self.clock() - start >= self.params['wait_timeout']:
                self._look(result, 'after')
                raise RebalanceError('Timed out after %ds waiting for %s to run %d task(s) (running %d, wanted %d); '
                                     'its replica count is set back'
                                     % (self.params['wait_timeout'], service_name(service), replicas, running, wanted),
                                     result)
            self.sleep(self.params['poll_interval'])

    def _force_update(self, service_id: str, result: dict[str, t.Any]) -> None:
        service = self.api.service(service_id)
        spec = dict(service['Spec'])
        template = dict(spec.get('TaskTemplate', {}))
        template['ForceUpdate'] = int(template.get('ForceUpdate', 0) or 0) + 1
        spec['TaskTemplate'] = template
        self._started_before = (service.get('UpdateStatus') or {}).get('StartedAt')
        self.api.update_service(service, spec)

    def _wait(self, service_id: str, result: dict[str, t.Any]) -> None:
        start = self.clock()
        while True:
            service = self.api.service(service_id)
            outcome = update_outcome(service, self._started_before)
            if outcome == 'failed':
                self._look(result, 'after')
                status = service.get('UpdateStatus') or {}
                raise RebalanceError('The force update of %s ended as %s: %s'
                                     % (service_name(service), status.get('State'), status.get('Message', '')), result)
            if outcome == 'completed':
                running = running_count(service, self.api.tasks(), self.api.nodes())
                if running >= desired_replicas(service):
                    return
            if self.clock() - start >= self.params['wait_timeout']:
                self._look(result, 'after')
                raise RebalanceError(
                    'Timed out after %ds waiting for the force update of %s (update %s, services short: %s).'
                    % (self.params['wait_timeout'], service_name(service), outcome,
                       ', '.join('%(name)s %(running)d/%(replicas)d' % s for s in result['services_short']) or 'none'),
                    result)
            self.sleep(self.params['poll_interval'])


def main() -> None:
    swarm_module_main({
        'services': {'type': 'list', 'elements': 'str', 'default': []},
        'method': {'type': 'str', 'choices': ['surge', 'force'], 'default': 'surge'},
        'wait': {'type': 'bool', 'default': True},
        'wait_timeout': {'type': 'int', 'default': 300},
    }, Rebalancer)


if __name__ == '__main__':
    main()
