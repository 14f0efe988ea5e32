"""Sentinel: the redis_sentinel module and redis_failover's Sentinel path, against real
redis-server and redis-sentinel processes.

Run from the checkout:  .venv/bin/pytest tests/integration/redis/test_redis_sentinel.py -q
"""

from __future__ import annotations

import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from ansible_collections.swarmlab.cluster.plugins.module_utils import _swarm as sw
from ansible_collections.swarmlab.cluster.tests.integration.support.tls import TlsFiles
from redis_harness import PASSWORD, SENTINEL_PASSWORD, StalledLink, Topology, run_module, run_playbook
from test_redis_guards import Writer, assert_no_acknowledged_write_lost, masters, wait_for

pytestmark = pytest.mark.integration


def sentinel_list(topo: Topology) -> list[dict]:
    return [{'host': '127.0.0.1', 'port': s.port} for s in topo.sentinels]


def sentinel_switchover(topo: Topology, target=None, timeout: int = 30) -> dict:
    """redis_failover through the Sentinels, to ``target`` (a server) or Sentinel's choice."""
    args = {'instances': topo.instances, 'login_password': PASSWORD, 'master_auth': PASSWORD,
            'sentinels': sentinel_list(topo), 'timeout': timeout}
    if target is not None:
        args['target'] = {'host': '127.0.0.1', 'port': target.port}
    return run_module('redis_failover', args)


def writing(topo: Topology, pace: float = 0.0) -> Writer:
    """A Writer INCRementing on the master (``pace`` seconds apart), once it has 200 acknowledged
    writes."""
    writer = Writer(topo, pace)
    writer.start()
    wait_for(lambda: len(writer.acked) > 200)
    return writer


# --- defect 5: SENTINEL FAILOVER without a write pause ------------------------------------------

@pytest.mark.parametrize('with_target', [True, False])
def test_sentinel_switchover_loses_no_acknowledged_write(topo, with_target):
    # Before the fix the module sent SENTINEL FAILOVER while the old master took writes: the INCRs
    # it acknowledged until Sentinel demoted it (seconds later) were lost.
    topo.start_sentinels()
    writer = writing(topo)
    result = sentinel_switchover(topo, topo.replicas[1] if with_target else None)
    assert not result.get('failed'), result.get('msg')
    assert result['method'] == 'sentinel' and result['old_master'] == topo.master.addr
    new = masters(topo)
    assert len(new) == 1 and new[0] is not topo.master
    assert result['new_master'] == new[0].addr
    # When the module returns, every Sentinel already names the new master (clients ask any of
    # them); before, it returned as soon as the leader had promoted it.
    assert result['sentinels_confirmed'] == sorted(s.addr for s in topo.sentinels)
    assert all(int(s.client().sentinel_get_master_addr_by_name('mymaster')[1]) == new[0].port for s in topo.sentinels)
    if with_target:
        assert new[0] is topo.replicas[1]
    wait_for(lambda: any(port == new[0].port for port, value in writer.acked))
    n = len(writer.acked)
    wait_for(lambda: len(writer.acked) > n + 100)
    values = writer.finish()
    assert_no_acknowledged_write_lost(values, int(new[0].client().get('counter')))
    for s in topo.sentinels:
        wait_for(lambda s=s: int(s.client().sentinel_get_master_addr_by_name('mymaster')[1]) == new[0].port)


def test_sentinel_switchover_with_one_sentinel_down_is_confirmed_by_the_others(topo):
    topo.start_sentinels()
    topo.wait_sentinels_discovered()
    down = topo.sentinels[2]
    down.stop()
    result = sentinel_switchover(topo, topo.replicas[0])
    assert not result.get('failed'), result.get('msg')
    assert result['new_master'] == topo.replicas[0].addr
    assert result['sentinels_confirmed'] == sorted(s.addr for s in topo.sentinels[:2])
    # Nothing changed: no Sentinel confirmation to wait for.
    again = sentinel_switchover(topo, topo.replicas[0])
    assert again['changed'] is False and again['sentinels_confirmed'] == []


def resync_stats(server) -> dict:
    stats = server.client().info('stats')
    return {k: stats[k] for k in ('sync_full', 'sync_partial_ok', 'sync_partial_err')}


def test_sentinel_switchover_lets_every_replica_continue_with_a_partial_resync(topo):
    # A master PINGs its replicas every repl-ping-replica-period seconds (here 1), writes paused or
    # not. One sent after Sentinel promoted the target reached only the replica it had yet to
    # repoint: 14 bytes ahead of the new master, that replica, and the demoted master after it,
    # could not continue (PSYNC) and did a full resync, seconds of repl-diskless-sync-delay with the
    # writes still held (the lab's master-drain drill: writes held 7.1 s, 2 requests failed).
    topo.start_sentinels()
    writer = writing(topo)
    target, other = topo.replicas
    for server in topo.servers:
        server.client().config_resetstat()
    result = sentinel_switchover(topo, target)
    assert not result.get('failed'), result.get('msg')
    assert masters(topo) == [target]
    topo.wait_synced(target)
    assert resync_stats(target) == {'sync_full': 0, 'sync_partial_ok': 2, 'sync_partial_err': 0}, \
        (resync_stats(target), result['pause_phases'])
    # The PINGs are back once the switchover is over (the demoted master's setting is its own).
    assert topo.master.client().config_get('repl-ping-replica-period') == {'repl-ping-replica-period': '1'}
    values = writer.finish()
    assert_no_acknowledged_write_lost(values, int(target.client().get('counter')))


def test_sentinel_switchover_back_to_the_old_master_waits_until_every_sentinel_saw_it_demoted(topo):
    # A Sentinel reads INFO from a replica every 10 s. One whose last read of the old master came
    # while it was still master had not seen it demoted when a switchover right after promoted it
    # again: to that Sentinel a replica claiming to be master for over 8 s, which it turned back
    # into a replica (+convert-to-slave) under the leader's failover (the lab's master-drain drill,
    # once its set-up moved the master with redis_failover: the failover aborted, requests failed).
    # Every Sentinel must last have seen the target as a replica when it is promoted. One replica
    # only: no replica to hold back, whose wait for Sentinel's next INFO would hide the race.
    topo.servers.remove(topo.replicas[1])
    topo.replicas.pop().stop()
    topo.start_sentinels()
    first = sentinel_switchover(topo, topo.replicas[0])
    assert not first.get('failed'), first.get('msg')
    seen_at_promotion: list[dict] = []
    done = threading.Event()

    def seen_by(s, replica_until: float) -> dict:
        """What this Sentinel last saw of the target, and whether that was its master role of before
        the first switchover: a report older than the watcher's last look at it as a replica."""
        client = s.client()
        entry = next((e for e in client.sentinel_slaves('mymaster') if e['name'] == topo.master.addr), None)
        if entry is None:
            # It names the target its master already (a watcher slowed down by a busy machine): it
            # followed the promotion, which a stale view would have turned back.
            master = client.sentinel_master('mymaster')
            return {'sentinel': s.addr, 'role': 'followed', 'stale': False,
                    'master': '%s:%s' % (master['ip'], master['port'])}
        before_ms = (time.monotonic() - replica_until) * 1000
        return {'sentinel': s.addr, 'role': entry['role-reported'],
                'stale': entry['role-reported'] == 'master' and int(entry['role-reported-time']) > before_ms}

    def watch():
        replica_until = time.monotonic()  # the last time the target answered ROLE as a replica
        while not done.is_set():
            try:
                if topo.master.client().execute_command('ROLE')[0] == 'master':
                    seen_at_promotion.extend(seen_by(s, replica_until) for s in topo.sentinels)
                    return
                replica_until = time.monotonic()
            except redis.exceptions.RedisError:
                pass
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    back = sentinel_switchover(topo, topo.master)
    done.set()
    watcher.join(5)
    assert not back.get('failed'), back.get('msg')
    assert masters(topo) == [topo.master]
    assert len(seen_at_promotion) == len(topo.sentinels), seen_at_promotion
    assert not any(v['stale'] for v in seen_at_promotion), seen_at_promotion
    assert all(v.get('master', topo.master.addr) == topo.master.addr for v in seen_at_promotion), seen_at_promotion


def reset_sentinels(topo: Topology) -> None:
    """What the drills do after a node comes back: SENTINEL RESET on each Sentinel, waiting only
    until it sees a quorum again; it rediscovers the replicas from the master's INFO afterwards."""
    for s in topo.sentinels:
        s.client().execute_command('SENTINEL', 'RESET', 'mymaster')
        wait_for(lambda s=s: quorum_ok(s))


def quorum_ok(sentinel) -> bool:
    try:
        return bool(sentinel.client().execute_command('SENTINEL', 'CKQUORUM', 'mymaster'))
    except redis.exceptions.ResponseError:
        return False


@pytest.mark.parametrize('with_target', [True, False])
def test_sentinel_switchover_right_after_a_reset_waits_for_a_good_replica(topo, with_target):
    # The master-drain drill resets the Sentinels and hands the master back at once. The Sentinel
    # then lists replicas it has not yet read INFO from, which it will not promote: SENTINEL
    # FAILOVER answered NOGOODSLAVE and the task failed. The module now waits (before pausing any
    # write) until the Sentinel that runs the failover would promote a candidate.
    topo.start_sentinels()
    reset_sentinels(topo)
    result = sentinel_switchover(topo, topo.replicas[1] if with_target else None)
    assert not result.get('failed'), result.get('msg')
    new = masters(topo)
    assert len(new) == 1 and new[0] is not topo.master and result['new_master'] == new[0].addr
    if with_target:
        assert new[0] is topo.replicas[1]


# --- a failover the Sentinels run themselves --------------------------------------------------------
# CI once failed with "INPROG Failover already in progress" from the module's own SENTINEL FAILOVER.
# A write pause blocks the hello messages Sentinels PUBLISH to the master, and their PINGs queue
# behind them on the same connection: a pause of about down-after-milliseconds makes the Sentinels
# take the master for down and fail over on their own (seen here with down-after 2000 ms: SDOWN,
# ODOWN and their own failover 4 s into a 5 s pause).

def stuck_failover(sentinel) -> None:
    """A failover that stays under way on ``sentinel`` for the rest of the test: the REPLICAOF it
    sends the chosen replica is renamed to a command that does not exist, and its failover-timeout
    is 10 min. With the harness's 20 s, a 90 s stall of a loaded CI machine had let it end before
    the module looked, and the module rightly went on."""
    client = sentinel.client()
    client.execute_command('SENTINEL', 'SET', 'mymaster', 'rename-command', 'SLAVEOF', 'NO-SUCH-COMMAND')
    client.execute_command('SENTINEL', 'SET', 'mymaster', 'failover-timeout', '600000')
    client.execute_command('SENTINEL', 'FAILOVER', 'mymaster')


@pytest.mark.parametrize('runs_it', [0, 1], ids=['on-the-sentinel-asked', 'on-another-sentinel'])
def test_sentinel_switchover_while_a_failover_is_under_way_is_refused_before_any_pause(topo, runs_it):
    # Before: the module paused writes and asked the first Sentinel anyway: INPROG from that one;
    # from another one, a second failover of the same master ran beside the first.
    topo.start_sentinels()
    stuck_failover(topo.sentinels[runs_it])
    writer = Writer(topo)
    writer.start()
    result = sentinel_switchover(topo, topo.replicas[0])
    values = writer.finish()
    assert result.get('failed'), result
    assert 'already failing over mymaster' in result['msg'] and topo.sentinels[runs_it].addr in result['msg']
    assert result['msg'].endswith('nothing was changed')
    assert masters(topo) == [topo.master]
    assert 'failover_in_progress' in topo.sentinels[runs_it].client().sentinel_master('mymaster')['flags']
    assert writer.longest_wait < 0.5, 'writes were held %.1f s' % writer.longest_wait
    assert_no_acknowledged_write_lost(values, int(topo.master.client().get('counter')))


def wait_held_back(topo: Topology) -> None:
    """Until the module's hold-back of replicas[1] is done: the Sentinel it asks (the first) sees
    that replica's priority 0."""
    held = topo.replicas[1]
    wait_for(lambda: any(r['port'] == held.port and r['slave-priority'] == 0
                         for r in topo.sentinels[0].client().sentinel_slaves('mymaster')), 120, 0.05)


def test_sentinel_switchover_waits_for_a_failover_the_sentinels_begin_meanwhile(topo):
    # The Sentinel the module asks begins a failover of its own while the module holds the writes
    # (here the test asks for it the moment the writes stop; in CI the pause itself made the
    # Sentinels take the master for down). Its SENTINEL FAILOVER then answers INPROG: the module
    # failed and unpaused the old master while Sentinel was about to promote a replica. It now
    # keeps the pause and finishes as after its own request.
    topo.start_sentinels()
    held = topo.replicas[1]
    writer = writing(topo)
    begun = {}

    def begin_when_paused():
        # The held-back replica is frozen once the Sentinel sees its priority 0, so the paused
        # master waits for its acknowledgement for a while (the window to begin a failover in).
        wait_held_back(topo)
        held.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: writer.waiting() > 0.1, 30, 0.01)
            begun['answer'] = topo.sentinels[0].client().execute_command('SENTINEL', 'FAILOVER', 'mymaster')
        finally:
            held.proc.send_signal(signal.SIGCONT)

    trigger = threading.Thread(target=begin_when_paused, daemon=True)
    trigger.start()
    result = sentinel_switchover(topo, topo.replicas[0])
    trigger.join(5)
    assert begun.get('answer') == 'OK', 'the failover was not begun during the pause (%s)' % begun
    assert not result.get('failed'), result.get('msg')
    assert result['new_master'] == topo.replicas[0].addr and masters(topo) == [topo.replicas[0]]
    assert any('already failing over' in w for w in result.get('warnings', [])), result.get('warnings')
    wait_for(lambda: any(port == topo.replicas[0].port for port, value in writer.acked))
    values = writer.finish()
    assert_no_acknowledged_write_lost(values, int(topo.replicas[0].client().get('counter')))


STALLED_PACE = 0.005


@pytest.fixture
def stall(topo):
    """stall(replica): the master's stream to that replica stalls (StalledLink) until the test ends.
    Stalled before the module runs, the target cannot catch up under the module's write pause,
    however long the module takes to get there, and the Sentinels still see it healthy (why not a
    CLIENT PAUSE on it: StalledLink). The writes that go with it are paced (``writing(topo, STALLED_PACE)``): the stalled target
    must stay within the module's 1 MiB of "nearly caught up", or the module would not pause at
    all; a few seconds of INCRs at full speed are more than that."""
    links: list[StalledLink] = []
    try:
        yield lambda replica: links.append(StalledLink(replica, topo.master))
    finally:
        for link in links:
            link.close()


def test_sentinel_switchover_pauses_writes_no_longer_than_the_sentinels_tolerate(topo, stall):
    # The root of CI's INPROG: the module held writes while the target caught up, for up to its
    # timeout (30 s), and the Sentinels took the paused master for down and began their own
    # failover. It now waits for the target without a pause first, and gives up the paused wait
    # after down-after-milliseconds less 1 s (1 s here, the floor of half of 2000 ms).
    topo.start_sentinels()
    target = topo.replicas[0]
    writer = writing(topo, STALLED_PACE)
    stall(target)
    flagged: set[str] = set()
    done = threading.Event()

    def watch_flags():
        while not done.is_set():
            for s in topo.sentinels:
                flagged.update(s.client().sentinel_master('mymaster')['flags'].split(','))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_flags, daemon=True)
    watcher.start()
    result = sentinel_switchover(topo, target)
    done.set()
    watcher.join(5)
    assert result.get('failed'), result
    assert 'did not catch up' in result['msg'] and 'of paused writes' in result['msg'], result['msg']
    assert result['msg'].endswith('takes writes again')
    assert writer.longest_wait < 3, 'writes were held %.1f s' % writer.longest_wait
    assert not flagged & {'s_down', 'o_down', 'failover_in_progress'}, flagged
    assert masters(topo) == [topo.master]
    values = writer.finish()
    assert_no_acknowledged_write_lost(values, int(topo.master.client().get('counter')))


def assert_master_still_paused(topo: Topology, writer: Writer) -> None:
    """The old master holds writes (the module's pause), then takes them again once unpaused here,
    and no acknowledged write is lost."""
    held_since = len(writer.acked)
    # Sent once: redis-py's default retries would queue more INCRs and wait out a short pause.
    with pytest.raises(redis.exceptions.TimeoutError):
        topo.master.client(socket_timeout=1, retry=Retry(NoBackoff(), 0)).incr('counter')
    assert len(writer.acked) == held_since and writer.waiting() > 1
    topo.master.client().execute_command('CLIENT', 'UNPAUSE')
    values = writer.finish()
    assert_no_acknowledged_write_lost(values, int(topo.master.client().get('counter')))


def test_sentinel_switchover_that_fails_keeps_writes_paused_while_a_sentinel_fails_over(topo, stall):
    # The target does not catch up under the pause, and meanwhile another Sentinel has begun a
    # failover (one that stays under way here). Before: the module unpaused the old master, whose
    # new writes that failover would lose when it demotes it. Now they stay paused.
    topo.start_sentinels()
    writer = writing(topo, STALLED_PACE)
    stall(topo.replicas[0])

    def fail_over_meanwhile():
        # After the module's check for a failover under way (it refuses to begin during one), and
        # a second at least before its paused wait gives up; that failover then stays under way.
        wait_held_back(topo)
        stuck_failover(topo.sentinels[1])

    trigger = threading.Thread(target=fail_over_meanwhile, daemon=True)
    trigger.start()
    result = sentinel_switchover(topo, topo.replicas[0])
    trigger.join(5)
    assert result.get('failed'), result
    assert 'did not catch up' in result['msg'] and 'takes writes again' not in result['msg'], result['msg']
    assert ('but Sentinel %s is failing over mymaster meanwhile: writes on %s stay paused'
            % (topo.sentinels[1].addr, topo.master.addr)) in result['msg'], result['msg']
    assert_master_still_paused(topo, writer)


def test_sentinel_switchover_whose_own_failover_stalls_keeps_writes_paused(topo):
    # The Sentinel the module asks begins the failover but promotes nothing within the module's
    # timeout (the REPLICAOF NO ONE it sends is renamed away; its failover-timeout is 10 min): the
    # old master must not take writes again, which that failover would lose when it demotes it.
    # Renamed on every Sentinel: under CI's load the others, seeing the paused master as down,
    # had finished a failover of their own within the 8 s (a pass the test did not mean to check).
    topo.start_sentinels()
    asked = topo.sentinels[0]
    for sentinel in topo.sentinels:
        sentinel.client().execute_command('SENTINEL', 'SET', 'mymaster', 'rename-command', 'SLAVEOF', 'NO-SUCH-COMMAND')
        sentinel.client().execute_command('SENTINEL', 'SET', 'mymaster', 'failover-timeout', '600000')
    writer = writing(topo)
    result = sentinel_switchover(topo, topo.replicas[0], timeout=8)
    assert result.get('failed'), result
    assert result['msg'].startswith('Sentinel %s did not promote any of %s within 8s' % (asked.addr, topo.replicas[0].addr))
    # The asked Sentinel is named; under load another may be failing over too, and named beside it.
    busy = re.search(r'but Sentinel (.+?) is failing over mymaster meanwhile: writes on %s stay paused'
                     % re.escape(topo.master.addr), result['msg'])
    assert busy and asked.addr in busy.group(1).split(', '), result['msg']
    assert masters(topo) == [topo.master]
    assert_master_still_paused(topo, writer)


class LosingProxy:
    """A loopback TCP proxy to a Sentinel that passes everything through, except that it closes the
    client's connection right after passing on the first SENTINEL FAILOVER: the Sentinel runs the
    command, its answer is lost on the way back."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.failovers = 0
        self.done = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while not self.done.is_set():
            try:
                client, peer = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:  # closed
                return
            upstream = socket.create_connection(('127.0.0.1', self.upstream_port))
            lost = threading.Event()
            threading.Thread(target=self.pump, args=(client, upstream, lost, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, lost, False), daemon=True).start()

    def pump(self, source: socket.socket, sink: socket.socket, lost: threading.Event, from_client: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data or lost.is_set():
                    break
                if from_client and b'FAILOVER' in data.upper():
                    self.failovers += 1
                    if self.failovers == 1:
                        lost.set()  # before the Sentinel can answer: the answer is dropped
                        sink.sendall(data)
                        time.sleep(0.2)
                        break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.done.set()
        self.listener.close()


def test_sentinel_switchover_whose_answer_is_lost_is_sent_once_and_finished(topo):
    # The other way to CI's INPROG: redis-py sends a command again after a connection error, and
    # SENTINEL FAILOVER sent again meets the failover the first one began. Before: the task failed
    # with "INPROG Failover already in progress" while that failover went on. Now the command is
    # sent once; on a lost answer the module asks the Sentinel whether it is failing over, and
    # finishes as after any answer.
    topo.start_sentinels()
    proxy = LosingProxy(topo.sentinels[0].port)
    try:
        writer = writing(topo)
        args = {'instances': topo.instances, 'login_password': PASSWORD, 'master_auth': PASSWORD, 'timeout': 30,
                'sentinels': [{'host': '127.0.0.1', 'port': proxy.port}] + sentinel_list(topo)[1:],
                'target': {'host': '127.0.0.1', 'port': topo.replicas[0].port}}
        result = run_module('redis_failover', args)
    finally:
        proxy.close()
    assert proxy.failovers == 1, result.get('msg')
    assert not result.get('failed'), result.get('msg')
    assert result['new_master'] == topo.replicas[0].addr and masters(topo) == [topo.replicas[0]]
    assert any('answer' in w and 'lost' in w for w in result.get('warnings', [])), result.get('warnings')
    wait_for(lambda: any(port == topo.replicas[0].port for port, value in writer.acked))
    values = writer.finish()
    assert_no_acknowledged_write_lost(values, int(topo.replicas[0].client().get('counter')))


# --- redis_sentinel ------------------------------------------------------------------------------

SETTINGS = {'quorum': 2, 'down_after_milliseconds': 3000, 'failover_timeout': 15000, 'parallel_syncs': 1}


def sentinel_args(topo: Topology, **extra) -> dict:
    args = {'sentinels': sentinel_list(topo), 'instances': topo.instances, 'login_password': PASSWORD,
            'timeout': 30}
    args.update(SETTINGS)
    args.update(extra)
    return args


def monitored(sentinel) -> dict | None:
    try:
        return sentinel.client().sentinel_master('mymaster')
    except redis.exceptions.ResponseError:
        return None


def test_converges_from_scratch_then_unchanged_with_sentinel_password(topo):
    topo.start_sentinels(monitor=False, password=SENTINEL_PASSWORD)
    args = sentinel_args(topo, sentinel_password=SENTINEL_PASSWORD)

    checked = run_module('redis_sentinel', args, check=True, diff=True)
    assert not checked.get('failed'), checked.get('msg')
    assert checked['changed'] is True and len(checked['changes']) == 3 + 3  # MONITOR + SET on each
    assert all(monitored(s) is None for s in topo.sentinels), 'check mode changed a Sentinel'

    first = run_module('redis_sentinel', args, diff=True)
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True and first['master'] == topo.master.addr
    assert 'the only instance that answers as a master' in first['master_reason']
    assert first['diff']['after'][topo.sentinels[0].addr]['monitors'] == topo.master.addr
    for entry in first['sentinels']:
        assert entry['ckquorum'].startswith('OK'), entry
    for s in topo.sentinels:
        m = monitored(s)
        assert m['port'] == topo.master.port and m['quorum'] == 2
        assert m['down-after-milliseconds'] == 3000 and m['failover-timeout'] == 15000
        assert m['num-other-sentinels'] == 2
    wait_for(lambda: all(monitored(s)['num-slaves'] == 2 for s in topo.sentinels))
    assert PASSWORD not in str(first) and SENTINEL_PASSWORD not in str(first)

    second = run_module('redis_sentinel', args)
    assert not second.get('failed'), second.get('msg')
    assert second['changed'] is False and second['changes'] == [], second['changes']
    assert '3 of 3 reachable Sentinels monitor it' in second['master_reason']

    # Sentinel's requirepass is enforced: an unauthenticated MONITOR from anywhere is refused.
    with pytest.raises(redis.exceptions.AuthenticationError):
        topo.sentinels[0].client(password=None).execute_command(
            'SENTINEL', 'MONITOR', 'evil', '127.0.0.1', str(topo.replicas[0].port), '1')
    assert [m['name'] for m in topo.sentinels[0].client().sentinel_masters().values()] == ['mymaster']


def test_wrong_passwords_give_auth_errors_and_change_nothing(topo):
    topo.start_sentinels(monitor=False, password=SENTINEL_PASSWORD)
    wrong_redis = run_module('redis_sentinel', sentinel_args(topo, sentinel_password=SENTINEL_PASSWORD,
                                                             login_password='not-it'))
    assert wrong_redis.get('failed') is True, wrong_redis
    assert 'authentication failed (wrong login_user/login_password?)' in wrong_redis['msg'], wrong_redis['msg']
    assert 'force' not in wrong_redis['msg'] and 'Traceback' not in wrong_redis['msg']

    wrong_sentinel = run_module('redis_sentinel', sentinel_args(topo, sentinel_password='not-it'))
    assert wrong_sentinel.get('failed') is True, wrong_sentinel
    assert 'authentication failed (wrong sentinel_user/sentinel_password?)' in wrong_sentinel['msg']
    assert topo.sentinels[0].addr in wrong_sentinel['msg'] and 'force' not in wrong_sentinel['msg']

    no_sentinel_password = run_module('redis_sentinel', sentinel_args(topo))
    assert no_sentinel_password.get('failed') is True and 'sentinel_password' in no_sentinel_password['msg']
    assert all(monitored(s) is None for s in topo.sentinels)


def test_majority_decides_and_corrects_a_minority(topo):
    topo.start_sentinels()
    # s3 is made to monitor a replica, s2 gets another quorum: the majority (s1, s2) monitor the
    # master, which answers as a master, so s3 is corrected.
    s1, s2, s3 = topo.sentinels
    c3 = s3.client()
    c3.execute_command('SENTINEL', 'REMOVE', 'mymaster')
    c3.execute_command('SENTINEL', 'MONITOR', 'mymaster', '127.0.0.1', str(topo.replicas[0].port), '2')
    s2.client().execute_command('SENTINEL', 'SET', 'mymaster', 'quorum', '3')
    result = run_module('redis_sentinel', sentinel_args(topo), diff=True)
    assert not result.get('failed'), result.get('msg')
    assert result['master'] == topo.master.addr
    assert '2 of 3 reachable Sentinels monitor it' in result['master_reason']
    assert any(s3.addr in c and 'REMOVE and MONITOR' in c for c in result['changes']), result['changes']
    assert any(s2.addr in c and 'quorum 2' in c for c in result['changes']), result['changes']
    assert result['diff']['before'][s3.addr]['monitors'] == topo.replicas[0].addr
    assert monitored(s3)['port'] == topo.master.port and monitored(s2)['quorum'] == 2
    again = run_module('redis_sentinel', sentinel_args(topo))
    assert again['changed'] is False, again['changes']


def test_one_sentinel_down_is_reported_the_others_configured(topo):
    topo.start_sentinels()
    down = topo.sentinels[2]
    down.stop()
    result = run_module('redis_sentinel', sentinel_args(topo, down_after_milliseconds=4000))
    assert not result.get('failed'), result.get('msg')
    assert result['unreachable_sentinels'] == [down.addr]
    entry = next(e for e in result['sentinels'] if e['address'] == down.addr)
    assert entry['reachable'] is False and 'unreachable' in entry['error']
    assert any(down.addr in w for w in result.get('warnings', []))
    assert '2 of 2 reachable Sentinels monitor it' in result['master_reason']
    assert all(monitored(s)['down-after-milliseconds'] == 4000 for s in topo.sentinels[:2])

    topo.sentinels[1].stop()
    refused = run_module('redis_sentinel', sentinel_args(topo))
    assert refused.get('failed') is True and 'only 1 of 3 Sentinels answer' in refused['msg'], refused
    assert 'Traceback' not in refused['msg']


def test_stale_peer_is_reset(topo):
    topo.start_sentinels()
    s1, s2, s3 = topo.sentinels
    s3.stop()
    replacement = topo.new_sentinel('s4')
    replacement.start()
    topo.sentinels = [s1, s2, replacement]
    # s1 and s2 still remember s3; once they see it down, it is stale (s_down, or no PING reply for 3 s).
    wait_for(lambda: all(any('s_down' in p['flags'] for p in s.client().sentinel_sentinels('mymaster')
                             if p['port'] == s3.port) for s in (s1, s2)), timeout=20)
    result = run_module('redis_sentinel', sentinel_args(topo))
    assert not result.get('failed'), result.get('msg')
    resets = [c for c in result['changes'] if 'RESET' in c]
    assert any(s1.addr in c for c in resets) and any(s2.addr in c for c in resets), result['changes']
    assert all('127.0.0.1:%d' % s3.port in c for c in resets)
    for s in (s1, s2):
        peers = s.client().sentinel_sentinels('mymaster')
        assert sorted(p['port'] for p in peers) == sorted(x.port for x in topo.sentinels if x is not s)
    assert all(e['ckquorum'].startswith('OK') for e in result['sentinels'])
    again = run_module('redis_sentinel', sentinel_args(topo))
    assert again['changed'] is False, again['changes']


def test_wrong_auth_pass_is_set_again(topo):
    topo.start_sentinels()
    s1 = topo.sentinels[0]
    s1.client().execute_command('SENTINEL', 'SET', 'mymaster', 'auth-pass', 'wrong')
    wait_for(lambda: int(monitored(s1)['last-ok-ping-reply']) - int(monitored(s1)['last-ping-reply']) > 2500,
             timeout=20)
    result = run_module('redis_sentinel', sentinel_args(topo))
    assert not result.get('failed'), result.get('msg')
    assert any(s1.addr in c and 'auth-pass' in c for c in result['changes']), result['changes']
    wait_for(lambda: int(monitored(s1)['last-ok-ping-reply']) < 1500, timeout=10)
    again = run_module('redis_sentinel', sentinel_args(topo))
    assert again['changed'] is False, again['changes']


def test_absent_removes_the_master(topo):
    topo.start_sentinels()
    args = {'sentinels': sentinel_list(topo), 'state': 'absent'}
    checked = run_module('redis_sentinel', args, check=True)
    assert checked['changed'] is True and all(monitored(s) for s in topo.sentinels)
    result = run_module('redis_sentinel', args)
    assert result['changed'] is True and all(monitored(s) is None for s in topo.sentinels)
    assert run_module('redis_sentinel', args)['changed'] is False


def test_bad_settings_fail_before_anything_changes(topo):
    topo.start_sentinels(monitor=False)
    result = run_module('redis_sentinel', sentinel_args(topo, quorum=4))
    assert result.get('failed') is True and 'quorum' in result['msg'] and 'nothing was changed' in result['msg']
    assert all(monitored(s) is None for s in topo.sentinels)


# --- the stack's replicas: equal priority -------------------------------------------------------

def test_stack_replicas_have_equal_priority(server_dir):
    # With priorities 100 - N, Sentinel promoted replica-1 over a more up-to-date replica-2 after a
    # master loss; with equal priorities it takes the replica with the highest offset.
    out = server_dir / 'compose.yml'
    proc = run_playbook('tests/integration/redis/playbooks/render_compose.yml', {'compose_out': str(out)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    services = yaml.safe_load(out.read_text())['services']
    priorities = {}
    for name, service in services.items():
        if name.startswith('redis-replica-'):
            found = re.findall(r'--replica-priority (\d+)', ' '.join(service['command']))
            assert len(found) == 1, service['command']
            priorities[name] = int(found[0])
    assert sorted(priorities) == ['redis-replica-1', 'redis-replica-2']
    assert set(priorities.values()) == {100}, priorities


# --- the stack's placement: replicas and Sentinels spread, a drain of any non-master node accepted --

def _rendered_services(out, extra=None):
    proc = run_playbook('tests/integration/redis/playbooks/render_compose.yml', {'compose_out': str(out), **(extra or {})})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return yaml.safe_load(out.read_text())['services']


def _as_api(services, nodes):
    """The rendered Redis services and one running task each, as the Engine API shows them, with
    every task on the node its constraints allow (the first such node)."""
    api_services, tasks = [], []
    for name, svc in services.items():
        if not name.startswith('redis-'):
            continue
        deploy = svc['deploy']
        constraints = deploy.get('placement', {}).get('constraints', [])
        spec = {'Name': name, 'Labels': deploy.get('labels', {}),
                'Mode': {'Replicated': {'Replicas': deploy['replicas']}},
                'TaskTemplate': {'Placement': {'Constraints': constraints}}}
        api_services.append({'ID': name, 'Spec': spec})
        node = next(n for n in nodes if sw.node_satisfies(n, constraints))
        tasks.append({'ServiceID': name, 'NodeID': node['ID'], 'DesiredState': 'running', 'Status': {'State': 'running'}})
    return api_services, tasks


def test_stack_spreads_replicas_and_sentinels_so_a_worker_drain_is_accepted(server_dir):
    # Before: the replicas were only kept off the master's node (both could share a worker) and each
    # Sentinel was pinned to a node, so draining any worker stranded a Sentinel and was refused.
    services = _rendered_services(server_dir / 'compose.yml')
    replicas = {name: svc['deploy']['placement']['constraints'] for name, svc in services.items()
                if name.startswith('redis-replica-')}
    assert replicas == {'redis-replica-1': ['node.hostname == node2'], 'redis-replica-2': ['node.hostname == node3']}
    assert services['redis-master']['deploy']['placement']['constraints'] == ['node.hostname == node1']
    nodes = [{'ID': n, 'Spec': {'Role': 'worker', 'Availability': 'active', 'Labels': {}},
              'Description': {'Hostname': n, 'Engine': {'Labels': {}}}, 'Status': {'State': 'ready'}}
             for n in ('node1', 'node2', 'node3')]
    api_services, tasks = _as_api(services, nodes)
    for worker in nodes[1:]:
        plan = sw.drain_plan(worker, nodes, api_services, tasks)
        assert plan['problems'] == [] and plan['stranded'] == [], plan
        assert sorted(r['name'] for r in plan['reduced']) == sorted(
            s['Spec']['Name'] for s in api_services
            if s['Spec']['TaskTemplate']['Placement']['Constraints'] == ['node.hostname == %s' % worker['ID']])
    # The master's node stays refused: its data lives there (a switchover comes first).
    assert sw.drain_plan(nodes[0], nodes, api_services, tasks)['stranded'][0]['name'] == 'redis-master'
    # A second Sentinel down: the group is below its majority, the drain is refused.
    without_sentinel_3 = [tk for tk in tasks if tk['ServiceID'] != 'redis-sentinel-3']
    assert [s['name'] for s in sw.drain_plan(nodes[1], nodes, api_services, without_sentinel_3)['stranded']] == ['redis-sentinel-2']


def test_stack_replicas_fall_back_to_away_from_the_master_with_too_few_nodes(server_dir):
    services = _rendered_services(server_dir / 'compose.yml', {'stack_redis_replica_nodes': ['node2']})
    for i in (1, 2):
        assert services['redis-replica-%d' % i]['deploy']['placement']['constraints'] == ['node.hostname != node1']


# --- TLS: the modules connect to Redis and to the Sentinels with TLS and verify the certificates ---

@pytest.fixture
def tls_topo(server_dir):
    t = Topology(server_dir, tls=TlsFiles(server_dir / 'tls'))
    try:
        t.start()
        yield t
    finally:
        t.stop()


def test_tls_to_redis_and_sentinels(tls_topo):
    topo = tls_topo
    topo.start_sentinels(monitor=False, password=SENTINEL_PASSWORD)
    tls = {'tls': True, 'ca_certs': str(topo.tls.ca)}
    args = sentinel_args(topo, sentinel_password=SENTINEL_PASSWORD, **tls)
    first = run_module('redis_sentinel', args)
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True and first['master'] == topo.master.addr
    assert all(e['ckquorum'].startswith('OK') for e in first['sentinels'])
    assert run_module('redis_sentinel', args)['changed'] is False

    seen = run_module('redis_topology_info', {'instances': topo.instances, 'login_password': PASSWORD, **tls})
    assert seen['healthy'] is True, seen['summary']

    # Without the CA the certificates cannot be verified; without TLS nothing answers.
    unverified = run_module('redis_sentinel', sentinel_args(topo, sentinel_password=SENTINEL_PASSWORD, tls=True))
    assert unverified.get('failed') is True and 'certificate verify failed' in unverified['msg'], unverified
    plain = run_module('redis_topology_info', {'instances': topo.instances, 'login_password': PASSWORD})
    assert plain['unreachable_instances'] == [s.addr for s in topo.servers]

    switched = run_module('redis_failover', {
        'instances': topo.instances, 'login_password': PASSWORD, 'master_auth': PASSWORD, **tls,
        'sentinels': sentinel_list(topo), 'sentinel_password': SENTINEL_PASSWORD,
        'target': {'host': '127.0.0.1', 'port': topo.replicas[0].port}})
    assert not switched.get('failed'), switched.get('msg')
    assert switched['new_master'] == topo.replicas[0].addr and switched['after']['healthy'] is True


# --- issue 16: a planned switchover fails no request of the app ------------------------------------

class AppWriters:
    """Threads that increment through the counter app's own store (Sentinel discovery, WAIT 1,
    the app's default retries), as the web tasks do; every outcome is kept."""

    def __init__(self, topo: Topology, threads: int = 4, sentinels: list | None = None) -> None:
        app_dir = str(Path(__file__).resolve().parents[3] / 'app')  # the app's source tree
        if app_dir not in sys.path:
            sys.path.insert(0, app_dir)
        from counter.config import Settings
        from counter.store import CounterStore
        self.store = CounterStore(Settings.from_env({
            'REDIS_URL': 'redis://:%s@127.0.0.1:1/0' % PASSWORD,
            'REDIS_SENTINELS': ','.join(s.addr for s in sentinels or topo.sentinels),
            'REDIS_SENTINEL_MASTER': 'mymaster',
            'REDIS_WAIT_REPLICAS': '1'}))
        self.acked = 0
        self.failures: list[str] = []
        self.longest = 0.0  # seconds, the slowest acknowledged increment
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for index in range(threads)]

    def run(self) -> None:
        while not self.stop_flag.is_set():
            start = time.monotonic()
            try:
                self.store.increment(1)
            except Exception as exc:  # what the app turns into a 503
                with self.lock:
                    self.failures.append('%s: %s' % (type(exc).__name__, exc))
            else:
                with self.lock:
                    self.acked += 1
                    self.longest = max(self.longest, time.monotonic() - start)

    def __enter__(self) -> 'AppWriters':
        for thread in self.threads:
            thread.start()
        wait_for(lambda: self.acked > 100)
        return self

    def __exit__(self, *exc) -> None:
        self.stop_flag.set()
        for thread in self.threads:
            thread.join(30)


def test_switchover_fails_no_app_write_and_loses_none(topo):
    # The master-drain drill saw 5-7 requests fail with "The previous master is now a slave".
    # Three causes, each seen here: the module demoted the old master and closed its clients
    # before every Sentinel named the new one (a client that asked one that had not heard yet was
    # sent back and got READONLY at once); redis-py 8.1 retried on the address it had instead of
    # asking Sentinel again (redis/redis-py#3874); and a WAIT under way when the pause began
    # timed out (500 ms), because a paused master asks its replicas for no ACK.
    topo.start_sentinels()
    with AppWriters(topo) as writers:
        result = run_module('redis_failover', {
            'instances': topo.instances, 'login_password': PASSWORD, 'master_auth': PASSWORD,
            'sentinels': sentinel_list(topo), 'timeout': 30,
            'target': {'host': '127.0.0.1', 'port': topo.replicas[0].port}})
        assert not result.get('failed'), result.get('msg')
        done = writers.acked
        wait_for(lambda: writers.acked > done + 200)
    assert writers.failures == []
    assert int(topo.replicas[0].client().get('counter')) == writers.acked


def test_switchover_whose_paused_wait_outlasts_the_apps_socket_timeout_counts_each_write_once(topo):
    # With the stack's down-after-milliseconds (5000) the module may hold writes for up to 4 s
    # while the target catches up, twice the app's socket timeout (2 s): the app's writes time out
    # under the pause and redis-py sends them again. None may fail, and none may count twice. (Here
    # the target stops applying the stream for 2.5 s once the module has held the other back.)
    topo.start_sentinels()
    for s in topo.sentinels:
        s.client().execute_command('SENTINEL', 'SET', 'mymaster', 'down-after-milliseconds', '5000')
    with AppWriters(topo) as writers:
        lagging = threading.Thread(target=lambda: (wait_held_back(topo), topo.replicas[0].client().execute_command(
            'CLIENT', 'PAUSE', '2500', 'WRITE')), daemon=True)
        lagging.start()
        result = run_module('redis_failover', {
            'instances': topo.instances, 'login_password': PASSWORD, 'master_auth': PASSWORD,
            'sentinels': sentinel_list(topo), 'timeout': 30,
            'target': {'host': '127.0.0.1', 'port': topo.replicas[0].port}})
        lagging.join(5)
        assert not result.get('failed'), result.get('msg')
        done = writers.acked
        wait_for(lambda: writers.acked > done + 200)
    timeout = writers.store.settings.socket_timeout
    assert writers.longest > timeout, 'no write outlasted the socket timeout (%.1f s): the case did not arise' % writers.longest
    assert writers.failures == []
    assert int(topo.replicas[0].client().get('counter')) == writers.acked


class DeafSentinel:
    """Keeps one Sentinel from hearing the hello messages through which the others announce a
    failover, while it answers clients at once: a Sentinel that lags and names the old master.
    Hellos reach it two ways, both closed: through the servers (its links log in as an ACL user
    refused every Pub/Sub channel) and from its peers' PUBLISH to itself (refused by its own ACL).
    ``hear()`` opens both again (Sentinel subscribes again within a second)."""

    USER = 'deaf-sentinel'

    def __init__(self, topo: Topology, sentinel) -> None:
        self.topo = topo
        self.sentinel = sentinel
        # Sentinel names its links to a server sentinel-<first 8 characters of its ID>-cmd/-pubsub.
        self.prefix = 'sentinel-%s-' % sentinel.client().execute_command('SENTINEL', 'MYID')[:8]

    def links(self, server) -> dict[str, dict]:
        return {e['name'][len(self.prefix):]: e for e in server.client().client_list()
                if e.get('name', '').startswith(self.prefix)}

    def subscribed(self) -> list[bool]:
        """Per server: the Sentinel's hello subscription there is up, as the ACL user."""
        links = [self.links(s).get('pubsub', {}) for s in self.topo.servers]
        return [link.get('user') == self.USER and link.get('sub') == '1' for link in links]

    def deafen(self) -> None:
        for server in self.topo.servers:
            server.client().execute_command('ACL', 'SETUSER', self.USER, 'on', '>' + PASSWORD, '~*', '+@all',
                                            'resetchannels')
        self.sentinel.client().execute_command('ACL', 'SETUSER', 'default', '-publish')
        # Sentinel logs in again as that user at once; its SUBSCRIBE is then refused.
        self.sentinel.client().execute_command('SENTINEL', 'SET', 'mymaster', 'auth-user', self.USER)
        wait_for(lambda: all(self.links(s).get('cmd', {}).get('user') == self.USER and 'pubsub' not in self.links(s)
                             for s in self.topo.servers))

    def hear(self) -> None:
        for server in self.topo.servers:
            server.client().execute_command('ACL', 'SETUSER', self.USER, 'allchannels')
        self.sentinel.client().execute_command('ACL', 'SETUSER', 'default', '+publish')
        wait_for(lambda: all(self.subscribed()))

    def names(self) -> int:
        return int(self.sentinel.client().sentinel_get_master_addr_by_name('mymaster')[1])


def test_switchover_while_a_sentinel_lags_fails_no_app_write_and_holds_writes_only_for_a_majority(topo):
    # The master-drain drill failed 2 requests: one Sentinel named the old master for seconds after
    # the failover; the module held writes while it waited for it (4 s more once two of three named
    # the new master), longer than the drill client's 5-s timeout, then demoted the old master all
    # the same, and a client that asked that Sentinel was sent to a replica (READONLY). Here the
    # Sentinel the app asks first hears nothing until writes flow on the new master again: they
    # must flow without it, fail none, and once it hears, the module must see it name the new one.
    topo.start_sentinels()
    deaf = DeafSentinel(topo, topo.sentinels[2])  # not the one the module asks for the failover
    old, target = topo.master, topo.replicas[0]
    with AppWriters(topo, sentinels=[topo.sentinels[2]] + topo.sentinels[:2]) as writers:
        deaf.deafen()
        stale_while_writing: list[bool] = []

        def hear_once_writes_flow() -> None:
            wait_for(lambda: target.client().execute_command('ROLE')[0] == 'master', 30, 0.05)
            promoted_at = writers.acked
            wait_for(lambda: writers.acked > promoted_at + 100, 60, 0.05)
            stale_while_writing.append(deaf.names() == old.port)
            deaf.hear()

        healer = threading.Thread(target=hear_once_writes_flow, daemon=True)
        healer.start()
        result = run_module('redis_failover', {
            'instances': topo.instances, 'login_password': PASSWORD, 'master_auth': PASSWORD,
            'sentinels': sentinel_list(topo), 'timeout': 30,
            'target': {'host': '127.0.0.1', 'port': target.port}})
        healer.join(60)
        assert not result.get('failed'), result.get('msg')
        done = writers.acked
        wait_for(lambda: writers.acked > done + 200)
    assert stale_while_writing == [True], 'the lagging Sentinel named the new master before writes flowed again'
    assert writers.failures == []
    assert int(target.client().get('counter')) == writers.acked
    assert result['sentinels_confirmed'] == sorted(s.addr for s in topo.sentinels), result.get('warnings')
    # Writes were held for part of the switchover only (not while the module waited for the last one).
    assert 0 < result['writes_paused'] < result['elapsed'], result
