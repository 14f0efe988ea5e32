#!/usr/bin/python
# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_rollout
short_description: Wait for the rolling updates a Docker stack deploy started, and fail when Swarm rolled one back
version_added: 2.0.0
description:
  - A C(docker stack deploy) returns as soon as Swarm has the new service specs; the rolling updates
    run afterwards, and a service with C(update_config.failure_action=rollback) goes back to its
    previous spec by itself when a new task fails (an image that cannot be pulled, a task that never
    becomes healthy). Tasks of the previous version keep running meanwhile (with C(order=start-first)),
    so waiting for running tasks alone reports such a deploy as a success.
  - Without O(since) the module only reports the update state of the stack's services in RV(services).
    Call it so before the deploy, and pass that result as O(since) to a call after the deploy.
  - With O(since) it waits until the update of every service whose spec changed since then has ended,
    and reports each in RV(rollouts) as C(completed), C(rolled_back), C(paused), C(no_update) (the spec
    changed in a way that replaces no task), or C(created). It fails, when O(fail_on_rollback=true),
    if Swarm rolled an update back or paused it, or an update did not end within O(wait_timeout), with a
    message naming the service, the image it tried, Swarm's update messages and the errors of the
    tasks that failed; Swarm has then left the previous version running.
  - It changes nothing (C(changed) is always false).
author: "swarmlab maintainers (!UNKNOWN)"
extends_documentation_fragment:
  - swarmlab.cluster.swarm
attributes:
  check_mode:
    description: Reports the state and the outcomes as they stand; does not wait.
  diff_mode:
    description: Changes nothing.
options:
  stack:
    description:
      - The stack (the services labelled C(com.docker.stack.namespace=<stack>)).
    type: str
    required: true
  services:
    description:
      - Only these services of the stack, by full (C(<stack>_web)) or short (C(web)) name. All when empty.
    type: list
    elements: str
    default: []
  since:
    description:
      - The RV(services) of a call before the deploy. Without it the module only reports.
    type: dict
  fail_on_rollback:
    description:
      - Fail when Swarm rolled back or paused an update, or an update did not end in time.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the updates to end.
    type: int
    default: 600
notes:
  - Which tasks a rollback leaves running, and when Swarm counts a new task as failed, follow from the
    service's C(update_config) (C(order), C(monitor), C(max_failure_ratio)) and its health check; see
    the collection's docs/stack.md.
seealso:
  - module: swarmlab.cluster.swarm_node_drain
  - module: community.docker.docker_stack
"""

EXAMPLES = r"""
- name: Note the services' update state before the deploy
  swarmlab.cluster.swarm_rollout:
    stack: swarmlab
  register: before

- name: Deploy
  community.docker.docker_stack:
    name: swarmlab
    compose: [/opt/swarmlab/stack/docker-compose.swarm.yml]

- name: Wait for the rolling updates; fail if Swarm rolled one back
  swarmlab.cluster.swarm_rollout:
    stack: swarmlab
    since: "{{ before.services }}"
  register: rollout
"""

RETURN = r"""
services:
  description: The update state of each service of the stack at the end (pass it as O(since) to a later call).
  returned: always
  type: dict
  sample:
    swarmlab_web: {version: 1204, image: "10.0.0.2:5000/swarmlab/counter:1.0.0-6b3d9845be03",
                   update_started_at: "2026-11-30T03:12:44.123456789Z", update_state: completed}
rollouts:
  description: The services whose spec changed since O(since), each with how its update ended.
  returned: when O(since) is given
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
      sample: swarmlab_web
    outcome:
      description:
        - C(completed), C(rolled_back), C(paused), C(no_update), C(created); C(pending), C(updating) or
          C(rolling_back) when it did not end in time (or in check mode).
      type: str
      sample: rolled_back
    image:
      description: The image of its spec at the end (after a rollback, the previous one).
      type: str
      sample: 10.0.0.2:5000/swarmlab/counter:1.0.0-6b3d9845be03
    image_before:
      description: The image of its spec in O(since).
      type: str
      sample: 10.0.0.2:5000/swarmlab/counter:1.0.0-6b3d9845be03
    image_attempted:
      description: The image the update tried to roll out.
      type: str
      sample: 10.0.0.2:5000/swarmlab/counter:does-not-exist
    update_state:
      description: UpdateStatus.State at the end (null when Swarm started no update).
      type: str
      sample: rollback_completed
    messages:
      description: The distinct UpdateStatus messages seen while waiting.
      type: list
      elements: str
      sample: ["update rolled back due to failure or early termination of task 6x2c", "rollback completed"]
    task_errors:
      description: "Why tasks created during the update did not run, oldest first: C(<image> on <node>: <state>: <error>)."
      type: list
      elements: str
      sample: ["10.0.0.2:5000/swarmlab/counter:does-not-exist on worker1: rejected: No such image: 10.0.0.2:5000/swarmlab/counter:does-not-exist"]
    running:
      description: Its running tasks at the end (the collection's convergence rule).
      type: int
      sample: 4
    desired:
      description: Its desired tasks at the end.
      type: int
      sample: 4
    seconds:
      description: Seconds from the start of the wait until the outcome was known.
      type: float
      sample: 41.7
failed_services:
  description: Names of the services whose update Swarm rolled back or paused, or that did not end in time.
  returned: when O(since) is given
  type: list
  elements: str
  sample: [swarmlab_web]
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 41.7
"""

import typing as t

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm import (
    ROLLOUT_FAILED,
    ROLLOUT_RUNNING,
    api_time,
    desired_count,
    rollout_outcome,
    rollout_task_errors,
    running_count,
    service_image,
    service_name,
    update_snapshot,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm_api import (
    SwarmResultError,
    SwarmWorker,
    swarm_module_main,
)

STACK_LABEL = 'com.docker.stack.namespace'
# Swarm starts an update within a moment of the spec change. A service that still reports none after
# this many seconds replaces no task (its tasks' specs differ from the service's only in a way the
# comparison here cannot see).
SETTLE = 15


class RolloutError(SwarmResultError):
    """A failure that carries the result."""


class RolloutWatcher(SwarmWorker):
    """Reads the stack's services until every update started since the snapshot has ended."""

    def _services(self) -> list[dict[str, t.Any]]:
        stack = self.params['stack']
        wanted = set(self.params['services'])
        found = [svc for svc in self.api.services()
                 if (svc.get('Spec', {}).get('Labels') or {}).get(STACK_LABEL) == stack]
        if wanted:
            found = [svc for svc in found if service_name(svc) in wanted
                     or service_name(svc)[len(stack) + 1:] in wanted]
        return sorted(found, key=service_name)

    def run(self) -> dict[str, t.Any]:
        self.require_manager()
        start = self.clock()
        services = self._services()
        result: dict[str, t.Any] = {'changed': False, 'waited': 0.0,
                                    'services': {service_name(svc): update_snapshot(svc) for svc in services}}
        since = self.params['since']
        if since is None:
            return result
        seen: dict[str, dict[str, t.Any]] = {}
        while True:
            nodes, tasks = self.api.nodes(), self.api.tasks()
            outcomes = {}
            for svc in services:
                name = service_name(svc)
                outcome = rollout_outcome(svc, since.get(name), tasks)
                if outcome == 'pending' and self.clock() - start >= SETTLE:
                    outcome = 'no_update'
                outcomes[name] = outcome
                if outcome == 'unchanged':
                    continue
                entry = seen.setdefault(name, {'first_image': service_image(svc.get('Spec', {})), 'messages': []})
                message = (svc.get('UpdateStatus') or {}).get('Message')
                if message and message not in entry['messages']:
                    entry['messages'].append(message)
                if outcome not in ROLLOUT_RUNNING and 'seconds' not in entry:
                    entry['seconds'] = round(self.clock() - start, 1)
            running = [name for name, outcome in outcomes.items() if outcome in ROLLOUT_RUNNING]
            if not running or self.module.check_mode or self.clock() - start >= self.params['wait_timeout']:
                break
            self.sleep(self.params['poll_interval'])
            services = self._services()
        result['waited'] = round(self.clock() - start, 1)
        result['services'] = {service_name(svc): update_snapshot(svc) for svc in services}
        result['rollouts'] = [self._report(svc, outcomes[service_name(svc)], since.get(service_name(svc)),
                                           seen[service_name(svc)], tasks, nodes)
                              for svc in services if outcomes[service_name(svc)] != 'unchanged']
        result['failed_services'] = [
            item['name'] for item in result['rollouts']
            if item['outcome'] in ROLLOUT_FAILED or (item['outcome'] in ROLLOUT_RUNNING and not self.module.check_mode)]
        if result['failed_services'] and self.params['fail_on_rollback']:
            raise RolloutError(' '.join(self._explain(item) for item in result['rollouts']
                                        if item['name'] in result['failed_services']), result)
        return result

    def _report(self, svc: dict[str, t.Any], outcome: str, before: dict[str, t.Any] | None,
                seen: dict[str, t.Any], tasks: list, nodes: list) -> dict[str, t.Any]:
        status = svc.get('UpdateStatus') or {}
        image = service_image(svc.get('Spec', {}))
        image_before = (before or {}).get('image')
        started = api_time(status.get('StartedAt'))
        errors = rollout_task_errors(svc, tasks, nodes, started - 1 if started else 0.0) if status else []
        attempted = seen['first_image']
        if outcome in ROLLOUT_FAILED | {'rolling_back'} and attempted in (image, image_before):
            # Rolled back before the first look: the new image is the one of the tasks made since.
            others = [task for task in tasks if task.get('ServiceID') == svc['ID'] and started
                      and api_time(task.get('CreatedAt')) >= started - 1
                      and service_image(task.get('Spec', {})) != image]
            attempted = service_image(others[-1].get('Spec', {})) if others else attempted
        return {'name': service_name(svc), 'outcome': outcome, 'image': image, 'image_before': image_before,
                'image_attempted': attempted, 'update_state': status.get('State') or None,
                'messages': seen['messages'], 'task_errors': errors[-5:],
                'running': running_count(svc, tasks, nodes), 'desired': desired_count(svc, tasks, nodes) or 0,
                'seconds': seen.get('seconds')}

    def _explain(self, item: dict[str, t.Any]) -> str:
        what = {'rolled_back': 'Swarm rolled back', 'paused': 'Swarm paused', 'pending': 'Swarm has not started',
                'rolling_back': 'Swarm is still rolling back', 'updating': 'Swarm has not finished'}[item['outcome']]
        text = '%s: %s the update to image %s after %ss (%s).' % (
            item['name'], what, item['image_attempted'],
            item['seconds'] if item['seconds'] is not None else self.params['wait_timeout'],
            '; '.join(item['messages']) or 'no update message')
        text += ' Task errors: %s.' % ('; '.join(item['task_errors']) if item['task_errors'] else 'none reported')
        if item['outcome'] == 'rolled_back':
            text += ' It runs the previous image %s again (%d/%d running).' % (
                item['image'], item['running'], item['desired'])
        else:
            text += ' Now %d/%d running.' % (item['running'], item['desired'])
        return text


def main() -> None:
    swarm_module_main({
        'stack': {'type': 'str', 'required': True},
        'services': {'type': 'list', 'elements': 'str', 'default': []},
        'since': {'type': 'dict'},
        'fail_on_rollback': {'type': 'bool', 'default': True},
        'wait_timeout': {'type': 'int', 'default': 600},
    }, RolloutWatcher)


if __name__ == '__main__':
    main()
