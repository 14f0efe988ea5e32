# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure decision logic for Sentinel: which master the Sentinels must monitor, what to change on
each Sentinel, which of their entries are stale, and the checks of redis_failover's Sentinel path.

Nothing here talks to a server. The client layer (``_redis_client.collect_sentinel``) makes a
*Sentinel view* per Sentinel: a dict with ``key`` ("host:port" as listed), ``host``, ``port``,
``reachable``, ``error``, ``error_kind``, ``master`` (``SENTINEL MASTER <name>`` as a dict of
strings, None when the Sentinel monitors no master of that name), ``replicas`` (``SENTINEL
REPLICAS``) and ``sentinels`` (``SENTINEL SENTINELS``), both lists of such dicts. Instance records
are those of ``_redis.py``.
"""

from __future__ import annotations

import typing as t

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis import address

# Settings of a monitored master that the module manages, as Sentinel names them.
SETTINGS = ('quorum', 'down-after-milliseconds', 'failover-timeout', 'parallel-syncs')


def pairs(reply: t.Any) -> dict[str, str]:
    """A Sentinel reply (flat ``[k1, v1, k2, v2, ...]`` list under RESP2, or a dict) as a dict of strings."""
    if reply is None:
        return {}
    if isinstance(reply, dict):
        items = reply.items()
    else:
        flat = [x.decode() if isinstance(x, bytes) else x for x in reply]
        items = zip(flat[0::2], flat[1::2])
    out = {}
    for key, value in items:
        key = key.decode() if isinstance(key, bytes) else key
        value = value.decode() if isinstance(value, bytes) else value
        out[str(key)] = str(value)
    return out


def flags(entry: dict[str, str] | None) -> set[str]:
    return set((entry or {}).get('flags', '').split(',')) - {''}


def _int(value: t.Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def majority(count: int) -> int:
    """More than half of count."""
    return count // 2 + 1


def entry_address(entry: dict[str, str] | None) -> str | None:
    if not entry or not entry.get('ip'):
        return None
    return address(entry['ip'], _int(entry.get('port'), 0))


def _listed(ip: str | None, port: int, records: t.Iterable[dict[str, t.Any]]) -> dict[str, t.Any] | None:
    for r in records:
        if r.get('port') == port and ip is not None and (ip == r.get('host') or ip in (r.get('addresses') or [])):
            return r
    return None


def monitored_key(view: dict[str, t.Any], records: list[dict[str, t.Any]]) -> str | None:
    """The listed instance a Sentinel monitors: by address (also the IPs a listed name resolves
    to), else by the run id Sentinel reports. None when it monitors nothing, or something unlisted."""
    master = view.get('master')
    if not master:
        return None
    found = _listed(master.get('ip'), _int(master.get('port')), records)
    if found:
        return found['key']
    runid = master.get('runid')
    if runid:
        for r in records:
            if r.get('run_id') == runid:
                return r['key']
    return None


def confirmation(views: list[dict[str, t.Any]], records: list[dict[str, t.Any]], master_key: str) -> dict[str, t.Any]:
    """How far the Sentinels confirm ``master_key`` as the master: ``confirmed`` (the Sentinels that
    monitor it, sorted), ``others`` (reachable ones that still name another or none, with what they
    name), ``all`` (every reachable Sentinel confirms, and they are a majority of the listed ones)
    and ``majority`` (a majority of the listed Sentinels confirms)."""
    confirmed, others = [], []
    for view in views:
        if not view.get('reachable'):
            continue
        key = monitored_key(view, records)
        if key == master_key:
            confirmed.append(view['key'])
        else:
            others.append('%s names %s' % (view['key'], key or entry_address(view.get('master')) or 'no master'))
    enough = len(confirmed) >= majority(len(views))
    return {'confirmed': sorted(confirmed), 'others': sorted(others), 'majority': enough,
            'all': enough and not others}


def sentinel_errors(views: list[dict[str, t.Any]]) -> list[str]:
    """Errors that must stop the module: a Sentinel that rejects the credentials or a command.
    (An unreachable Sentinel is reported, not an error: the others can still be configured.)"""
    return [v['error'] for v in views if not v.get('reachable') and v.get('error_kind') in ('auth', 'permission')]


def reachable_refusal(views: list[dict[str, t.Any]]) -> str | None:
    """Fewer than a majority of the listed Sentinels answer: no failover could be authorized, and
    converging the rest would not make the group work."""
    up = [v for v in views if v.get('reachable')]
    if len(up) >= majority(len(views)):
        return None
    down = '; '.join(v.get('error') or '%s: unreachable' % v['key'] for v in views if not v.get('reachable'))
    return 'only %d of %d Sentinels answer (a majority, %d, is needed): %s' % (
        len(up), len(views), majority(len(views)), down)


def decide_master(views: list[dict[str, t.Any]], records: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Which listed instance the Sentinels must monitor.

    The master a MAJORITY of the reachable Sentinels monitors, when it answers as a master (a
    Sentinel minority that follows something else is corrected). Without such a majority (fresh
    Sentinels, or split views), the only instance that answers as a master. Returns ``master``
    (key or None), ``reason``, ``votes`` (monitored address -> count) and, when there is no
    answer, ``error`` and ``retry`` (true when a failover may be under way, so waiting may help).
    """
    up = [v for v in views if v.get('reachable')]
    masters = [r['key'] for r in records if r.get('reachable') and (r.get('repl') or {}).get('role') == 'master']
    roles = {r['key']: ((r.get('repl') or {}).get('role') if r.get('reachable') else 'unreachable') for r in records}
    votes: dict[str, int] = {}
    for v in up:
        key = monitored_key(v, records)
        if key is None and v.get('master'):
            key = 'unlisted %s' % entry_address(v['master'])
        if key is not None:
            votes[key] = votes.get(key, 0) + 1
    need = majority(len(up))
    result: dict[str, t.Any] = {'master': None, 'reason': None, 'votes': votes, 'error': None, 'retry': False}
    winner = next((k for k, n in votes.items() if n >= need), None)
    if winner is not None:
        if winner in masters:
            result['master'] = winner
            result['reason'] = '%d of %d reachable Sentinels monitor it, and it answers as a master' % (
                votes[winner], len(up))
            return result
        result['error'] = ('%d of %d reachable Sentinels monitor %s, but it is %s now; a failover may be under way '
                           '(masters among the instances: %s)' % (
                               votes[winner], len(up), winner, 'not listed' if winner.startswith('unlisted')
                               else 'a replica' if roles.get(winner) == 'replica' else 'unreachable',
                               ', '.join(masters) or 'none'))
        result['retry'] = True
        return result
    if len(masters) == 1:
        result['master'] = masters[0]
        result['reason'] = 'the only instance that answers as a master (%s)' % (
            'no Sentinel monitors a master yet' if not votes
            else 'no majority of the reachable Sentinels monitors one master: %s' % describe_votes(votes))
        return result
    if not masters:
        result['error'] = 'no reachable instance answers as a master (%s)' % '; '.join(
            '%s: %s' % (r['key'], r.get('error') or roles.get(r['key'])) for r in records)
        result['retry'] = True
        return result
    result['error'] = ('%s all answer as masters and no majority of the reachable Sentinels monitors one of them '
                       '(%s): a split brain; resolve it with redis_failover first'
                       % (', '.join(masters), describe_votes(votes) or 'no Sentinel monitors a master'))
    return result


def describe_votes(votes: dict[str, int]) -> str:
    return ', '.join('%s by %d' % kv for kv in sorted(votes.items()))


def auth_failing(master: dict[str, str] | None) -> bool:
    """The Sentinel gets replies from the master, but not acceptable ones, for over 2 s: its PINGs
    are answered with an error, which is what a missing or wrong auth-pass looks like. (Sentinel
    never shows auth-pass; this is the only sign of it from outside.)"""
    if not master:
        return False
    reply = _int(master.get('last-ping-reply'), -1)
    ok = _int(master.get('last-ok-ping-reply'), -1)
    return reply >= 0 and ok - reply > 2000


def stale_entries(view: dict[str, t.Any], sentinel_records: list[dict[str, t.Any]],
                  instance_records: list[dict[str, t.Any]]) -> tuple[list[str], list[str]]:
    """Peers and replicas a Sentinel remembers that are not listed and are down (old task
    addresses, removed servers): ``(stale, unlisted_alive)``. Sentinel never forgets an entry by
    itself; SENTINEL RESET drops them (live ones are found again). Unlisted live entries are only
    reported: a reset would bring them back."""
    stale, alive = [], []
    for kind, entries, records in (('Sentinel', view.get('sentinels') or [], sentinel_records),
                                   ('replica', view.get('replicas') or [], instance_records)):
        for entry in entries:
            where = entry_address(entry)
            if _listed(entry.get('ip'), _int(entry.get('port')), records):
                continue
            # Down: flagged so, or no acceptable PING reply for 3 s (Sentinel PINGs every second;
            # it flags s_down only after down-after-milliseconds).
            down = flags(entry) & {'s_down', 'o_down', 'disconnected'} or _int(entry.get('last-ok-ping-reply'), 0) > 3000
            (stale if down else alive).append('%s %s (%s)' % (kind, where, entry.get('flags', '')))
    return stale, alive


def plan_sentinel(view: dict[str, t.Any], master: dict[str, t.Any], wanted: dict[str, str], default_quorum: int,
                  has_auth: bool, stale: list[str]) -> dict[str, t.Any]:
    """What to change on one reachable Sentinel so it monitors ``master`` (an instance record)
    with the wanted settings (Sentinel names -> strings; only the ones the user set).

    Returns ``actions`` (in order: ``('remove',)``, ``('monitor', host, port, quorum)``,
    ``('set', [(name, value), ...])``, ``('auth',)``, ``('reset',)``), ``changes`` (one readable
    line each, never a password) and ``before``/``after`` for the diff.
    """
    current = view.get('master')
    monitors = entry_address(current)
    target = address(master['host'], master['port'])
    before = {'monitors': monitors}
    before.update({k: (current or {}).get(k) for k in SETTINGS} if current else {})
    actions: list[tuple[t.Any, ...]] = []
    changes: list[str] = []
    key = view['key']
    same = current is not None and (
        _listed(current.get('ip'), _int(current.get('port')), [master]) is not None
        or bool(master.get('run_id') and current.get('runid') == master.get('run_id')))
    if current is not None and not same:
        actions.append(('remove',))
        changes.append('%s: monitored %s, the master is %s: REMOVE and MONITOR' % (key, monitors, target))
    if current is None or not same:
        quorum = int(wanted.get('quorum') or default_quorum)
        actions.append(('monitor', master['host'], master['port'], quorum))
        if current is None:
            changes.append('%s: MONITOR %s quorum %d' % (key, target, quorum))
        settings = [(k, v) for k, v in wanted.items() if k != 'quorum']
        if settings:
            actions.append(('set', settings))
            changes.append('%s: SET %s' % (key, ' '.join('%s %s' % kv for kv in settings)))
        if has_auth:
            actions.append(('auth',))
        after = {'monitors': target}
        after.update({k: wanted.get(k) for k in SETTINGS})
        after['quorum'] = str(quorum)
        return {'actions': actions, 'changes': changes, 'before': before, 'after': after}
    diff = [(k, v) for k, v in wanted.items() if current.get(k) != v]
    if diff:
        actions.append(('set', diff))
        was = ' '.join('%s %s' % (k, current.get(k)) for k, v in diff)
        changes.append('%s: SET %s (was %s)' % (key, ' '.join('%s %s' % kv for kv in diff), was))
    if auth_failing(current):
        if has_auth:
            actions.append(('auth',))
            changes.append('%s: cannot authenticate to the master (its PINGs are answered with errors): SET '
                           'auth-pass' % key)
    if stale:
        actions.append(('reset',))
        changes.append('%s: stale entries %s: RESET' % (key, ', '.join(stale)))
    after = dict(before)
    after.update(dict(diff))
    return {'actions': actions, 'changes': changes, 'before': before, 'after': after}


def ckquorum_ok(reply: t.Any) -> bool:
    return str(reply or '').startswith('OK')


def quorum_refusal(quorum: int | None, count: int) -> str | None:
    if quorum is None or 1 <= quorum <= count:
        return None
    return 'quorum must be between 1 and the number of sentinels (%d), got %d' % (count, quorum)


# ---------------------------------------------------------------------------------------------
# redis_failover's Sentinel path
# ---------------------------------------------------------------------------------------------


def failover_in_progress(master: dict[str, str] | None) -> bool:
    return bool(flags(master) & {'failover_in_progress', 'promoted'})


def failing_over(views: list[dict[str, t.Any]]) -> list[str]:
    """The reachable Sentinels running a failover of the master they monitor."""
    return [v['key'] for v in views if v['reachable'] and failover_in_progress(v.get('master'))]


def pause_budget(views: list[dict[str, t.Any]]) -> tuple[float, int]:
    """Seconds writes may stay paused before SENTINEL FAILOVER, and the down-after-milliseconds it
    comes from (the smallest among the reachable Sentinels). A paused master holds the hello
    messages Sentinels PUBLISH to it, and the PINGs they send after them wait behind those: a
    pause of about down-after-milliseconds makes the Sentinels take the master for down and fail
    over on their own (seen with 2000 ms: their own failover 4 s into a 5 s pause, none in 3 s)."""
    values = [_int(v['master'].get('down-after-milliseconds')) for v in views
              if v['reachable'] and v.get('master')]
    down_after = min((x for x in values if x > 0), default=30000)
    return max(down_after / 2000.0, down_after / 1000.0 - 1.0), down_after


def unlisted_candidates(view: dict[str, t.Any], records: list[dict[str, t.Any]]) -> list[str]:
    """Replicas Sentinel could promote (priority > 0, not down) that are not listed: the module
    cannot wait for them to catch up, so it must not let Sentinel choose among them."""
    out = []
    for entry in view.get('replicas') or []:
        if _int(entry.get('slave-priority', entry.get('replica-priority')), 100) == 0:
            continue
        if flags(entry) & {'s_down', 'o_down', 'disconnected'}:
            continue
        if not _listed(entry.get('ip'), _int(entry.get('port')), records):
            out.append(entry_address(entry) or '?')
    return out


def sentinel_sees_priority_zero(view_replicas: list[dict[str, str]], records: list[dict[str, t.Any]]) -> bool:
    """Every listed record is known to Sentinel with replica priority 0 (or not known at all)."""
    for record in records:
        for entry in view_replicas:
            if _listed(entry.get('ip'), _int(entry.get('port')), [record]):
                if _int(entry.get('slave-priority', entry.get('replica-priority')), 100) != 0:
                    return False
    return True


# What Sentinel checks before it promotes a replica (sentinelSelectSlave in sentinel.c): its
# PING period and INFO period are fixed at 1 s and 10 s.
SENTINEL_PING_PERIOD_MS = 1000
SENTINEL_INFO_PERIOD_MS = 10000


def replica_entry(view: dict[str, t.Any], record: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """The Sentinel's SENTINEL REPLICAS entry for ``record``, if it lists it."""
    return next((e for e in view.get('replicas') or [] if _listed(e.get('ip'), _int(e.get('port')), [record])), None)


def promotion_blockers(view: dict[str, t.Any], records: list[dict[str, t.Any]]) -> dict[str, str]:
    """Why the Sentinel of ``view`` would not promote each of ``records`` now, by record key; a
    record missing from the result is one it would promote. SENTINEL FAILOVER answers NOGOODSLAVE
    when none qualifies, e.g. right after SENTINEL RESET, before it has read INFO from the replicas
    it rediscovers, or while it still flags a replica that came back as down."""
    master = view.get('master') or {}
    master_down = bool(flags(master) & {'s_down', 'o_down'})
    info_valid = SENTINEL_PING_PERIOD_MS * 5 if master_down else SENTINEL_INFO_PERIOD_MS * 3
    link_down_max = _int(master.get('down-after-milliseconds'), 30000) * 10
    out = {}
    for record in records:
        entry = replica_entry(view, record)
        if entry is None:
            out[record['key']] = 'not among its replicas yet'
            continue
        down = sorted(flags(entry) & {'s_down', 'o_down', 'disconnected'})
        if down:
            out[record['key']] = 'flagged %s' % ','.join(down)
        elif _int(entry.get('last-ok-ping-reply'), 1 << 62) > SENTINEL_PING_PERIOD_MS * 5:
            out[record['key']] = 'no PING reply for %s ms' % entry.get('last-ok-ping-reply')
        elif _int(entry.get('slave-priority', entry.get('replica-priority')), 100) == 0:
            out[record['key']] = 'replica-priority 0'
        elif _int(entry.get('info-refresh'), 1 << 62) > info_valid:
            out[record['key']] = 'no INFO read from it for %s s' % (_int(entry.get('info-refresh'), 1 << 62) // 1000)
        elif _int(entry.get('master-link-down-time')) > link_down_max:
            out[record['key']] = 'its link to the master is down for %s ms' % entry.get('master-link-down-time')
    return out


def stale_master_roles(views: list[dict[str, t.Any]], records: list[dict[str, t.Any]]) -> dict[str, str]:
    """Candidates some reachable Sentinel last saw as a master (its latest INFO from them, read every
    10 s, came before they were demoted), by record key. Promoted before that Sentinel reads INFO
    again, such a candidate looks to it like a replica that has claimed to be a master for too
    long (over 8 s), and it turns it back into a replica (+convert-to-slave) under the leader's
    failover, if that comes before it hears of the failover."""
    out: dict[str, str] = {}
    for view in views:
        if not view.get('reachable'):
            continue
        for record in records:
            entry = replica_entry(view, record)
            if entry and entry.get('role-reported', 'slave') != 'slave':
                out.setdefault(record['key'], 'Sentinel %s last saw it as a %s (INFO %s s ago)' % (
                    view.get('key'), entry.get('role-reported'), _int(entry.get('info-refresh')) // 1000))
    return out


def promotion_candidates(records: list[dict[str, t.Any]], old: str, target: str | None) -> tuple[list[str], list[str]]:
    """``(candidates, held_back)``: the replicas Sentinel may promote, which must all catch up under
    the write pause, and those to hold back with replica-priority 0.

    With a target, only the target may be promoted. Without one, every listed replica of the old
    master with priority > 0 may be; a candidate whose link is down is an error for the caller.
    """
    replicas = [r for r in records if r['key'] != old and r.get('reachable')
                and (r.get('repl') or {}).get('role') == 'replica']
    if target:
        return [target], [r['key'] for r in replicas if r['key'] != target]
    candidates = [r['key'] for r in replicas if (r.get('repl') or {}).get('replica_priority') != 0]
    return candidates, []
