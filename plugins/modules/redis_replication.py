#!/usr/bin/python
# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_replication
short_description: Make one Redis instance a master or a replica, and check that replication works
version_added: 1.0.0
description:
  - Sets the replication role of one Redis instance with C(REPLICAOF), optionally sets C(masterauth)
    and C(masteruser) first, waits until the link to the master is up and the initial sync is done,
    and can persist the change with C(CONFIG REWRITE).
  - Why not M(community.general.redis) with O(community.general.redis#module:command=replica)?
    That module sets C(REPLICAOF) on one host but never checks that replication works afterwards,
    has no C(masterauth), does not persist the change, and does not refuse to make an instance a
    replica of itself. This module does all of that.
  - The module refuses to make a master that holds data (keys, or connected replicas) a replica
    unless O(force=true) - the sync from its new master replaces its data set, and its replicas
    follow it.
  - The module refuses to make an instance a replica of itself. It compares the C(run_id) of the
    instance with the C(run_id) of the server at O(master_host):O(master_port) (addresses can
    alias, for example a service name and an IP), and falls back to comparing addresses when the
    master cannot be reached from where the module runs.
  - Shared code lives in the collection's C(_redis) module utils.
author: "swarmlab maintainers (!UNKNOWN)"
attributes:
  check_mode:
    support: full
    description: Computes C(changed) as a real run would and skips only the writes.
  diff_mode:
    support: full
    description: Shows the role and master before and after.
options:
  role:
    description:
      - The replication role the instance must have.
      - V(master) runs C(REPLICAOF NO ONE) when the instance is a replica.
    type: str
    required: true
    choices: [master, replica]
  master_host:
    description:
      - Address of the master, as the instance itself must reach it (it may be a name that only
        resolves in the instance's network).
      - Required when O(role=replica).
    type: str
  master_port:
    description: Port of the master.
    type: int
    default: 6379
  master_auth:
    description:
      - Password the replica uses to authenticate to its master, set with C(CONFIG SET masterauth)
        when it differs from the current value.
    type: str
  master_user:
    description: ACL user the replica authenticates as (C(CONFIG SET masteruser)).
    type: str
  wait:
    description:
      - With O(role=replica), wait until C(ROLE) reports the link state C(connected),
        C(master_link_status) is C(up) and C(master_sync_in_progress) is C(0); fail after
        O(wait_timeout) seconds.
      - Also done when nothing had to change, so a task that converges also verifies.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the link and the initial sync.
    type: int
    default: 60
  persist:
    description:
      - After a change, run C(CONFIG REWRITE) so the role survives a restart.
      - When the change could not survive a restart, the task fails before anything changes - the
        server runs without a config file, or with one in a temporary directory (V(/tmp), V(/var/tmp),
        V(/run), V(/var/run), V(/dev/shm)), which a container or a start script creates anew.
      - The module sees only the path of the file. It cannot see a config file that a start script
        rewrites elsewhere, nor a C(--replicaof) on the server's command line (it wins over the
        file); do not rely on O(persist) there, use Sentinel.
    type: bool
    default: false
  force:
    description:
      - Make a master a replica although it holds keys or has connected replicas. Its data set is
        replaced by the new master's.
    type: bool
    default: false
  login_host:
    description: Address of the instance to configure.
    type: str
    default: localhost
  login_port:
    description: Port of the instance to configure.
    type: int
    default: 6379
extends_documentation_fragment:
  - swarmlab.cluster.redis
notes:
  - The password is never shown in the diff; only whether C(masterauth) changes.
seealso:
  - module: swarmlab.cluster.redis_topology_info
  - module: swarmlab.cluster.redis_failover
  - module: community.general.redis
"""

EXAMPLES = r"""
- name: Make redis-2 a replica of redis-1, persist it, and wait for the initial sync
  swarmlab.cluster.redis_replication:
    login_host: redis-2.example.org
    login_password: "{{ redis_password }}"
    role: replica
    master_host: redis-1.example.org
    master_port: 6379
    master_auth: "{{ redis_password }}"
    persist: true
    wait_timeout: 120
  no_log: true

- name: Promote a replica by hand (prefer swarmlab.cluster.redis_failover for this)
  swarmlab.cluster.redis_replication:
    login_host: 10.0.0.12
    login_password: "{{ redis_password }}"
    role: master
  no_log: true
"""

RETURN = r"""
role:
  description: Role of the instance after the task (V(master) or V(replica)).
  returned: success
  type: str
  sample: replica
master:
  description: The master the instance follows (C(host:port)), or null for a master.
  returned: success
  type: str
  sample: 10.0.0.11:6379
run_id:
  description: The instance's run id.
  returned: success
  type: str
  sample: 5b4c2b3e3c0f6f2e0a1d5e8d2a1d0c9b8a7f6e5d
link_status:
  description: C(master_link_status) of a replica (V(up) or V(down)); null for a master.
  returned: success
  type: str
  sample: up
link_state:
  description: Link state from C(ROLE) (V(connect), V(connecting), V(sync), V(connected)); null for a master.
  returned: success
  type: str
  sample: connected
sync_in_progress:
  description: Whether the initial sync from the master is still running; null for a master.
  returned: success
  type: bool
  sample: false
offset:
  description: Replication offset of the instance (C(slave_repl_offset) of a replica, C(master_repl_offset) of a master).
  returned: success
  type: int
  sample: 182734
master_offset:
  description: C(master_repl_offset) of the master, when the module could reach it.
  returned: success
  type: int
  sample: 182734
lag_bytes:
  description:
    - Bytes the replica is behind its master (RV(master_offset) minus RV(offset)); null when unknown.
    - The master is read first, so writes it takes while the module runs do not count; the replica then
      gets up to one second to take in what was in flight when the master was read (its periodic PING, a
      write), so a replica that is keeping up shows V(0).
  returned: success
  type: int
  sample: 0
replid:
  description: Replication id of the instance.
  returned: success
  type: str
  sample: 4f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a
persisted:
  description: Whether C(CONFIG REWRITE) ran.
  returned: success
  type: bool
  sample: true
config_file:
  description: Config file of the server, null when it runs without one.
  returned: success
  type: str
  sample: /etc/redis/redis.conf
masterauth_changed:
  description: Whether C(masterauth) or C(masteruser) was (or in check mode would be) changed.
  returned: success
  type: bool
  sample: false
"""

import functools
import time
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis import (
    address,
    byte_lag,
    demotion_refusal,
    parse_info,
    persist_problem,
    replica_link_ok,
    replication_plan,
    same_server,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_client import (
    LAG_SETTLE_SECONDS,
    RedisModuleError,
    command,
    count_keys,
    config_get,
    connect,
    probe_run_id,
    read_state,
    read_until_caught_up,
    resolve,
    wait_until,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_module import (
    RedisManager,
    redis_module,
    run_manager,
)


class ReplicationManager(RedisManager):
    def __init__(self, module: AnsibleModule) -> None:
        super().__init__(module)
        self.where = address(self.p['login_host'], self.p['login_port']) or ''
        self.client = connect(self.p['login_host'], self.p['login_port'], self.p)

    def _config_get(self, name: str) -> str:
        return config_get(self.client, self.where, name)

    def _check_not_self(self, state: dict[str, t.Any]) -> None:
        host, port = self.p['master_host'], self.p['master_port']
        master_run_id = probe_run_id(host, port, self.p)
        target = address(host, port)
        if master_run_id is not None:
            if master_run_id == state['run_id']:
                raise RedisModuleError('%s: refusing to make the instance a replica of itself: %s is the same '
                                       'server (run_id %s)' % (self.where, target, master_run_id))
            return
        me = {'host': self.p['login_host'], 'port': self.p['login_port'], 'addresses': resolve(self.p['login_host'])}
        other = {'host': host, 'port': port, 'addresses': resolve(host)}
        if same_server(me, other):
            raise RedisModuleError('%s: refusing to make the instance a replica of itself (%s is the same address)'
                                   % (self.where, target))
        self.warnings.append('%s cannot be reached from the module host, so run_ids could not be compared; '
                             'only the addresses were checked against %s' % (target, self.where))

    def run(self) -> dict[str, t.Any]:
        p = self.p
        state = read_state(self.client, self.where)
        repl = state['repl']
        current = {'role': repl['role'], 'master': address(repl['master_host'], repl['master_port'])}
        desired_master = address(p['master_host'], p['master_port']) if p['role'] == 'replica' else None

        same_master = False
        if p['role'] == 'replica':
            self._check_not_self(state)
            if current['role'] == 'replica' and current['master'] != desired_master:
                cur_id = probe_run_id(repl['master_host'], repl['master_port'], p)
                new_id = probe_run_id(p['master_host'], p['master_port'], p)
                same_master = cur_id is not None and cur_id == new_id
        plan = replication_plan(current, p['role'], desired_master, same_master)

        auth_changes = []
        if p['role'] == 'replica':
            if p['master_auth'] is not None and self._config_get('masterauth') != p['master_auth']:
                auth_changes.append(('masterauth', p['master_auth']))
            if p['master_user'] is not None and self._config_get('masteruser') != p['master_user']:
                auth_changes.append(('masteruser', p['master_user']))
        changed = plan['replicaof'] or bool(auth_changes)

        # Refusals come before any write, and in check mode too (a real run would fail the same way).
        if plan['replicaof'] and p['role'] == 'replica' and not p['force']:
            refusal = demotion_refusal(self.where, repl, count_keys(self.client, self.where), desired_master)
            if refusal:
                raise RedisModuleError(refusal)
        if changed and p['persist']:
            problem = persist_problem({'key': self.where, 'config_file': state['config_file']})
            if problem:
                raise RedisModuleError('persist: true, but %s; nothing was changed. Give the server a config file '
                                       'on persistent storage, or set persist: false' % problem)

        persisted = False
        if changed and not self.module.check_mode:
            for name, value in auth_changes:
                command(self.client, self.where, 'CONFIG', 'SET', name, value)
            if plan['replicaof']:
                if p['role'] == 'master':
                    command(self.client, self.where, 'REPLICAOF', 'NO', 'ONE')
                else:
                    command(self.client, self.where, 'REPLICAOF', p['master_host'], str(p['master_port']))
            elif auth_changes and current['role'] == 'replica':
                # New credentials take effect on the next connection to the master.
                command(self.client, self.where, 'CLIENT', 'KILL', 'TYPE', 'master')
            if p['persist']:
                command(self.client, self.where, 'CONFIG', 'REWRITE')
                persisted = True

        if p['role'] == 'replica' and p['wait'] and not (changed and self.module.check_mode):
            self._wait(desired_master if plan['replicaof'] else current['master'])

        final = read_state(self.client, self.where) if not self.module.check_mode else state
        master_offset = self._master_offset(final['repl'])
        if master_offset is not None:
            # The replica is read again, after its master: read before, the writes the master took in
            # between would count as lag (a caught-up replica showed the 14 bytes of a master PING);
            # and given LAG_SETTLE_SECONDS to take in what was in flight when the master was read.
            read = functools.partial(read_state, self.client, self.where)
            final = read_until_caught_up(read(), read, master_offset, time.monotonic() + LAG_SETTLE_SECONDS)
        return self._result(final, master_offset, changed, current, desired_master, persisted, bool(auth_changes))

    def _wait(self, expected_master: str | None) -> None:
        last: dict[str, t.Any] = {}

        def check() -> bool:
            last.update(read_state(self.client, self.where))
            r = last['repl']
            if address(r['master_host'], r['master_port']) != expected_master:
                return False
            return replica_link_ok(r, last['role_state'])

        if not wait_until(check, self.p['wait_timeout'], 0.25):
            r = last['repl']
            raise RedisModuleError(
                '%s: replication to %s not working after %ss: role %s, link %s, state %s, sync in progress %s '
                '(check master_auth, the master address as seen from the instance, and the master\'s logs)'
                % (self.where, expected_master, self.p['wait_timeout'], r.get('role'), r.get('master_link_status'),
                   last['role_state'].get('state'), r.get('master_sync_in_progress')))

    def _master_offset(self, repl: dict[str, t.Any]) -> int | None:
        if repl['role'] != 'replica':
            return None
        try:
            master = connect(repl['master_host'], repl['master_port'], self.p)
            info = parse_info(master.execute_command('INFO', 'replication'))
            return int(info.get('master_repl_offset', 0))
        except Exception:  # the master may only be reachable from the instance's network
            return None

    def _result(self, final: dict[str, t.Any], master_offset: int | None, changed: bool, before: dict[str, t.Any],
                desired_master: str | None, persisted: bool, auth_changed: bool) -> dict[str, t.Any]:
        repl = final['repl']
        is_replica = repl['role'] == 'replica'
        offset = repl['replica_repl_offset'] if is_replica else repl['master_repl_offset']
        after = {'role': self.p['role'], 'master': desired_master}
        result: dict[str, t.Any] = {
            'changed': changed,
            'role': repl['role'] if not self.module.check_mode else after['role'],
            'master': address(repl['master_host'], repl['master_port']) if not self.module.check_mode
            else after['master'],
            'run_id': final['run_id'],
            'link_status': repl['master_link_status'] if is_replica else None,
            'link_state': final['role_state'].get('state') if is_replica else None,
            'sync_in_progress': bool(repl['master_sync_in_progress']) if is_replica else None,
            'offset': offset,
            'master_offset': master_offset,
            'lag_bytes': byte_lag(master_offset, offset) if is_replica else None,
            'replid': repl['master_replid'],
            'persisted': persisted,
            'config_file': final['config_file'],
            'masterauth_changed': auth_changed,
            'diff': {
                'before': {'role': before['role'], 'master': before['master']},
                'after': {'role': after['role'], 'master': after['master'] if changed else before['master']},
            },
        }
        if auth_changed:
            result['diff']['before']['masterauth'] = '(old value)'
            result['diff']['after']['masterauth'] = '(new value)'
        return self.with_warnings(result)


def main() -> None:
    module = redis_module(
        {
            'role': {'type': 'str', 'required': True, 'choices': ['master', 'replica']},
            'master_host': {'type': 'str'},
            'master_port': {'type': 'int', 'default': 6379},
            'master_auth': {'type': 'str', 'no_log': True},
            'master_user': {'type': 'str'},
            'wait': {'type': 'bool', 'default': True},
            'wait_timeout': {'type': 'int', 'default': 60},
            'persist': {'type': 'bool', 'default': False},
            'force': {'type': 'bool', 'default': False},
            'login_host': {'type': 'str', 'default': 'localhost'},
            'login_port': {'type': 'int', 'default': 6379},
        },
        required_if=[('role', 'replica', ['master_host'])],
    )
    module.exit_json(**run_manager(module, ReplicationManager))


if __name__ == '__main__':
    main()
