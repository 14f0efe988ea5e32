# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure parsing and decision logic for the swarmlab.cluster Redis modules.

Nothing here talks to a server: the functions take what the client layer
(``_redis_client.py``) collected and return plain data, so they are easy to unit-test.

An *instance record* (made by ``_redis_client.collect_instance``) is a dict with:
``key`` ("host:port" as listed), ``host``, ``port``, ``addresses`` (IPs the host resolves to),
``reachable``, ``error``, ``error_kind`` (``auth``, ``permission``, ``connection`` or ``other``),
``run_id``, ``version``, ``config_file``, ``repl`` (from
:func:`parse_replication`), ``role_state`` (from :func:`parse_role`) and ``master_run_id`` (run id
of the server at the address a replica reports as its master, when the module could reach it).
"""

from __future__ import annotations

import typing as t

# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def _value(raw: str) -> t.Any:
    """Convert an INFO scalar to int when it is one; keep everything else a string.

    Unlike redis-py's own parser this never turns a run id or host name into a float, and keeps
    zero-padded values (``master_replid2:0000...``) as strings.
    """
    digits = raw.lstrip('-')
    if digits.isdigit() and not (len(digits) > 1 and digits.startswith('0')):
        return int(raw)
    return raw


def parse_info(text: str) -> dict[str, t.Any]:
    """Parse the text of INFO (any section) into a dict.

    Lines ``key:a=1,b=2`` (the ``slaveN`` lines) become dicts; other values stay scalars.
    """
    info: dict[str, t.Any] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#') or ':' not in line:
            continue
        key, value = line.split(':', 1)
        if key.startswith('slave') and key[5:].isdigit() and '=' in value:
            entry: dict[str, t.Any] = {}
            for item in value.split(','):
                if '=' in item:
                    k, v = item.split('=', 1)
                    entry[k] = _value(v)
            info[key] = entry
        else:
            info[key] = _value(value)
    return info


def _int(value: t.Any, default: int | None = None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def parse_replication(info: str | dict[str, t.Any]) -> dict[str, t.Any]:
    """Normalise INFO replication (text or an already parsed dict) into one shape.

    ``role`` is ``master`` or ``replica`` (Redis says ``slave``). For a master, ``replicas`` lists
    the ``slaveN`` lines as the master sees them: ``ip``, ``port``, ``state``, ``offset`` and
    ``lag`` (seconds since the replica's last ACK).
    """
    if isinstance(info, str):
        info = parse_info(info)
    role = 'replica' if info.get('role') in ('slave', 'replica') else 'master'
    replicas = []
    index = 0
    while 'slave%d' % index in info:
        entry = info['slave%d' % index]
        if isinstance(entry, dict):
            replicas.append({
                'ip': str(entry.get('ip', '')),
                'port': _int(entry.get('port')),
                'state': entry.get('state'),
                'offset': _int(entry.get('offset'), 0),
                'lag': _int(entry.get('lag')),
            })
        index += 1
    result: dict[str, t.Any] = {
        'role': role,
        'master_replid': str(info.get('master_replid', '')) or None,
        'master_replid2': str(info.get('master_replid2', '')) or None,
        'master_repl_offset': _int(info.get('master_repl_offset'), 0),
        'second_repl_offset': _int(info.get('second_repl_offset')),
        'connected_replicas': _int(info.get('connected_slaves'), 0),
        'replicas': replicas,
        'master_failover_state': info.get('master_failover_state'),
        'master_host': None,
        'master_port': None,
        'master_link_status': None,
        'master_sync_in_progress': None,
        'master_last_io_seconds_ago': None,
        'replica_repl_offset': None,
        'replica_priority': _int(info.get('slave_priority', info.get('replica_priority'))),
    }
    if role == 'replica':
        result.update({
            'master_host': str(info.get('master_host', '')) or None,
            'master_port': _int(info.get('master_port')),
            'master_link_status': info.get('master_link_status'),
            'master_sync_in_progress': _int(info.get('master_sync_in_progress'), 0),
            'master_last_io_seconds_ago': _int(info.get('master_last_io_seconds_ago')),
            'replica_repl_offset': _int(info.get('slave_repl_offset'), 0),
        })
    return result


def parse_role(reply: t.Sequence[t.Any]) -> dict[str, t.Any]:
    """Parse the reply of ROLE.

    master: ``['master', offset, [[ip, port, offset], ...]]``;
    replica: ``['slave', host, port, state, offset]``; sentinel: ``['sentinel', [names]]``.
    """
    items = [x.decode() if isinstance(x, bytes) else x for x in reply]
    kind = items[0] if items else None
    if kind == 'master':
        replicas = []
        for entry in (items[2] if len(items) > 2 else []) or []:
            entry = [x.decode() if isinstance(x, bytes) else x for x in entry]
            replicas.append({'ip': entry[0], 'port': _int(entry[1]), 'offset': _int(entry[2], 0)})
        return {'role': 'master', 'offset': _int(items[1], 0), 'replicas': replicas}
    if kind in ('slave', 'replica'):
        return {
            'role': 'replica',
            'master_host': items[1],
            'master_port': _int(items[2]),
            'state': items[3],
            'offset': _int(items[4], -1),
        }
    return {'role': kind}


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def address(host: str | None, port: int | None) -> str | None:
    """``host:port``, with brackets around IPv6 literals."""
    if host is None or port is None:
        return None
    if ':' in host and not host.startswith('['):
        return '[%s]:%d' % (host, port)
    return '%s:%d' % (host, port)


def byte_lag(master_offset: int | None, replica_offset: int | None) -> int | None:
    """Bytes of the replication stream the replica has not processed yet (never negative)."""
    if master_offset is None or replica_offset is None or replica_offset < 0:
        return None
    return max(0, master_offset - replica_offset)


def replica_link_ok(repl: dict[str, t.Any], role_state: dict[str, t.Any] | None = None) -> bool:
    """The link to the master is up and the initial sync is done."""
    if repl.get('role') != 'replica':
        return False
    if repl.get('master_link_status') != 'up' or repl.get('master_sync_in_progress'):
        return False
    if role_state is not None and role_state.get('role') == 'replica':
        return role_state.get('state') == 'connected'
    return True


def version_tuple(version: str | None) -> tuple[int, ...]:
    parts = []
    for piece in str(version or '0').split('.'):
        digits = ''.join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def supports_failover_command(version: str | None) -> bool:
    """FAILOVER exists from Redis 6.2 on."""
    return version_tuple(version)[:2] >= (6, 2)


def supports_write_pause(version: str | None) -> bool:
    """CLIENT PAUSE ... WRITE exists from Redis 6.2 on.

    Before, CLIENT PAUSE stops every client, the module's own connection included: it could not
    read offsets nor demote the old master until the pause ended, and writes resumed first.
    """
    return version_tuple(version)[:2] >= (6, 2)


def write_pause_refusal(key: str, version: str | None) -> str | None:
    """Why a planned switchover cannot pause writes on this master (None when it can)."""
    if supports_write_pause(version):
        return None
    return ('%s runs Redis %s: CLIENT PAUSE WRITE needs 6.2 or later, and a plain CLIENT PAUSE also stops '
            'the module\'s own commands, so writes would resume before the old master is demoted and '
            'acknowledged writes would be lost; nothing was changed. Upgrade to Redis 6.2 or later, or stop '
            'the master and use force: true' % (key, version or 'unknown'))


# Directories whose files do not survive a reboot (or a container's re-creation), by convention.
VOLATILE_DIRS = ('/tmp', '/var/tmp', '/run', '/var/run', '/dev/shm')


def persist_problem(record: dict[str, t.Any]) -> str | None:
    """Why ``CONFIG REWRITE`` on this instance would not keep its role over a restart (None: it can).

    The module sees only the path of the config file. No file at all, or a file in a temporary
    directory (a container's /tmp, a start script that writes /tmp/redis.conf each time), cannot
    keep a role; anything else is trusted, which the documentation says.
    """
    key = record['key']
    path = record.get('config_file')
    if not path:
        return '%s runs without a config file: CONFIG REWRITE has nowhere to write the role' % key
    for directory in VOLATILE_DIRS:
        if path == directory or path.startswith(directory.rstrip('/') + '/'):
            return ('%s runs with %s, in a temporary directory: the module cannot know that file survives a '
                    'restart (a start script may write it anew each time)' % (key, path))
    return None


def persist_refusal(records: list[dict[str, t.Any]]) -> str | None:
    """One message for every reachable instance whose role change could not be persisted."""
    problems = [x for x in (persist_problem(r) for r in records if r.get('reachable')) if x]
    if not problems:
        return None
    return ('persist: true, but %s; nothing was changed. Give the servers a config file on persistent storage, '
            'or use Sentinel (it keeps the roles and demotes an old master that comes back), or set persist: false '
            'to change the roles until the next restart only' % '; '.join(problems))


def blocking_errors(records: list[dict[str, t.Any]]) -> list[str]:
    """Errors that are not "the server is down": a wrong password or a missing permission. The
    module must stop on them (the instance may well be the live master) instead of treating the
    instance as gone."""
    return [r['error'] for r in records if not r.get('reachable') and r.get('error_kind') in ('auth', 'permission')]


def plural(count: int, word: str) -> str:
    return '%d %s%s' % (count, word, '' if count == 1 else 's')


def demotion_refusal(key: str, repl: dict[str, t.Any], keys: int, master: str | None) -> str | None:
    """Why making this instance a replica would throw data away (None when it holds none).

    A master with connected replicas or with keys loses them all when it syncs from another master
    (and its replicas follow it into the new data set).
    """
    if repl.get('role') != 'master':
        return None
    connected = repl.get('connected_replicas') or 0
    if not connected and not keys:
        return None
    held = []
    if connected:
        held.append(plural(connected, 'connected replica'))
    if keys:
        held.append(plural(keys, 'key'))
    return ('%s is a master with %s: making it a replica of %s replaces its data with that master\'s (its '
            'replicas follow); set force: true to do it anyway' % (key, ' and '.join(held), master))


def same_server(a: dict[str, t.Any], b: dict[str, t.Any]) -> bool:
    """Two instance records are the same server: by run id when both are known, else by address."""
    if a.get('run_id') and b.get('run_id'):
        return a['run_id'] == b['run_id']
    if a.get('port') != b.get('port'):
        return False
    hosts_a = {a.get('host')} | set(a.get('addresses') or [])
    hosts_b = {b.get('host')} | set(b.get('addresses') or [])
    return bool(hosts_a & hosts_b - {None})


# ---------------------------------------------------------------------------------------------
# Topology analysis
# ---------------------------------------------------------------------------------------------


def _matches_address(inst: dict[str, t.Any], host: str | None, port: int | None) -> bool:
    if host is None or port is None or inst.get('port') != port:
        return False
    return host == inst.get('host') or host in (inst.get('addresses') or [])


def is_listed(host: str | None, port: int | None, records: list[dict[str, t.Any]]) -> bool:
    """host:port is the address (or a resolved IP) of one of the records."""
    return any(_matches_address(r, host, port) for r in records)


def resolve_master(replica: dict[str, t.Any], instances: list[dict[str, t.Any]]) -> tuple[str | None, str | None]:
    """Map the master a replica reports (possibly an alias) to a listed instance.

    Tries, in order: the address itself (also the IPs a listed host resolves to), the run id of
    the server at the reported address (when the module could reach it), then the replication id
    (a synced replica shares its master's replid). Returns ``(key, how)`` or ``(None, None)``.
    """
    repl = replica.get('repl') or {}
    host, port = repl.get('master_host'), repl.get('master_port')
    candidates = [i for i in instances if i.get('reachable') and i is not replica]
    for inst in instances:
        if inst is not replica and _matches_address(inst, host, port):
            return inst['key'], 'address'
    if replica.get('master_run_id'):
        for inst in candidates:
            if inst.get('run_id') == replica['master_run_id']:
                return inst['key'], 'run_id'
    replid = repl.get('master_replid')
    if replid and repl.get('master_link_status') == 'up':
        for inst in candidates:
            irepl = inst.get('repl') or {}
            if irepl.get('role') == 'master' and irepl.get('master_replid') == replid:
                return inst['key'], 'replid'
    return None, None


def _match_replica_line(master: dict[str, t.Any], replica: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """Find the master's ``slaveN`` line that describes this replica (by exact address only:
    guessing by port alone could pick another replica when all listen on 6379)."""
    for line in (master.get('repl') or {}).get('replicas') or []:
        if _matches_address(replica, line['ip'], line['port']):
            return line
    return None


def analyze_topology(records: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Turn instance records into the topology report of ``redis_topology_info``.

    ``split_brain`` is true when more than one listed instance is a master, when the replicas
    follow different masters, or when connected instances carry diverging replication ids (a
    replica whose link is up follows a lineage that is not the listed master's). ``healthy``
    needs exactly one master, every instance reachable, every replica following that master with
    its link up and its initial sync done, and no split brain.
    """
    by_key = {r['key']: r for r in records}
    problems: list[str] = []
    unreachable_instances = [r['key'] for r in records if not r.get('reachable')]
    for r in records:
        if not r.get('reachable'):
            problems.append(r.get('error') or '%s is unreachable' % r['key'])
    reachable = [r for r in records if r.get('reachable')]
    masters = [r['key'] for r in reachable if (r.get('repl') or {}).get('role') == 'master']

    out_instances = []
    followed: set[str] = set()
    resolved: dict[str, str | None] = {}
    for r in reachable:
        repl = r.get('repl') or {}
        if repl.get('role') != 'replica':
            continue
        key, how = resolve_master(r, records)
        resolved[r['key']] = key
        reported = address(repl.get('master_host'), repl.get('master_port'))
        followed.add(key or 'unlisted:%s' % reported)
        r['_resolved_by'] = how

    for r in records:
        repl = r.get('repl') or {}
        entry: dict[str, t.Any] = {
            'address': r['key'],
            'host': r.get('host'),
            'port': r.get('port'),
            'reachable': bool(r.get('reachable')),
            'error': r.get('error'),
            'role': repl.get('role') if r.get('reachable') else None,
            'run_id': r.get('run_id'),
            'redis_version': r.get('version'),
            'replid': repl.get('master_replid'),
            'replid2': repl.get('master_replid2'),
            'offset': None,
            'master': None,
            'master_reported': None,
            'master_resolved_by': None,
            'link_status': None,
            'link_state': None,
            'sync_in_progress': None,
            'lag_bytes': None,
            'last_ack_seconds': None,
            'connected_replicas': repl.get('connected_replicas') if r.get('reachable') else None,
        }
        if r.get('reachable') and repl.get('role') == 'master':
            entry['offset'] = repl.get('master_repl_offset')
        elif r.get('reachable'):
            role_state = r.get('role_state') or {}
            entry.update({
                'offset': repl.get('replica_repl_offset'),
                'master': resolved.get(r['key']),
                'master_reported': address(repl.get('master_host'), repl.get('master_port')),
                'master_resolved_by': r.get('_resolved_by'),
                'link_status': repl.get('master_link_status'),
                'link_state': role_state.get('state'),
                'sync_in_progress': bool(repl.get('master_sync_in_progress')),
            })
            master = by_key.get(resolved.get(r['key']) or '')
            if master and master.get('reachable'):
                mrepl = master.get('repl') or {}
                if mrepl.get('role') == 'master':
                    entry['lag_bytes'] = byte_lag(mrepl.get('master_repl_offset'), repl.get('replica_repl_offset'))
                    line = _match_replica_line(master, r)
                    if line:
                        entry['last_ack_seconds'] = line.get('lag')
        r.pop('_resolved_by', None)
        out_instances.append(entry)

    # Split brain
    split_reasons = []
    if len(masters) > 1:
        split_reasons.append('more than one master: %s' % ', '.join(masters))
    if len(followed) > 1:
        split_reasons.append('replicas follow different masters: %s' % ', '.join(
            sorted(x.replace('unlisted:', '') for x in followed)))
    if len(masters) == 1:
        master_replid = (by_key[masters[0]].get('repl') or {}).get('master_replid')
        for r in reachable:
            repl = r.get('repl') or {}
            if repl.get('role') == 'replica' and repl.get('master_link_status') == 'up' \
                    and repl.get('master_replid') not in (master_replid, None):
                split_reasons.append('%s replicates a different history (replid %s, master %s has %s)' % (
                    r['key'], repl.get('master_replid'), masters[0], master_replid))
    split_brain = bool(split_reasons)
    problems.extend('split brain: %s' % x for x in split_reasons)

    if not masters and reachable:
        problems.append('no master among the reachable instances')
    for entry in out_instances:
        if entry['role'] != 'replica':
            continue
        if entry['master'] is None:
            problems.append('%s follows %s, which is not a listed instance' % (entry['address'], entry['master_reported']))
        elif entry['master'] not in masters:
            problems.append('%s follows %s, which is not a master' % (entry['address'], entry['master']))
        if entry['link_status'] != 'up':
            problems.append('%s: link to its master is %s' % (entry['address'], entry['link_status']))
        elif entry['sync_in_progress'] or entry['link_state'] not in (None, 'connected'):
            problems.append('%s: initial sync not done (state %s)' % (entry['address'], entry['link_state']))

    healthy = not problems and len(masters) == 1
    return {
        'healthy': healthy,
        'split_brain': split_brain,
        'masters': masters,
        'master': masters[0] if len(masters) == 1 else None,
        'replicas': [e['address'] for e in out_instances if e['role'] == 'replica'],
        # Not "unreachable": Ansible reads a true top-level "unreachable" as "the host is unreachable".
        'unreachable_instances': unreachable_instances,
        'instances': out_instances,
        'problems': problems,
        'summary': summarize(healthy, masters, problems),
    }


def summarize(healthy: bool, masters: list[str], problems: list[str]) -> str:
    if healthy:
        return 'healthy: master %s' % masters[0]
    return 'unhealthy: ' + '; '.join(problems or ['no master'])


# ---------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------


def choose_promotion_candidate(topology: dict[str, t.Any], target: str | None = None,
                               exclude: t.Iterable[str] = ()) -> tuple[str | None, str]:
    """Pick the replica to promote. Returns ``(key, reason)``; key None when there is none.

    With a target the target is taken if it is a reachable replica. Otherwise the reachable
    replica with the highest replication offset wins; ties go to the replica with the smaller
    byte lag, then to the address (so the choice is stable).
    """
    excluded = set(exclude)
    replicas = [e for e in topology['instances']
                if e['reachable'] and e['role'] == 'replica' and e['address'] not in excluded]
    if target is not None:
        for e in replicas:
            if e['address'] == target:
                return target, 'requested target'
        return None, 'target %s is not a reachable replica' % target
    if not replicas:
        return None, 'no reachable replica'
    best = sorted(replicas, key=lambda e: (-(e['offset'] if e['offset'] is not None else -1), e['address']))[0]
    return best['address'], 'highest replication offset (%s)' % best['offset']


def legitimate_master(topology: dict[str, t.Any], target: str | None = None) -> str | None:
    """With more than one master (e.g. an old master that came back), the one to keep.

    The requested target if it is a master; else the master most listed replicas follow; a tie
    is not decided (None).
    """
    masters = topology['masters']
    if target in masters:
        return target
    if len(masters) == 1:
        return masters[0]
    counts = {m: 0 for m in masters}
    for e in topology['instances']:
        if e['role'] == 'replica' and e['master'] in counts:
            counts[e['master']] += 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
        return ranked[0][0]
    return None


def replication_plan(current: dict[str, t.Any], desired_role: str, desired_master: str | None,
                     same_master: bool = False) -> dict[str, t.Any]:
    """What ``redis_replication`` has to change.

    ``current`` holds ``role`` and ``master`` ("host:port" or None). ``same_master`` says that the
    current master address is an alias of the desired one (same run id).
    """
    if desired_role == 'master':
        return {'replicaof': current['role'] != 'master', 'target': None}
    if current['role'] == 'replica' and (current['master'] == desired_master or same_master):
        return {'replicaof': False, 'target': desired_master}
    return {'replicaof': True, 'target': desired_master}


def master_sees(master: dict[str, t.Any] | None, replica: dict[str, t.Any]) -> bool:
    """The master lists this replica (same address) among its connected replicas."""
    return bool(master and master.get('reachable') and master is not replica and _match_replica_line(master, replica))


def seen_address(master: dict[str, t.Any] | None, replica: dict[str, t.Any]) -> tuple[str, int]:
    """The address by which the master sees a replica (its ``slaveN`` line), else the listed one.

    That is the address ``FAILOVER TO`` needs, and a good address for the other instances to reach
    the replica once it is promoted (they share the master's network).
    """
    if master and master.get('reachable') and master is not replica:
        line = _match_replica_line(master, replica)
        if line and line.get('ip') and line.get('port'):
            return line['ip'], line['port']
    return replica['host'], replica['port']


def decide_failover(topology: dict[str, t.Any], target: str | None, force: bool,
                    reported_masters: dict[str, dict[str, t.Any]] | None = None) -> dict[str, t.Any]:
    """What ``redis_failover`` has to do (without Sentinel).

    Returns a dict with ``action`` (``noop``, ``planned``, ``forced``, ``fence``, ``repoint`` or
    ``error``), ``old_master``, ``new_master`` and ``reason`` (or ``msg`` for an error). A forced
    promotion is refused while anything says the master is alive (see :func:`master_alive_evidence`).
    """
    listed = [e['address'] for e in topology['instances']]
    if target is not None and target not in listed:
        return {'action': 'error', 'msg': 'target %s is not one of the listed instances (%s)' % (target, ', '.join(listed))}
    masters = topology['masters']
    if len(masters) > 1:
        keep = legitimate_master(topology, target)
        if not force:
            return {'action': 'error', 'msg': 'split brain: %s all report the master role; set force: true to keep '
                    '%s and make the others its replicas (their writes since the split are discarded)'
                    % (', '.join(masters), keep or 'the target')}
        if keep is None:
            return {'action': 'error', 'msg': 'split brain: %s all report the master role and as many replicas '
                    'follow each; name the one to keep with target' % ', '.join(masters)}
        return {'action': 'fence', 'old_master': [m for m in masters if m != keep], 'new_master': keep,
                'reason': 'split brain: keeping %s' % keep}
    if len(masters) == 1:
        master = masters[0]
        if target == master:
            stray = repoint_list(topology, master)
            if not stray:
                return {'action': 'noop', 'old_master': master, 'new_master': master,
                        'reason': 'target is already the master'}
            return {'action': 'repoint', 'old_master': master, 'new_master': master,
                    'reason': 'target is the master; repointing %s' % ', '.join(stray)}
        new, why = choose_promotion_candidate(topology, target)
        if new is None:
            return {'action': 'error', 'msg': 'no replica to promote: %s' % why}
        return {'action': 'planned', 'old_master': master, 'new_master': new, 'reason': why}
    reported = sorted({e['master_reported'] for e in topology['instances']
                       if e['role'] == 'replica' and e['master_reported']})
    old = ', '.join(reported) or 'unknown'
    if not force:
        return {'action': 'error', 'msg': 'no reachable master (replicas follow %s; unreachable: %s); set force: true '
                'to promote the replica with the highest offset' % (
                    old, ', '.join(topology['unreachable_instances']) or 'none')}
    alive = master_alive_evidence(topology, reported_masters or {})
    if alive:
        return {'action': 'error', 'msg': 'force: true refused, the master is alive: %s. Promoting a replica now '
                'would leave two masters taking writes. List the master under the address its replicas use for a '
                'planned switchover, or stop it first' % '; '.join(alive)}
    new, why = choose_promotion_candidate(topology, target)
    if new is None:
        return {'action': 'error', 'msg': 'no replica to promote: %s' % why}
    return {'action': 'forced', 'old_master': old, 'new_master': new, 'reason': why}


def master_alive_evidence(topology: dict[str, t.Any], reported_masters: dict[str, dict[str, t.Any]]) -> list[str]:
    """Signs that a master is alive although none of the listed instances answers as one.

    A replica whose link to its master is up (unless it follows a listed instance that is itself a
    replica: chained replication), and a master address the replicas report that answers as a
    master when the module tries it (``reported_masters``: address -> ``{'role', 'run_id'}`` from
    the client layer, for the addresses it could reach).
    """
    evidence = []
    roles = {e['address']: e['role'] for e in topology['instances'] if e['reachable']}
    for e in topology['instances']:
        if not e['reachable'] or e['role'] != 'replica' or e['link_status'] != 'up':
            continue
        if e['master'] is not None and roles.get(e['master']) == 'replica':
            continue
        evidence.append('%s reports its link to %s up' % (e['address'], e['master_reported']))
    for addr, probe in sorted(reported_masters.items()):
        if probe.get('role') == 'master':
            evidence.append('%s (the master its replicas report) answers as a master' % addr)
    return evidence


def repoint_list(topology: dict[str, t.Any], new_master: str) -> list[str]:
    """Reachable instances, other than new_master, that are not replicas of new_master."""
    return [e['address'] for e in topology['instances']
            if e['reachable'] and e['address'] != new_master
            and not (e['role'] == 'replica' and e['master'] == new_master)]


def converged(topology: dict[str, t.Any], new_master: str, ignore: t.Iterable[str] = ()) -> bool:
    """new_master is the only master and every reachable instance replicates from it, link up;
    the instances in ``ignore`` are left out (an old master not demoted yet)."""
    ignore = set(ignore)
    if [m for m in topology['masters'] if m not in ignore] != [new_master]:
        return False
    for e in topology['instances']:
        if e['reachable'] and e['address'] != new_master and e['address'] not in ignore:
            if e['master'] != new_master or e['link_status'] != 'up' or e['sync_in_progress']:
                return False
    return True
