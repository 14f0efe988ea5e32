# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decision logic of the Swarm maintenance modules, on API-shaped dictionaries."""

from __future__ import annotations

import pytest

from ansible_collections.swarmlab.cluster.plugins.module_utils import _swarm as sw


def node(node_id, hostname=None, availability='active', state='ready', role='worker', labels=None, engine_labels=None):
    return {
        'ID': node_id,
        'Version': {'Index': 10},
        'Spec': {'Role': role, 'Availability': availability, 'Labels': labels or {}},
        'Description': {'Hostname': hostname or node_id, 'Platform': {'OS': 'linux', 'Architecture': 'x86_64'},
                        'Engine': {'Labels': engine_labels or {}}},
        'Status': {'State': state},
    }


def service(service_id, replicas=4, constraints=None, max_replicas=0, name=None, mode='Replicated', labels=None):
    spec_mode = {'Replicated': {'Replicas': replicas}} if mode == 'Replicated' else {'Global': {}}
    return {
        'ID': service_id,
        'Version': {'Index': 20},
        'Spec': {'Name': name or service_id, 'Mode': spec_mode, 'Labels': labels or {},
                 'TaskTemplate': {'Placement': {'Constraints': constraints or [], 'MaxReplicas': max_replicas}}},
    }


def task(service_id, node_id, state='running', desired='running'):
    return {'ServiceID': service_id, 'NodeID': node_id, 'DesiredState': desired, 'Status': {'State': state}}


NODES = [node('m1', 'manager1', role='manager'), node('w1', 'worker1'), node('w2', 'worker2')]


class TestFindNode:
    def test_by_id_and_hostname(self):
        assert sw.find_node(NODES, 'w1')['ID'] == 'w1'
        assert sw.find_node(NODES, 'worker2')['ID'] == 'w2'

    def test_unknown_lists_known(self):
        with pytest.raises(sw.SwarmLogicError, match='worker1'):
            sw.find_node(NODES, 'worker9')

    def test_stale_down_duplicate_is_ignored(self):
        nodes = NODES + [node('old', 'worker1', state='down')]
        assert sw.find_node(nodes, 'worker1')['ID'] == 'w1'

    def test_two_live_duplicates_are_ambiguous(self):
        nodes = NODES + [node('w1b', 'worker1')]
        with pytest.raises(sw.SwarmLogicError, match='give the node ID'):
            sw.find_node(nodes, 'worker1')


class TestConstraints:
    def test_parse(self):
        assert sw.parse_constraint('node.labels.zone == a') == ('node.labels.zone', '==', 'a')
        assert sw.parse_constraint('node.role!=manager') == ('node.role', '!=', 'manager')
        with pytest.raises(sw.SwarmLogicError):
            sw.parse_constraint('node.role manager')

    @pytest.mark.parametrize('constraint, expected', [
        ('node.hostname==worker1', ['w1']),
        ('node.hostname!=worker1', ['m1', 'w2']),
        ('node.role==manager', ['m1']),
        ('node.role == Manager', ['m1']),
        ('node.labels.disk==ssd', ['w2']),
        ('node.labels.disk!=ssd', ['m1', 'w1']),
        ('engine.labels.gpu==yes', ['w1']),
        ('node.platform.os==linux', ['m1', 'w1', 'w2']),
        ('node.id==w2', ['w2']),
    ])
    def test_match(self, constraint, expected):
        nodes = [node('m1', 'manager1', role='manager'), node('w1', 'worker1', engine_labels={'gpu': 'yes'}),
                 node('w2', 'worker2', labels={'disk': 'ssd'})]
        assert [n['ID'] for n in nodes if sw.node_satisfies(n, [constraint])] == expected

    def test_unknown_key_is_an_error(self):
        with pytest.raises(sw.SwarmLogicError, match='Unknown'):
            sw.node_satisfies(NODES[0], ['node.color==red'])

    def test_eligible_skips_unschedulable(self):
        nodes = [node('m1', availability='drain'), node('w1', state='down'), node('w2', availability='pause'), node('w3')]
        assert [n['ID'] for n in sw.eligible_nodes(service('s'), nodes)] == ['w3']


def names(items):
    return [item['name'] for item in items]


class TestDrainPlan:
    PINNED = ['node.hostname==worker1']

    def test_room_elsewhere_moves(self):
        tasks = [task('s', 'm1'), task('s', 'w1'), task('s', 'w1'), task('s', 'w2')]
        plan = sw.drain_plan(NODES[1], NODES, [service('s')], tasks)
        assert plan['problems'] == [] and plan['reduced'] == [] and plan['stranded'] == []
        assert plan['move'] == [{'name': 's', 'id': 's', 'tasks': 2, 'replicas': 4, 'order': 'stop-first'}]

    def test_move_reports_the_update_order(self):
        svc = service('web')
        svc['Spec']['UpdateConfig'] = {'Order': 'start-first', 'Parallelism': 1}
        assert sw.drain_plan(NODES[1], NODES, [svc], [task('web', 'w1')])['move'][0]['order'] == 'start-first'

    def test_last_active_node(self):
        nodes = [node('m1', 'manager1', availability='drain'), node('w1', 'worker1'), node('w2', 'worker2', state='down')]
        plan = sw.drain_plan(nodes[1], nodes, [service('s')], [task('s', 'w1')])
        assert plan['problems'] == ['worker1 is the last active node: no other node is active and ready to take its tasks.']
        assert plan['stranded'] == [{'name': 's', 'reason': 'worker1 is the last active node'}]

    def test_last_active_node_even_without_services(self):
        nodes = [node('m1', 'manager1', availability='drain'), node('w1', 'worker1')]
        assert 'last active node' in sw.drain_plan(nodes[1], nodes, [], [])['problems'][0]

    @staticmethod
    def managers(*reachability):
        nodes = [node('m%d' % i, 'manager%d' % i, role='manager', state='ready' if r == 'reachable' else 'down')
                 for i, r in enumerate(reachability, 1)]
        for n, r in zip(nodes, reachability):
            n['ManagerStatus'] = {'Reachability': r, 'Leader': n['ID'] == 'm1'}
        return nodes + [node('w1', 'worker1')]

    def test_a_manager_whose_maintenance_would_cost_the_quorum_is_refused(self):
        nodes = self.managers('reachable', 'reachable', 'unreachable')
        plan = sw.drain_plan(nodes[1], nodes, [], [])
        assert plan['problems'] == [
            'manager2 is a manager: with manager2 down, 1 of the 3 managers would be reachable, fewer than the 2 a '
            'Raft quorum needs (unreachable: manager3): the Swarm could not be managed until it came back, and '
            'not at all if it did not.']
        # The unreachable one itself costs nothing more; a worker never does.
        assert sw.drain_plan(nodes[2], nodes, [], [])['problems'] == []
        assert sw.drain_plan(nodes[3], nodes, [], [])['problems'] == []

    @pytest.mark.parametrize('reachability', [
        ('reachable', 'reachable', 'reachable'),
        ('reachable', 'reachable', 'reachable', 'reachable', 'unreachable'),
        ('reachable',),
        ('reachable', 'reachable'),  # no majority without each other: no quorum to keep
    ])
    def test_a_manager_drained_with_its_quorum_kept(self, reachability):
        nodes = self.managers(*reachability)
        assert sw.drain_plan(nodes[1] if len(reachability) > 1 else nodes[0], nodes, [], [])['problems'] == []

    def test_five_managers_two_down(self):
        nodes = self.managers('reachable', 'reachable', 'reachable', 'unknown', 'unreachable')
        problems = sw.drain_plan(nodes[1], nodes, [], [])['problems']
        assert len(problems) == 1 and '2 of the 5 managers would be reachable, fewer than the 3' in problems[0]
        assert '(unreachable: manager4, manager5)' in problems[0]

    def test_pinned_service_is_stranded_and_refused(self):
        svc = service('pinned', replicas=1, constraints=self.PINNED)
        plan = sw.drain_plan(NODES[1], NODES, [svc], [task('pinned', 'w1')])
        reason = "no node but worker1 satisfies its placement constraints ['node.hostname==worker1']"
        assert plan['stranded'] == [{'name': 'pinned', 'reason': reason}]
        assert plan['problems'] == ['service pinned would stop: %s.' % reason]
        assert plan['move'] == [] and plan['reduced'] == []

    def test_pinned_service_is_stranded_on_an_already_drained_node(self):
        nodes = [NODES[0], node('w1', 'worker1', availability='drain'), NODES[2]]
        svc = service('pinned', replicas=1, constraints=self.PINNED)
        assert names(sw.drain_plan(nodes[1], nodes, [svc], [task('pinned', '', state='pending')])['stranded']) == ['pinned']

    def test_constraint_satisfied_by_a_drained_node_only(self):
        nodes = [node('m1', role='manager'), node('w1', labels={'zone': 'a'}),
                 node('w2', labels={'zone': 'a'}, availability='drain')]
        svc = service('z', replicas=2, constraints=['node.labels.zone==a'])
        assert names(sw.drain_plan(nodes[1], nodes, [svc], [task('z', 'w1'), task('z', 'w1')])['stranded']) == ['z']

    def test_spread_service_that_cannot_move_but_keeps_serving_is_reduced(self):
        # Three Sentinels as one service, one per node: draining one leaves two, a quorum of 2.
        svc = service('sentinel', replicas=3, max_replicas=1)
        tasks = [task('sentinel', n['ID']) for n in NODES]
        plan = sw.drain_plan(NODES[1], NODES, [svc], tasks)
        assert plan['problems'] == [] and plan['stranded'] == [] and plan['move'] == []
        assert plan['reduced'] == [{
            'name': 'sentinel', 'id': 'sentinel', 'replicas': 3, 'keeps': 2,
            'reason': 'max_replicas_per_node 1 on 2 other eligible node(s) (manager1, worker2) holds 2 of 3 '
                      'replicas; 2 of 3 keep running'}]

    def test_replicas_away_from_the_master_on_distinct_nodes_are_reduced(self):
        svc = service('replica', replicas=2, max_replicas=1, constraints=['node.hostname!=manager1'])
        tasks = [task('replica', 'w1'), task('replica', 'w2')]
        plan = sw.drain_plan(NODES[1], NODES, [svc], tasks)
        assert [(r['name'], r['keeps']) for r in plan['reduced']] == [('replica', 1)]
        assert plan['problems'] == []

    @staticmethod
    def sentinels(least='2'):
        # The stack's Sentinels: one service per node, each pinned there with its state volume.
        labels = {sw.REDUNDANCY_GROUP_LABEL: 'sentinels', sw.REDUNDANCY_MIN_LABEL: least}
        services = [service('s%d' % i, replicas=1, constraints=['node.hostname==%s' % n['Description']['Hostname']],
                            labels=labels) for i, n in enumerate(NODES, 1)]
        return services, [task('s%d' % i, n['ID']) for i, n in enumerate(NODES, 1)]

    def test_pinned_member_of_a_redundancy_group_is_reduced_while_the_group_keeps_its_minimum(self):
        services, tasks = self.sentinels()
        plan = sw.drain_plan(NODES[1], NODES, services, tasks)
        assert plan['problems'] == [] and plan['stranded'] == []
        assert [(r['name'], r['keeps']) for r in plan['reduced']] == [('s2', 0)]
        assert 'redundancy group sentinels keeps 2 service(s) running (s1, s3), at least 2 needed' in plan['reduced'][0]['reason']

    def test_redundancy_group_below_its_minimum_is_stranded(self):
        services, tasks = self.sentinels()
        tasks = [tk for tk in tasks if tk['ServiceID'] != 's3']  # s3 is already down
        plan = sw.drain_plan(NODES[1], NODES, services, tasks)
        assert names(plan['stranded']) == ['s2'] and plan['reduced'] == []
        assert 'redundancy group sentinels would keep 1 service(s) running, 2 needed' in plan['problems'][0]

    def test_unlabelled_pinned_services_stay_stranded(self):
        services, tasks = self.sentinels()
        for svc in services:
            svc['Spec']['Labels'] = {}
        assert names(sw.drain_plan(NODES[1], NODES, services, tasks)['stranded']) == ['s2']

    def test_redundancy_group_never_saves_the_last_active_node(self):
        nodes = [node('m1', 'manager1', role='manager', availability='drain'), NODES[1],
                 node('w2', 'worker2', availability='drain')]
        services, tasks = self.sentinels()
        plan = sw.drain_plan(nodes[1], nodes, services, tasks)
        assert 's2' in names(plan['stranded']) and 'last active node' in plan['problems'][0]

    @staticmethod
    def redis():
        # The stack's Redis servers: redis-master (labelled primary, as deployed) on manager1, a
        # replica pinned to each worker, all in one redundancy group with min 1; one task each.
        group = {sw.REDUNDANCY_GROUP_LABEL: 'redis-replicas', sw.REDUNDANCY_MIN_LABEL: '1'}
        services = [service('redis-master', replicas=1, constraints=['node.hostname==manager1'],
                            labels=dict(group, **{sw.REDUNDANCY_ROLE_LABEL: 'primary'})),
                    service('redis-replica-1', replicas=1, constraints=['node.hostname==worker1'], labels=group),
                    service('redis-replica-2', replicas=1, constraints=['node.hostname==worker2'], labels=group)]
        tasks = [task('redis-master', 'm1'), task('redis-replica-1', 'w1'), task('redis-replica-2', 'w2')]
        return services, tasks

    def test_the_labelled_primary_is_stranded_on_its_node(self):
        services, tasks = self.redis()
        plan = sw.drain_plan(NODES[0], NODES, services, tasks)
        assert names(plan['stranded']) == ['redis-master'] and plan['primaries'] == ['redis-master']
        assert 'holds the primary role of redundancy group redis-replicas' in plan['problems'][0]

    def test_a_replica_is_reduced_while_another_replica_runs_besides_the_primary(self):
        services, tasks = self.redis()
        plan = sw.drain_plan(NODES[1], NODES, services, tasks)
        assert plan['stranded'] == [] and [(r['name'], r['keeps']) for r in plan['reduced']] == [('redis-replica-1', 0)]
        assert 'keeps 1 service(s) running besides its primary redis-master (redis-replica-2)' in plan['reduced'][0]['reason']

    def test_the_master_on_a_replica_service_is_refused_when_named(self):
        # The defect: after a failover the master runs in redis-replica-1's task; by the labels alone
        # its drain was "reduced" (the group keeps redis-replica-2) and stopped the master.
        services, tasks = self.redis()
        assert names(sw.drain_plan(NODES[1], NODES, services, tasks)['reduced']) == ['redis-replica-1']
        plan = sw.drain_plan(NODES[1], NODES, services, tasks, primaries=['redis-replica-1'])
        assert names(plan['stranded']) == ['redis-replica-1'] and plan['reduced'] == []
        assert plan['primaries'] == ['redis-replica-1'] and len(plan['problems']) == 1

    def test_after_a_switchover_the_old_masters_node_drains_as_reduced(self):
        # redis-master (manager1) handed the master to redis-replica-1: it is now a replica that the
        # drain stops, while redis-replica-2 keeps running as a replica.
        services, tasks = self.redis()
        plan = sw.drain_plan(NODES[0], NODES, services, tasks, primaries=['redis-replica-1'])
        assert plan['stranded'] == [] and plan['problems'] == []
        assert [(r['name'], r['keeps']) for r in plan['reduced']] == [('redis-master', 0)]
        assert 'besides its primary redis-replica-1 (redis-replica-2)' in plan['reduced'][0]['reason']

    def test_the_primary_never_counts_as_the_groups_running_replica(self):
        # Two servers only: once redis-replica-1 is the master, redis-master's node keeps no replica.
        services, tasks = self.redis()
        services, tasks = services[:2], tasks[:2]
        plan = sw.drain_plan(NODES[0], NODES, services, tasks, primaries=['redis-replica-1'])
        assert names(plan['stranded']) == ['redis-master']
        assert 'would keep 0 service(s) running besides its primary redis-replica-1, 1 needed' in plan['problems'][0]

    def test_a_primary_that_could_move_is_still_stranded(self):
        # A master's data is on its node's volume: moving its service starts an empty one elsewhere.
        svc = service('db', replicas=1, constraints=['node.role==worker'])
        plan = sw.drain_plan(NODES[1], NODES, [svc], [task('db', 'w1')], primaries=['db'])
        assert names(plan['stranded']) == ['db'] and plan['move'] == []
        assert names(sw.drain_plan(NODES[1], NODES, [svc], [task('db', 'w1')])['move']) == ['db']

    def test_primaries_given_replace_the_labels_and_must_exist(self):
        services, tasks = self.redis()
        assert sw.drain_plan(NODES[0], NODES, services, tasks, primaries=[])['primaries'] == []
        with pytest.raises(sw.SwarmLogicError, match='redis-replica-9'):
            sw.drain_plan(NODES[0], NODES, services, tasks, primaries=['redis-replica-9'])

    def test_max_replicas_with_room_moves(self):
        svc = service('s', replicas=4, max_replicas=2)
        assert names(sw.drain_plan(NODES[1], NODES, [svc], [task('s', 'w1')])['move']) == ['s']

    def test_global_service_elsewhere_too_is_reduced(self):
        svc = service('g', mode='Global')
        tasks = [task('g', n['ID']) for n in NODES]
        plan = sw.drain_plan(NODES[1], NODES, [svc], tasks)
        assert [(r['name'], r['replicas'], r['keeps']) for r in plan['reduced']] == [('g', 3, 2)]
        assert plan['problems'] == []

    def test_global_service_only_on_the_node_is_stranded(self):
        svc = service('edge', mode='Global', constraints=['node.role==worker'])
        plan = sw.drain_plan(NODES[1], NODES, [svc], [task('edge', 'w1')])
        assert plan['stranded'] == [{'name': 'edge', 'reason': 'a global service whose only running task is on worker1'}]
        assert plan['problems'] == ['service edge would stop: a global service whose only running task is on worker1.']

    def test_services_not_concerned(self):
        services = [service('other', replicas=1, constraints=['node.hostname==worker2']),
                    service('zero', replicas=0, constraints=self.PINNED), service('g', mode='Global')]
        tasks = [task('other', 'w2'), task('g', 'w2')]
        plan = sw.drain_plan(NODES[1], NODES, services, tasks)
        assert plan == {'move': [], 'reduced': [], 'stranded': [], 'problems': [], 'primaries': []}

    def test_finished_tasks_do_not_count(self):
        svc = service('s', replicas=1, constraints=['node.role==worker'])
        tasks = [task('s', 'w1', state='shutdown', desired='shutdown'), task('s', 'w2')]
        assert sw.drain_plan(NODES[1], NODES, [svc], tasks)['move'] == []

    def test_wait_targets(self):
        short = [{'name': 'pinned', 'replicas': 1, 'running': 0}, {'name': 's', 'replicas': 4, 'running': 3},
                 {'name': 'sentinel', 'replicas': 3, 'running': 2}, {'name': 'capped', 'replicas': 3, 'running': 1}]
        plan = {'move': [], 'stranded': [{'name': 'pinned', 'reason': 'r'}], 'problems': [],
                'reduced': [{'name': 'sentinel', 'keeps': 2}, {'name': 'capped', 'keeps': 2}]}
        assert names(sw.drain_wait_targets(short, plan, force=False)) == ['pinned', 's', 'capped']
        assert names(sw.drain_wait_targets(short, plan, force=True)) == ['s', 'capped']


class TestExclusion:
    def spec(self, constraints=None, labels=None):
        return {'Name': 'web', 'Labels': labels or {}, 'TaskTemplate': {'Placement': {'Constraints': constraints or []}}}

    def test_excluding_adds_a_constraint_and_records_it(self):
        spec = self.spec(['node.role==worker'], {'com.docker.stack.namespace': 'swarmlab'})
        new = sw.spec_excluding(spec, 'w1')
        assert new['TaskTemplate']['Placement']['Constraints'] == ['node.role==worker', 'node.id!=w1']
        assert new['Labels'] == {'com.docker.stack.namespace': 'swarmlab', sw.EXCLUDED_NODES_LABEL: 'w1'}
        assert spec['TaskTemplate']['Placement']['Constraints'] == ['node.role==worker']  # a copy
        assert sw.spec_excluding(new, 'w1') is None
        both = sw.spec_excluding(new, 'w2')
        assert sw.excluded_nodes(both) == ['w1', 'w2']

    def test_excluding_a_spec_without_placement(self):
        new = sw.spec_excluding({'Name': 'web', 'TaskTemplate': {}}, 'w1')
        assert new['TaskTemplate']['Placement'] == {'Constraints': ['node.id!=w1']}

    def test_including_removes_only_what_was_added(self):
        spec = sw.spec_excluding(sw.spec_excluding(self.spec(['node.id!=w1']), 'w2'), 'w3')
        assert spec['TaskTemplate']['Placement']['Constraints'] == ['node.id!=w1', 'node.id!=w2', 'node.id!=w3']
        new = sw.spec_including(spec, 'w2')
        assert new['TaskTemplate']['Placement']['Constraints'] == ['node.id!=w1', 'node.id!=w3']
        assert sw.excluded_nodes(new) == ['w3']
        last = sw.spec_including(new, 'w3')
        assert last['TaskTemplate']['Placement']['Constraints'] == ['node.id!=w1']
        assert sw.EXCLUDED_NODES_LABEL not in last['Labels']
        # The service's own constraint on w1 is not the drain's: it stays.
        assert sw.spec_including(last, 'w1') is None


class TestCounts:
    def test_node_totals_and_service_counts(self):
        services = [service('s'), service('g', mode='Global')]
        tasks = [task('s', 'm1'), task('s', 'm1'), task('s', 'w2'), task('s', 'w1', state='shutdown', desired='shutdown'),
                 task('s', 'w1', state='starting'), task('g', 'w1')]
        assert sw.node_totals(services, tasks, NODES) == {'manager1': 2, 'worker1': 0, 'worker2': 1}
        assert sw.service_counts(services[0], tasks, NODES) == {'manager1': 2, 'worker1': 0, 'worker2': 1}

    def test_short_and_live(self):
        services = [service('s', replicas=4), service('t', replicas=1)]
        tasks = [task('s', 'm1'), task('s', 'w2'), task('s', 'w1', state='preparing'), task('t', 'w2')]
        assert sw.short_services(services, tasks) == [{'name': 's', 'replicas': 4, 'running': 2}]
        assert len(sw.live_tasks_on_node('w1', services, tasks)) == 1
        assert sw.live_tasks_on_node('w1', services, [task('s', 'w1', state='shutdown', desired='shutdown')]) == []
        assert sw.service_report(services, tasks)[0] == {'name': 's', 'id': 's', 'replicas': 4, 'running': 2}


class TestConvergenceRule:
    """The one convergence rule (modules, stack_convergence filter, ops tooling)."""

    def test_tasks_on_a_node_that_is_down_do_not_count(self):
        nodes = [node('m1', 'manager1'), node('w1', 'worker1', state='down'), node('w2', 'worker2')]
        services = [service('s', replicas=3)]
        tasks = [task('s', 'm1'), task('s', 'w1'), task('s', 'w2')]
        assert sw.short_services(services, tasks, nodes) == [{'name': 's', 'replicas': 3, 'running': 2}]
        assert sw.running_count(services[0], tasks, nodes) == 2
        # Without the node list (callers that have none) every node counts as ready.
        assert sw.short_services(services, tasks) == []
        report = sw.convergence(services, tasks, nodes)
        assert report['converged'] is False and report['short'] == ['s']
        assert report['services']['s']['nodes'] == {'manager1': 1, 'worker2': 1}

    def test_global_service_wants_its_tasks_on_ready_nodes(self):
        nodes = [node('m1', 'manager1'), node('w1', 'worker1', state='down')]
        services = [service('g', mode='Global')]
        tasks = [task('g', 'm1'), task('g', 'w1', state='running')]
        report = sw.convergence(services, tasks, nodes)
        assert report['services']['g']['desired'] == 1
        assert report['converged'] is True

    def test_errors_of_wanted_tasks_that_do_not_run(self):
        services = [service('s', replicas=2)]
        failing = dict(task('s', 'w1', state='rejected'), Name='s.2')
        failing['Status']['Err'] = 'no such image'
        report = sw.convergence(services, [task('s', 'm1'), failing], NODES)
        assert report['short'] == ['s']
        assert report['services']['s']['errors'] == ['s.2 on worker1: no such image']

    def test_no_service_is_not_converged(self):
        assert sw.convergence([], [], NODES)['converged'] is False

    def test_running_tasks_gives_placement_and_addresses(self):
        nodes = [node('m1', 'manager1'), node('w1', 'worker1', state='down')]
        running = dict(task('s', 'm1'), ID='t1', NetworksAttachments=[{'Addresses': ['10.0.1.5/24']}])
        running['Status']['ContainerStatus'] = {'ContainerID': 'c1'}
        stale = dict(task('s', 'w1'), ID='t2')
        found = sw.running_tasks(service('s'), [running, stale], nodes)
        assert found == [{'id': 't1', 'node': 'manager1', 'node_id': 'm1', 'addresses': ['10.0.1.5'],
                          'container_id': 'c1'}]


class TestImbalance:
    def test_node_back_from_drain_is_uneven(self):
        tasks = [task('s', 'm1'), task('s', 'm1'), task('s', 'w2'), task('s', 'w2')]
        found = sw.imbalance(service('s'), NODES, tasks)
        assert found['counts'] == {'manager1': 2, 'worker1': 0, 'worker2': 2}
        assert found['name'] == 's'

    def test_even_spread(self):
        tasks = [task('s', 'm1'), task('s', 'm1'), task('s', 'w1'), task('s', 'w2')]
        assert sw.imbalance(service('s'), NODES, tasks) is None

    def test_fewer_replicas_than_nodes(self):
        assert sw.imbalance(service('s', replicas=2), NODES, [task('s', 'm1'), task('s', 'w1')]) is None

    def test_all_on_one_node(self):
        assert sw.imbalance(service('s', replicas=2), NODES, [task('s', 'm1'), task('s', 'm1')]) is not None

    def test_drained_node_not_counted(self):
        nodes = [NODES[0], node('w1', 'worker1', availability='drain'), NODES[2]]
        tasks = [task('s', 'm1'), task('s', 'm1'), task('s', 'w2'), task('s', 'w2')]
        assert sw.imbalance(service('s'), nodes, tasks) is None

    def test_constraints_limit_the_nodes(self):
        svc = service('s', replicas=2, constraints=['node.role==worker'])
        assert sw.imbalance(svc, NODES, [task('s', 'w1'), task('s', 'w2')]) is None
        assert sw.imbalance(svc, NODES, [task('s', 'w2'), task('s', 'w2')]) is not None

    def test_single_eligible_node_or_global(self):
        svc = service('s', constraints=['node.hostname==worker1'])
        assert sw.imbalance(svc, NODES, [task('s', 'w1')] * 4) is None
        assert sw.imbalance(service('g', mode='Global'), NODES, []) is None


class TestSelectAndOutcome:
    def test_select(self):
        services = [service('a1', name='web'), service('b2', name='redis')]
        assert sw.select_services(services, []) == services
        assert [s['ID'] for s in sw.select_services(services, ['redis', 'a1'])] == ['b2', 'a1']
        with pytest.raises(sw.SwarmLogicError, match='nope'):
            sw.select_services(services, ['nope'])

    @pytest.mark.parametrize('status, before, expected', [
        (None, None, 'pending'),
        ({'State': 'completed', 'StartedAt': 't0'}, 't0', 'pending'),
        ({'State': 'updating', 'StartedAt': 't1'}, 't0', 'updating'),
        ({'State': 'completed', 'StartedAt': 't1'}, 't0', 'completed'),
        ({'State': 'completed', 'StartedAt': 't1'}, None, 'completed'),
        ({'State': 'paused', 'StartedAt': 't1'}, 't0', 'failed'),
        ({'State': 'rollback_completed', 'StartedAt': 't1'}, 't0', 'failed'),
    ])
    def test_update_outcome(self, status, before, expected):
        svc = service('s')
        if status:
            svc['UpdateStatus'] = status
        assert sw.update_outcome(svc, before) == expected
