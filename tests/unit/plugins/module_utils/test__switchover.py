# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which Redis master a node drain hands over first, and to whom (plugins/module_utils/_switchover.py),
on results shaped as redis_topology_info and docker_stack_task_info return them; and the filter."""

from __future__ import annotations

from ansible_collections.swarmlab.cluster.plugins.filter.redis_switchover_plan import FilterModule
from ansible_collections.swarmlab.cluster.plugins.module_utils._switchover import running_nodes, switchover_plan

STACK = 'swarmlab'
PLACES = {'redis-master': 'manager1', 'redis-replica-1': 'worker1', 'redis-replica-2': 'worker2'}


def stack_task(service, node, slot=1, desired='Running', current='Running 5 minutes ago'):
    return {'ID': 'x', 'Name': '%s_%s.%d' % (STACK, service, slot), 'Node': node, 'DesiredState': desired,
            'CurrentState': current, 'Error': '', 'Image': 'redis', 'Ports': ''}


def tasks(places=None):
    found = [stack_task(svc, node) for svc, node in (places or PLACES).items()]
    # Noise that must not count: an old task shut down elsewhere, the web service, another stack.
    found += [stack_task('redis-replica-1', 'worker2', desired='Shutdown', current='Shutdown 1 hour ago'),
              stack_task('web', 'worker1'), {'Name': 'other_redis-master.1', 'Node': 'worker2',
                                             'DesiredState': 'Running', 'CurrentState': 'Running'}]
    return found


def topology(master='redis-master', lag=None, link=None, reachable=None):
    lag, link, reachable = lag or {}, link or {}, reachable or {}
    instances = []
    for name in PLACES:
        role = 'master' if name == master else 'replica'
        instances.append({'address': name + ':6379', 'host': name, 'port': 6379, 'reachable': reachable.get(name, True),
                          'role': role, 'master': None if role == 'master' else master + ':6379',
                          'link_status': None if role == 'master' else link.get(name, 'up'),
                          'lag_bytes': None if role == 'master' else lag.get(name, 0)})
    return {'master': master + ':6379', 'healthy': True, 'summary': 'healthy: master %s:6379' % master,
            'instances': instances}


def test_running_nodes_reads_the_stack_tasks():
    assert running_nodes(tasks(), STACK) == {'redis-master': ['manager1'], 'redis-replica-1': ['worker1'],
                                             'redis-replica-2': ['worker2'], 'web': ['worker1']}


def test_a_node_without_the_master_needs_no_handover():
    plan = switchover_plan(topology(), tasks(), 'worker1', STACK)
    assert plan['needed'] is False and plan['target'] is None and plan['problem'] is None
    assert plan['master'] == 'redis-master' and plan['master_node'] == 'manager1'
    assert plan['primaries'] == ['swarmlab_redis-master']


def test_the_masters_node_hands_over_home_first_among_equals():
    # After a failover the master is redis-replica-1 on worker1: draining worker1 hands it to a
    # replica elsewhere; equally up to date, the deployed master's service is preferred.
    plan = switchover_plan(topology('redis-replica-1'), tasks(), 'worker1', STACK)
    assert plan['needed'] is True and plan['problem'] is None
    assert (plan['target'], plan['target_node']) == ('redis-master', 'manager1')
    assert [c['instance'] for c in plan['candidates']] == ['redis-master', 'redis-replica-2']
    assert plan['primaries'] == ['swarmlab_redis-master']


def test_the_least_lagging_replica_wins():
    plan = switchover_plan(topology('redis-replica-1', lag={'redis-master': 120}), tasks(), 'worker1', STACK)
    assert plan['target'] == 'redis-replica-2' and plan['primaries'] == ['swarmlab_redis-replica-2']


def test_replicas_that_cannot_take_over_are_left_out():
    # One with its link down, one unreachable; a replica on the same node would go down with it.
    topo = topology('redis-replica-1', link={'redis-master': 'down'}, reachable={'redis-replica-2': False})
    plan = switchover_plan(topo, tasks(), 'worker1', STACK)
    assert plan['needed'] and plan['candidates'] == [] and plan['target'] is None
    assert 'no replica on another node can take over' in plan['problem']
    assert plan['primaries'] == ['swarmlab_redis-replica-1']
    same_node = dict(PLACES, **{'redis-master': 'worker1', 'redis-replica-2': 'worker1'})
    plan = switchover_plan(topology('redis-replica-1'), tasks(same_node), 'worker1', STACK)
    assert plan['candidates'] == [] and plan['problem']


def test_an_unknown_master_is_a_problem():
    topo = dict(topology(), master=None, summary='unhealthy: 2 masters (split brain)')
    plan = switchover_plan(topo, tasks(), 'worker1', STACK)
    assert plan['master'] is None and plan['primaries'] is None and 'split brain' in plan['problem']
    places = dict(PLACES)
    del places['redis-master']
    plan = switchover_plan(topology(), tasks(places), 'manager1', STACK)
    assert 'runs no task of the stack swarmlab' in plan['problem'] and plan['primaries'] is None


def test_the_filter_is_the_plan():
    assert FilterModule().filters()['redis_switchover_plan'](topology('redis-replica-2'), tasks(), 'worker2', STACK) == \
        switchover_plan(topology('redis-replica-2'), tasks(), 'worker2', STACK)
