#!/usr/bin/python
# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_failover
short_description: Planned switchover or forced promotion in a Redis replication set
version_added: 1.0.0
description:
  - Planned switchover (the master is reachable) to a named replica or to the most up-to-date one.
    With O(method=failover) it uses C(FAILOVER TO host port TIMEOUT ms), which pauses writes on the
    master until the target has caught up. With O(method=manual) it runs the same steps itself -
    pause writes with C(CLIENT PAUSE WRITE), wait until the target's offset has caught up with the
    master's, renew the pause and check again, make the old master a replica of the target, promote
    the target, unpause - so no acknowledged write is lost, and there are never two masters. When
    the promotion fails, the old master is made master again before writes resume. The other
    replicas are then pointed at the new master.
  - A planned switchover needs Redis 6.2 or later on the master (C(CLIENT PAUSE WRITE)); on older
    versions it is refused, because a plain C(CLIENT PAUSE) also stops the module's own commands.
  - Forced promotion (O(force=true)) when the master is gone - the reachable replica with the
    highest replication offset (or O(target)) gets C(REPLICAOF NO ONE), the others are pointed at
    it, and the old master, if it is reachable again, is fenced (made a replica of the new master).
    A later run with O(force=true) also fences an old master that came back as a second master.
  - A forced promotion is refused while the master is alive - a replica reports its link to the
    master up, or the master address the replicas report answers as a master (the module tries it
    even when the master is listed under another address).
  - A wrong password or a missing permission on any instance fails the task before anything
    changes; such an instance is never taken for a dead master.
  - With O(sentinels), the switchover goes through Sentinel with C(SENTINEL FAILOVER), so Sentinel's
    view stays right, and without losing a write - Sentinel's own failover does not pause writes,
    so the module does - it finds the master a majority of the reachable Sentinels monitor, holds
    back the replicas that are not O(target) with C(replica-priority 0) (restored afterwards),
    waits until that Sentinel would promote a candidate (right after C(SENTINEL RESET) or a
    replica's restart it has not read its INFO yet or still flags it down, and C(SENTINEL FAILOVER)
    would answer C(NOGOODSLAVE)) and until every replica Sentinel may promote is nearly caught up,
    pauses writes on the master, waits until those replicas have caught up,
    sends C(SENTINEL FAILOVER) to a Sentinel of that majority, waits until a majority of the listed
    Sentinels names the promoted replica (clients ask any of them) and the
    other replicas have linked to it (so the first writes there can be acknowledged by a replica),
    demotes the old master itself (Sentinel would only do it seconds later) and, as Sentinel does,
    rewrites its config and closes its clients' connections (so Sentinel-aware clients retry their
    held writes on the new master), and only then unpauses. Then, writes flowing, it waits until
    every reachable Sentinel names the new master (a warning when one does not within O(timeout)).
    A Sentinel that has not heard of the failover yet still names the old master, so clients must
    check the role of the instance a Sentinel names (C(ROLE), as the Sentinel client guidelines
    say, and the counter app does) and ask another when it is a replica. It fails when no majority of the
    Sentinels names the new master within O(timeout) (the old master is demoted all the same);
    RV(sentinels_confirmed) lists them. When nothing was promoted within O(timeout) and a listed
    Sentinel (the one asked or another) is still failing over, writes stay paused and the task
    fails saying so. Unlisted replicas that Sentinel could promote are refused.
  - The write pause before C(SENTINEL FAILOVER) is kept shorter than the Sentinels'
    C(down-after-milliseconds) less 1 s (half of it at least). A paused master holds the hello
    messages Sentinels publish to it and the PINGs they send after them, and a longer pause makes
    the Sentinels take it for down and fail over on their own. When the candidates do not catch up
    in that time, nothing is promoted and writes resume.
  - Before any write is paused, it also waits until no reachable Sentinel last saw a candidate as
    a master (a switchover back to the master of one seconds before; Sentinels read INFO from a
    replica every 10 s). Such a Sentinel would take the promoted replica for one that had claimed
    to be a master too long, and turn it back into a replica under the failover.
  - While writes are paused (Sentinel or O(method=manual)), the master's PINGs to its replicas are
    held too (C(repl-ping-replica-period) 2147483647, put back once it is a replica or the switchover
    failed), as Redis's own C(FAILOVER) does. A PING sent after the target was promoted puts the
    replicas still attached ahead of it, and they need a full resync instead of C(PSYNC). A value of
    2147483647 found there (a run killed meanwhile) is warned about and replaced by 10.
  - A switchover is refused, before any write is paused, while a listed Sentinel is already
    failing over the master. When the Sentinel asked answers that a failover is already in progress
    (one it began meanwhile), the module keeps writes paused and finishes as after its own request,
    with a warning (only the caught-up candidates can be promoted). C(SENTINEL FAILOVER) is sent once,
    never retried (a retry after a lost answer would meet the module's own failover); after a lost
    answer the module asks that Sentinel whether it is failing over, and if so waits as above.
  - Why not M(community.general.redis)? It can set C(REPLICAOF) on one host, but promotes without
    any safety check, has no view of the whole topology, does not repoint the other replicas, has no
    C(masterauth) and never checks that replication works afterwards.
  - Idempotent - when the requested O(target) is already the master and the set is healthy,
    nothing changes. Without a target every run is a switchover.
  - Shared code lives in the collection's C(_redis) module utils.
author: "swarmlab maintainers (!UNKNOWN)"
attributes:
  check_mode:
    support: full
    description: Decides what it would do (and reports C(changed), the old and the new master) without writing.
  diff_mode:
    support: full
    description: Shows the master before and after.
options:
  instances:
    # Its type and host/port suboptions: the fragment swarmlab.cluster.redis.instances.
    description:
      - Every Redis instance of the replication set, as reachable from the module host.
      - Replicas are pointed at the new master by the address the old master sees it under (its
        C(slaveN) line in C(INFO replication)), else by the address listed here.
      - C(FAILOVER TO) needs the target under the address the master lists it by; when the listed
        address differs (published ports, NAT), the manual sequence is used instead, with a warning.
  target:
    description:
      - The replica to promote, one of O(instances). Without it the reachable replica with the
        highest replication offset is chosen.
    type: dict
    suboptions:
      host:
        description: Address of the target, as in O(instances).
        type: str
        required: true
      port:
        description: Port of the target.
        type: int
        default: 6379
  force:
    description:
      - Allow a promotion when no master is reachable, and fencing when more than one instance
        reports the master role (the master most replicas follow, or O(target), is kept).
      - Refused while a replica reports its link to a master up, or while the master address the
        replicas report answers as a master.
      - Writes the old master acknowledged but had not replicated are lost; the module reports the
        offsets it saw in RV(before).
    type: bool
    default: false
  method:
    description:
      - V(auto) uses V(sentinel) when O(sentinels) is given, else V(failover) on Redis 6.2 or
        later and V(manual) before.
      - V(failover) uses the C(FAILOVER) command; V(manual) pauses writes and promotes step by
        step; V(sentinel) uses C(SENTINEL FAILOVER).
      - Only a planned switchover uses the method; a forced promotion always promotes directly.
    type: str
    default: auto
    choices: [auto, failover, manual, sentinel]
  timeout:
    description:
      - Seconds the switchover may take - the time writes may stay paused while the target catches
        up, and then the time to wait for every replica to be linked to the new master.
      - With O(sentinels), writes stay paused at most the Sentinels' C(down-after-milliseconds)
        less 1 s (half of it at least) while the candidates catch up; before the pause the module
        waits up to O(timeout) until they are within 1 MiB of the master.
      - At least 2; checked before anything changes.
    type: int
    default: 30
  sentinels:
    # Its type and host/port suboptions: the fragment swarmlab.cluster.redis.sentinel.
    description:
      - Sentinels that monitor the set; a majority of them must answer. An unreachable one is
        reported in a warning.
    required: false
  sentinel_master_name:
    description: Name of the monitored master in Sentinel.
    type: str
    default: mymaster
  master_auth:
    description:
      - Password the instances use to authenticate to the new master. When given, C(masterauth) is
        set (C(CONFIG SET)) on every instance the module makes a replica, before it does.
    type: str
  persist:
    description:
      - Run C(CONFIG REWRITE) on every instance whose role changed, so a restart does not bring an
        old master back as a master.
      - The task fails before anything changes when a reachable instance runs without a config file,
        or with one in a temporary directory (V(/tmp), V(/var/tmp), V(/run), V(/var/run), V(/dev/shm)) -
        there the new roles would be lost on restart, and the old master would come back as a second
        master. The module sees only the file's path; it cannot see a start script that rewrites the
        file elsewhere, nor a C(--replicaof) on a server's command line (it wins over the file).
      - With O(persist=false) the roles change until the next restart only; the result warns so.
      - Not with O(sentinels) - Sentinel keeps the roles itself (it rewrites each instance's config
        and demotes an old master that comes back); the module rewrites the config of the old master
        it demotes, as Sentinel would, where it has one.
    type: bool
    default: false
extends_documentation_fragment:
  - swarmlab.cluster.redis
  - swarmlab.cluster.redis.instances
  - swarmlab.cluster.redis.sentinel
notes:
  - The write pause (C(CLIENT PAUSE WRITE)) also holds the Sentinels' C(PUBLISH) hello messages to
    the master, so they get no PING reply from it while it lasts; keep C(down-after-milliseconds)
    well above the few seconds a Sentinel switchover takes, or they may consider the master down.
  - Configure the Sentinels themselves with M(swarmlab.cluster.redis_sentinel).
seealso:
  - module: swarmlab.cluster.redis_topology_info
  - module: swarmlab.cluster.redis_replication
  - module: swarmlab.cluster.redis_sentinel
"""

EXAMPLES = r"""
- name: Planned switchover to redis-2
  swarmlab.cluster.redis_failover:
    instances:
      - host: 10.0.0.11
      - host: 10.0.0.12
      - host: 10.0.0.13
    target:
      host: 10.0.0.12
    login_password: "{{ redis_password }}"
    master_auth: "{{ redis_password }}"
    persist: true
  no_log: true

- name: The master is gone - promote the most up-to-date replica
  swarmlab.cluster.redis_failover:
    instances: "{{ redis_instances }}"
    login_password: "{{ redis_password }}"
    master_auth: "{{ redis_password }}"
    force: true
  no_log: true

- name: Switchover through Sentinel
  swarmlab.cluster.redis_failover:
    instances: "{{ redis_instances }}"
    sentinels:
      - host: 10.0.0.11
        port: 26379
    sentinel_master_name: mymaster
    login_password: "{{ redis_password }}"
  no_log: true
"""

RETURN = r"""
old_master:
  description: The master before the task (C(host:port) as listed, or as the replicas report it when it is gone).
  returned: success
  type: str
  sample: 10.0.0.11:6379
new_master:
  description: The master after the task (in check mode, the one that would be promoted).
  returned: success
  type: str
  sample: 10.0.0.12:6379
operation:
  description: What was done - V(noop), V(planned), V(forced), V(fence), V(repoint) or V(sentinel).
  returned: success
  type: str
  sample: planned
method:
  description: How the promotion was done (V(failover), V(manual), V(sentinel), V(replicaof)), null when nothing was promoted.
  returned: success
  type: str
  sample: failover
reason:
  description: Why this replica was chosen, or why nothing was done.
  returned: success
  type: str
  sample: highest replication offset (18273)
elapsed:
  description: Seconds from the first write to a converged set (every reachable replica linked to the new master).
  returned: success
  type: float
  sample: 1.42
writes_paused:
  description:
    - Seconds the module held writes on the old master (C(CLIENT PAUSE WRITE)) in a planned switchover
      with O(method=manual) or through Sentinel, from the pause to the unpause - about as long as the
      slowest write waited. Null when the module paused nothing (C(FAILOVER) pauses writes itself).
  returned: success
  type: float
  sample: 1.7
pause_phases:
  description:
    - Where RV(writes_paused) went, in order, as [phase, seconds] pairs - C(caught_up) (the target, or
      the candidates, had every write), C(promoted) (a replica was master), C(sentinels_confirmed) (a
      majority of the Sentinels named it), C(replicas_linked) (the replicas Sentinel repoints had
      linked to it), C(demoted) (the old master was made a replica), C(unpaused). Empty when
      nothing was paused.
  returned: success
  type: list
  elements: list
  sample: [[caught_up, 0.41], [promoted, 0.93], [sentinels_confirmed, 1.1], [replicas_linked, 0.2], [demoted, 0.02], [unpaused, 0.01]]
repointed:
  description: Instances the module made replicas of the new master.
  returned: success
  type: list
  elements: str
  sample: [10.0.0.11:6379, 10.0.0.13:6379]
sentinels_confirmed:
  description:
    - With O(sentinels), after a switchover through Sentinel, the Sentinels that name the new master.
      The module waits (up to O(timeout), writes flowing once a majority does) until every reachable
      one does, and fails when no majority of the listed Sentinels does; empty without Sentinels, in
      check mode and when nothing changed.
  returned: always
  type: list
  elements: str
  sample: [redis-sentinel-1:26379, redis-sentinel-2:26379, redis-sentinel-3:26379]
fenced:
  description: Old masters that were made replicas of the new master.
  returned: success
  type: list
  elements: str
  sample: []
persisted:
  description: Instances where C(CONFIG REWRITE) ran.
  returned: success
  type: list
  elements: str
  sample: []
before:
  description: The topology before the task, as returned by M(swarmlab.cluster.redis_topology_info).
  returned: success
  type: dict
  sample: {healthy: true, master: 10.0.0.11:6379, split_brain: false}
after:
  description: The topology after the task (equal to RV(before) in check mode).
  returned: success
  type: dict
  sample: {healthy: true, master: 10.0.0.12:6379, split_brain: false}
"""

import time
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis import (
    address,
    analyze_topology,
    blocking_errors,
    converged,
    decide_failover,
    master_sees,
    parse_replication,
    persist_refusal,
    repoint_list,
    seen_address,
    supports_failover_command,
    write_pause_refusal,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_client import (
    RedisModuleError,
    collect_instance,
    collect_sentinel,
    collect_sentinels,
    collect_topology,
    command,
    config_get,
    connect,
    connect_sentinel,
    error_kind,
    pause_writes,
    probe_server,
    sentinel_command,
    sentinel_master,
    usable_sentinels,
    wait_until,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_module import (
    REDIS_PORT,
    RedisManager,
    endpoint_options,
    redis_module,
    run_manager,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._sentinel import (
    confirmation,
    decide_master,
    failing_over,
    failover_in_progress,
    monitored_key,
    pause_budget,
    promotion_blockers,
    promotion_candidates,
    sentinel_sees_priority_zero,
    stale_master_roles,
    unlisted_candidates,
)

# Bytes a candidate may still lack when the write pause begins: a local link moves them in
# milliseconds, a slow one in a fraction of the pause the Sentinels tolerate.
NEARLY_CAUGHT_UP = 1 << 20
# repl-ping-replica-period while the module holds writes: the master PINGs when its replication
# cron's loop count (one a second since start) is a multiple of it, so never at this value.
PINGS_HELD = 2147483647


class FailoverManager(RedisManager):
    def __init__(self, module: AnsibleModule) -> None:
        super().__init__(module)
        self.instances = self.p['instances']
        self.repointed: list[str] = []
        self.fenced: list[str] = []
        self.persisted: list[str] = []
        self.touched: set[str] = set()
        self.records: dict[str, dict[str, t.Any]] = {}
        self.writes_paused: float | None = None
        # Where the paused time went: (phase, seconds since the previous mark), in order.
        self.pause_phases: list[list[t.Any]] = []
        self._mark_at = 0.0
        self.pings_saved: dict[str, str] = {}
        self.target = address(self.p['target']['host'], self.p['target']['port']) if self.p['target'] else None

    def mark(self, phase: str | None = None) -> None:
        """Record the seconds since the previous mark as ``phase`` (None starts the count)."""
        now = time.monotonic()
        if phase:
            self.pause_phases.append([phase, round(now - self._mark_at, 3)])
        self._mark_at = now

    # -- reading -------------------------------------------------------------------------------

    def topology(self) -> dict[str, t.Any]:
        records = collect_topology(self.instances, self.p)
        self.records = {r['key']: r for r in records}
        return analyze_topology(records)

    def client(self, key: str) -> t.Any:
        r = self.records[key]
        return connect(r['host'], r['port'], self.p)

    def repl(self, key: str) -> dict[str, t.Any]:
        return parse_replication(command(self.client(key), key, 'INFO', 'replication'))

    # -- writing -------------------------------------------------------------------------------

    def make_replica(self, key: str, master: tuple[str, int], fence: bool = False) -> None:
        client = self.client(key)
        if self.p['master_auth'] is not None:
            command(client, key, 'CONFIG', 'SET', 'masterauth', self.p['master_auth'])
        command(client, key, 'REPLICAOF', master[0], str(master[1]))
        (self.fenced if fence else self.repointed).append(key)
        self.touched.add(key)

    def promote(self, key: str) -> None:
        command(self.client(key), key, 'REPLICAOF', 'NO', 'ONE')
        self.touched.add(key)

    def persist(self) -> None:
        """CONFIG REWRITE where roles changed (the files were checked before anything changed)."""
        if not self.p['persist']:
            if self.touched and not self.p['sentinels']:
                self.warnings.append('persist is false: the new roles last until the next restart, when %s take the '
                                     'role in their config files again' % ', '.join(sorted(self.touched)))
            return
        for key in sorted(self.touched):
            rec = collect_instance(self.records[key]['host'], self.records[key]['port'], self.p, probe_master=False)
            if not rec['reachable']:
                self.warnings.append('%s was not reachable after the change: its config file was not rewritten' % key)
                continue
            command(self.client(key), key, 'CONFIG', 'REWRITE')
            self.persisted.append(key)

    def new_master_address(self, old_master: str | None, new_master: str) -> tuple[str, int]:
        if old_master == new_master:
            old_master = None
        return seen_address(self.records.get(old_master or ''), self.records[new_master])

    def wait_converged(self, new_master: str, ignore: tuple[str, ...] = (),
                       paused: tuple[t.Any, str] | None = None) -> dict[str, t.Any]:
        """Wait until the set has converged on new_master (leaving out ``ignore``), renewing the
        write pause on ``paused`` (client, key) meanwhile; warn (not fail) after the timeout."""
        last: dict[str, t.Any] = {}

        def check() -> bool:
            if paused:
                pause_writes(paused[0], paused[1], self.p['timeout'])
            last.clear()
            last.update(self.topology())
            return converged(last, new_master, ignore)

        # Polled faster while writes are paused: each round trip is paused time.
        if not wait_until(check, self.p['timeout'], 0.1 if paused else 0.25):
            self.warnings.append('the set had not converged on %s after %ss: %s'
                                 % (new_master, self.p['timeout'], last.get('summary')))
        return last

    # -- the switchover methods ----------------------------------------------------------------

    def hold_pings(self, client: t.Any, key: str) -> None:
        """What Redis's own FAILOVER does while it holds writes: no PING from the master to its
        replicas. A PING sent after the target was promoted reaches only the replicas still
        attached (and the master's own offset): 14 bytes ahead of the new master, they cannot
        continue with PSYNC and need a full resync, with the writes still held meanwhile."""
        try:
            saved = config_get(client, key, 'repl-ping-replica-period') or '10'
            if saved == str(PINGS_HELD):
                self.warnings.append('%s: repl-ping-replica-period was %s, left by an interrupted switchover; it is '
                                     '10 (the default) again after this one' % (key, saved))
                saved = '10'
            command(client, key, 'CONFIG', 'SET', 'repl-ping-replica-period', str(PINGS_HELD))
        except RedisModuleError as exc:
            # Not a reason to give up the switchover: the cost is a full resync now and then.
            self.warnings.append('%s: its PINGs to the replicas could not be held (%s); a replica may need a full '
                                 'resync after the switchover' % (key, exc))
            return
        self.pings_saved[key] = saved

    def resume_pings(self, client: t.Any, key: str) -> None:
        saved = self.pings_saved.pop(key, None)
        if saved is None:
            return
        try:
            command(client, key, 'CONFIG', 'SET', 'repl-ping-replica-period', saved)
        except RedisModuleError as exc:
            self.warnings.append('%s: could not set repl-ping-replica-period back to %s (%s); set it by hand, or its '
                                 'replicas may time out while no write comes' % (key, saved, exc))

    def failover_command(self, old: str, new: str) -> None:
        host, port = seen_address(self.records[old], self.records[new])
        client = self.client(old)
        command(client, old, 'FAILOVER', 'TO', host, str(port), 'TIMEOUT', str(self.p['timeout'] * 1000))

        def done() -> bool:
            state = parse_replication(command(client, old, 'INFO', 'replication'))
            return state.get('master_failover_state') in (None, 'no-failover')

        wait_until(done, self.p['timeout'] + 5, 0.1)
        if self.repl(new)['role'] != 'replica' and self.repl(old)['role'] == 'replica':
            self.touched.update((old, new))
            self.repointed.append(old)
            return
        raise RedisModuleError('%s: FAILOVER TO %s did not complete within %ss (the target did not catch up, '
                               'or it was aborted); %s is still the master and writes are unpaused'
                               % (old, new, self.p['timeout'], old))

    def caught_up(self, old_client: t.Any, old: str, waiting: list[tuple[t.Any, str]], slack: int = 0) -> bool:
        """Every replica in waiting has the old master's whole replication stream (all but
        ``slack`` bytes of it)."""
        master = parse_replication(command(old_client, old, 'INFO', 'replication'))
        for client, key in waiting:
            replica = parse_replication(command(client, key, 'INFO', 'replication'))
            if replica['master_link_status'] != 'up' \
                    or (replica['replica_repl_offset'] or 0) + slack < master['master_repl_offset']:
                return False
        return True

    def wait_caught_up(self, old_client: t.Any, old: str, waiting: list[tuple[t.Any, str]],
                       limit: float | None = None, why: str = '') -> None:
        """Under a write pause on old, wait until the replicas have every write; raise when they
        have not within ``limit`` seconds (the timeout by default; ``why`` says why it is shorter).
        The pause is renewed and the offsets compared once more before this returns: a check can
        take longer than the pause (a slow link), and writes taken after the pause ran out must be
        on the replicas too."""
        bounded = limit is not None
        limit = self.p['timeout'] if limit is None else limit
        deadline = time.monotonic() + limit
        names = ', '.join(key for client, key in waiting)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not wait_until(lambda: self.caught_up(old_client, old, waiting), remaining, 0.05):
                raise RedisModuleError('%s: did not catch up with %s within %ss%s; nothing was promoted and %s takes '
                                       'writes again' % (names, old, round(limit, 1), why, old))
            pause_writes(old_client, old, self.p['timeout'])
            if self.caught_up(old_client, old, waiting):
                # Within a shorter limit: what is left of it, but one ACK period (1 s) at least.
                self.wait_acknowledged(old_client, old, max(1.1, deadline - time.monotonic()) if bounded else 2.5)
                return

    def wait_acknowledged(self, old_client: t.Any, old: str, limit: float = 2.5) -> None:
        """Wait (a little over two ACK periods at most) until the old master has its replicas'
        acknowledgement of its whole stream. A client's WAIT that was under way when the pause
        began then returns as acknowledged: paused, the master does not ask the replicas for
        an ACK (REPLCONF GETACK), they only send one each second, and a WAIT still open when the
        topology changes would end in an error or a timeout: a failed request."""
        def acknowledged() -> bool:
            info = parse_replication(command(old_client, old, 'INFO', 'replication'))
            return all(r['offset'] >= info['master_repl_offset'] for r in info['replicas']
                       if r['state'] == 'online')

        wait_until(acknowledged, min(2.5, limit, self.p['timeout']), 0.05)

    def manual(self, old: str, new: str) -> None:
        """Pause writes, wait for the target, demote the old master, promote the target.

        The old master is demoted before the target is promoted (as FAILOVER does), so there is
        never a moment with two masters. A failed promotion makes the old master master again
        before writes resume; writes are unpaused only when that leaves exactly one master.
        """
        old_client = self.client(old)
        new_client = self.client(new)
        target = self.new_master_address(old, new)
        paused_at = time.monotonic()
        pause_writes(old_client, old, self.p['timeout'])
        self.mark()
        try:
            self.hold_pings(old_client, old)
            self.wait_caught_up(old_client, old, [(new_client, new)])
            self.mark('caught_up')
            try:
                self.make_replica(old, target)
            except RedisModuleError as exc:
                raise RedisModuleError('%s could not be made a replica of %s (%s); nothing was promoted and %s takes '
                                       'writes again' % (old, new, exc, old)) from exc
            self.resume_pings(old_client, old)
            try:
                self.promote(new)
            except RedisModuleError as exc:
                self.roll_back(old, new, exc)
            self.mark('promoted')
        except Exception as exc:
            self.resume_pings(old_client, old)
            self.unpause_if_one_master(old_client, old, [new], exc)
            raise
        self.unpause_if_one_master(old_client, old, [new])
        self.mark('unpaused')
        self.writes_paused = round(time.monotonic() - paused_at, 3)

    def roll_back(self, old: str, new: str, exc: RedisModuleError) -> None:
        """The target was not promoted after the old master was demoted: make the old master master
        again, unless the target may have become one (then leave the old master a replica)."""
        found = probe_server(self.records[new]['host'], self.records[new]['port'], self.p)
        if found is None or found['role'] == 'master':
            raise RedisModuleError('%s: the promotion failed (%s) and its role is now %s; %s stays a replica of it. '
                                   'Check %s, then run again (force: true promotes the best replica)'
                                   % (new, exc, found['role'] if found else 'unknown', old, new)) from exc
        command(self.client(old), old, 'REPLICAOF', 'NO', 'ONE')
        if old in self.repointed:
            self.repointed.remove(old)
        raise RedisModuleError('%s could not be promoted (%s); %s was restored as the master and takes writes '
                               'again; nothing else changed' % (new, exc, old)) from exc

    def unpause_if_one_master(self, old_client: t.Any, old: str, others: list[str],
                              failure: Exception | None = None) -> None:
        """Unpause the old master, unless it is still a master while another instance may be one
        too: then its writes stay paused (and the task fails saying so, after ``failure``, the
        error that interrupted the switchover, if any) rather than two masters taking writes."""
        try:
            old_role = command(old_client, old, 'ROLE')[0]
        except RedisModuleError as exc:
            self.warnings.append('%s: its role could not be read (%s), so its writes stay paused until the pause '
                                 'ends by itself' % (old, exc))
            return
        if old_role == 'master':
            for key in others:
                found = probe_server(self.records[key]['host'], self.records[key]['port'], self.p)
                if found is None or found['role'] == 'master':
                    pause_writes(old_client, old, self.p['timeout'])
                    raise RedisModuleError('%s%s and %s may both be masters: writes on %s stay paused for %ss; fence it '
                                           'now (redis_failover with force: true and target %s)'
                                           % ('%s; then ' % failure if failure else '', old, key, old,
                                              self.p['timeout'], key))
        try:
            command(old_client, old, 'CLIENT', 'UNPAUSE')
        except RedisModuleError as exc:
            self.warnings.append('%s: CLIENT UNPAUSE failed (%s); the pause ends by itself' % (old, exc))

    # -- Sentinel ------------------------------------------------------------------------------

    def sentinel_views(self) -> list[dict[str, t.Any]]:
        views = usable_sentinels(self.p['sentinels'], self.p, self.p['sentinel_master_name'])
        for v in views:
            if not v['reachable']:
                self.warnings.append('Sentinel %s' % v['error'])
        return views

    def sentinel_failover(self, before: dict[str, t.Any]) -> dict[str, t.Any]:
        """A switchover through SENTINEL FAILOVER that loses no acknowledged write.

        Sentinel's own failover does not pause writes: the old master would take writes until
        Sentinel demotes it, seconds later, and those writes are lost. So the module holds back the
        replicas that are not the target (replica-priority 0, restored afterwards), waits until
        Sentinel would promote a candidate, pauses writes on the old master, waits until every replica Sentinel may promote has caught up, asks Sentinel,
        and once a replica is promoted, the Sentinels name it and the replicas follow it, demotes the
        old master itself and only then unpauses.
        """
        records = list(self.records.values())
        views = self.sentinel_views()
        busy = failing_over(views)
        if busy:
            raise RedisModuleError('Sentinel %s is already failing over %s (a failover it began itself, or one '
                                   'another run asked for); run again once it has ended; nothing was changed'
                                   % (', '.join(busy), self.p['sentinel_master_name']))
        decision = decide_master(views, records)
        if not decision['master']:
            raise RedisModuleError('%s; nothing was changed' % decision['error'])
        old = decision['master']
        if self.target and self.target not in self.records:
            raise RedisModuleError('target %s is not one of the listed instances' % self.target)
        if self.target == old:
            if not before['healthy']:
                self.warnings.append('the target is the master the Sentinels monitor, but the set is %s' % before['summary'])
            return {'action': 'noop', 'old_master': old, 'new_master': old,
                    'reason': 'target is already the master (%s)' % decision['reason']}
        # SENTINEL FAILOVER goes to a Sentinel that monitors the master (it runs the failover itself).
        leader = next((v for v in views if v['reachable'] and monitored_key(v, records) == old), None)
        if leader is None:
            raise RedisModuleError('no reachable Sentinel monitors %s as %s; configure them with '
                                   'swarmlab.cluster.redis_sentinel first; nothing was changed'
                                   % (old, self.p['sentinel_master_name']))
        unlisted = unlisted_candidates(leader, records)
        if unlisted:
            raise RedisModuleError('Sentinel %s could promote %s, which is not listed in instances: the module cannot '
                                   'wait for it to catch up; list it, or give it replica-priority 0; nothing was changed'
                                   % (leader['key'], ', '.join(unlisted)))
        candidates, held = promotion_candidates(records, old, self.target)
        if not candidates:
            raise RedisModuleError('no replica of %s that Sentinel could promote (all have replica-priority 0 or are '
                                   'unreachable); nothing was changed' % old)
        for key in candidates:
            entry = next(e for e in before['instances'] if e['address'] == key)
            if not entry['reachable'] or entry['role'] != 'replica' or entry['master'] != old \
                    or entry['link_status'] != 'up':
                raise RedisModuleError('%s cannot catch up with %s (role %s, follows %s, link %s), and Sentinel may '
                                       'promote it; %snothing was changed' % (
                                           key, old, entry['role'], entry['master'], entry['link_status'],
                                           '' if self.target else 'name a target; '))
        refusal = write_pause_refusal(old, self.records[old]['version'])
        if refusal:
            raise RedisModuleError(refusal)
        reason = 'requested target' if self.target else 'chosen by Sentinel among %s (all caught up)' % ', '.join(candidates)
        if self.check:
            return {'action': 'sentinel', 'old_master': old, 'new_master': self.target, 'reason': reason}
        saved: dict[str, str] = {}
        try:
            if held:
                self.hold_back(leader, held, saved)
            self.wait_promotable(leader, candidates)
            new, confirmed = self.sentinel_promote(leader, old, candidates, pause_budget(views))
        finally:
            for key, value in saved.items():
                try:
                    command(self.client(key), key, 'CONFIG', 'SET', 'replica-priority', value)
                except RedisModuleError as exc:
                    self.warnings.append('could not restore replica-priority %s: %s' % (value, exc))
        self.touched.update(k for k in self.records if self.records[k]['reachable'])
        return {'action': 'sentinel', 'old_master': old, 'new_master': new, 'reason': reason,
                'sentinels_confirmed': confirmed}

    def wait_sentinels_confirm(self, new: str, paused: tuple[t.Any, str] | None = None) -> list[str]:
        """Wait until Sentinels name the new master: clients ask any of them for the master.
        ``paused``: (client, key) of the old master, whose write pause is renewed meanwhile; then
        a majority of the listed Sentinels is enough (the others hear of the failover from the
        leader's hello messages within seconds, and holding writes for one that lags made requests
        outlast their clients). Without it, every reachable one, with a warning when one does not
        within the timeout. Fails when no majority names it within the timeout."""
        records = list(self.records.values())
        seen: dict[str, t.Any] = {}

        def agreed() -> bool:
            if paused:
                pause_writes(paused[0], paused[1], self.p['timeout'])
            views = collect_sentinels(self.p['sentinels'], self.p, self.p['sentinel_master_name'])
            seen.update(confirmation(views, records, new))
            return seen['majority'] if paused else seen['all']

        # Polled faster while writes are paused: each round trip is paused time.
        wait_until(agreed, self.p['timeout'], 0.1 if paused else 0.25)
        if not seen['majority']:
            raise RedisModuleError('%s was promoted, but after %ss only %d of the %d Sentinels name it the master '
                                   '(%s): clients that ask the others may still be sent to the old master'
                                   % (new, self.p['timeout'], len(seen['confirmed']), len(self.p['sentinels']),
                                      '; '.join(seen['others']) or 'the others do not answer'))
        if not paused and not seen['all']:
            self.warnings.append('%s is the master for a majority of the Sentinels (%s), not yet after %ss for %s'
                                 % (new, ', '.join(seen['confirmed']), self.p['timeout'], '; '.join(seen['others'])))
        return seen['confirmed']

    def hold_back(self, leader: dict[str, t.Any], held: list[str], saved: dict[str, str]) -> None:
        """replica-priority 0 on the replicas that are not the target; wait until the Sentinel that
        runs the failover has seen it (it reads INFO from replicas every 10 s)."""
        for key in held:
            client = self.client(key)
            saved[key] = config_get(client, key, 'replica-priority') or '100'
            command(client, key, 'CONFIG', 'SET', 'replica-priority', '0')
        name = self.p['sentinel_master_name']
        held_records = [self.records[k] for k in held]

        def seen() -> bool:
            view = collect_sentinel(leader['host'], leader['port'], self.p, name)
            return view['reachable'] and sentinel_sees_priority_zero(view['replicas'], held_records)

        if not wait_until(seen, max(15, self.p['timeout']), 0.5):
            raise RedisModuleError('Sentinel %s did not see replica-priority 0 on %s in time; nothing was promoted'
                                   % (leader['key'], ', '.join(held)))

    def wait_promotable(self, leader: dict[str, t.Any], candidates: list[str]) -> None:
        """Wait, before any write is paused, until the Sentinel that runs the failover would promote
        one of the candidates: right after SENTINEL RESET or a replica's restart it does not yet
        (no INFO read, still flagged down) and SENTINEL FAILOVER would answer NOGOODSLAVE. And until
        no reachable Sentinel last saw a candidate as a master (a switchover back to the master of a
        switchover seconds before): that Sentinel would undo its promotion (stale_master_roles)."""
        name = self.p['sentinel_master_name']
        records = [self.records[k] for k in candidates]
        blockers: dict[str, str] = {}

        def promotable() -> bool:
            views = collect_sentinels(self.p['sentinels'], self.p, name)
            view = next(v for v in views if v['key'] == leader['key'])
            if not view['reachable']:
                blockers.clear()
                blockers[leader['key']] = view.get('error') or 'unreachable'
                return False
            blockers.clear()
            blockers.update(promotion_blockers(view, records))
            if len(blockers) == len(records):
                return False
            stale = stale_master_roles(views, records)
            blockers.update(stale)
            return not stale

        if not wait_until(promotable, max(15, self.p['timeout']), 0.2):
            raise RedisModuleError('Sentinel %s would not promote %s in time (%s); nothing was promoted'
                                   % (leader['key'], ' or '.join(candidates),
                                      '; '.join('%s: %s' % item for item in sorted(blockers.items()))))

    def demote(self, old_client: t.Any, old: str, promoted: str) -> None:
        """Demote the old master now (Sentinel would only do it seconds later), then what Sentinel
        does with a demoted master: rewrite its config file, so a restart does not bring it back as
        a master, and close its clients' connections (not the module's): their writes held by the
        pause are never run, and Sentinel-aware clients retry them on the new master instead of
        getting READONLY on each pooled connection."""
        if command(old_client, old, 'ROLE')[0] != 'master':
            self.resume_pings(old_client, old)
            return
        self.make_replica(old, self.new_master_address(old, promoted), fence=True)
        self.resume_pings(old_client, old)  # before the rewrite, which would keep the held value
        steps = [('CONFIG', 'REWRITE')] if self.records[old]['config_file'] else []
        steps.append(('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'))
        for step in steps:
            try:
                command(old_client, old, *step)
            except RedisModuleError as exc:
                self.warnings.append('%s: %s failed (%s)' % (old, ' '.join(step[:2]), exc))

    def ask_failover(self, asker: t.Any, sentinel: t.Any, where: str) -> None:
        """SENTINEL FAILOVER, sent once. A failover already under way (INPROG: one Sentinel began
        itself meanwhile) or one under way after a lost answer is waited for as the module's own:
        Sentinel can only promote a candidate, and the candidates have every write."""
        name = self.p['sentinel_master_name']
        try:
            sentinel_command(asker, where, 'SENTINEL', 'FAILOVER', name)
            return
        except RedisModuleError as exc:
            if 'INPROG' in str(exc):
                self.warnings.append('Sentinel %s was already failing over %s when asked (%s); writes stayed paused '
                                     'and the module waited for that failover as for its own' % (where, name, exc))
                return
            if error_kind(exc) != 'connection' or not failover_in_progress(sentinel_master(sentinel, where, name)):
                raise
            self.warnings.append('the answer of Sentinel %s to SENTINEL FAILOVER was lost (%s), and it is failing over '
                                 '%s; the module waited for that failover' % (where, exc, name))

    def sentinel_promote(self, leader: dict[str, t.Any], old: str, candidates: list[str],
                         budget: tuple[float, int]) -> tuple[str, list[str]]:
        name = self.p['sentinel_master_name']
        old_client = self.client(old)
        waiting = [(self.client(k), k) for k in candidates]
        sentinel = connect_sentinel(leader['host'], leader['port'], self.p)
        # Sent once: a retry after a lost answer would meet the failover the first one began.
        asker = connect_sentinel(leader['host'], leader['port'], self.p, retries=0)
        # Nearly caught up before the pause, so that the paused wait is short (see pause_budget).
        if not wait_until(lambda: self.caught_up(old_client, old, waiting, NEARLY_CAUGHT_UP), self.p['timeout'], 0.05):
            raise RedisModuleError('%s: not within %d bytes of %s after %ss; nothing was paused or promoted'
                                   % (', '.join(candidates), NEARLY_CAUGHT_UP, old, self.p['timeout']))
        promoted = None
        paused_at = time.monotonic()
        pause_writes(old_client, old, self.p['timeout'])
        self.mark()
        try:
            self.hold_pings(old_client, old)
            self.wait_caught_up(old_client, old, waiting, min(budget[0], self.p['timeout']),
                                " of paused writes (kept under the Sentinels' down-after-milliseconds, %d: a longer "
                                'pause makes them take the master for down)' % budget[1])
            self.mark('caught_up')
            self.ask_failover(asker, sentinel, leader['key'])

            def find_promoted() -> str | None:
                pause_writes(old_client, old, self.p['timeout'])  # never let the pause run out meanwhile
                for client, key in waiting:
                    try:
                        if command(client, key, 'ROLE')[0] == 'master':
                            return key
                    except RedisModuleError as exc:
                        # Sentinel closes the normal clients of the replica it promotes.
                        if error_kind(exc) != 'connection':
                            raise
                return None

            promoted = wait_until(find_promoted, self.p['timeout'], 0.05)
            if promoted is None:
                raise RedisModuleError('Sentinel %s did not promote any of %s within %ss; nothing was promoted and %s '
                                       'takes writes again' % (leader['key'], ', '.join(candidates),
                                                               self.p['timeout'], old))
            self.mark('promoted')
            # Before the old master is demoted and its clients' connections are closed, a majority
            # of the Sentinels must name the new master: a client that reconnects asks one of them
            # (and should check the ROLE of the one it is sent to, as the counter app does: one that
            # has not heard yet sends it back to the old master). Until then the old master holds
            # the writes (paused).
            try:
                self.wait_sentinels_confirm(promoted, (old_client, old))
                self.mark('sentinels_confirmed')
                # And the replicas Sentinel repoints must have linked to the new master, or the
                # first writes there find no replica to acknowledge them (WAIT).
                self.wait_converged(promoted, ignore=(old,), paused=(old_client, old))
                self.mark('replicas_linked')
            finally:
                self.demote(old_client, old, promoted)
                self.mark('demoted')
        except Exception as exc:
            self.resume_pings(old_client, old)
            if promoted is None:
                # A failover a Sentinel runs now (the one asked, still under way after `timeout`, or
                # another's) would demote the old master: writes it took after unpausing would be lost.
                busy = failing_over(collect_sentinels(self.p['sentinels'], self.p, name))
                if busy:
                    pause_writes(old_client, old, self.p['timeout'])
                    reason = str(exc).split('; nothing was promoted', maxsplit=1)[0]
                    raise RedisModuleError('%s; but Sentinel %s is failing over %s meanwhile: writes on %s stay paused '
                                           'for %ss so none is lost when it is demoted'
                                           % (reason, ', '.join(busy), name, old, self.p['timeout'])) from exc
            self.unpause_if_one_master(old_client, old, [promoted] if promoted else candidates, exc)
            raise
        self.unpause_if_one_master(old_client, old, [promoted])
        self.mark('unpaused')
        self.writes_paused = round(time.monotonic() - paused_at, 3)
        # Writes flow again; the rest of the Sentinels are waited for without holding them.
        return promoted, self.wait_sentinels_confirm(promoted)

    # -- main flow -----------------------------------------------------------------------------

    def reported_masters(self, topology: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
        """What answers at the master addresses the replicas report (when no listed instance is a
        master): a master listed under another address is still alive."""
        if topology['masters']:
            return {}
        found = {}
        for key, rec in self.records.items():
            repl = rec.get('repl') or {}
            if rec['reachable'] and repl.get('role') == 'replica' and repl.get('master_host'):
                where = address(repl['master_host'], repl['master_port']) or ''
                if where not in found:
                    probe = probe_server(repl['master_host'], repl['master_port'], self.p)
                    if probe:
                        found[where] = probe
        return found

    def refuse_early(self, before: dict[str, t.Any]) -> None:
        """Everything that must stop the task before it changes anything."""
        errors = blocking_errors(list(self.records.values()))
        if errors:
            raise RedisModuleError('; '.join(errors) + '; nothing was changed')
        if self.p['persist']:
            refusal = persist_refusal(list(self.records.values()))
            if refusal:
                raise RedisModuleError(refusal)

    def run(self) -> dict[str, t.Any]:
        started = time.monotonic()
        before = self.topology()
        self.refuse_early(before)
        versions = [r['version'] for r in self.records.values() if r['version']]
        method = self.p['method']
        if method == 'auto':
            if self.p['sentinels']:
                method = 'sentinel'
            else:
                method = 'failover' if versions and all(supports_failover_command(v) for v in versions) else 'manual'
        if method == 'sentinel' and not self.p['sentinels']:
            raise RedisModuleError('method sentinel needs sentinels')

        if method == 'sentinel':
            decision = self.sentinel_failover(before)
            used = 'sentinel' if decision['action'] == 'sentinel' else None
        else:
            decision = decide_failover(before, self.target, self.p['force'], self.reported_masters(before))
            if decision['action'] == 'error':
                raise RedisModuleError(decision['msg'])
            if decision['action'] == 'planned':
                refusal = write_pause_refusal(decision['old_master'], self.records[decision['old_master']]['version'])
                if refusal:
                    raise RedisModuleError(refusal)
            used = None
            if not self.check:
                used = self.execute(decision, method)

        changed = decision['action'] != 'noop'
        after = before
        if changed and not self.check:
            after = self.wait_converged(decision['new_master'])
            self.persist()
        result = {
            'changed': changed,
            'operation': decision['action'],
            'method': used if not self.check else (method if decision['action'] in ('planned', 'sentinel') else None),
            'reason': decision.get('reason'),
            'old_master': decision.get('old_master') if isinstance(decision.get('old_master'), str)
            else ', '.join(decision.get('old_master') or []),
            'new_master': decision.get('new_master'),
            'elapsed': round(time.monotonic() - started, 3),
            'repointed': self.repointed,
            'sentinels_confirmed': decision.get('sentinels_confirmed', []),
            'writes_paused': self.writes_paused,
            'pause_phases': self.pause_phases,
            'fenced': self.fenced,
            'persisted': self.persisted,
            'before': before,
            'after': after,
            'diff': {'before': {'master': before['master'] or ', '.join(before['masters'])},
                     'after': {'master': decision.get('new_master')}},
        }
        return self.with_warnings(result)

    def execute(self, decision: dict[str, t.Any], method: str) -> str | None:
        action, new = decision['action'], decision['new_master']
        old = decision.get('old_master')
        if action == 'noop':
            return None
        if action == 'planned':
            if method == 'failover' and not master_sees(self.records[old], self.records[new]):
                self.warnings.append('%s does not list %s under that address among its replicas (FAILOVER TO '
                                     'needs it); used the manual sequence instead' % (old, new))
                method = 'manual'
            if method == 'failover':
                self.failover_command(old, new)
            else:
                self.manual(old, new)
            used = method
        elif action == 'forced':
            self.promote(new)
            used = 'replicaof'
        elif action == 'fence':
            for m in old:
                self.make_replica(m, self.new_master_address(None, new), fence=True)
            used = None
        else:
            used = None
        target = self.new_master_address(old if isinstance(old, str) and old in self.records else None, new)
        for key in repoint_list(self.topology(), new):
            if key not in self.fenced:
                self.make_replica(key, target)
        if action == 'forced':
            # The old master may be back by now: fence it (unreachable ones are tried again next run).
            for key, rec in self.records.items():
                if key not in self.repointed and key != new and not rec['reachable']:
                    again = collect_instance(rec['host'], rec['port'], self.p, probe_master=False)
                    if again['reachable']:
                        self.make_replica(key, target, fence=True)
        return used


def main() -> None:
    module = redis_module(
        {
            'target': {'type': 'dict', 'options': endpoint_options(REDIS_PORT)},
            'force': {'type': 'bool', 'default': False},
            'method': {'type': 'str', 'default': 'auto', 'choices': ['auto', 'failover', 'manual', 'sentinel']},
            'timeout': {'type': 'int', 'default': 30},
            'sentinel_master_name': {'type': 'str', 'default': 'mymaster'},
            'master_auth': {'type': 'str', 'no_log': True},
            'persist': {'type': 'bool', 'default': False},
        },
        instances='required',
        sentinels='optional',
        required_if=[('method', 'sentinel', ['sentinels'])],
    )
    if module.params['timeout'] < 2:
        # timeout is the write pause: 0 meant no pause at all, 1 leaves no time to act under it.
        module.fail_json(msg='timeout must be at least 2 (seconds), got %s; nothing was changed' % module.params['timeout'])
    if module.params['persist'] and module.params['sentinels']:
        module.fail_json(msg='persist: true does not go with sentinels: Sentinel keeps the roles itself (it rewrites each '
                         'instance\'s config and demotes an old master that comes back); nothing was changed')
    module.exit_json(**run_manager(module, FailoverManager))


if __name__ == '__main__':
    main()
