# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""RolloutWatcher against a scripted stand-in for the Docker API: the daemon is the only double. The
real path (Swarm rolling back a deploy of a missing image and of a never-ready one) is exercised on
the lab by `swarmlab-ops drills --drills bad-image,never-ready` (docs/reliability.md)."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.swarmlab.cluster.plugins.module_utils import _swarm as sw
from ansible_collections.swarmlab.cluster.plugins.modules.swarm_rollout import RolloutError, RolloutWatcher

from ansible_collections.swarmlab.cluster.tests.unit.plugins.module_utils.test__swarm import node, service
from ansible_collections.swarmlab.cluster.tests.unit.plugins.modules.test_swarm_node_drain import Clock

GOOD = 'registry:5000/swarmlab/counter:good'
BAD = 'registry:5000/swarmlab/counter:does-not-exist'
NODES = [node('m1', 'manager1', role='manager'), node('w1', 'worker1'), node('w2', 'worker2')]


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.check_mode = check_mode
        self.params = {'stack': 'swarmlab', 'services': [], 'since': None, 'fail_on_rollback': True,
                       'wait_timeout': 30, 'poll_interval': 1}
        self.params.update(params)


def web(image=GOOD, version=10, status=None):
    svc = service('web-id', name='swarmlab_web')
    svc['Version'] = {'Index': version}
    svc['Spec']['Labels'] = {'com.docker.stack.namespace': 'swarmlab'}
    svc['Spec']['TaskTemplate'] = {'ContainerSpec': {'Image': image}, 'Placement': {}}
    if status:
        svc['UpdateStatus'] = status
    return svc


def wtask(image, node_id, state='running', desired='running', created='2026-11-30T03:00:00Z', err=''):
    status = {'State': state, 'Timestamp': created}
    if err:
        status['Err'] = err
    return {'ID': 't-%s-%s-%s' % (image[-4:], node_id, state), 'ServiceID': 'web-id', 'NodeID': node_id,
            'DesiredState': desired, 'CreatedAt': created, 'Status': status,
            'Spec': {'ContainerSpec': {'Image': image}, 'Placement': {}}}


OLD_TASKS = [wtask(GOOD, n) for n in ('m1', 'w1', 'w2', 'w2')]


class FakeApi:
    """services() walks through the given service lists (then stays on the last); tasks likewise."""

    def __init__(self, service_steps, task_steps):
        self.service_steps = [copy.deepcopy(step) for step in service_steps]
        self.task_steps = list(task_steps)

    def swarm_manager(self):
        return True

    def nodes(self):
        return NODES

    def services(self):
        return self.service_steps.pop(0) if len(self.service_steps) > 1 else self.service_steps[0]

    def tasks(self):
        return self.task_steps.pop(0) if len(self.task_steps) > 1 else self.task_steps[0]


def watch(api, **params):
    clock = Clock()
    return RolloutWatcher(FakeModule(**params), api, sleep=clock.sleep, clock=clock).run()


BEFORE = {'swarmlab_web': {'version': 10, 'image': GOOD, 'update_started_at': '2026-11-29T10:00:00Z',
                           'update_state': 'completed'}}
EARLIER = {'State': 'completed', 'StartedAt': '2026-11-29T10:00:00Z'}


def test_without_since_it_only_reports():
    result = watch(FakeApi([[web(status=EARLIER)]], [OLD_TASKS]))
    assert result == {'changed': False, 'waited': 0.0, 'services': BEFORE}


def test_other_stacks_are_left_out():
    other = web()
    other['Spec']['Labels'] = {'com.docker.stack.namespace': 'monitoring'}
    other['ID'] = 'x'
    result = watch(FakeApi([[web(status=EARLIER), other]], [OLD_TASKS]))
    assert list(result['services']) == ['swarmlab_web']


def test_a_missing_image_rolled_back_fails_naming_service_image_and_errors():
    started = '2026-11-30T03:10:00.5Z'
    updating = web(BAD, 11, {'State': 'updating', 'StartedAt': started, 'Message': 'update in progress'})
    rolling = web(GOOD, 12, {'State': 'rollback_started', 'StartedAt': started,
                             'Message': 'update rolled back due to failure or early termination of task t1'})
    done = web(GOOD, 13, {'State': 'rollback_completed', 'StartedAt': started, 'Message': 'rollback completed'})
    rejected = wtask(BAD, 'w1', state='rejected', desired='shutdown', created='2026-11-30T03:10:01Z',
                     err='No such image: %s' % BAD)
    api = FakeApi([[updating], [updating], [rolling], [done]], [OLD_TASKS + [rejected]])
    with pytest.raises(RolloutError) as exc:
        watch(api, since=BEFORE)
    message = str(exc.value)
    assert message.startswith('swarmlab_web: Swarm rolled back the update to image %s after ' % BAD)
    assert 'update rolled back due to failure or early termination of task t1' in message
    assert 'Task errors: %s on worker1: rejected: No such image: %s.' % (BAD, BAD) in message
    assert message.endswith('It runs the previous image %s again (4/4 running).' % GOOD)
    rollout = exc.value.result['rollouts'][0]
    assert rollout['outcome'] == 'rolled_back' and rollout['update_state'] == 'rollback_completed'
    assert (rollout['image'], rollout['image_before'], rollout['image_attempted']) == (GOOD, GOOD, BAD)
    assert rollout['messages'] == ['update in progress', 'update rolled back due to failure or early termination of task t1',
                                   'rollback completed']
    assert exc.value.result['failed_services'] == ['swarmlab_web']


def test_attempted_image_from_the_tasks_when_the_rollback_ended_before_the_first_look():
    started = '2026-11-30T03:10:00Z'
    done = web(GOOD, 13, {'State': 'rollback_completed', 'StartedAt': started, 'Message': 'rollback completed'})
    unhealthy = wtask('registry:5000/swarmlab/counter:never-ready', 'w2', state='failed', desired='shutdown',
                      created='2026-11-30T03:10:02Z', err='unhealthy container')
    with pytest.raises(RolloutError, match=r'never-ready on worker2: failed: unhealthy container') as exc:
        watch(FakeApi([[done]], [OLD_TASKS + [unhealthy]]), since=BEFORE)
    assert exc.value.result['rollouts'][0]['image_attempted'] == 'registry:5000/swarmlab/counter:never-ready'


def test_errors_of_earlier_updates_are_not_reported():
    done = web(GOOD, 13, {'State': 'rollback_completed', 'StartedAt': '2026-11-30T03:10:00Z'})
    old = wtask(BAD, 'w1', state='rejected', desired='shutdown', created='2026-11-30T01:00:00Z', err='No such image')
    with pytest.raises(RolloutError, match=r'Task errors: none reported\.'):
        watch(FakeApi([[done]], [OLD_TASKS + [old]]), since=BEFORE)


def test_a_completed_update_succeeds():
    new = 'registry:5000/swarmlab/counter:new'
    updating = web(new, 11, {'State': 'updating', 'StartedAt': '2026-11-30T03:10:00Z'})
    done = web(new, 11, {'State': 'completed', 'StartedAt': '2026-11-30T03:10:00Z', 'Message': 'update completed'})
    new_tasks = [wtask(new, n) for n in ('m1', 'w1', 'w2', 'w2')]
    result = watch(FakeApi([[updating], [updating], [done]], [OLD_TASKS, new_tasks]), since=BEFORE)
    rollout = result['rollouts'][0]
    assert (rollout['outcome'], rollout['image_attempted'], rollout['running'], rollout['desired']) == ('completed', new, 4, 4)
    assert rollout['seconds'] == 2.0 and result['failed_services'] == []
    assert result['services']['swarmlab_web']['update_state'] == 'completed'


def test_a_spec_change_that_replaces_no_task():
    # A stack deploy updates every service; an unchanged spec resets UpdateStatus and starts no update.
    result = watch(FakeApi([[web(GOOD, 11)]], [OLD_TASKS]), since=BEFORE)
    assert result['rollouts'][0]['outcome'] == 'no_update'
    assert result['failed_services'] == [] and result['waited'] == 0.0


def test_an_update_not_started_yet_is_waited_for():
    # Version changed, UpdateStatus reset, tasks still of the old image: Swarm has work to do.
    new = 'registry:5000/swarmlab/counter:new'
    steps = [[web(new, 11)], [web(new, 11, {'State': 'updating', 'StartedAt': 'x'})],
             [web(new, 11, {'State': 'completed', 'StartedAt': 'x'})]]
    result = watch(FakeApi(steps, [OLD_TASKS]), since=BEFORE)
    assert result['rollouts'][0]['outcome'] == 'completed'


def test_a_pending_update_that_never_starts_replaces_no_task():
    # Outdated tasks by the comparison, but Swarm starts no update within the settle time.
    new = 'registry:5000/swarmlab/counter:new'
    result = watch(FakeApi([[web(new, 11)]], [OLD_TASKS]), since=BEFORE)
    assert result['rollouts'][0]['outcome'] == 'no_update'
    assert result['waited'] == 15.0


def test_unchanged_services_are_not_reported_and_a_new_one_is_created():
    new_svc = web()
    new_svc['ID'] = 'redis-id'
    new_svc['Spec']['Name'] = 'swarmlab_redis'
    result = watch(FakeApi([[web(status=EARLIER), new_svc]], [OLD_TASKS]), since=BEFORE)
    assert [(r['name'], r['outcome']) for r in result['rollouts']] == [('swarmlab_redis', 'created')]


def test_paused_fails_and_a_timeout_fails():
    paused = web(BAD, 11, {'State': 'paused', 'StartedAt': 'x', 'Message': 'update paused due to failure'})
    with pytest.raises(RolloutError, match=r'Swarm paused the update to image .*does-not-exist .* Now 4/4 running\.'):
        watch(FakeApi([[paused]], [OLD_TASKS]), since=BEFORE)
    stuck = web(BAD, 11, {'State': 'updating', 'StartedAt': 'x'})
    with pytest.raises(RolloutError, match=r'Swarm has not finished the update to image .* after 30s') as exc:
        watch(FakeApi([[stuck]], [OLD_TASKS]), since=BEFORE)
    assert exc.value.result['waited'] == 30.0


def test_no_fail_on_rollback_reports_only():
    done = web(GOOD, 13, {'State': 'rollback_completed', 'StartedAt': 'x'})
    result = watch(FakeApi([[done]], [OLD_TASKS]), since=BEFORE, fail_on_rollback=False)
    assert result['failed_services'] == ['swarmlab_web']


def test_check_mode_does_not_wait():
    stuck = web(BAD, 11, {'State': 'updating', 'StartedAt': 'x'})
    clock = Clock()
    result = RolloutWatcher(FakeModule(check_mode=True, since=BEFORE), FakeApi([[stuck]], [OLD_TASKS]),
                            sleep=clock.sleep, clock=clock).run()
    assert result['rollouts'][0]['outcome'] == 'updating' and result['failed_services'] == []


def test_api_time_and_outdated_tasks():
    assert sw.api_time('2026-11-30T03:12:44.1Z') < sw.api_time('2026-11-30T03:12:44.12Z')
    assert sw.api_time('2026-11-30T04:12:44+01:00') == sw.api_time('2026-11-30T03:12:44Z')
    assert sw.api_time(None) == 0.0 and sw.api_time('0001-01-01T00:00:00Z') == 0.0
    svc = web('new')
    moved = wtask('new', 'w1')
    moved['Spec']['Placement'] = {'Constraints': ['node.id!=w2']}
    assert sw.outdated_tasks(svc, OLD_TASKS + [moved]) == OLD_TASKS
