#!/usr/bin/python
# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_password_rotation
short_description: Make running Redis servers and Sentinels accept a new password beside the old one, and use it
version_added: 2.0.0
description:
  - The first step of a password rotation without a failed request. Without a restart, every listed
    server accepts O(new_password) as well as the password it has (C(ACL SETUSER default >new)) and
    uses the new one towards its master (C(CONFIG SET masterauth)); every listed Sentinel accepts
    O(new_sentinel_password) as well as its own (C(ACL SETUSER)), and uses the new passwords towards
    the other Sentinels (C(SENTINEL CONFIG SET sentinel-pass)) and the servers (C(SENTINEL SET
    <master> auth-pass)).
  - Then clients can move to the new passwords one by one, and the servers and Sentinels can be
    restarted with the new passwords only (their configuration files have them), one at a time;
    each restart drops the old password there. The stack role does so (its Redis rolling update).
  - Nothing is written to the configuration files - a server or Sentinel restarted with its old
    configuration accepts the old password only again.
  - Every instance is reached first with the new password (already accepted - a rerun after a failure
    goes on from there), else with the old one. When an instance accepts neither, or is unreachable,
    the task fails before anything changes.
  - Why not M(community.general.redis)? It sets one C(CONFIG) value on one host; it has no
    C(ACL SETUSER), no Sentinel commands, and nothing that checks the whole set first.
  - Needs Redis 6.2 or later (C(ACL) in Sentinel, C(SENTINEL CONFIG SET sentinel-pass)).
author: "swarmlab maintainers (!UNKNOWN)"
attributes:
  check_mode:
    support: full
    description: Connects and reports what it would change, without sending a change.
  diff_mode:
    support: none
    description: RV(servers) and RV(sentinels) say what changed.
options:
  sentinels:
    # Its type and host/port suboptions: the fragment swarmlab.cluster.redis.sentinel.
    description:
      - The Sentinels that monitor the set; every one must answer (one left out would refuse the
        others once they use the new Sentinel password).
    required: false
  new_password:
    description:
      - The new password of the default user of the servers. O(login_password) is the current one.
    type: str
    required: true
  new_sentinel_password:
    description:
      - The new password of the Sentinels' default user; O(sentinel_password) is the current one.
        Empty - the Sentinels keep theirs (only C(auth-pass) moves to O(new_password)).
    type: str
    default: ''
  sentinel_master_name:
    description: The master's name in the Sentinels (C(SENTINEL SET <name> auth-pass)).
    type: str
    default: mymaster
extends_documentation_fragment:
  - swarmlab.cluster.redis
  - swarmlab.cluster.redis.sentinel
  - swarmlab.cluster.redis.instances
notes:
  - C(SENTINEL SET <master> auth-pass) is sent to every Sentinel on every run that is not in check
    mode (Sentinel does not show the value, so there is nothing to compare); the task reports a change then.
    Run it once per rotation.
seealso:
  - module: swarmlab.cluster.redis_failover
  - module: swarmlab.cluster.redis_sentinel
"""

EXAMPLES = r"""
- name: Let every server and Sentinel accept the new passwords beside the old ones
  swarmlab.cluster.redis_password_rotation:
    instances: [{host: redis-master}, {host: redis-replica-1}, {host: redis-replica-2}]
    sentinels: [{host: redis-sentinel-1}, {host: redis-sentinel-2}, {host: redis-sentinel-3}]
    login_password: "{{ old_redis_password }}"
    new_password: "{{ vault_redis_password }}"
    sentinel_password: "{{ old_sentinel_password }}"
    new_sentinel_password: "{{ vault_sentinel_password }}"
  no_log: true
"""

RETURN = r"""
servers:
  description: Per server, C(host:port) and what was (or would be) changed.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: C(host:port) as listed.
      type: str
    accepted_new_before:
      description: Whether it already accepted O(new_password).
      type: bool
    changes:
      description: C(password added), C(masterauth).
      type: list
      elements: str
sentinels:
  description: Per Sentinel, as RV(servers); changes among C(password added), C(sentinel-pass), C(auth-pass).
  returned: always
  type: list
  elements: dict
"""

import typing as t

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis import address
from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_client import (
    RedisModuleError,
    command,
    config_get,
    connect,
    error_kind,
    sentinel_params,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_module import (
    RedisManager,
    redis_module,
    run_manager,
)


def _open(host: str, port: int, params: dict[str, t.Any], new: str, option: str) -> tuple[t.Any, bool]:
    """A client logged in with the new password when it is accepted, else the current one."""
    if new:
        try:
            return connect(host, port, dict(params, login_password=new), option, retries=1), True
        except RedisModuleError as exc:
            if error_kind(exc) != 'auth':
                raise
    return connect(host, port, params, option), False


class PasswordRotation(RedisManager):

    def run(self) -> dict[str, t.Any]:
        p = self.p
        server_params = dict(p)
        sentinel_connection = sentinel_params(p)
        new_sentinel = p['new_sentinel_password'] or ''
        # Everyone reached and logged in first: nothing changes when one cannot be.
        servers = []
        for i in p['instances']:
            client, accepted = _open(i['host'], i['port'], server_params, p['new_password'], 'login_password/new_password')
            servers.append((address(i['host'], i['port']), client, accepted))
        sentinels = []
        for s in p['sentinels'] or []:
            client, accepted = _open(s['host'], s['port'], sentinel_connection, new_sentinel,
                                     'sentinel_password/new_sentinel_password')
            sentinels.append((address(s['host'], s['port']), client, accepted))
        report: dict[str, list[dict[str, t.Any]]] = {'servers': [], 'sentinels': []}
        for where, client, accepted in servers:
            changes = [] if accepted else ['password added']
            if config_get(client, where, 'masterauth') != p['new_password']:
                changes.append('masterauth')
            if not self.check:
                if not accepted:
                    command(client, where, 'ACL', 'SETUSER', 'default', '>' + p['new_password'])
                if 'masterauth' in changes:
                    command(client, where, 'CONFIG', 'SET', 'masterauth', p['new_password'])
            report['servers'].append({'address': where, 'accepted_new_before': accepted, 'changes': changes})
        for where, client, accepted in sentinels:
            changes = []
            if new_sentinel and not accepted:
                changes.append('password added')
            if new_sentinel and self._sentinel_pass(client, where) != new_sentinel:
                changes.append('sentinel-pass')
            changes.append('auth-pass')
            if not self.check:
                if 'password added' in changes:
                    command(client, where, 'ACL', 'SETUSER', 'default', '>' + new_sentinel)
                if 'sentinel-pass' in changes:
                    command(client, where, 'SENTINEL', 'CONFIG', 'SET', 'sentinel-pass', new_sentinel)
                command(client, where, 'SENTINEL', 'SET', p['sentinel_master_name'], 'auth-pass', p['new_password'])
            report['sentinels'].append({'address': where, 'accepted_new_before': accepted, 'changes': changes})
        changed = any(r['changes'] for r in report['servers'] + report['sentinels'])
        return self.with_warnings(dict(report, changed=changed))

    @staticmethod
    def _sentinel_pass(client: t.Any, where: str) -> str:
        reply = command(client, where, 'SENTINEL', 'CONFIG', 'GET', 'sentinel-pass')
        values = dict(zip(reply[::2], reply[1::2])) if isinstance(reply, list) else dict(reply or {})
        return values.get('sentinel-pass', '') or ''


def main() -> None:
    module = redis_module({
        'new_password': {'type': 'str', 'required': True, 'no_log': True},
        'new_sentinel_password': {'type': 'str', 'default': '', 'no_log': True},
        'sentinel_master_name': {'type': 'str', 'default': 'mymaster'},
    }, instances='required', sentinels='optional')
    module.exit_json(**run_manager(module, PasswordRotation))


if __name__ == '__main__':
    main()
