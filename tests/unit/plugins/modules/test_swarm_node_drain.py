# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""NodeDrainer against a scripted stand-in for the Docker API.

The stand-in replaces only the daemon: the real path (a 3-node Swarm) is exercised by the molecule
scenario ``swarm`` through playbooks/node_maintenance.yml.
"""

from __future__ import annotations

import pytest

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm import SwarmLogicError
from ansible_collections.swarmlab.cluster.plugins.modules.swarm_node_drain import NodeDrainer, RefusedError

from ansible_collections.swarmlab.cluster.tests.unit.plugins.module_utils.test__swarm import node, service, task


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.check_mode = check_mode
        self.params = {'node': 'worker1', 'force': False, 'wait': True, 'wait_timeout': 10, 'poll_interval': 1}
        self.params.update(params)
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)


class FakeApi:
    """Nodes and services as given; tasks() walks through the given snapshots, then stays on the last."""

    def __init__(self, nodes, services, task_snapshots, manager=True):
        self._nodes = nodes
        self._services = services
        self._snapshots = list(task_snapshots)
        self.manager = manager
        self.node_updates = []

    def swarm_manager(self):
        return self.manager

    def nodes(self):
        return self._nodes

    def services(self):
        return self._services

    def tasks(self):
        return self._snapshots.pop(0) if len(self._snapshots) > 1 else self._snapshots[0]

    def update_node(self, node_, spec):
        self.node_updates.append((node_['ID'], spec))
        node_['Spec'] = spec


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def make_nodes():
    return [node('m1', 'manager1', role='manager'), node('w1', 'worker1'), node('w2', 'worker2')]


BEFORE = [task('s', 'm1'), task('s', 'w1'), task('s', 'w1'), task('s', 'w2')]
MOVING = [task('s', 'm1'), task('s', 'w1', state='running', desired='shutdown'), task('s', 'w2'), task('s', 'w2')]
AFTER = [task('s', 'm1'), task('s', 'm1'), task('s', 'w2'), task('s', 'w2'),
         task('s', 'w1', state='shutdown', desired='shutdown'), task('s', 'w1', state='shutdown', desired='shutdown')]


def drainer(api, **params):
    clock = Clock()
    return NodeDrainer(FakeModule(**params), api, sleep=clock.sleep, clock=clock)


def test_drain_waits_until_the_work_moved():
    api = FakeApi(make_nodes(), [service('s')], [BEFORE, MOVING, AFTER])
    result = drainer(api).run()
    assert result['changed'] is True
    assert api.node_updates[0][0] == 'w1'
    assert api.node_updates[0][1]['Availability'] == 'drain'
    assert api.node_updates[0][1]['Role'] == 'worker'
    assert result['node']['availability_before'] == 'active'
    assert result['node']['availability'] == 'drain'
    assert result['tasks_before'] == {'manager1': 1, 'worker1': 2, 'worker2': 1}
    assert result['tasks_after'] == {'manager1': 2, 'worker1': 0, 'worker2': 2}
    assert result['services_short'] == []
    assert result['tasks_left_on_node'] == 0
    assert result['waited'] == 1.0


def test_already_drained_is_not_a_change():
    nodes = make_nodes()
    nodes[1]['Spec']['Availability'] = 'drain'
    api = FakeApi(nodes, [service('s')], [AFTER])
    result = drainer(api).run()
    assert result['changed'] is False
    assert api.node_updates == []


def test_check_mode_reports_the_change_and_updates_nothing():
    api = FakeApi(make_nodes(), [service('s')], [BEFORE])
    result = drainer(api, check_mode=True).run()
    assert result['changed'] is True
    assert api.node_updates == []
    assert result['node']['availability'] == 'active'


def test_refuses_the_last_active_node():
    nodes = make_nodes()
    nodes[0]['Spec']['Availability'] = 'drain'
    nodes[2]['Spec']['Availability'] = 'drain'
    api = FakeApi(nodes, [service('s')], [[task('s', 'w1')] * 4])
    with pytest.raises(RefusedError, match='Refusing to drain worker1: worker1 is the last active node') as exc:
        drainer(api).run()
    assert api.node_updates == []
    assert exc.value.result['capacity_problems']


def test_force_drains_anyway_and_warns():
    svc = service('pinned', replicas=1, constraints=['node.hostname==worker1'])
    pending = [task('pinned', '', state='pending')]
    api = FakeApi(make_nodes(), [svc], [[task('pinned', 'w1')], pending])
    fake = drainer(api, force=True, wait=False)
    result = fake.run()
    assert result['changed'] is True
    assert api.node_updates
    assert any('pinned' in warning for warning in fake.module.warnings)


PINNED = ['node.hostname==worker1']


def pinned_snapshots():
    """s moves off worker1; pinned (only worker1 fits) stops there and stays pending."""
    before = BEFORE + [task('pinned', 'w1')]
    after = AFTER + [task('pinned', 'w1', state='shutdown', desired='shutdown'), task('pinned', '', state='pending')]
    return [before, before, after]


def test_refusal_names_the_stranded_service_and_changes_nothing():
    api = FakeApi(make_nodes(), [service('s'), service('pinned', replicas=1, constraints=PINNED)], pinned_snapshots())
    with pytest.raises(RefusedError, match=r"Refusing to drain worker1: service pinned: no other active node") as exc:
        drainer(api).run()
    assert api.node_updates == []
    assert exc.value.result['stranded'] == [
        {'name': 'pinned', 'reason': "no node but worker1 satisfies its placement constraints ['node.hostname==worker1']"}]


def test_force_does_not_wait_for_the_stranded_service():
    api = FakeApi(make_nodes(), [service('s'), service('pinned', replicas=1, constraints=PINNED)], pinned_snapshots())
    fake = drainer(api, force=True)
    result = fake.run()
    assert result['changed'] is True
    assert result['node']['availability'] == 'drain'
    assert [s['name'] for s in result['stranded']] == ['pinned']
    assert result['services_short'] == [{'name': 'pinned', 'replicas': 1, 'running': 0}]
    assert result['tasks_left_on_node'] == 0
    assert result['tasks_after'] == {'manager1': 2, 'worker1': 0, 'worker2': 2}
    assert result['waited'] == 1.0
    assert any('Not waiting' in w and 'pinned' in w for w in fake.module.warnings)


def test_force_still_waits_for_the_other_services():
    stuck = [task('s', 'm1'), task('s', 'm1'), task('s', 'w2'), task('s', '', state='pending'),
             task('pinned', '', state='pending')]
    services = [service('s'), service('pinned', replicas=1, constraints=PINNED)]
    api = FakeApi(make_nodes(), services, [BEFORE + [task('pinned', 'w1')], stuck])
    with pytest.raises(RefusedError, match=r'services short: s 3/4\. Not waited for \(stranded\): pinned \(') as exc:
        drainer(api, force=True).run()
    assert exc.value.result['waited'] == 10.0


def test_without_force_an_already_drained_node_waits_for_every_service():
    nodes = make_nodes()
    nodes[1]['Spec']['Availability'] = 'drain'
    services = [service('s'), service('pinned', replicas=1, constraints=PINNED)]
    api = FakeApi(nodes, services, [AFTER + [task('pinned', '', state='pending')]])
    with pytest.raises(RefusedError, match=r'services short: pinned 0/1\.$'):
        drainer(api).run()
    result = drainer(FakeApi(nodes, services, [AFTER + [task('pinned', '', state='pending')]]), force=True).run()
    assert result['changed'] is False
    assert [s['name'] for s in result['stranded']] == ['pinned']


def test_timeout_lists_services_short():
    stuck = [task('s', 'm1'), task('s', 'm1'), task('s', 'w2'), task('s', '', state='pending')]
    api = FakeApi(make_nodes(), [service('s')], [BEFORE, stuck])
    with pytest.raises(RefusedError, match=r'Timed out after 10s .* services short: s 3/4') as exc:
        drainer(api).run()
    assert exc.value.result['services_short'] == [{'name': 's', 'replicas': 4, 'running': 3}]


def test_not_a_manager():
    api = FakeApi(make_nodes(), [], [[]], manager=False)
    with pytest.raises(SwarmLogicError, match='not a Swarm manager'):
        drainer(api).run()
