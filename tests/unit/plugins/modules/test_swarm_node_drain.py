# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""NodeDrainer against a scripted stand-in for the Docker API.

The stand-in replaces only the daemon: the real path (a 3-node Swarm) is exercised by the molecule
scenario ``swarm`` through playbooks/node_maintenance.yml.
"""

from __future__ import annotations

import copy

import pytest

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm import SwarmLogicError, spec_excluding
from ansible_collections.swarmlab.cluster.plugins.modules.swarm_node_drain import NodeDrainer, RefusedError

from ansible_collections.swarmlab.cluster.tests.unit.plugins.module_utils.test__swarm import node, service, task


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.check_mode = check_mode
        self.params = {'node': 'worker1', 'state': 'present', 'force': False, 'move_first': False, 'wait': True,
                       'wait_timeout': 10, 'poll_interval': 1, 'primaries': None}
        self.params.update(params)
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)


class FakeApi:
    """Nodes and services as given; tasks() walks through the given snapshots, then stays on the last.

    After a service update, services() walks that service through ``update_script[id]`` (its
    UpdateStatus values, then stays on the last); a rollback state puts the spec before the update
    back, as Swarm does. ``events`` records the updates in order, with the index of the task
    snapshot that was current then."""

    def __init__(self, nodes, services, task_snapshots, manager=True, update_script=None):
        self._nodes = nodes
        self._services = services
        self._snapshots = list(task_snapshots)
        self.manager = manager
        self.node_updates = []
        self.service_updates = []
        self.update_script = {k: list(v) for k, v in (update_script or {}).items()}
        self.updating = set()
        self.previous = {}
        self.events = []
        self.served = 0

    def swarm_manager(self):
        return self.manager

    def nodes(self):
        return self._nodes

    def services(self):
        for svc in self._services:
            script = self.update_script.get(svc['ID'])
            if svc['ID'] in self.updating and script:
                svc['UpdateStatus'] = script.pop(0) if len(script) > 1 else script[0]
                if svc['UpdateStatus'] and svc['UpdateStatus']['State'].startswith('rollback'):
                    svc['Spec'] = self.previous[svc['ID']]
        return self._services

    def service(self, service_id):
        return copy.deepcopy(next(svc for svc in self._services if svc['ID'] == service_id))

    def tasks(self):
        if len(self._snapshots) > 1:
            self.served += 1
            return self._snapshots.pop(0)
        return self._snapshots[0]

    def update_node(self, node_, spec):
        self.node_updates.append((node_['ID'], spec))
        self.events.append(('node', spec['Availability'], self.served))
        node_['Spec'] = spec

    def update_service(self, svc, spec):
        self.service_updates.append((svc['ID'], spec))
        self.events.append(('service', svc['ID'], self.served))
        live = next(item for item in self._services if item['ID'] == svc['ID'])
        self.previous[svc['ID']] = copy.deepcopy(live['Spec'])
        live['Spec'] = spec
        live['UpdateStatus'] = None
        self.updating.add(svc['ID'])


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
    with pytest.raises(RefusedError, match=r"Refusing to drain worker1: service pinned would stop: no node but worker1 satisfies") as exc:
        drainer(api).run()
    assert api.node_updates == []
    assert exc.value.result['stranded'] == [
        {'name': 'pinned', 'reason': "no node but worker1 satisfies its placement constraints ['node.hostname==worker1']"}]


def redis_servers():
    # The stack's Redis servers, one pinned per node, one redundancy group; redis-master labelled primary.
    group = {'org.swarmlab.redundancy.group': 'redis-replicas', 'org.swarmlab.redundancy.min': '1'}
    return [service('redis-master', replicas=1, constraints=['node.hostname==manager1'],
                    labels=dict(group, **{'org.swarmlab.redundancy.role': 'primary'})),
            service('redis-replica-1', replicas=1, constraints=PINNED, labels=group),
            service('redis-replica-2', replicas=1, constraints=['node.hostname==worker2'], labels=group)]


REDIS_BEFORE = [task('redis-master', 'm1'), task('redis-replica-1', 'w1'), task('redis-replica-2', 'w2')]
REDIS_AFTER = [task('redis-master', 'm1'), task('redis-replica-1', 'w1', state='shutdown', desired='shutdown'),
               task('redis-replica-1', '', state='pending'), task('redis-replica-2', 'w2')]


def test_the_node_of_the_master_named_in_primaries_is_refused():
    # The master runs in redis-replica-1's task (after a failover): named, its node is refused.
    api = FakeApi(make_nodes(), redis_servers(), [REDIS_BEFORE])
    with pytest.raises(RefusedError, match='service redis-replica-1 would stop: it holds the primary role') as exc:
        drainer(api, primaries=['redis-replica-1']).run()
    assert api.node_updates == [] and exc.value.result['primaries'] == ['redis-replica-1']


def test_once_the_master_is_elsewhere_its_old_server_is_reduced_and_not_waited_for():
    api = FakeApi(make_nodes(), redis_servers(), [REDIS_BEFORE, REDIS_AFTER])
    result = drainer(api, primaries=['redis-master']).run()
    assert result['node']['availability'] == 'drain' and result['stranded'] == []
    assert [(r['name'], r['keeps']) for r in result['reduced']] == [('redis-replica-1', 0)]
    assert result['primaries'] == ['redis-master']


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


# Moving first: web (start-first) has two tasks on worker1. Its update (a constraint keeping it off
# worker1) starts the replacements on the other nodes before the old tasks stop; only then is the
# node drained.

def web(order='start-first'):
    svc = service('web')
    svc['Spec']['UpdateConfig'] = {'Order': order, 'Parallelism': 1}
    svc['UpdateStatus'] = {'State': 'completed', 'StartedAt': 'earlier'}
    return svc


WEB_BEFORE = [task('web', 'm1'), task('web', 'w1'), task('web', 'w1'), task('web', 'w2')]
# Replacements start elsewhere while both old tasks still run (start-first).
WEB_SURGING = WEB_BEFORE + [task('web', 'w2', state='starting')]
WEB_ONE_MOVED = [task('web', 'm1'), task('web', 'w1'), task('web', 'w1', state='running', desired='shutdown'),
                 task('web', 'w2'), task('web', 'm1')]
WEB_MOVED = [task('web', 'm1'), task('web', 'm1'), task('web', 'w2'), task('web', 'w2'),
             task('web', 'w1', state='running', desired='shutdown'), task('web', 'w1', state='shutdown', desired='shutdown')]
WEB_AFTER = [task('web', 'm1'), task('web', 'm1'), task('web', 'w2'), task('web', 'w2'),
             task('web', 'w1', state='shutdown', desired='shutdown'), task('web', 'w1', state='shutdown', desired='shutdown')]
UPDATING = {'State': 'updating', 'StartedAt': 'now'}
COMPLETED = {'State': 'completed', 'StartedAt': 'now'}


def test_move_first_starts_the_replacements_before_draining():
    api = FakeApi(make_nodes(), [web()], [WEB_BEFORE, WEB_SURGING, WEB_ONE_MOVED, WEB_MOVED, WEB_AFTER],
                  update_script={'web': [UPDATING, UPDATING, COMPLETED]})
    result = drainer(api, move_first=True).run()
    # One service update keeping web off worker1, then the drain, once no web task is wanted there.
    assert [event[:2] for event in api.events] == [('service', 'web'), ('node', 'drain')]
    service_id, spec = api.service_updates[0]
    assert spec['TaskTemplate']['Placement']['Constraints'] == ['node.id!=w1']
    assert spec['Labels'] == {'org.swarmlab.maintenance.excluded-nodes': 'w1'}
    assert api.events[1][2] >= 4  # the drain came after the snapshot where both tasks had moved
    moved = result['moved'][0]
    assert moved['name'] == 'web' and moved['tasks'] == 2 and moved['how'] == 'moved first'
    assert moved['order'] == 'start-first' and moved['update'] == 'completed'
    assert moved['nodes'] == {'manager1': 2, 'worker2': 2}
    assert moved['seconds'] > 0
    assert result['times']['move'] > 0 and result['times']['total'] >= result['times']['move']
    assert result['node']['availability'] == 'drain'
    assert result['tasks_after'] == {'manager1': 2, 'worker1': 0, 'worker2': 2}


def test_move_first_waits_for_the_update_to_complete():
    # The tasks have moved but Swarm still monitors the update: not yet drained.
    api = FakeApi(make_nodes(), [web()], [WEB_BEFORE, WEB_MOVED, WEB_MOVED, WEB_AFTER],
                  update_script={'web': [UPDATING, UPDATING, UPDATING, COMPLETED]})
    drainer(api, move_first=True).run()
    assert api.events[1][:2] == ('node', 'drain')
    assert api.events[1][2] >= 3


def test_a_rolled_back_move_refuses_the_drain_and_leaves_the_node_active():
    rolled_back = {'State': 'rollback_completed', 'StartedAt': 'now', 'Message': 'rollback completed'}
    api = FakeApi(make_nodes(), [web()], [WEB_BEFORE, WEB_SURGING, WEB_BEFORE], update_script={'web': [UPDATING, rolled_back]})
    with pytest.raises(RefusedError, match=r'Could not move the tasks of web off worker1 before draining it: web: '
                                           r'the update ended as rollback_completed .* The node was not drained\.$') as exc:
        drainer(api, move_first=True).run()
    assert api.node_updates == []
    assert len(api.service_updates) == 1  # Swarm put the previous spec back: nothing left to remove
    assert exc.value.result['node']['availability'] == 'active'


def test_a_paused_move_removes_the_constraint_it_added():
    paused = {'State': 'paused', 'StartedAt': 'now', 'Message': 'update paused due to failure or early termination of task x'}
    api = FakeApi(make_nodes(), [web()], [WEB_BEFORE, WEB_SURGING], update_script={'web': [UPDATING, paused]})
    with pytest.raises(RefusedError, match=r'paused .*removed \(web\)\.$'):
        drainer(api, move_first=True).run()
    assert api.node_updates == []
    assert len(api.service_updates) == 2
    restored = api.service_updates[1][1]
    assert restored['TaskTemplate']['Placement']['Constraints'] == []
    assert 'org.swarmlab.maintenance.excluded-nodes' not in restored['Labels']


def test_a_move_that_does_not_finish_in_time_is_undone():
    api = FakeApi(make_nodes(), [web()], [WEB_BEFORE, WEB_SURGING], update_script={'web': [UPDATING]})
    with pytest.raises(RefusedError, match=r'web: still moving after 10s'):
        drainer(api, move_first=True).run()
    assert api.node_updates == []
    assert len(api.service_updates) == 2


def test_reduced_service_is_accepted_and_waited_for_down_to_what_it_keeps():
    # Three Sentinels as one service, one per node; web moves first, the Sentinel on worker1 just stops.
    sentinel = service('sentinel', replicas=3, max_replicas=1)
    spread = [task('sentinel', 'm1'), task('sentinel', 'w1'), task('sentinel', 'w2')]
    left = [task('sentinel', 'm1'), task('sentinel', 'w2'), task('sentinel', '', state='pending')]
    api = FakeApi(make_nodes(), [web(), sentinel], [WEB_BEFORE + spread, WEB_MOVED + spread, WEB_AFTER + left],
                  update_script={'web': [COMPLETED]})
    fake = drainer(api, move_first=True)
    result = fake.run()
    assert result['capacity_problems'] == [] and result['stranded'] == []
    assert result['reduced'] == [{'name': 'sentinel', 'replicas': 3, 'keeps': 2, 'reason': (
        'max_replicas_per_node 1 on 2 other eligible node(s) (manager1, worker2) holds 2 of 3 replicas; 2 of 3 keep running')}]
    assert [m['name'] for m in result['moved']] == ['web']
    assert [update[0] for update in api.service_updates] == ['web']  # the Sentinel is not moved
    assert result['services_short'] == [{'name': 'sentinel', 'replicas': 3, 'running': 2}]
    assert any('fewer tasks' in w and 'sentinel' in w for w in fake.module.warnings)


def test_check_mode_plans_the_move_and_changes_nothing():
    api = FakeApi(make_nodes(), [web()], [WEB_BEFORE])
    result = drainer(api, check_mode=True, move_first=True).run()
    assert result['changed'] is True
    assert api.service_updates == [] and api.node_updates == []
    assert [(m['name'], m['tasks'], m['update']) for m in result['moved']] == [('web', 2, None)]


def test_activate_sets_the_node_active_and_removes_the_constraint():
    nodes = make_nodes()
    nodes[1]['Spec']['Availability'] = 'drain'
    svc = web()
    svc['Spec'] = spec_excluding(svc['Spec'], 'w1')
    other = service('other')
    api = FakeApi(nodes, [svc, other], [WEB_AFTER])
    result = drainer(api, state='absent').run()
    assert result['changed'] is True
    assert result['node']['availability'] == 'active'
    assert api.node_updates[0][1]['Availability'] == 'active'
    assert result['restored'] == ['web']
    assert [update[0] for update in api.service_updates] == ['web']
    assert api.service_updates[0][1]['TaskTemplate']['Placement']['Constraints'] == []
    again = drainer(api, state='absent').run()
    assert again['changed'] is False and again['restored'] == []


def test_activate_in_check_mode_changes_nothing():
    nodes = make_nodes()
    nodes[1]['Spec']['Availability'] = 'drain'
    api = FakeApi(nodes, [web()], [WEB_AFTER])
    result = drainer(api, state='absent', check_mode=True).run()
    assert result['changed'] is True
    assert api.node_updates == [] and api.service_updates == []
