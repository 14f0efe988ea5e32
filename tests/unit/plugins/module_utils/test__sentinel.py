"""Unit tests for the pure Sentinel decisions (plugins/module_utils/_sentinel.py)."""

from __future__ import annotations

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis import address, parse_replication
from ansible_collections.swarmlab.cluster.plugins.module_utils._sentinel import (
    auth_failing,
    ckquorum_ok,
    confirmation,
    decide_master,
    failing_over,
    failover_in_progress,
    majority,
    monitored_key,
    pairs,
    pause_budget,
    plan_sentinel,
    promotion_blockers,
    promotion_candidates,
    quorum_refusal,
    reachable_refusal,
    sentinel_errors,
    sentinel_sees_priority_zero,
    stale_entries,
    unlisted_candidates,
)


def instance(host, role='replica', run_id=None, reachable=True, master='10.0.0.11', priority=100, link='up',
             error_kind=None):
    if role == 'master':
        info = 'role:master\nconnected_slaves:0\nmaster_repl_offset:100\n'
    else:
        info = ('role:slave\nmaster_host:%s\nmaster_port:6379\nmaster_link_status:%s\nslave_repl_offset:100\n'
                'slave_priority:%d\n' % (master, link, priority))
    return {'key': address(host, 6379), 'host': host, 'port': 6379, 'addresses': [host], 'reachable': reachable,
            'error': None if reachable else '%s:6379: unreachable' % host, 'error_kind': error_kind,
            'run_id': run_id or 'run-' + host, 'repl': parse_replication(info) if reachable else {}}


def view(host, monitors=None, reachable=True, runid=None, error_kind=None, replicas=(), sentinels=(), **master):
    m = None
    if monitors:
        ip, port = monitors.split(':')
        m = {'name': 'mymaster', 'ip': ip, 'port': port, 'runid': runid or '', 'flags': 'master', 'quorum': '2',
             'down-after-milliseconds': '5000', 'failover-timeout': '20000', 'parallel-syncs': '1',
             'last-ping-reply': '100', 'last-ok-ping-reply': '100'}
        m.update(master)
    return {'key': '%s:26379' % host, 'host': host, 'port': 26379, 'addresses': [host], 'reachable': reachable,
            'error': None if reachable else '%s:26379: unreachable: refused' % host, 'error_kind': error_kind,
            'master': m, 'replicas': list(replicas), 'sentinels': list(sentinels)}


SET = [instance('10.0.0.11', role='master'), instance('10.0.0.12'), instance('10.0.0.13')]
WANTED = {'quorum': '2', 'down-after-milliseconds': '5000', 'failover-timeout': '20000', 'parallel-syncs': '1'}


def test_pairs_from_resp2_list_and_dict():
    assert pairs(['ip', '10.0.0.11', 'port', 6379, b'flags', b'master']) == {
        'ip': '10.0.0.11', 'port': '6379', 'flags': 'master'}
    assert pairs({'quorum': 2}) == {'quorum': '2'}
    assert pairs(None) == {}


def test_majority():
    assert [majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_monitored_key_by_address_or_run_id():
    assert monitored_key(view('s1', '10.0.0.12:6379'), SET) == '10.0.0.12:6379'
    # Sentinel knows the master by an address that is not listed, but reports its run id.
    assert monitored_key(view('s1', '172.18.0.5:6379', runid='run-10.0.0.11'), SET) == '10.0.0.11:6379'
    assert monitored_key(view('s1', '172.18.0.5:6379'), SET) is None
    assert monitored_key(view('s1'), SET) is None


def test_majority_of_reachable_sentinels_decides():
    views = [view('s1', '10.0.0.11:6379'), view('s2', '10.0.0.11:6379'), view('s3', '10.0.0.12:6379')]
    decision = decide_master(views, SET)
    assert decision['master'] == '10.0.0.11:6379' and '2 of 3' in decision['reason']


def test_most_votes_is_not_a_majority():
    # The old script took "most votes": 2 of 5 is no majority; with two masters that is an error.
    records = SET + [instance('10.0.0.14', role='master')]
    views = [view('s1', '10.0.0.11:6379'), view('s2', '10.0.0.11:6379'), view('s3', '10.0.0.14:6379'),
             view('s4'), view('s5')]
    decision = decide_master(views, records)
    assert decision['master'] is None and 'split brain' in decision['error'] and not decision['retry']


def test_unreachable_sentinels_do_not_count():
    views = [view('s1', '10.0.0.11:6379'), view('s2', reachable=False), view('s3', reachable=False)]
    decision = decide_master(views, SET)
    assert decision['master'] == '10.0.0.11:6379' and '1 of 1' in decision['reason']
    refusal = reachable_refusal(views)
    assert 'only 1 of 3' in refusal and 's2:26379: unreachable' in refusal
    assert reachable_refusal([views[0], view('s2', '10.0.0.11:6379'), views[2]]) is None  # 2 of 3


def test_no_majority_falls_back_to_the_only_master():
    assert decide_master([view('s1'), view('s2'), view('s3')], SET)['master'] == '10.0.0.11:6379'
    split = [view('s1', '10.0.0.11:6379'), view('s2', '10.0.0.12:6379'), view('s3')]
    decision = decide_master(split, SET)
    assert decision['master'] == '10.0.0.11:6379' and 'no majority' in decision['reason']


def test_majority_on_a_replica_means_wait():
    views = [view('s1', '10.0.0.12:6379'), view('s2', '10.0.0.12:6379'), view('s3', '10.0.0.11:6379')]
    decision = decide_master(views, SET)
    assert decision['master'] is None and decision['retry'] and 'a replica now' in decision['error']


def test_no_master_at_all_means_wait():
    records = [instance('10.0.0.11', reachable=False), instance('10.0.0.12'), instance('10.0.0.13')]
    decision = decide_master([view('s1'), view('s2'), view('s3')], records)
    assert decision['master'] is None and decision['retry'] and 'no reachable instance' in decision['error']


def test_sentinel_errors_are_auth_and_permission_only():
    views = [view('s1', reachable=False, error_kind='auth'), view('s2', reachable=False, error_kind='connection')]
    views[0]['error'] = 's1:26379: authentication failed (wrong sentinel_user/sentinel_password?)'
    assert sentinel_errors(views) == [views[0]['error']]


def test_plan_monitor_from_scratch():
    plan = plan_sentinel(view('s1'), SET[0], WANTED, 2, True, [])
    assert plan['actions'][0] == ('monitor', '10.0.0.11', 6379, 2)
    assert plan['actions'][1][0] == 'set' and ('auth',) in plan['actions']
    assert plan['before'] == {'monitors': None} and plan['after']['monitors'] == '10.0.0.11:6379'
    assert not any('auth' in c or 'pass' in c for c in plan['changes'])


def test_plan_default_quorum_and_no_auth():
    plan = plan_sentinel(view('s1'), SET[0], {}, 3, False, [])
    assert plan['actions'] == [('monitor', '10.0.0.11', 6379, 3)]


def test_plan_remonitor_when_following_another_instance():
    plan = plan_sentinel(view('s1', '10.0.0.12:6379'), SET[0], WANTED, 2, True, [])
    assert [a[0] for a in plan['actions']] == ['remove', 'monitor', 'set', 'auth']
    assert 'REMOVE and MONITOR' in plan['changes'][0]


def test_plan_nothing_when_all_is_right():
    plan = plan_sentinel(view('s1', '10.0.0.11:6379'), SET[0], WANTED, 2, True, [])
    assert plan['actions'] == [] and plan['changes'] == []
    # Same server under another address (run id): no change either.
    plan = plan_sentinel(view('s1', '172.18.0.5:6379', runid='run-10.0.0.11'), SET[0], WANTED, 2, True, [])
    assert plan['actions'] == []


def test_plan_set_only_what_differs():
    plan = plan_sentinel(view('s1', '10.0.0.11:6379', quorum='3'), SET[0], WANTED, 2, True, [])
    assert plan['actions'] == [('set', [('quorum', '2')])]
    assert 'quorum 2' in plan['changes'][0] and 'was quorum 3' in plan['changes'][0]
    assert plan['before']['quorum'] == '3' and plan['after']['quorum'] == '2'


def test_plan_auth_again_when_pings_get_errors():
    failing = view('s1', '10.0.0.11:6379', **{'last-ping-reply': '300', 'last-ok-ping-reply': '45000'})
    assert auth_failing(failing['master'])
    assert plan_sentinel(failing, SET[0], WANTED, 2, True, [])['actions'] == [('auth',)]
    assert plan_sentinel(failing, SET[0], WANTED, 2, False, [])['actions'] == []
    assert not auth_failing(view('s1', '10.0.0.11:6379')['master'])
    # A master that does not answer at all is down, not misconfigured.
    assert not auth_failing({'last-ping-reply': '45000', 'last-ok-ping-reply': '45000'})


def test_stale_entries_only_unlisted_and_down():
    sentinel_records = [{'key': 's%d:26379' % i, 'host': 's%d' % i, 'port': 26379, 'addresses': ['10.0.1.%d' % i]}
                        for i in (1, 2, 3)]
    v = view('s1', '10.0.0.11:6379', sentinels=[
        {'ip': '10.0.1.2', 'port': '26379', 'flags': 'sentinel'},
        {'ip': '10.0.1.9', 'port': '26379', 'flags': 's_down,sentinel,disconnected'},
        {'ip': '10.0.1.8', 'port': '26379', 'flags': 'sentinel', 'last-ok-ping-reply': '400'},
        {'ip': '10.0.1.7', 'port': '26379', 'flags': 'sentinel', 'last-ok-ping-reply': '4200'},
    ], replicas=[
        {'ip': '10.0.0.12', 'port': '6379', 'flags': 'slave'},
        {'ip': '10.0.0.99', 'port': '6379', 'flags': 's_down,slave,disconnected'},
    ])
    stale, alive = stale_entries(v, sentinel_records, SET)
    assert stale == ['Sentinel 10.0.1.9:26379 (s_down,sentinel,disconnected)', 'Sentinel 10.0.1.7:26379 (sentinel)',
                     'replica 10.0.0.99:6379 (s_down,slave,disconnected)']
    assert alive == ['Sentinel 10.0.1.8:26379 (sentinel)']
    plan = plan_sentinel(v, SET[0], WANTED, 2, True, stale)
    assert plan['actions'] == [('reset',)] and 'RESET' in plan['changes'][0]


def test_ckquorum_and_quorum_bounds():
    assert ckquorum_ok('OK 3 usable Sentinels. Quorum and failover authorization can be reached')
    assert not ckquorum_ok('NOQUORUM 1 usable Sentinels.') and not ckquorum_ok(None)
    assert quorum_refusal(2, 3) is None and quorum_refusal(None, 3) is None
    assert 'between 1 and' in quorum_refusal(4, 3) and quorum_refusal(0, 3)


def test_failover_candidates():
    records = [SET[0], instance('10.0.0.12'), instance('10.0.0.13', priority=0)]
    assert promotion_candidates(records, '10.0.0.11:6379', None) == (['10.0.0.12:6379'], [])
    assert promotion_candidates(records, '10.0.0.11:6379', '10.0.0.13:6379') == (
        ['10.0.0.13:6379'], ['10.0.0.12:6379'])


def test_unlisted_candidates_and_priority_seen():
    v = view('s1', '10.0.0.11:6379', replicas=[
        {'ip': '10.0.0.12', 'port': '6379', 'flags': 'slave', 'slave-priority': '0'},
        {'ip': '10.0.0.77', 'port': '6379', 'flags': 'slave', 'slave-priority': '100'},
        {'ip': '10.0.0.78', 'port': '6379', 'flags': 's_down,slave', 'slave-priority': '100'},
        {'ip': '10.0.0.79', 'port': '6379', 'flags': 'slave', 'slave-priority': '0'},
    ])
    assert unlisted_candidates(v, SET) == ['10.0.0.77:6379']
    assert sentinel_sees_priority_zero(v['replicas'], [SET[1]])
    v['replicas'][0]['slave-priority'] = '100'
    assert not sentinel_sees_priority_zero(v['replicas'], [SET[1]])


def good_replica(ip, **fields):
    entry = {'ip': ip, 'port': '6379', 'flags': 'slave', 'last-ok-ping-reply': '300', 'info-refresh': '4000',
             'slave-priority': '100', 'master-link-down-time': '0'}
    entry.update(fields)
    return entry


def test_promotion_blockers_mirror_sentinels_choice():
    records = [instance('10.0.0.12'), instance('10.0.0.13')]
    good = view('s1', '10.0.0.11:6379', replicas=[good_replica('10.0.0.12'), good_replica('10.0.0.13')])
    assert promotion_blockers(good, records) == {}
    # Right after SENTINEL RESET: rediscovered, but no INFO read yet (info-refresh counts from 0).
    reset = view('s1', '10.0.0.11:6379', replicas=[good_replica('10.0.0.12', **{'info-refresh': '1795000000000'})])
    assert promotion_blockers(reset, records) == {
        '10.0.0.12:6379': 'no INFO read from it for 1795000000 s', '10.0.0.13:6379': 'not among its replicas yet'}
    bad = view('s1', '10.0.0.11:6379', replicas=[
        good_replica('10.0.0.12', flags='s_down,slave,disconnected'), good_replica('10.0.0.13', **{'slave-priority': '0'})])
    assert promotion_blockers(bad, records) == {'10.0.0.12:6379': 'flagged disconnected,s_down',
                                                '10.0.0.13:6379': 'replica-priority 0'}
    stale = view('s1', '10.0.0.11:6379', replicas=[
        good_replica('10.0.0.12', **{'last-ok-ping-reply': '5001'}),
        good_replica('10.0.0.13', **{'master-link-down-time': '50001'})])
    assert set(promotion_blockers(stale, records)) == {'10.0.0.12:6379', '10.0.0.13:6379'}
    # A master Sentinel sees down makes INFO older than 5 s too old (it reads INFO every second then).
    down = view('s1', '10.0.0.11:6379', flags='master,s_down', replicas=[good_replica('10.0.0.12', **{'info-refresh': '6000'})])
    assert promotion_blockers(down, records[:1]) == {'10.0.0.12:6379': 'no INFO read from it for 6 s'}


def test_failover_in_progress():
    assert failover_in_progress({'flags': 'master,failover_in_progress'})
    assert not failover_in_progress({'flags': 'master'}) and not failover_in_progress(None)


def test_failing_over_names_the_sentinels_running_a_failover():
    views = [view('s1', '10.0.0.11:6379'), view('s2', '10.0.0.11:6379', flags='master,failover_in_progress'),
             view('s3', reachable=False), view('s4')]
    assert failing_over(views) == ['s2:26379']
    assert failing_over(views[:1]) == []


def test_pause_budget_stays_under_the_smallest_down_after():
    # down-after less 1 s, half of it at least; the smallest among the reachable Sentinels.
    assert pause_budget([view('s1', '10.0.0.11:6379')]) == (4.0, 5000)
    assert pause_budget([view('s1', '10.0.0.11:6379'), view('s2', '10.0.0.11:6379', **{'down-after-milliseconds': '2000'}),
                         view('s3', reachable=False)]) == (1.0, 2000)
    assert pause_budget([view('s1', '10.0.0.11:6379', **{'down-after-milliseconds': '1000'})]) == (0.5, 1000)
    # Nothing to read it from: Sentinel's own default, 30 s.
    assert pause_budget([view('s1'), view('s2', reachable=False)]) == (29.0, 30000)


def test_confirmation_of_a_new_master():
    # After a switchover to 10.0.0.12: the leader knows at once, the others a moment later.
    records = SET
    views = [view('s1', '10.0.0.12:6379'), view('s2', '10.0.0.11:6379'), view('s3', reachable=False)]
    seen = confirmation(views, records, '10.0.0.12:6379')
    assert seen == {'confirmed': ['s1:26379'], 'others': ['s2:26379 names 10.0.0.11:6379'], 'majority': False, 'all': False}
    views[1] = view('s2', '10.0.0.12:6379')
    seen = confirmation(views, records, '10.0.0.12:6379')
    # Every reachable one names it, and they are a majority of the three listed.
    assert seen['confirmed'] == ['s1:26379', 's2:26379'] and seen['majority'] and seen['all']


def test_confirmation_needs_a_majority_of_the_listed_sentinels():
    views = [view('s1', '10.0.0.12:6379'), view('s2', reachable=False), view('s3', reachable=False)]
    seen = confirmation(views, SET, '10.0.0.12:6379')
    assert seen['confirmed'] == ['s1:26379'] and not seen['majority'] and not seen['all']
    # One that monitors nothing is not a confirmation.
    seen = confirmation([view('s1', '10.0.0.12:6379'), view('s2'), view('s3', '10.0.0.12:6379')], SET, '10.0.0.12:6379')
    assert seen['others'] == ['s2:26379 names no master'] and seen['majority'] and not seen['all']
