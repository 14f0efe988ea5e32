"""Unit tests for the pure parsing and decision logic of the Redis modules."""

from __future__ import annotations

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis import (
    address,
    analyze_topology,
    byte_lag,
    choose_promotion_candidate,
    converged,
    decide_failover,
    blocking_errors,
    demotion_refusal,
    legitimate_master,
    master_alive_evidence,
    persist_problem,
    persist_refusal,
    supports_write_pause,
    write_pause_refusal,
    parse_info,
    parse_replication,
    parse_role,
    replica_link_ok,
    replication_plan,
    repoint_list,
    resolve_master,
    same_server,
    master_sees,
    seen_address,
    supports_failover_command,
)

MASTER_INFO = """# Replication\r
role:master\r
connected_slaves:2\r
slave0:ip=10.0.0.12,port=6379,state=online,offset=1000,lag=0\r
slave1:ip=10.0.0.13,port=6379,state=online,offset=900,lag=3\r
master_failover_state:no-failover\r
master_replid:8e1f0b0a6c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f\r
master_replid2:0000000000000000000000000000000000000000\r
master_repl_offset:1000\r
second_repl_offset:-1\r
"""

REPLICA_INFO = """# Replication
role:slave
master_host:redis-master
master_port:6379
master_link_status:up
master_last_io_seconds_ago:1
master_sync_in_progress:0
slave_read_repl_offset:900
slave_repl_offset:900
slave_priority:100
master_replid:8e1f0b0a6c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f
master_replid2:0000000000000000000000000000000000000000
master_repl_offset:900
"""


def rec(host, port=6379, info=None, role=None, run_id=None, addresses=None, reachable=True, master_run_id=None):
    return {
        'key': address(host, port), 'host': host, 'port': port, 'addresses': addresses or [host],
        'reachable': reachable, 'error': None if reachable else '%s:%d: unreachable' % (host, port),
        'run_id': run_id, 'version': '7.0.15', 'config_file': None,
        'repl': parse_replication(info) if info else {}, 'role_state': role or {}, 'master_run_id': master_run_id,
    }


def replica_info(master_host='10.0.0.11', port=6379, offset=900, link='up', replid='a' * 40, sync=0):
    return ('role:slave\nmaster_host:%s\nmaster_port:%d\nmaster_link_status:%s\nmaster_sync_in_progress:%d\n'
            'slave_repl_offset:%d\nmaster_replid:%s\nmaster_repl_offset:%d\n'
            % (master_host, port, link, sync, offset, replid, offset))


def master_info(offset=1000, replid='a' * 40, slaves=()):
    lines = ['role:master', 'connected_slaves:%d' % len(slaves), 'master_replid:%s' % replid,
             'master_repl_offset:%d' % offset]
    for i, (ip, port, off, lag) in enumerate(slaves):
        lines.append('slave%d:ip=%s,port=%d,state=online,offset=%d,lag=%d' % (i, ip, port, off, lag))
    return '\n'.join(lines) + '\n'


def healthy_set(offsets=(1000, 900)):
    slaves = [('10.0.0.12', 6379, offsets[0], 0), ('10.0.0.13', 6379, offsets[1], 2)]
    m = rec('10.0.0.11', info=master_info(1000, slaves=slaves), run_id='m')
    r2 = rec('10.0.0.12', info=replica_info(offset=offsets[0]), role={'role': 'replica', 'state': 'connected'},
             run_id='r2')
    r3 = rec('10.0.0.13', info=replica_info(offset=offsets[1]), role={'role': 'replica', 'state': 'connected'},
             run_id='r3')
    return [m, r2, r3]


# --- parsing ----------------------------------------------------------------------------------

def test_parse_info_keeps_ids_and_hosts_as_strings():
    info = parse_info(MASTER_INFO)
    assert info['master_replid2'] == '0' * 40
    assert info['master_repl_offset'] == 1000 and info['second_repl_offset'] == -1
    assert info['slave1'] == {'ip': '10.0.0.13', 'port': 6379, 'state': 'online', 'offset': 900, 'lag': 3}


def test_parse_replication_master():
    repl = parse_replication(MASTER_INFO)
    assert repl['role'] == 'master' and repl['connected_replicas'] == 2
    assert [r['ip'] for r in repl['replicas']] == ['10.0.0.12', '10.0.0.13']
    assert repl['replicas'][1]['lag'] == 3 and repl['master_failover_state'] == 'no-failover'
    assert repl['master_host'] is None


def test_parse_replication_replica_from_text_and_dict():
    repl = parse_replication(REPLICA_INFO)
    assert repl['role'] == 'replica' and repl['master_host'] == 'redis-master' and repl['master_port'] == 6379
    assert repl['replica_repl_offset'] == 900 and repl['master_sync_in_progress'] == 0
    assert parse_replication(parse_info(REPLICA_INFO)) == repl


def test_parse_role():
    assert parse_role(['master', 42, [['10.0.0.12', '6379', '40']]]) == {
        'role': 'master', 'offset': 42, 'replicas': [{'ip': '10.0.0.12', 'port': 6379, 'offset': 40}]}
    assert parse_role([b'slave', b'10.0.0.11', 6379, b'connected', 42])['state'] == 'connected'
    assert parse_role(['sentinel', ['mymaster']])['role'] == 'sentinel'


def test_byte_lag_and_address():
    assert byte_lag(1000, 900) == 100
    assert byte_lag(900, 1000) == 0
    assert byte_lag(1000, -1) is None and byte_lag(None, 5) is None
    assert address('::1', 6379) == '[::1]:6379' and address('h', 1) == 'h:1'


def test_replica_link_ok():
    repl = parse_replication(REPLICA_INFO)
    assert replica_link_ok(repl, {'role': 'replica', 'state': 'connected'})
    assert not replica_link_ok(repl, {'role': 'replica', 'state': 'sync'})
    assert not replica_link_ok(parse_replication(replica_info(link='down')))
    assert not replica_link_ok(parse_replication(replica_info(sync=1)))
    assert not replica_link_ok(parse_replication(MASTER_INFO))


def test_versions():
    assert supports_failover_command('6.2.0') and supports_failover_command('7.0.15')
    assert not supports_failover_command('6.0.16') and not supports_failover_command(None)


# --- topology ---------------------------------------------------------------------------------

def test_healthy_topology_with_lag_and_ack():
    topo = analyze_topology(healthy_set())
    assert topo['healthy'] and not topo['split_brain'] and topo['master'] == '10.0.0.11:6379'
    r3 = topo['instances'][2]
    assert r3['lag_bytes'] == 100 and r3['last_ack_seconds'] == 2 and r3['master_resolved_by'] == 'address'


def test_link_down_is_unhealthy_not_split_brain():
    records = healthy_set()
    records[2] = rec('10.0.0.13', info=replica_info(link='down'), role={'role': 'replica', 'state': 'connect'})
    topo = analyze_topology(records)
    assert not topo['healthy'] and not topo['split_brain']
    assert any('10.0.0.13:6379' in p and 'down' in p for p in topo['problems'])


def test_sync_in_progress_is_unhealthy():
    records = healthy_set()
    records[1] = rec('10.0.0.12', info=replica_info(sync=1), role={'role': 'replica', 'state': 'sync'})
    assert not analyze_topology(records)['healthy']


def test_two_masters_is_split_brain():
    records = healthy_set()
    records[2] = rec('10.0.0.13', info=master_info(offset=900, replid='b' * 40))
    topo = analyze_topology(records)
    assert topo['split_brain'] and not topo['healthy'] and len(topo['masters']) == 2


def test_replicas_following_different_masters_is_split_brain():
    records = healthy_set()
    records[2] = rec('10.0.0.13', info=replica_info(master_host='10.9.9.9', replid='d' * 40), role={'state': 'connected'})
    topo = analyze_topology(records)
    assert topo['split_brain']
    assert any('not a listed instance' in p for p in topo['problems'])


def test_diverging_replid_is_split_brain():
    records = healthy_set()
    # Follows the listed master by address, link up, but a different history.
    records[2] = rec('10.0.0.13', info=replica_info(replid='c' * 40), role={'state': 'connected'})
    topo = analyze_topology(records)
    assert topo['split_brain'] and any('different history' in p for p in topo['problems'])


def test_unreachable_instance_is_listed_and_unhealthy():
    records = healthy_set()
    records[2] = rec('10.0.0.13', reachable=False)
    topo = analyze_topology(records)
    assert topo['unreachable_instances'] == ['10.0.0.13:6379'] and not topo['healthy'] and not topo['split_brain']


def test_alias_master_resolved_by_ip_run_id_or_replid():
    records = healthy_set()
    # by the IPs a listed name resolves to
    named = rec('redis-1', addresses=['10.0.0.11'], info=master_info(), run_id='m')
    r = rec('10.0.0.12', info=replica_info(master_host='10.0.0.11'))
    assert resolve_master(r, [named, r]) == ('redis-1:6379', 'address')
    # by run id of the server behind the alias
    r = rec('10.0.0.12', info=replica_info(master_host='redis-master'), master_run_id='m')
    assert resolve_master(r, records[:1] + [r]) == ('10.0.0.11:6379', 'run_id')
    # by replication id
    r = rec('10.0.0.12', info=replica_info(master_host='redis-master'))
    assert resolve_master(r, records[:1] + [r]) == ('10.0.0.11:6379', 'replid')
    # not with the link down (a stale replid proves nothing)
    r = rec('10.0.0.12', info=replica_info(master_host='redis-master', link='down'))
    assert resolve_master(r, records[:1] + [r]) == (None, None)


def test_same_server():
    assert same_server({'run_id': 'x'}, {'run_id': 'x'})
    assert not same_server({'run_id': 'x', 'host': 'a', 'port': 1}, {'run_id': 'y', 'host': 'a', 'port': 1})
    assert same_server({'host': 'localhost', 'port': 1, 'addresses': ['127.0.0.1']},
                       {'host': '127.0.0.1', 'port': 1, 'addresses': ['127.0.0.1']})
    assert not same_server({'host': 'a', 'port': 1}, {'host': 'a', 'port': 2})


# --- decisions --------------------------------------------------------------------------------

def test_promotion_candidate_is_highest_offset():
    topo = analyze_topology(healthy_set(offsets=(900, 1000)))
    assert choose_promotion_candidate(topo) == ('10.0.0.13:6379', 'highest replication offset (1000)')
    assert choose_promotion_candidate(topo, '10.0.0.12:6379')[0] == '10.0.0.12:6379'
    assert choose_promotion_candidate(topo, '10.0.0.11:6379')[0] is None


def test_promotion_candidate_tie_is_stable_and_skips_unreachable():
    records = healthy_set(offsets=(1000, 1000))
    assert choose_promotion_candidate(analyze_topology(records))[0] == '10.0.0.12:6379'
    records[1] = rec('10.0.0.12', reachable=False)
    assert choose_promotion_candidate(analyze_topology(records))[0] == '10.0.0.13:6379'


def test_decide_noop_planned_and_errors():
    topo = analyze_topology(healthy_set())
    assert decide_failover(topo, '10.0.0.11:6379', False)['action'] == 'noop'
    planned = decide_failover(topo, None, False)
    assert planned['action'] == 'planned' and planned['new_master'] == '10.0.0.12:6379'
    assert decide_failover(topo, '10.0.0.99:6379', False)['action'] == 'error'


def master_gone(offsets=(800, 900), link='down'):
    """The master 10.0.0.11 is unreachable; its replicas' links are `link`."""
    m = rec('10.0.0.11', reachable=False)
    r2 = rec('10.0.0.12', info=replica_info(offset=offsets[0], link=link), run_id='r2')
    r3 = rec('10.0.0.13', info=replica_info(offset=offsets[1], link=link), run_id='r3')
    return [m, r2, r3]


def test_decide_forced_needs_force():
    topo = analyze_topology(master_gone())
    refused = decide_failover(topo, None, False)
    assert refused['action'] == 'error' and 'force' in refused['msg']
    forced = decide_failover(topo, None, True)
    assert forced['action'] == 'forced' and forced['new_master'] == '10.0.0.13:6379'
    assert forced['old_master'] == '10.0.0.11:6379'


def test_decide_forced_refused_while_a_replica_is_linked_to_a_master():
    # The listed master does not answer, but its replicas still have their link up: it is alive
    # (listed under another address than theirs, or unreachable from the module host only).
    topo = analyze_topology(master_gone(link='up'))
    refused = decide_failover(topo, None, True)
    assert refused['action'] == 'error' and 'alive' in refused['msg']
    assert '10.0.0.12:6379 reports its link to 10.0.0.11:6379 up' in refused['msg']


def test_decide_forced_refused_while_the_reported_master_answers():
    topo = analyze_topology(master_gone())
    refused = decide_failover(topo, None, True, {'10.0.0.11:6379': {'role': 'master', 'run_id': 'm'}})
    assert refused['action'] == 'error' and 'answers as a master' in refused['msg']
    # An address that answers as a replica (or not at all) is no evidence.
    forced = decide_failover(topo, None, True, {'10.0.0.11:6379': {'role': 'replica', 'run_id': 'm'}})
    assert forced['action'] == 'forced'


def test_alive_evidence_ignores_chained_replicas():
    # r3 follows r2 (a listed replica) with its link up: not a sign of a live master.
    records = master_gone()
    records[2] = rec('10.0.0.13', info=replica_info(master_host='10.0.0.12', offset=900, link='up'), run_id='r3')
    assert master_alive_evidence(analyze_topology(records), {}) == []


def test_decide_fence_keeps_master_with_replicas():
    records = healthy_set()
    old = rec('10.0.0.14', info=master_info(offset=5, replid='z' * 40))
    topo = analyze_topology(records + [old])
    assert legitimate_master(topo) == '10.0.0.11:6379'
    assert decide_failover(topo, None, False)['action'] == 'error'
    fence = decide_failover(topo, None, True)
    assert fence['action'] == 'fence' and fence['old_master'] == ['10.0.0.14:6379']


def test_repoint_and_converged():
    topo = analyze_topology(healthy_set())
    assert converged(topo, '10.0.0.11:6379')
    assert repoint_list(topo, '10.0.0.11:6379') == []
    assert repoint_list(topo, '10.0.0.12:6379') == ['10.0.0.11:6379', '10.0.0.13:6379']
    assert not converged(topo, '10.0.0.12:6379')


def test_converged_leaving_out_an_old_master_not_demoted_yet():
    # Mid-switchover: 10.0.0.12 promoted, 10.0.0.13 repointed to it, the old master still a master.
    old = rec('10.0.0.11', info=master_info(1000), run_id='m')
    new = rec('10.0.0.12', info=master_info(1000, slaves=[('10.0.0.13', 6379, 1000, 0)]), run_id='r2')
    r3 = rec('10.0.0.13', info=replica_info(master_host='10.0.0.12', offset=1000),
             role={'role': 'replica', 'state': 'connected'}, run_id='r3')
    topo = analyze_topology([old, new, r3])
    assert not converged(topo, '10.0.0.12:6379')
    assert converged(topo, '10.0.0.12:6379', ignore=['10.0.0.11:6379'])
    syncing = rec('10.0.0.13', info=replica_info(master_host='10.0.0.12', offset=1000, link='down'),
                  role={'role': 'replica', 'state': 'connect'}, run_id='r3')
    assert not converged(analyze_topology([old, new, syncing]), '10.0.0.12:6379', ignore=['10.0.0.11:6379'])


def test_seen_address_prefers_the_masters_view():
    records = healthy_set()
    aliased = rec('redis-2', addresses=['10.0.0.12'])
    assert seen_address(records[0], aliased) == ('10.0.0.12', 6379)
    assert seen_address(None, aliased) == ('redis-2', 6379)


def test_replication_plan():
    assert replication_plan({'role': 'master', 'master': None}, 'master', None)['replicaof'] is False
    assert replication_plan({'role': 'replica', 'master': 'a:1'}, 'master', None)['replicaof'] is True
    assert replication_plan({'role': 'replica', 'master': 'a:1'}, 'replica', 'a:1')['replicaof'] is False
    assert replication_plan({'role': 'replica', 'master': 'a:1'}, 'replica', 'b:1')['replicaof'] is True
    assert replication_plan({'role': 'replica', 'master': 'a:1'}, 'replica', 'b:1', same_master=True)['replicaof'] \
        is False


def test_seen_address_never_guesses_by_port():
    records = healthy_set()
    # 10.0.0.14:6379 is not connected to the master: the master's view must not be borrowed from
    # another replica that happens to listen on the same port.
    stranger = rec('10.0.0.14')
    assert seen_address(records[0], stranger) == ('10.0.0.14', 6379)
    assert seen_address(records[0], records[0]) == ('10.0.0.11', 6379)
    assert master_sees(records[0], records[1]) and not master_sees(records[0], stranger)


# --- refusals (issue 14) ------------------------------------------------------------------------

def test_persist_problem_no_file_or_temporary_directory():
    assert persist_problem({'key': 'a:1', 'config_file': '/etc/redis/redis.conf'}) is None
    assert persist_problem({'key': 'a:1', 'config_file': '/data/redis.conf'}) is None
    assert persist_problem({'key': 'a:1', 'config_file': '/tmpdata/redis.conf'}) is None
    assert 'without a config file' in persist_problem({'key': 'a:1', 'config_file': None})
    for path in ('/tmp/redis.conf', '/var/tmp/x/r.conf', '/run/redis/r.conf', '/var/run/r.conf', '/dev/shm/r.conf'):
        assert 'temporary directory' in persist_problem({'key': 'a:1', 'config_file': path}), path


def test_persist_refusal_names_every_instance_and_skips_unreachable_ones():
    records = [
        {'key': 'a:1', 'reachable': True, 'config_file': '/tmp/redis.conf'},
        {'key': 'b:1', 'reachable': True, 'config_file': None},
        {'key': 'c:1', 'reachable': False, 'config_file': None},
        {'key': 'd:1', 'reachable': True, 'config_file': '/etc/redis/redis.conf'},
    ]
    msg = persist_refusal(records)
    assert 'a:1' in msg and 'b:1' in msg and 'c:1' not in msg and 'd:1' not in msg
    assert 'nothing was changed' in msg and 'persist: false' in msg
    assert persist_refusal(records[2:]) is None


def test_demotion_refusal():
    master = parse_replication(master_info(slaves=[('10.0.0.12', 6379, 1, 0), ('10.0.0.13', 6379, 1, 0)]))
    msg = demotion_refusal('a:1', master, 1, 'b:1')
    assert '2 connected replicas and 1 key' in msg and 'force: true' in msg and 'b:1' in msg
    empty = parse_replication(master_info())
    assert demotion_refusal('a:1', empty, 0, 'b:1') is None
    assert '3 keys' in demotion_refusal('a:1', empty, 3, 'b:1')
    # A replica holds a copy only: following another master loses nothing of its own.
    assert demotion_refusal('a:1', parse_replication(replica_info()), 10, 'b:1') is None


def test_blocking_errors_are_auth_and_permission_only():
    records = [
        {'key': 'a:1', 'reachable': False, 'error': 'a:1: authentication failed', 'error_kind': 'auth'},
        {'key': 'b:1', 'reachable': False, 'error': 'b:1: unreachable', 'error_kind': 'connection'},
        {'key': 'c:1', 'reachable': False, 'error': 'c:1: the user lacks a permission', 'error_kind': 'permission'},
        {'key': 'd:1', 'reachable': True, 'error': None, 'error_kind': None},
    ]
    assert blocking_errors(records) == ['a:1: authentication failed', 'c:1: the user lacks a permission']


def test_write_pause_needs_6_2():
    assert supports_write_pause('6.2.0') and supports_write_pause('7.0.15')
    assert not supports_write_pause('6.0.16') and not supports_write_pause(None)
    assert write_pause_refusal('a:1', '7.0.15') is None
    msg = write_pause_refusal('a:1', '5.0.14')
    assert '5.0.14' in msg and 'CLIENT PAUSE WRITE' in msg and 'nothing was changed' in msg
