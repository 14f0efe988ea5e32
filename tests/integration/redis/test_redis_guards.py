"""Issue 14: the paths where the Redis modules lost data or split the set, each reproduced against
real redis-server 7.0.15 processes (these tests failed before the fixes; see the commit messages).

Run from the checkout:  .venv/bin/pytest tests/integration/redis/test_redis_guards.py -q
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from redis_harness import PASSWORD, REDIS_CONF, Server, SlowLink, Topology, conn, run_module, run_playbook

pytestmark = pytest.mark.integration


def wait_for(check, timeout=15.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError('condition not met in %ss' % timeout)


def roles(topo: Topology) -> dict[int, str]:
    return {s.port: s.client().execute_command('ROLE')[0] for s in topo.servers}


def masters(topo: Topology) -> list[Server]:
    return [s for s in topo.servers if s.client().execute_command('ROLE')[0] == 'master']


def accepts_incr(server: Server) -> bool:
    try:
        server.client().incr('probe')
        return True
    except redis.exceptions.ReadOnlyError:
        return False


class Writer(threading.Thread):
    """INCR a counter on whichever instance is master; remember every acknowledged result."""

    def __init__(self, topo: Topology, pace: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.topo = topo
        self.pace = pace  # seconds between INCRs
        self.acked: list[tuple[int, int]] = []  # (port, value)
        self.errors = 0
        self.stop_flag = threading.Event()
        # When the INCR under way was sent (None between INCRs), and the longest one took:
        # a write pause shows as an INCR that does not come back.
        self.sent_at: float | None = None
        self.longest_wait = 0.0

    def master(self):
        for s in self.topo.servers:
            try:
                if s.client().execute_command('ROLE')[0] == 'master':
                    return s
            except redis.exceptions.RedisError:
                pass
        return None

    def run(self) -> None:
        server = self.topo.master
        client = server.client()
        while not self.stop_flag.is_set():
            self.sent_at = time.monotonic()
            try:
                value = client.incr('counter')
            except redis.exceptions.RedisError:
                value = None
            self.longest_wait = max(self.longest_wait, time.monotonic() - self.sent_at)
            self.sent_at = None
            if value is not None:
                self.acked.append((server.port, value))
                if self.pace:
                    time.sleep(self.pace)
                continue
            self.errors += 1
            time.sleep(0.01)
            server = self.master() or server
            client = server.client()

    def waiting(self) -> float:
        """For how long the INCR under way has been waiting for its answer (0 when none is)."""
        sent = self.sent_at
        return time.monotonic() - sent if sent is not None else 0.0

    def finish(self) -> list[int]:
        self.stop_flag.set()
        self.join(10)
        return [value for port, value in self.acked]


def assert_no_acknowledged_write_lost(values: list[int], final: int) -> None:
    assert values, 'no write was acknowledged'
    assert len(values) == len(set(values)), 'an INCR result repeated: acknowledged writes were lost (%d repeats)' % (
        len(values) - len(set(values)))
    assert values == sorted(values)
    assert final >= max(values)


# --- defect 3: redis_topology_info's "unreachable" key made Ansible mark the host unreachable -----

def test_wrong_password_fails_the_task_not_the_host(topo):
    proc = run_playbook('tests/integration/redis/playbooks/topology_wrong_password.yml',
                        {'redis_instances': topo.instances})
    out = proc.stdout + proc.stderr
    assert 'UNREACHABLE' not in out, out
    assert proc.returncode == 0, out
    assert ('PLAY-WENT-ON plain-healthy=False failing=True reporting=True retried=True attempts=2 '
            'unreachable-instances=3') in ' '.join(out.split()), out
    assert 'unreachable=0' in out and 'ignored=3' in out, out


# --- defect 2: redis_replication turned a master with data and replicas into an empty replica ----

def test_replica_role_refused_for_a_master_with_replicas_and_data(topo, server_dir):
    empty = Server(server_dir, 'r4', REDIS_CONF.format(pw=PASSWORD))
    empty.start()
    try:
        topo.master.client().set('precious', 'data')
        args = conn(topo.master.port, role='replica', master_host='127.0.0.1', master_port=empty.port,
                    master_auth=PASSWORD)
        for check in (True, False):
            refused = run_module('redis_replication', args, check=check)
            assert refused.get('failed') is True, refused
            assert 'force' in refused['msg'] and '2 connected replicas' in refused['msg'], refused['msg']
            assert '1 key' in refused['msg'], refused['msg']
        assert topo.master.client().execute_command('ROLE')[0] == 'master'
        assert topo.master.client().get('precious') == 'data'

        forced = run_module('redis_replication', dict(args, force=True))
        assert not forced.get('failed'), forced.get('msg')
        assert forced['changed'] is True and forced['master'] == empty.addr
    finally:
        empty.stop()


def test_replica_role_refused_for_a_master_with_data_only(bare):
    bare.master.client().set('precious', 'data')
    args = conn(bare.master.port, role='replica', master_host='127.0.0.1', master_port=bare.replicas[0].port)
    refused = run_module('redis_replication', args)
    assert refused.get('failed') is True and '1 key' in refused['msg'], refused
    assert bare.master.client().get('precious') == 'data'
    assert bare.master.client().execute_command('ROLE')[0] == 'master'


# --- defect 1: force promoted a replica while the master was alive under another address ---------

def listed_as_other_address(topo: Topology) -> list[dict]:
    """The master listed as 127.0.0.2 (it binds 127.0.0.1 only); its replicas use 127.0.0.1."""
    return [{'host': '127.0.0.2', 'port': topo.master.port}] + [
        {'host': '127.0.0.1', 'port': r.port} for r in topo.replicas]


def test_force_refused_while_replicas_are_linked_to_a_master(topo):
    args = {'instances': listed_as_other_address(topo), 'login_password': PASSWORD, 'master_auth': PASSWORD,
            'force': True, 'timeout': 10}
    result = run_module('redis_failover', args)
    assert result.get('failed') is True, result
    assert 'link' in result['msg'] and 'up' in result['msg'] and topo.master.addr in result['msg'], result['msg']
    assert [s.port for s in masters(topo)] == [topo.master.port]


def test_force_refused_while_the_reported_master_answers(topo):
    # The replicas lost their link (wrong masterauth), but the master they report is alive.
    for r in topo.replicas:
        r.client().config_set('masterauth', 'wrong')
        r.client().client_kill_filter(_type='master')
    for r in topo.replicas:
        wait_for(lambda r=r: r.client().info('replication')['master_link_status'] == 'down')
    args = {'instances': listed_as_other_address(topo), 'login_password': PASSWORD, 'force': True,
            'timeout': 10}
    result = run_module('redis_failover', args)
    assert result.get('failed') is True, result
    assert topo.master.addr in result['msg'] and 'answers as a master' in result['msg'], result['msg']
    assert [s.port for s in masters(topo)] == [topo.master.port]


# --- defect 7: a role change that cannot persist is refused before anything changes --------------

def failover_args(topo: Topology, **extra) -> dict:
    args = {'instances': topo.instances, 'login_password': PASSWORD, 'master_auth': PASSWORD,
            'target': {'host': '127.0.0.1', 'port': topo.replicas[0].port}, 'timeout': 10}
    args.update(extra)
    return args


@pytest.mark.parametrize('where', ['tmp', 'none'])
def test_persist_refused_where_it_cannot_survive_a_restart(tmp_path, where):
    # 'tmp': config files in /tmp (the stack's case: /tmp/redis.conf, rebuilt at every start);
    # 'none': servers started without a config file.
    topo = Topology(tmp_path, config_file=(where == 'tmp'))
    try:
        topo.start()
        for check in (True, False):
            result = run_module('redis_failover', failover_args(topo, persist=True), check=check)
            assert result.get('failed') is True, result
            reason = 'temporary directory' if where == 'tmp' else 'without a config file'
            assert reason in result['msg'] and 'nothing was changed' in result['msg'], result['msg']
        assert [s.port for s in masters(topo)] == [topo.master.port]

        replica = run_module('redis_replication', conn(topo.replicas[0].port, role='master', persist=True))
        assert replica.get('failed') is True and reason in replica['msg'], replica
        assert topo.replicas[0].client().execute_command('ROLE')[0] == 'slave'

        runtime_only = run_module('redis_failover', failover_args(topo, persist=False))
        assert not runtime_only.get('failed'), runtime_only.get('msg')
        assert runtime_only['changed'] is True and runtime_only['persisted'] == []
        assert any('restart' in w for w in runtime_only.get('warnings', [])), runtime_only.get('warnings')
    finally:
        topo.stop()


def test_persist_true_rewrites_durable_config_files(topo):
    result = run_module('redis_failover', failover_args(topo, persist=True))
    assert not result.get('failed'), result.get('msg')
    assert sorted(result['persisted']) == sorted(s.addr for s in topo.servers)
    assert 'replicaof 127.0.0.1 %d' % topo.replicas[0].port in topo.master.conf.read_text()


# --- defect 4: the manual switchover -----------------------------------------------------------

@pytest.mark.parametrize('timeout', [0, 1])
def test_timeout_below_two_is_rejected_before_anything_changes(topo, timeout):
    result = run_module('redis_failover', failover_args(topo, method='manual', timeout=timeout))
    assert result.get('failed') is True, result
    assert 'timeout' in result['msg'] and 'at least 2' in result['msg'], result['msg']
    assert [s.port for s in masters(topo)] == [topo.master.port]


def acl_without_replicaof(server: Server) -> None:
    """User 'ops' on this instance may do everything but change the replication role."""
    server.client().execute_command('ACL', 'SETUSER', 'ops', 'on', '>ops-pw-1', '~*', '&*', '+@all',
                                    '-replicaof', '-slaveof')


def acl_full(server: Server) -> None:
    server.client().execute_command('ACL', 'SETUSER', 'ops', 'on', '>ops-pw-1', '~*', '&*', '+@all')


def test_manual_failure_at_the_old_master_leaves_one_master(topo):
    # The old master refuses REPLICAOF (ACL). Before the fix the target was promoted first, then
    # the finally unpaused the old master: two masters, both taking INCR.
    acl_without_replicaof(topo.master)
    for r in topo.replicas:
        acl_full(r)
    args = failover_args(topo, method='manual', login_user='ops', login_password='ops-pw-1')
    result = run_module('redis_failover', args)
    assert result.get('failed') is True, result
    assert 'NOPERM' in result['msg'] or 'permission' in result['msg'], result['msg']
    assert [s.port for s in masters(topo)] == [topo.master.port]
    assert accepts_incr(topo.master)
    assert not any(accepts_incr(r) for r in topo.replicas)
    assert ping_period(topo.master) == '1'  # the PINGs the module held while paused are back


def test_manual_failure_at_the_target_restores_the_old_master(topo):
    acl_full(topo.master)
    acl_without_replicaof(topo.replicas[0])
    acl_full(topo.replicas[1])
    args = failover_args(topo, method='manual', login_user='ops', login_password='ops-pw-1')
    result = run_module('redis_failover', args)
    assert result.get('failed') is True, result
    assert 'restored' in result['msg'], result['msg']
    assert [s.port for s in masters(topo)] == [topo.master.port]
    assert accepts_incr(topo.master)
    assert ping_period(topo.master) == '1'
    topo.wait_synced()


def ping_period(server: Server) -> str:
    return server.client().config_get('repl-ping-replica-period')['repl-ping-replica-period']


def test_switchover_puts_back_the_ping_period_an_interrupted_one_left(topo):
    # The module holds the master's PINGs (repl-ping-replica-period 2147483647) while writes are
    # paused; a run killed meanwhile leaves that value, and its replicas would time out whenever
    # no write comes. The next switchover says so and puts back the default.
    topo.master.client().config_set('repl-ping-replica-period', 2147483647)
    result = run_module('redis_failover', failover_args(topo, method='manual'))
    assert not result.get('failed'), result.get('msg')
    assert any('left by an interrupted switchover' in w for w in result.get('warnings', [])), result.get('warnings')
    assert ping_period(topo.master) == '10'
    assert ping_period(topo.replicas[0]) == '1'  # the new master's own setting, untouched


def test_manual_switchover_with_a_slow_step_loses_no_write(topo):
    # timeout 3: the write pause lasts 3 s. The target is listed behind a slow link that holds any
    # REPLICAOF for 3.5 s. Before the fix the module promoted the target first (held 3.5 s), and
    # demoted the old master only after its pause had run out: the INCRs the old master
    # acknowledged in between were lost (values repeated). Now the old master is demoted first,
    # under a pause renewed after the catch-up, so it never takes a write the target misses.
    target = topo.replicas[0]
    link = SlowLink(target.port, b'REPLICAOF', 3.5)
    try:
        instances = [{'host': '127.0.0.1', 'port': s.port} for s in (topo.master, topo.replicas[1])]
        instances.insert(1, {'host': '127.0.0.1', 'port': link.port})
        writer = Writer(topo)
        writer.start()
        wait_for(lambda: len(writer.acked) > 200)
        args = failover_args(topo, method='manual', timeout=3, instances=instances,
                             target={'host': '127.0.0.1', 'port': link.port})
        result = run_module('redis_failover', args)
        assert link.delayed >= 1
        assert not result.get('failed'), result.get('msg')
        assert [s.port for s in masters(topo)] == [target.port]
        wait_for(lambda: any(port == target.port for port, value in writer.acked))
        n = len(writer.acked)
        wait_for(lambda: len(writer.acked) > n + 100)
        values = writer.finish()
        assert_no_acknowledged_write_lost(values, int(target.client().get('counter')))
    finally:
        link.close()
