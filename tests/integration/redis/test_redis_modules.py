"""Integration tests: the three Redis modules against real redis-server / Sentinel processes.

Run from the checkout:  .venv/bin/pytest tests/integration/redis -q
"""

from __future__ import annotations

import importlib
import json

import pytest

from ansible.module_utils.testing import patch_module_args

from redis_harness import PASSWORD, Topology, conn, run_module, run_playbook
from test_redis_guards import Writer, wait_for

pytestmark = pytest.mark.integration

PLUGINS = 'ansible_collections.swarmlab.cluster.plugins.'


def instances_arg(topo: Topology) -> dict:
    return {'instances': topo.instances, 'login_password': PASSWORD}


# --- redis_replication ------------------------------------------------------------------------

def test_replica_converges_then_unchanged(bare):
    r2 = bare.replicas[0]
    bare.master.client().set('k', 'v')
    args = conn(r2.port, role='replica', master_host='127.0.0.1', master_port=bare.master.port,
                master_auth=PASSWORD, persist=True)
    first = run_module('redis_replication', args, diff=True)
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True
    assert first['role'] == 'replica' and first['master'] == bare.master.addr
    assert first['link_status'] == 'up' and first['link_state'] == 'connected'
    assert first['sync_in_progress'] is False and first['lag_bytes'] == 0
    assert first['diff']['before']['role'] == 'master' and first['diff']['after']['master'] == bare.master.addr
    assert first['persisted'] is True
    assert 'replicaof 127.0.0.1 %d' % bare.master.port in r2.conf.read_text()
    assert r2.client().get('k') == 'v'

    second = run_module('redis_replication', args)
    assert not second.get('failed'), second.get('msg')
    assert second['changed'] is False and second['persisted'] is False


def run_with_a_write_after_each_replica_read(topo, monkeypatch, capsys, name, owner, args):
    """Run module `name` in-process with a write on the master, acknowledged by both replicas, after
    every read of a replica's state through the read_state that `owner` (under plugins/) calls: a
    caught-up replica, and a master that takes writes while the module runs. The servers are real;
    in-process only so that the write lands between the module's reads."""
    owner_module = importlib.import_module(PLUGINS + owner)
    real_read_state = owner_module.read_state
    master = topo.master.client()

    def read_then_write(client, where):
        state = real_read_state(client, where)
        if state['repl']['role'] == 'replica':
            master.set('between-reads', where)
            assert master.wait(2, 5000) == 2  # the replicas have it: any lag left is the module's reading
        return state

    monkeypatch.setattr(owner_module, 'read_state', read_then_write)
    module = importlib.import_module(PLUGINS + 'modules.' + name)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    result = json.loads(capsys.readouterr().out)
    assert not result.get('failed'), result.get('msg')
    return result


def test_lag_is_not_inflated_by_writes_after_the_replica_was_read(topo, monkeypatch, capsys):
    """CI once saw lag_bytes 14 (one master PING) for a caught-up replica: the master's offset was
    read after the replica's."""
    args = conn(topo.replicas[0].port, role='replica', master_host='127.0.0.1', master_port=topo.master.port)
    result = run_with_a_write_after_each_replica_read(topo, monkeypatch, capsys, 'redis_replication',
                                                      'modules.redis_replication', args)
    assert result['changed'] is False and result['link_status'] == 'up'
    assert result['lag_bytes'] == 0, result


# What a replica has not taken in yet when it is read: a write big enough that the replica is still
# receiving it (16 MiB on loopback) stands for the master's periodic PING (14 bytes) that CI once
# caught in flight for a caught-up replica (lag_bytes 14 right after a converge).
IN_FLIGHT = 'x' * (16 << 20)


def test_lag_does_not_count_the_stream_in_flight_when_the_master_is_read(topo, monkeypatch, capsys):
    owner = importlib.import_module(PLUGINS + 'modules.redis_replication')
    real = owner.connect
    master = topo.master.client()

    def connect_then_write(host, port, params, *rest, **kw):
        client = real(host, port, params, *rest, **kw)
        if port == topo.master.port:  # the module reads the master's offset next
            master.set('in-flight', IN_FLIGHT)
        return client

    monkeypatch.setattr(owner, 'connect', connect_then_write)
    args = conn(topo.replicas[0].port, role='replica', master_host='127.0.0.1', master_port=topo.master.port)
    with patch_module_args(args), pytest.raises(SystemExit):
        owner.main()
    result = json.loads(capsys.readouterr().out)
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is False and result['lag_bytes'] == 0, result
    assert result['offset'] >= result['master_offset']


def test_topology_lag_does_not_count_the_stream_in_flight_when_the_master_is_read(topo, monkeypatch, capsys):
    owner = importlib.import_module(PLUGINS + 'module_utils._redis_client')
    real = owner.read_state
    master = topo.master.client()

    def write_then_read(client, where):
        if where == topo.master.addr:
            master.set('in-flight', IN_FLIGHT)
        return real(client, where)

    monkeypatch.setattr(owner, 'read_state', write_then_read)
    module = importlib.import_module(PLUGINS + 'modules.redis_topology_info')
    with patch_module_args(instances_arg(topo)), pytest.raises(SystemExit):
        module.main()
    result = json.loads(capsys.readouterr().out)
    assert not result.get('failed'), result.get('msg')
    lags = {i['port']: i['lag_bytes'] for i in result['instances'] if i['role'] == 'replica'}
    assert lags == {r.port: 0 for r in topo.replicas}, result['instances']


def test_masterauth_change_is_applied_and_reported(bare):
    r2 = bare.replicas[0]
    r2.client().config_set('masterauth', 'wrong')
    args = conn(r2.port, role='replica', master_host='127.0.0.1', master_port=bare.master.port,
                master_auth=PASSWORD)
    result = run_module('redis_replication', args)
    assert result['changed'] is True and result['masterauth_changed'] is True
    assert result['link_status'] == 'up'
    assert r2.client().config_get('masterauth')['masterauth'] == PASSWORD
    assert PASSWORD not in str(result)


def test_check_mode_reports_change_without_making_it(bare):
    r3 = bare.replicas[1]
    args = conn(r3.port, role='replica', master_host='127.0.0.1', master_port=bare.master.port)
    result = run_module('redis_replication', args, check=True)
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is True
    assert r3.client().info('replication')['role'] == 'master'


def test_promote_to_master(topo):
    r2 = topo.replicas[0]
    result = run_module('redis_replication', conn(r2.port, role='master'))
    assert result['changed'] is True and result['role'] == 'master'
    assert r2.client().info('replication')['role'] == 'master'
    again = run_module('redis_replication', conn(r2.port, role='master'))
    assert again['changed'] is False


def test_refuses_replica_of_itself_through_an_alias(bare):
    r2 = bare.replicas[0]
    # "localhost" is not the login address, but it is the same server: compared by run_id.
    result = run_module('redis_replication', conn(r2.port, role='replica', master_host='localhost',
                                                  master_port=r2.port))
    assert result.get('failed') is True
    assert 'itself' in result['msg'] and r2.addr in result['msg']
    assert r2.client().info('replication')['role'] == 'master'


def test_wrong_password_names_host_and_port(topo):
    result = run_module('redis_replication', conn(topo.master.port, role='master', login_password='nope'))
    assert result.get('failed') is True
    assert topo.master.addr in result['msg'] and 'authentication failed' in result['msg']


def test_unreachable_host_names_host_and_port(topo):
    port = topo.master.port
    topo.master.stop()
    result = run_module('redis_replication', conn(port, role='master'))
    assert result.get('failed') is True
    assert '127.0.0.1:%d' % port in result['msg'] and 'unreachable' in result['msg']


def test_wait_times_out_when_link_cannot_come_up(bare):
    r2 = bare.replicas[0]
    args = conn(r2.port, role='replica', master_host='127.0.0.1', master_port=bare.master.port,
                master_auth='wrong-password', wait_timeout=3)
    result = run_module('redis_replication', args)
    assert result.get('failed') is True
    assert 'not working' in result['msg'] and r2.addr in result['msg']


# --- redis_topology_info ----------------------------------------------------------------------

def test_topology_healthy_then_broken_link(topo):
    topo.master.client().set('x', 'y' * 1000)
    ok = run_module('redis_topology_info', instances_arg(topo))
    assert ok['healthy'] is True and ok['split_brain'] is False, ok['summary']
    assert ok['master'] == topo.master.addr
    assert sorted(ok['replicas']) == sorted(r.addr for r in topo.replicas)
    for entry in ok['instances']:
        if entry['role'] == 'replica':
            assert entry['master'] == topo.master.addr and entry['link_status'] == 'up'
            assert entry['lag_bytes'] is not None and entry['last_ack_seconds'] is not None
            assert entry['replid'] == ok['instances'][0]['replid']

    r2 = topo.replicas[0]
    r2.client().config_set('masterauth', 'wrong')
    r2.client().client_kill_filter(_type='master')
    wait_for(lambda: r2.client().info('replication')['master_link_status'] == 'down')
    bad = run_module('redis_topology_info', instances_arg(topo))
    assert bad['healthy'] is False and bad['split_brain'] is False
    assert any(r2.addr in p and 'down' in p for p in bad['problems'])

    failed = run_module('redis_topology_info', dict(instances_arg(topo), fail_on_unhealthy=True))
    assert failed.get('failed') is True and r2.addr in failed['msg']


def test_topology_lag_is_not_inflated_when_replicas_are_listed_first(topo, monkeypatch, capsys):
    replicas_first = instances_arg(topo)
    replicas_first['instances'] = replicas_first['instances'][1:] + replicas_first['instances'][:1]
    result = run_with_a_write_after_each_replica_read(topo, monkeypatch, capsys, 'redis_topology_info',
                                                      'module_utils._redis_client', replicas_first)
    lags = {i['port']: i['lag_bytes'] for i in result['instances'] if i['role'] == 'replica'}
    assert lags == {r.port: 0 for r in topo.replicas}, result['instances']


def test_topology_split_brain_with_two_masters(topo):
    topo.replicas[1].client().replicaof('no', 'one')
    result = run_module('redis_topology_info', instances_arg(topo))
    assert result['split_brain'] is True and result['healthy'] is False
    assert sorted(result['masters']) == sorted([topo.master.addr, topo.replicas[1].addr])


def test_topology_maps_alias_master_address(topo):
    # r3 follows "localhost:<port>", an alias of the listed 127.0.0.1:<port>.
    r3 = topo.replicas[1]
    r3.client().replicaof('localhost', topo.master.port)
    wait_for(lambda: r3.client().info('replication')['master_link_status'] == 'up')
    result = run_module('redis_topology_info', instances_arg(topo))
    entry = next(e for e in result['instances'] if e['address'] == r3.addr)
    assert entry['master_reported'] == 'localhost:%d' % topo.master.port
    assert entry['master'] == topo.master.addr
    assert result['healthy'] is True, result['summary']


def test_topology_unreachable_and_wrong_password(topo):
    port = topo.replicas[1].port
    topo.replicas[1].stop()
    result = run_module('redis_topology_info', {'instances': topo.instances, 'login_password': PASSWORD})
    assert result['unreachable_instances'] == ['127.0.0.1:%d' % port] and result['healthy'] is False
    wrong = run_module('redis_topology_info', {'instances': topo.instances[:1], 'login_password': 'nope'})
    assert 'authentication failed' in wrong['instances'][0]['error']
    assert topo.master.addr in wrong['instances'][0]['error']


# --- redis_failover ---------------------------------------------------------------------------

@pytest.mark.parametrize('method', ['failover', 'manual'])
def test_planned_switchover_keeps_every_acknowledged_write(topo, method):
    target = topo.replicas[1]
    writer = Writer(topo)
    writer.start()
    wait_for(lambda: len(writer.acked) > 200)
    args = dict(instances_arg(topo), target={'host': '127.0.0.1', 'port': target.port}, method=method,
                master_auth=PASSWORD, timeout=20)
    result = run_module('redis_failover', args, diff=True)
    wait_for(lambda: any(port == target.port for port, value in writer.acked))
    n = len(writer.acked)
    wait_for(lambda: len(writer.acked) > n + 100)
    writer.stop_flag.set()
    writer.join(10)
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is True and result['method'] == method
    assert result['old_master'] == topo.master.addr and result['new_master'] == target.addr
    assert result['after']['healthy'] is True and result['after']['master'] == target.addr
    assert result['before']['master'] == topo.master.addr and result['elapsed'] > 0

    values = [value for port, value in writer.acked]
    old_acked = [v for p, v in writer.acked if p == topo.master.port]
    assert old_acked, 'no write acknowledged by the old master'
    assert len(values) == len(set(values)), 'an INCR result repeated: a write was lost'
    assert values == sorted(values)
    assert int(target.client().get('counter')) >= max(values)

    again = run_module('redis_failover', args)
    assert again['changed'] is False and again['operation'] == 'noop'


def test_check_mode_failover_changes_nothing(topo):
    args = dict(instances_arg(topo), target={'host': '127.0.0.1', 'port': topo.replicas[0].port})
    result = run_module('redis_failover', args, check=True)
    assert result['changed'] is True and result['new_master'] == topo.replicas[0].addr
    assert topo.master.client().info('replication')['role'] == 'master'


def test_forced_promotion_picks_highest_offset_and_fences_old_master(topo):
    r2, r3 = topo.replicas
    # r2 falls behind: its link goes down (wrong masterauth), then the master takes more writes.
    r2.client().config_set('masterauth', 'wrong')
    r2.client().client_kill_filter(_type='master')
    wait_for(lambda: r2.client().info('replication')['master_link_status'] == 'down')
    m = topo.master.client()
    for i in range(100):
        m.set('key%d' % i, i)
    wait_for(lambda: r3.client().info('replication')['slave_repl_offset']
             == m.info('replication')['master_repl_offset'])
    old_port = topo.master.port
    topo.master.stop()

    refused = run_module('redis_failover', instances_arg(topo))
    assert refused.get('failed') is True and 'force' in refused['msg']

    result = run_module('redis_failover', dict(instances_arg(topo), force=True, master_auth=PASSWORD, timeout=15))
    assert not result.get('failed'), result.get('msg')
    assert result['operation'] == 'forced' and result['new_master'] == r3.addr
    assert r2.addr in result['repointed']
    assert r3.client().info('replication')['role'] == 'master'
    wait_for(lambda: r2.client().info('replication')['master_link_status'] == 'up')
    assert r2.client().info('replication')['master_port'] == r3.port
    assert r2.client().get('key99') == '99'

    # The old master comes back (empty, as a master): a split brain the next run fences.
    topo.master.start()
    seen = run_module('redis_topology_info', instances_arg(topo))
    assert seen['split_brain'] is True
    fenced = run_module('redis_failover', dict(instances_arg(topo), force=True, master_auth=PASSWORD))
    assert not fenced.get('failed'), fenced.get('msg')
    assert fenced['operation'] == 'fence' and fenced['fenced'] == ['127.0.0.1:%d' % old_port]
    assert fenced['after']['healthy'] is True and fenced['after']['master'] == r3.addr
    assert topo.master.client().get('key99') == '99'


def test_sentinel_failover_to_target(topo):
    topo.start_sentinels()
    target = topo.replicas[0]
    args = dict(instances_arg(topo), sentinels=[{'host': '127.0.0.1', 'port': s.port} for s in topo.sentinels],
                target={'host': '127.0.0.1', 'port': target.port}, timeout=30)
    result = run_module('redis_failover', args)
    assert not result.get('failed'), result.get('msg')
    assert result['method'] == 'sentinel' and result['new_master'] == target.addr
    assert result['old_master'] == topo.master.addr
    assert result['after']['healthy'] is True, result['after']['summary']
    for s in topo.sentinels:
        wait_for(lambda s=s: s.client().sentinel_get_master_addr_by_name('mymaster')[1] == target.port)
    # replica-priority restored on the replica that was held back
    assert topo.replicas[1].client().config_get('replica-priority')['replica-priority'] == '100'
    again = run_module('redis_failover', args)
    assert again['changed'] is False


# --- playbooks/redis_failover.yml -------------------------------------------------------------

@pytest.mark.parametrize('with_sentinel', [False, True])
def test_failover_playbook(topo, with_sentinel):
    extra = {'redis_instances': topo.instances, 'redis_password': PASSWORD}
    if with_sentinel:
        # Sentinel chooses the replica (the module test above covers a Sentinel target).
        topo.start_sentinels()
        extra['redis_sentinels'] = [{'host': '127.0.0.1', 'port': s.port} for s in topo.sentinels]
    else:
        extra['redis_target'] = {'host': '127.0.0.1', 'port': topo.replicas[1].port}
    proc = run_playbook('playbooks/redis_failover.yml', extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert PASSWORD not in proc.stdout
    new = [r for r in topo.replicas if r.client().info('replication')['role'] == 'master']
    assert len(new) == 1 and (with_sentinel or new[0] is topo.replicas[1])
    assert 'healthy: master %s' % new[0].addr in proc.stdout
    # persist: true rewrote the old master's config file, so a restart keeps it a replica
    assert 'replicaof 127.0.0.1 %d' % new[0].port in topo.master.conf.read_text()


def test_failover_playbook_needs_a_password(topo):
    proc = run_playbook('playbooks/redis_failover.yml', {'redis_instances': topo.instances})
    assert proc.returncode != 0 and 'redis_password' in proc.stdout
