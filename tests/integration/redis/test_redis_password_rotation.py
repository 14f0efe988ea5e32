"""redis_password_rotation against real redis-server and Sentinel processes: a master, two replicas
and three Sentinels with their own password, as the stack runs them. The stack role's use of it
(the Redis rolling update of a new password, under load) is checked on the lab by the
`redis-password` drill."""

from __future__ import annotations

import pytest
import redis

from redis_harness import PASSWORD, SENTINEL_PASSWORD, Topology, run_module
from test_redis_sentinel import sentinel_list

NEW = 'n3w-redis-pw'
NEW_SENTINEL = 'n3w-sentinel-pw'


def rotate(topo: Topology, check: bool = False, **extra) -> dict:
    args = {'instances': topo.instances, 'sentinels': sentinel_list(topo), 'login_password': PASSWORD,
            'new_password': NEW, 'sentinel_password': SENTINEL_PASSWORD, 'new_sentinel_password': NEW_SENTINEL}
    args.update(extra)
    return run_module('redis_password_rotation', args, check=check)


def accepts(server, password: str) -> bool:
    try:
        return server.client(password=password).ping()
    except redis.exceptions.AuthenticationError:
        return False
    except redis.exceptions.ResponseError as exc:  # Sentinel answers WRONGPASS as an error reply
        if 'WRONGPASS' in str(exc) or 'invalid password' in str(exc):
            return False
        raise


def restart_with_new_passwords(server, master=None) -> None:
    """What the rolling update does to a server: a restart whose configuration has the new password
    only (the stack's start script also sets its role, here `master`)."""
    server.stop()
    # As redis-boot.sh writes it at every start: a CONFIG REWRITE's `user` line (the passwords'
    # hashes, from a Sentinel's reconfiguration) does not survive.
    lines = [line for line in server.conf.read_text().splitlines() if not line.startswith('user ')]
    server.conf.write_text('\n'.join(lines).replace(PASSWORD, NEW) + '\n')
    server.password = NEW
    server.start()
    if master is not None:
        server.client().replicaof('127.0.0.1', master.port)


@pytest.fixture
def guarded(topo):
    topo.start_sentinels(password=SENTINEL_PASSWORD)
    return topo


def test_every_server_and_sentinel_accepts_both_passwords_and_uses_the_new_one(guarded):
    result = rotate(guarded)
    assert result.get('failed') is not True, result.get('msg')
    assert result['changed']
    for server in guarded.servers:
        assert accepts(server, PASSWORD) and accepts(server, NEW), server.addr
        assert server.client().config_get('masterauth')['masterauth'] == NEW
    for sentinel in guarded.sentinels:
        assert accepts(sentinel, SENTINEL_PASSWORD) and accepts(sentinel, NEW_SENTINEL), sentinel.addr
        reply = sentinel.client().execute_command('SENTINEL', 'CONFIG', 'GET', 'sentinel-pass')
        assert (reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2])))['sentinel-pass'] == NEW_SENTINEL
    # No password in the result, and a rerun finds the passwords accepted (only auth-pass is sent again).
    assert NEW not in str(result) and PASSWORD not in str(result)
    again = rotate(guarded)
    assert all(s['accepted_new_before'] and s['changes'] == [] for s in again['servers']), again['servers']
    assert all(s['changes'] == ['auth-pass'] for s in again['sentinels']), again['sentinels']


def test_after_it_servers_restarted_with_the_new_password_only_keep_replicating_and_fail_over(guarded):
    assert rotate(guarded).get('failed') is not True
    master = guarded.master
    for replica in guarded.replicas:
        restart_with_new_passwords(replica, master)
        assert not accepts(replica, PASSWORD)
    guarded.wait_synced()  # masterauth NEW against a master that accepts both
    # The Sentinels reach the restarted replicas (auth-pass) and each other (sentinel-pass): a
    # switchover through them, with the new passwords only, promotes one.
    result = run_module('redis_failover', {'instances': guarded.instances, 'login_password': NEW, 'master_auth': NEW,
                                           'sentinels': sentinel_list(guarded), 'sentinel_password': NEW_SENTINEL,
                                           'target': {'host': '127.0.0.1', 'port': guarded.replicas[0].port}, 'timeout': 30})
    assert result.get('failed') is not True, result.get('msg')
    assert guarded.replicas[0].client().info('replication')['role'] == 'master'
    # The old master, demoted, follows it with the new masterauth before its own restart.
    restart_with_new_passwords(master, guarded.replicas[0])
    guarded.wait_synced(guarded.replicas[0])
    assert not any(accepts(s, PASSWORD) for s in guarded.servers)


def test_check_mode_and_a_wrong_current_password_change_nothing(guarded):
    preview = rotate(guarded, check=True)
    assert preview['changed'] and all(s['changes'] == ['password added', 'masterauth'] for s in preview['servers'])
    refused = rotate(guarded, login_password='not-the-password')
    assert refused.get('failed') and 'authentication failed' in refused['msg'], refused
    assert 'not-the-password' not in refused['msg']
    for server in guarded.servers:
        assert not accepts(server, NEW) and server.client().config_get('masterauth')['masterauth'] == PASSWORD
    for sentinel in guarded.sentinels:
        assert not accepts(sentinel, NEW_SENTINEL)
