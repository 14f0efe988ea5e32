#!/usr/bin/python
# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_sentinel
short_description: Make a group of Redis Sentinels monitor the right master with the wanted settings
version_added: 2.0.0
description:
  - Makes every listed Sentinel monitor the master of a Redis replication set under
    O(master_name), with the wanted settings, without stale entries, and waits until
    C(SENTINEL CKQUORUM) passes on every reachable Sentinel. Changes only what differs, so a second
    run reports no change.
  - B(Which master.) The master that a majority of the reachable Sentinels monitor, when it answers
    as a master - a minority that follows something else is corrected. Without such a majority
    (fresh Sentinels, or split views), the only listed instance that answers as a master. When a
    majority follows an instance that is not a master now (a failover may be under way), or no
    instance is a master, the module reads again until O(timeout); several masters without a
    majority is an error (a split brain for M(swarmlab.cluster.redis_failover)).
  - B(Per Sentinel.) C(SENTINEL MONITOR) where it monitors nothing under that name;
    C(SENTINEL REMOVE) and C(MONITOR) where it monitors another instance; C(SENTINEL SET) for
    settings that differ; C(auth-pass)/C(auth-user) on C(MONITOR), and again when the Sentinel's
    PINGs to the master are answered with errors (Sentinel never shows C(auth-pass); a wrong one
    shows that way); C(SENTINEL RESET), one Sentinel at a time, when it remembers peers or replicas
    that are not listed and are down (flagged down, or no PING reply for 3 s - old task addresses),
    waiting until it has found its peers again.
  - An unreachable Sentinel is reported in RV(unreachable_sentinels) with the reason, and the others
    are configured, as long as a majority of the listed Sentinels answer. A wrong password, for the
    Sentinels or for the instances, fails the task with an authentication error before anything
    changes.
  - The decisions live in the collection's C(_sentinel) module utils.
author: "swarmlab maintainers (!UNKNOWN)"
attributes:
  check_mode:
    support: full
    description: Reads everything and reports the changes it would make (C(changed) as a real run) without writing or waiting.
  diff_mode:
    support: full
    description: Per Sentinel, the monitored master and its settings before and after; never a password.
options:
  instances:
    # Its type and host/port suboptions: the fragment swarmlab.cluster.redis.instances.
    description:
      - Every Redis instance of the replication set, as reachable from the module host.
      - The master is monitored under the address listed here, so list the instances by an address
        the Sentinels reach too (an IP, unless the Sentinels run with C(resolve-hostnames yes)).
      - Required with O(state=present).
    required: false
  master_name:
    description: Name under which the Sentinels monitor the master.
    type: str
    default: mymaster
  state:
    description:
      - V(present) monitors the master as described; V(absent) makes every reachable Sentinel stop
        monitoring O(master_name) (C(SENTINEL REMOVE)).
    type: str
    default: present
    choices: [present, absent]
  quorum:
    description:
      - Sentinels that must agree the master is down before a failover. Between 1 and the number
        of O(sentinels).
      - When a Sentinel has to C(MONITOR) and this is not set, a majority of O(sentinels).
    type: int
  down_after_milliseconds:
    description: C(down-after-milliseconds) - how long the master may not answer before it is considered down.
    type: int
  failover_timeout:
    description: C(failover-timeout), in milliseconds.
    type: int
  parallel_syncs:
    description: C(parallel-syncs) - replicas that resync with the new master at the same time after a failover.
    type: int
  auth_pass:
    description:
      - Password the Sentinels use to authenticate to the Redis instances (C(auth-pass)).
      - Defaults to O(login_password).
    type: str
  auth_user:
    description:
      - ACL user the Sentinels authenticate to the Redis instances as (C(auth-user)).
      - Defaults to O(login_user).
    type: str
  timeout:
    description:
      - Seconds to wait for a master when a failover may be under way, for a reset Sentinel to find
        its peers again, and for C(SENTINEL CKQUORUM) to pass on every reachable Sentinel.
    type: int
    default: 60
extends_documentation_fragment:
  - swarmlab.cluster.redis
  - swarmlab.cluster.redis.sentinel
  - swarmlab.cluster.redis.instances
notes:
  - The O(login_user) and O(login_password) options are the credentials of the Redis instances;
    O(sentinel_user) and O(sentinel_password) those of the Sentinels. A Sentinel group with
    C(requirepass) must use the same password on every Sentinel (they authenticate to each other
    with it).
seealso:
  - module: swarmlab.cluster.redis_topology_info
  - module: swarmlab.cluster.redis_failover
"""

EXAMPLES = r"""
- name: Three Sentinels monitor the replication set
  swarmlab.cluster.redis_sentinel:
    sentinels:
      - host: 10.0.0.21
      - host: 10.0.0.22
      - host: 10.0.0.23
    instances:
      - host: 10.0.0.11
      - host: 10.0.0.12
      - host: 10.0.0.13
    master_name: mymaster
    quorum: 2
    down_after_milliseconds: 5000
    failover_timeout: 20000
    parallel_syncs: 1
    login_password: "{{ redis_password }}"
    sentinel_password: "{{ sentinel_password }}"
  no_log: true

- name: Stop monitoring the set
  swarmlab.cluster.redis_sentinel:
    sentinels: "{{ redis_sentinels }}"
    master_name: mymaster
    state: absent
    sentinel_password: "{{ sentinel_password }}"
  no_log: true
"""

RETURN = r"""
master:
  description: The instance the Sentinels monitor after the task (C(host:port) as listed); null with O(state=absent).
  returned: success
  type: str
  sample: 10.0.0.11:6379
master_reason:
  description: Why this instance is the master.
  returned: success
  type: str
  sample: 3 of 3 reachable Sentinels monitor it, and it answers as a master
changes:
  description: One line per change made (or, in check mode, that would be made); never a password.
  returned: always
  type: list
  elements: str
  sample: ["10.0.0.23:26379: MONITOR 10.0.0.11:6379 quorum 2"]
sentinels:
  description: What the module saw and did on every listed Sentinel.
  returned: success
  type: list
  elements: dict
  contains:
    address:
      description: The Sentinel's C(host:port), as listed in O(sentinels).
      type: str
      sample: 10.0.0.21:26379
    reachable:
      description: Whether the module could connect and authenticate.
      type: bool
      sample: true
    error:
      description: Why the Sentinel is unreachable.
      type: str
      sample: null
    monitored_before:
      description: The master address the Sentinel monitored under O(master_name) before the task.
      type: str
      sample: 10.0.0.11:6379
    changes:
      description: The changes on this Sentinel.
      type: list
      elements: str
      sample: []
    ckquorum:
      description: The reply of C(SENTINEL CKQUORUM) after the changes (not run in check mode).
      type: str
      sample: OK 3 usable Sentinels. Quorum and failover authorization can be reached
unreachable_sentinels:
  description:
    - Sentinels the module could not connect to; they were not configured.
    - Named so because Ansible reads a top-level C(unreachable) as "the host is unreachable".
  returned: success
  type: list
  elements: str
  sample: []
"""

import time
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis import address, blocking_errors
from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_client import (
    RedisModuleError,
    collect_topology,
    connect_sentinel,
    sentinel_command,
    sentinel_master,
    usable_sentinels,
    wait_until,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_module import (
    RedisManager,
    redis_module,
    run_manager,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._sentinel import (
    auth_failing,
    ckquorum_ok,
    decide_master,
    majority,
    plan_sentinel,
    quorum_refusal,
    stale_entries,
)

# Module options -> Sentinel's names of the settings.
SETTING_OPTIONS = {
    'quorum': 'quorum',
    'down_after_milliseconds': 'down-after-milliseconds',
    'failover_timeout': 'failover-timeout',
    'parallel_syncs': 'parallel-syncs',
}


class SentinelManager(RedisManager):
    def __init__(self, module: AnsibleModule) -> None:
        super().__init__(module)
        self.name = self.p['master_name']
        self.auth_pass = self.p['auth_pass'] if self.p['auth_pass'] is not None else self.p['login_password']
        self.auth_user = self.p['auth_user'] if self.p['auth_user'] is not None else self.p['login_user']
        self.wanted = {SETTING_OPTIONS[k]: str(self.p[k]) for k in SETTING_OPTIONS if self.p[k] is not None}

    # -- reading -------------------------------------------------------------------------------

    def views(self) -> list[dict[str, t.Any]]:
        return usable_sentinels(self.p['sentinels'], self.p, self.name)

    def find_master(self) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]], dict[str, t.Any]]:
        """Views, instance records and the decision; read again while a failover may be under way."""
        deadline = time.monotonic() + self.p['timeout']
        while True:
            views = self.views()
            records = collect_topology(self.p['instances'], self.p)
            errors = blocking_errors(records)
            if errors:
                raise RedisModuleError('; '.join(errors) + '; nothing was changed')
            decision = decide_master(views, records)
            if decision['master'] or not decision['retry'] or time.monotonic() >= deadline:
                break
            time.sleep(1)
        if not decision['master']:
            raise RedisModuleError('%s; nothing was changed' % decision['error'])
        return views, records, decision

    # -- writing -------------------------------------------------------------------------------

    def apply(self, view: dict[str, t.Any], actions: list[tuple[t.Any, ...]], sentinel_count: int,
              replica_count: int) -> None:
        key = view['key']
        client = connect_sentinel(view['host'], view['port'], self.p)
        for action in actions:
            if action[0] == 'remove':
                sentinel_command(client, key, 'SENTINEL', 'REMOVE', self.name)
            elif action[0] == 'monitor':
                sentinel_command(client, key, 'SENTINEL', 'MONITOR', self.name, action[1], str(action[2]),
                                 str(action[3]))
            elif action[0] == 'set':
                args = [x for kv in action[1] for x in kv]
                sentinel_command(client, key, 'SENTINEL', 'SET', self.name, *args)
            elif action[0] == 'auth':
                # Separate commands, so a failure message can never carry the password.
                if self.auth_user:
                    sentinel_command(client, key, 'SENTINEL', 'SET', self.name, 'auth-user', self.auth_user)
                try:
                    client.execute_command('SENTINEL', 'SET', self.name, 'auth-pass', self.auth_pass)
                except Exception as exc:
                    raise RedisModuleError('%s: SENTINEL SET auth-pass failed (%s)' % (key, type(exc).__name__)) from exc
            elif action[0] == 'reset':
                sentinel_command(client, key, 'SENTINEL', 'RESET', self.name)
                self.wait_rediscovered(client, key, sentinel_count, replica_count)
        client.close()

    def wait_rediscovered(self, client: t.Any, key: str, sentinel_count: int, replica_count: int) -> None:
        """After a RESET: peers come back through hello messages (every 2 s), replicas through INFO."""
        def found() -> bool:
            m = sentinel_master(client, key, self.name) or {}
            return int(m.get('num-other-sentinels', 0)) >= sentinel_count - 1 and \
                int(m.get('num-slaves', 0)) >= replica_count

        if not wait_until(found, self.p['timeout'], 0.5):
            self.warnings.append('%s: after SENTINEL RESET it had not found its %d peers and %d replicas again '
                                 'within %ss' % (key, sentinel_count - 1, replica_count, self.p['timeout']))

    def ckquorum(self, views: list[dict[str, t.Any]]) -> dict[str, str]:
        replies: dict[str, str] = {}

        def check() -> bool:
            for v in views:
                try:
                    client = connect_sentinel(v['host'], v['port'], self.p)
                    replies[v['key']] = str(client.execute_command('SENTINEL', 'CKQUORUM', self.name))
                    client.close()
                except Exception as exc:  # NOQUORUM comes back as an error reply
                    replies[v['key']] = str(exc)
            return all(ckquorum_ok(r) for r in replies.values())

        if not wait_until(check, self.p['timeout'], 1.0):
            raise RedisModuleError('SENTINEL CKQUORUM did not pass within %ss: %s' % (
                self.p['timeout'], '; '.join('%s: %s' % kv for kv in sorted(replies.items()))))
        return replies

    # -- main flows ----------------------------------------------------------------------------

    def absent(self) -> dict[str, t.Any]:
        views = self.views()
        changes, out, diff_before, diff_after = [], [], {}, {}
        for v in views:
            entry = {'address': v['key'], 'reachable': v['reachable'], 'error': v['error'],
                     'monitored_before': None, 'changes': [], 'ckquorum': None}
            out.append(entry)
            if not v['reachable'] or v['master'] is None:
                continue
            entry['monitored_before'] = address(v['master'].get('ip'), int(v['master'].get('port', 0)))
            entry['changes'].append('%s: REMOVE %s (monitored %s)' % (v['key'], self.name, entry['monitored_before']))
            diff_before[v['key']] = {'monitors': entry['monitored_before']}
            diff_after[v['key']] = {'monitors': None}
            if not self.check:
                client = connect_sentinel(v['host'], v['port'], self.p)
                sentinel_command(client, v['key'], 'SENTINEL', 'REMOVE', self.name)
            changes.extend(entry['changes'])
        return self.result(bool(changes), None, None, changes, out, views, diff_before, diff_after)

    def present(self) -> dict[str, t.Any]:
        views, records, decision = self.find_master()
        master = next(r for r in records if r['key'] == decision['master'])
        sentinel_records = [{'key': v['key'], 'host': v['host'], 'port': v['port'], 'addresses': v['addresses']}
                            for v in views]
        up = [v for v in views if v['reachable']]
        replica_count = len([r for r in records if r['key'] != master['key'] and r.get('reachable')])
        default_quorum = majority(len(views))
        plans, out, changes = {}, [], []
        diff_before, diff_after = {}, {}
        for v in views:
            entry = {'address': v['key'], 'reachable': v['reachable'], 'error': v['error'],
                     'monitored_before': None, 'changes': [], 'ckquorum': None}
            out.append(entry)
            if not v['reachable']:
                self.warnings.append('%s was not configured: %s' % (v['key'], v['error']))
                continue
            stale, alive = stale_entries(v, sentinel_records, records)
            if alive:
                self.warnings.append('%s knows entries that are not listed but answer (left alone): %s'
                                     % (v['key'], ', '.join(alive)))
            plan = plan_sentinel(v, master, self.wanted, default_quorum, self.auth_pass is not None, stale)
            if self.auth_pass is None and auth_failing(v['master']):
                self.warnings.append('%s cannot authenticate to the master (its PINGs are answered with errors); '
                                     'set auth_pass' % v['key'])
            plans[v['key']] = plan
            entry['monitored_before'] = plan['before']['monitors']
            entry['changes'] = plan['changes']
            changes.extend(plan['changes'])
            if plan['actions']:
                diff_before[v['key']] = plan['before']
                diff_after[v['key']] = plan['after']
        if not self.check:
            for v in up:
                if plans[v['key']]['actions']:
                    self.apply(v, plans[v['key']]['actions'], len(up), replica_count)
            replies = self.ckquorum(up)
            for entry in out:
                entry['ckquorum'] = replies.get(entry['address'])
        return self.result(bool(changes), master['key'], decision['reason'], changes, out, views,
                           diff_before, diff_after)

    def result(self, changed: bool, master: str | None, reason: str | None, changes: list[str],
               out: list[dict[str, t.Any]], views: list[dict[str, t.Any]], diff_before: dict[str, t.Any],
               diff_after: dict[str, t.Any]) -> dict[str, t.Any]:
        result: dict[str, t.Any] = {
            'changed': changed,
            'master': master,
            'master_reason': reason,
            'changes': changes,
            'sentinels': out,
            'unreachable_sentinels': [v['key'] for v in views if not v['reachable']],
            'diff': {'before': diff_before, 'after': diff_after},
        }
        return self.with_warnings(result)

    def run(self) -> dict[str, t.Any]:
        return self.present() if self.p['state'] == 'present' else self.absent()


def main() -> None:
    module = redis_module(
        {
            'master_name': {'type': 'str', 'default': 'mymaster'},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
            'quorum': {'type': 'int'},
            'down_after_milliseconds': {'type': 'int'},
            'failover_timeout': {'type': 'int'},
            'parallel_syncs': {'type': 'int'},
            'auth_pass': {'type': 'str', 'no_log': True},
            'auth_user': {'type': 'str'},
            'timeout': {'type': 'int', 'default': 60},
        },
        instances='optional',
        sentinels='required',
        required_if=[('state', 'present', ['instances'])],
    )
    p = module.params
    problems = []
    if not p['sentinels']:
        problems.append('sentinels must list at least one Sentinel')
    refusal = quorum_refusal(p['quorum'], len(p['sentinels']))
    if refusal:
        problems.append(refusal)
    for name in ('down_after_milliseconds', 'failover_timeout', 'parallel_syncs'):
        if p[name] is not None and p[name] < 1:
            problems.append('%s must be at least 1, got %s' % (name, p[name]))
    if p['timeout'] < 0:
        problems.append('timeout must not be negative')
    if problems:
        module.fail_json(msg='; '.join(problems) + '; nothing was changed')
    module.exit_json(**run_manager(module, SentinelManager))


if __name__ == '__main__':
    main()
