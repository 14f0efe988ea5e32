# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rebalancer against a scripted stand-in for the Docker API (the daemon is the only double; the
real path is exercised by the molecule scenario ``swarm``)."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.swarmlab.cluster.plugins.modules.swarm_rebalance import RebalanceError, Rebalancer

from ansible_collections.swarmlab.cluster.tests.unit.plugins.module_utils.test__swarm import node, service, task
from ansible_collections.swarmlab.cluster.tests.unit.plugins.modules.test_swarm_node_drain import Clock, FakeModule


class FakeApi:
    """A Swarm whose force update of a service moves its tasks to ``after`` once ``polls`` inspects passed."""

    def __init__(self, services, before, after, final_state='completed', polls=2):
        self._nodes = [node('m1', 'manager1', role='manager'), node('w1', 'worker1'), node('w2', 'worker2')]
        self._services = services
        self._tasks = before
        self._after = after
        self.final_state = final_state
        self.polls = polls
        self.updates = []

    def swarm_manager(self):
        return True

    def nodes(self):
        return self._nodes

    def services(self):
        return self._services

    def tasks(self):
        return self._tasks

    def service(self, service_id):
        svc = next(s for s in self._services if s['ID'] == service_id)
        if self.updates:
            self.polls -= 1
            if self.polls <= 0:
                svc['UpdateStatus'] = {'State': self.final_state, 'StartedAt': 'new', 'Message': 'update paused due to failure'}
                self._tasks = self._after
            else:
                svc['UpdateStatus'] = {'State': 'updating', 'StartedAt': 'new'}
        return copy.deepcopy(svc)

    def update_service(self, svc, spec):
        self.updates.append((svc['ID'], spec))


UNEVEN = [task('s', 'm1'), task('s', 'm1'), task('s', 'w2'), task('s', 'w2')]
EVEN = [task('s', 'm1'), task('s', 'w1'), task('s', 'w1'), task('s', 'w2')]


def rebalancer(api, **params):
    clock = Clock()
    module = FakeModule(**params)
    module.params = {'services': [], 'method': 'surge', 'wait': True, 'wait_timeout': 10, 'poll_interval': 1}
    module.params.update(params)
    return Rebalancer(module, api, sleep=clock.sleep, clock=clock)


def uneven_service():
    svc = service('s')
    svc['Spec']['TaskTemplate']['ForceUpdate'] = 3
    svc['Spec']['UpdateConfig'] = {'Parallelism': 2, 'Order': 'start-first'}
    svc['UpdateStatus'] = {'State': 'completed', 'StartedAt': 'old'}
    return svc


def test_force_updates_the_uneven_service_with_its_own_spec():
    api = FakeApi([uneven_service()], UNEVEN, EVEN)
    result = rebalancer(api, method='force').run()
    assert result['changed'] is True
    assert result['services_updated'] == ['s']
    sent = api.updates[0][1]
    assert sent['TaskTemplate']['ForceUpdate'] == 4
    assert sent['UpdateConfig'] == {'Parallelism': 2, 'Order': 'start-first'}
    assert result['tasks_before'] == {'manager1': 2, 'worker1': 0, 'worker2': 2}
    assert result['tasks_after'] == {'manager1': 1, 'worker1': 2, 'worker2': 1}
    assert result['service_tasks_after'] == {'s': {'manager1': 1, 'worker1': 2, 'worker2': 1}}
    assert result['unbalanced_before'][0]['name'] == 's'
    assert result['unbalanced_after'] == []


def test_even_spread_changes_nothing():
    api = FakeApi([uneven_service()], EVEN, EVEN)
    result = rebalancer(api).run()
    assert result['changed'] is False
    assert api.updates == []
    assert result['tasks_after'] == result['tasks_before']


def test_check_mode():
    api = FakeApi([uneven_service()], UNEVEN, EVEN)
    result = rebalancer(api, check_mode=True).run()
    assert result['changed'] is True
    assert result['services_updated'] == ['s']
    assert api.updates == []


def test_failed_update_is_reported():
    api = FakeApi([uneven_service()], UNEVEN, UNEVEN, final_state='paused')
    with pytest.raises(RebalanceError, match='ended as paused: update paused due to failure'):
        rebalancer(api, method='force').run()


def test_only_the_named_services():
    other = service('o', name='other')
    api = FakeApi([uneven_service(), other], UNEVEN + [task('o', 'm1')] * 4,
                  UNEVEN + [task('o', 'm1'), task('o', 'w1'), task('o', 'w1'), task('o', 'w2')])
    result = rebalancer(api, services=['other'], method='force').run()
    assert result['services_updated'] == ['other']
    assert api.updates[0][0] == 'o'
    assert result['unbalanced_after'] == []
    assert list(result['service_tasks_after']) == ['other']


class ScalingApi(FakeApi):
    """A Swarm that, as swarmkit does, places a scaled-up service's new tasks on the eligible nodes
    running the fewest of it and, scaling down, removes tasks from those running the most."""

    def __init__(self, services, tasks, stuck=False, grace=False):
        super().__init__(services, tasks, tasks)
        self.stuck = stuck  # new tasks never start (no room anywhere)
        self.grace = grace  # a removed task keeps running (its stop grace period) until the next sleep
        self.stopping = []

    def tasks(self):
        return self._tasks + self.stopping

    def service(self, service_id):
        return copy.deepcopy(next(s for s in self._services if s['ID'] == service_id))

    def update_service(self, svc, spec):
        self.updates.append((svc['ID'], copy.deepcopy(spec)))
        live = next(s for s in self._services if s['ID'] == svc['ID'])
        live['Spec'] = copy.deepcopy(spec)
        want = spec['Mode']['Replicated']['Replicas']
        mine = [t for t in self._tasks if t['ServiceID'] == svc['ID']]
        others = [t for t in self._tasks if t['ServiceID'] != svc['ID']]
        per_node = {n['ID']: [t for t in mine if t['NodeID'] == n['ID']] for n in self._nodes}
        while len(mine) < want:
            idlest = min(per_node, key=lambda n: len(per_node[n]))
            new = task(svc['ID'], idlest)
            if self.stuck:
                new['Status']['State'] = 'pending'
            per_node[idlest].append(new)
            mine.append(new)
        while len(mine) > want:
            busiest = max(per_node, key=lambda n: len(per_node[n]))
            removed = per_node[busiest].pop()
            mine.remove(removed)
            if self.grace:
                self.stopping.append(dict(removed, DesiredState='shutdown'))
        self._tasks = others + mine


def test_surge_scales_up_by_what_the_idle_node_lacks_and_back():
    # What the lab showed: 4 web tasks 2+2 on the workers, manager1 back from maintenance with none;
    # a force update put them back 2+2+0.
    api = ScalingApi([uneven_service()], [task('s', 'w1'), task('s', 'w1'), task('s', 'w2'), task('s', 'w2')])
    result = rebalancer(api).run()
    assert result['changed'] is True and result['method'] == 'surge'
    assert result['services_updated'] == ['s']
    assert [update[1]['Mode']['Replicated']['Replicas'] for update in api.updates] == [5, 4]
    assert api.updates[0][1]['TaskTemplate']['ForceUpdate'] == 3  # no task restarted
    assert result['surges'] == [{'service': 's', 'replicas': 4, 'surge': 1, 'round': 1}]
    after = result['service_tasks_after']['s']
    assert after['manager1'] == 1 and max(after.values()) - min(after.values()) <= 1, after
    assert result['unbalanced_after'] == []


def test_surge_that_cannot_run_is_scaled_back_and_fails():
    api = ScalingApi([uneven_service()], [task('s', 'w1'), task('s', 'w1'), task('s', 'w2'), task('s', 'w2')], stuck=True)
    with pytest.raises(RebalanceError, match='waiting for s to run 5 task.*replica count is set back'):
        rebalancer(api).run()
    assert [update[1]['Mode']['Replicated']['Replicas'] for update in api.updates] == [5, 4]


def test_surge_waits_until_the_removed_task_has_stopped():
    # The molecule swarm scenario saw 5/4 right after the activate: the task the scale down removed
    # was still in its stop grace period when the module returned.
    api = ScalingApi([uneven_service()], [task('s', 'w1'), task('s', 'w1'), task('s', 'w2'), task('s', 'w2')],
                     grace=True)
    clock = Clock()

    def sleep(seconds):
        clock.sleep(seconds)
        api.stopping = []  # the grace period ends while the module waits

    module = FakeModule()
    module.params = {'services': [], 'method': 'surge', 'wait': True, 'wait_timeout': 10, 'poll_interval': 1}
    Rebalancer(module, api, sleep=sleep, clock=clock).run()
    assert api.stopping == [] and clock.now > 0
