# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Client layer of the swarmlab.cluster Redis modules: connections through redis-py with an
explicit Retry policy, errors that name host:port, and collection of instance records for the
pure logic in ``_redis.py``."""

from __future__ import annotations

import functools
import inspect
import socket
import time
import traceback
import typing as t

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis import (
    address,
    is_listed,
    parse_info,
    parse_replication,
    parse_role,
    replica_link_ok,
    resolve_master,
)
from ansible_collections.swarmlab.cluster.plugins.module_utils._sentinel import pairs, reachable_refusal, sentinel_errors

REDIS_IMPORT_ERROR: str | None
try:
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry
except ImportError:
    REDIS_IMPORT_ERROR = traceback.format_exc()
    HAS_REDIS = False
else:
    REDIS_IMPORT_ERROR = None
    HAS_REDIS = True

RETRY_ON_ERROR = HAS_REDIS and 'retry_on_error' in inspect.signature(redis.Redis.__init__).parameters

# Connection options every Redis module takes; documented in doc_fragments/redis.py.
REDIS_CONNECTION_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    'login_user': {'type': 'str'},
    'login_password': {'type': 'str', 'no_log': True},
    'tls': {'type': 'bool', 'default': False},
    'validate_certs': {'type': 'bool', 'default': True},
    'ca_certs': {'type': 'path'},
    'client_cert_file': {'type': 'path'},
    'client_key_file': {'type': 'path'},
    'connect_timeout': {'type': 'float', 'default': 5},
}
CONNECTION_KEYS = tuple(REDIS_CONNECTION_ARGUMENT_SPEC)

# How the modules authenticate to Sentinels (Sentinel's own requirepass / ACL user); the TLS
# options and connect_timeout above apply to Sentinels too. Documented in doc_fragments/redis.py
# (swarmlab.cluster.redis.sentinel).
SENTINEL_AUTH_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    'sentinel_user': {'type': 'str'},
    'sentinel_password': {'type': 'str', 'no_log': True},
}
SENTINEL_CREDENTIALS = 'sentinel_user/sentinel_password'


class RedisModuleError(Exception):
    """A failure the module reports as is (the message names the host:port concerned)."""


def _raw(response: t.Any, **options: t.Any) -> str:
    return response.decode() if isinstance(response, bytes) else response


def make_client(host: str, port: int, params: dict[str, t.Any], retries: int = 3) -> t.Any:
    """A redis-py client; nothing is sent yet.

    Retry policy: up to ``retries`` retries with exponential backoff (0.1, 0.2, 0.4 s) on connection
    errors and timeouts; 0 for a command that must not be sent twice. The socket timeouts come
    from ``connect_timeout``.
    """
    timeout = float(params.get('connect_timeout') or 5)
    kwargs: dict[str, t.Any] = {
        'host': host,
        'port': port,
        'username': params.get('login_user'),
        'password': params.get('login_password'),
        'socket_connect_timeout': timeout,
        'socket_timeout': max(timeout, 5.0),
        'decode_responses': True,
        'retry': Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
    }
    if RETRY_ON_ERROR:
        # redis-py before 4.4 (Debian 12 has 4.3.4) ignores `retry` unless retry_on_error is set.
        kwargs['retry_on_error'] = [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    if params.get('tls'):
        kwargs.update({
            'ssl': True,
            'ssl_ca_certs': params.get('ca_certs'),
            'ssl_cert_reqs': 'required' if params.get('validate_certs', True) else 'none',
            'ssl_certfile': params.get('client_cert_file'),
            'ssl_keyfile': params.get('client_key_file'),
        })
        if not params.get('validate_certs', True):
            kwargs['ssl_check_hostname'] = False
    client = redis.Redis(**kwargs)
    # INFO is parsed by _redis.parse_info, which keeps run ids and host names as strings.
    client.set_response_callback('INFO', _raw)
    return client


def error_kind(exc: BaseException) -> str:
    """``auth`` (wrong user or password, or none given), ``permission`` (an ACL denies a command),
    ``connection`` (down, refused, timed out) or ``other``."""
    cause = exc.__cause__ if isinstance(exc, RedisModuleError) and exc.__cause__ else exc
    if HAS_REDIS:
        if isinstance(cause, redis.exceptions.AuthenticationError) or (
                isinstance(cause, redis.exceptions.ResponseError)
                and str(cause).startswith(('NOAUTH', 'WRONGPASS', 'invalid password', 'invalid username'))):
            return 'auth'
        if isinstance(cause, getattr(redis.exceptions, 'NoPermissionError', ())) or 'NOPERM' in str(cause) \
                or 'no permissions to' in str(cause):
            return 'permission'
        if isinstance(cause, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            return 'connection'
    return 'other'


def describe_error(where: str, exc: Exception, password_option: str = 'login_user/login_password') -> str:
    """A readable message naming host:port for the usual redis-py errors."""
    kind = error_kind(exc)
    if kind == 'auth':
        return '%s: authentication failed (wrong %s?): %s' % (where, password_option, exc)
    if kind == 'permission':
        return '%s: the user lacks a permission: %s' % (where, exc)
    if kind == 'connection':
        return '%s: unreachable: %s' % (where, exc)
    return '%s: %s' % (where, exc)


def connect(host: str, port: int, params: dict[str, t.Any],
            password_option: str = 'login_user/login_password', retries: int = 3) -> t.Any:
    """A client that answered PING; raises RedisModuleError naming host:port otherwise."""
    client = make_client(host, port, params, retries)
    try:
        client.ping()
    except Exception as exc:  # redis-py raises many error classes; all are reported the same way
        raise RedisModuleError(describe_error(address(host, port) or host, exc, password_option)) from exc
    return client


def command(client: t.Any, where: str, *args: t.Any) -> t.Any:
    """Run one command, turning any error into RedisModuleError naming host:port."""
    try:
        return client.execute_command(*args)
    except Exception as exc:
        raise RedisModuleError(describe_error(where, exc)) from exc


def resolve(host: str) -> list[str]:
    """IP addresses a host name resolves to (empty when it does not)."""
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        return []


def probe_server(host: str, port: int, params: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """``{'run_id', 'role'}`` of the server at host:port, or None when it cannot be reached or
    read from here (best effort: the address may only resolve inside the servers' network)."""
    probe = dict(params)
    probe['connect_timeout'] = min(float(params.get('connect_timeout') or 5), 2.0)
    try:
        client = make_client(host, port, probe)
        info = parse_info(client.execute_command('INFO', 'server'))
        role = parse_role(client.execute_command('ROLE'))
        client.close()
    except Exception:
        return None
    return {'run_id': str(info.get('run_id') or '') or None, 'role': role.get('role')}


def probe_run_id(host: str, port: int, params: dict[str, t.Any]) -> str | None:
    """run_id of the server at host:port, or None when it cannot be reached from here."""
    found = probe_server(host, port, params)
    return found['run_id'] if found else None


def count_keys(client: t.Any, where: str) -> int:
    """Keys in every database of the instance (INFO keyspace: ``db0:keys=1,expires=0,...``)."""
    total = 0
    for line in str(command(client, where, 'INFO', 'keyspace')).splitlines():
        if line.startswith('db') and ':' in line:
            for item in line.split(':', 1)[1].split(','):
                name, sep, value = item.partition('=')
                if sep and name == 'keys' and value.isdigit():
                    total += int(value)
    return total


def pause_writes(client: t.Any, where: str, seconds: float) -> None:
    """CLIENT PAUSE <ms> WRITE (Redis >= 6.2): writes wait, reads and admin commands go on. Issued
    again it extends the pause (Redis keeps the later end)."""
    command(client, where, 'CLIENT', 'PAUSE', str(int(seconds * 1000)), 'WRITE')


def read_state(client: t.Any, where: str) -> dict[str, t.Any]:
    """INFO server + INFO replication + ROLE of one connected instance."""
    server = parse_info(command(client, where, 'INFO', 'server'))
    repl_text = command(client, where, 'INFO', 'replication')
    role = command(client, where, 'ROLE')
    return {
        'run_id': str(server.get('run_id', '')) or None,
        'version': str(server.get('redis_version', '')) or None,
        'config_file': str(server.get('config_file', '') or '') or None,
        'repl': parse_replication(repl_text),
        'role_state': parse_role(role),
    }


def collect_endpoint(host: str, port: int, fields: dict[str, t.Any], open_client: t.Callable[[str, int], t.Any],
                     read: t.Callable[[t.Any, str, dict[str, t.Any]], None]) -> dict[str, t.Any]:
    """The record of one instance or Sentinel: ``key``, ``host``, ``port``, ``addresses``, ``fields``
    as ``read(client, key, record)`` fills them, and ``reachable``; one that cannot be reached or read
    gets ``reachable: false``, ``error`` and ``error_kind``, never an exception."""
    key = address(host, port)
    record: dict[str, t.Any] = {
        'key': key, 'host': host, 'port': port, 'addresses': resolve(host),
        'reachable': False, 'error': None, 'error_kind': None,
    }
    record.update(fields)
    try:
        client = open_client(host, port)
        read(client, key, record)
        record['reachable'] = True
        client.close()
    except RedisModuleError as exc:
        record['error'] = str(exc)
        record['error_kind'] = error_kind(exc)
    return record


def collect_instance(host: str, port: int, params: dict[str, t.Any], probe_master: bool = True) -> dict[str, t.Any]:
    """One instance record (see ``_redis.py``); unreachable instances get ``reachable: false``."""
    record = collect_endpoint(
        host, port,
        {'run_id': None, 'version': None, 'config_file': None, 'repl': {}, 'role_state': {}, 'master_run_id': None},
        lambda h, p: connect(h, p, params), lambda client, key, rec: rec.update(read_state(client, key)))
    repl = record['repl']
    if probe_master and repl.get('role') == 'replica' and repl.get('master_host'):
        record['master_run_id'] = probe_run_id(repl['master_host'], repl['master_port'], params)
    return record


# A replica read right after its master may not have taken in what the master had just sent (its
# periodic PING, a write): what it receives within this many seconds does not count as lag.
LAG_SETTLE_SECONDS = 1.0


def read_until_caught_up(state: dict[str, t.Any], read: t.Callable[[], dict[str, t.Any] | None],
                         master_offset: int | None, deadline: float, interval: float = 0.05) -> dict[str, t.Any]:
    """A replica's state (anything with ``repl``) read again with ``read()`` until its offset
    reaches ``master_offset`` (read from its master just before) or ``deadline`` (monotonic)
    passes; the last state read. ``read()`` returning None (the replica not read) ends it."""
    while True:
        offset = (state.get('repl') or {}).get('replica_repl_offset')
        if master_offset is None or offset is None or offset >= master_offset or time.monotonic() >= deadline:
            return state
        time.sleep(interval)
        again = read()
        if again is None:
            return state
        state = again


def collect_topology(instances: list[dict[str, t.Any]], params: dict[str, t.Any],
                     settle: bool = False) -> list[dict[str, t.Any]]:
    """Records of every listed instance. A replica's master is probed for its run_id only when
    its address is not one of the listed instances (an alias), so a dead master costs one try.
    With ``settle``, a streaming replica behind its master's offset is read again (_settled): for
    a report of lag, not for the loops that poll while writes are paused."""
    records = [collect_instance(i['host'], i['port'], params, probe_master=False) for i in instances]
    # A replica listed before a master is read again after the last one: read before its master, it
    # would count the writes the master took in between as lag.
    last_master = max((n for n, r in enumerate(records) if r['repl'].get('role') == 'master'), default=-1)
    records = [collect_instance(i['host'], i['port'], params, probe_master=False)
               if n < last_master and r['repl'].get('role') == 'replica' else r
               for n, (i, r) in enumerate(zip(instances, records))]
    for record in records:
        repl = record['repl']
        if repl.get('role') == 'replica' and repl.get('master_host') and not is_listed(
                repl['master_host'], repl['master_port'], records):
            record['master_run_id'] = probe_run_id(repl['master_host'], repl['master_port'], params)
    return _settled(records, params) if settle else records


def _settled(records: list[dict[str, t.Any]], params: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Each replica behind the offset its listed master had when read, read again until it has
    taken that in (LAG_SETTLE_SECONDS at most for all of them)."""
    deadline = time.monotonic() + LAG_SETTLE_SECONDS
    by_key = {r['key']: r for r in records}
    out = []
    for record in records:
        streaming = record['repl'].get('role') == 'replica' and replica_link_ok(record['repl'], record['role_state'])
        master = by_key.get(resolve_master(record, records)[0] or '') if streaming else None
        mrepl = (master or {}).get('repl') or {}
        if mrepl.get('role') == 'master':
            record = read_until_caught_up(record, functools.partial(_reread, record, params),
                                          mrepl.get('master_repl_offset'), deadline)
        out.append(record)
    return out


def _reread(record: dict[str, t.Any], params: dict[str, t.Any]) -> dict[str, t.Any] | None:
    again = collect_instance(record['host'], record['port'], params, probe_master=False)
    if not again['reachable']:
        return None
    again['master_run_id'] = record['master_run_id']
    return again


def wait_until(check: t.Callable[[], t.Any], timeout: float, interval: float = 0.2) -> t.Any:
    """Call check() until it returns something truthy or timeout seconds pass; the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def config_get(client: t.Any, where: str, name: str) -> str:
    """The value of one config parameter ('' when unset)."""
    reply = command(client, where, 'CONFIG', 'GET', name)
    if isinstance(reply, dict):
        return str(reply.get(name) or '')
    return str(reply[1]) if len(reply) > 1 else ''


# ---------------------------------------------------------------------------------------------
# Sentinels
# ---------------------------------------------------------------------------------------------


def sentinel_params(params: dict[str, t.Any]) -> dict[str, t.Any]:
    """The connection parameters for Sentinels: Sentinel's own credentials, the same TLS options."""
    out = dict(params)
    out['login_user'] = params.get('sentinel_user')
    out['login_password'] = params.get('sentinel_password')
    return out


def connect_sentinel(host: str, port: int, params: dict[str, t.Any], retries: int = 3) -> t.Any:
    return connect(host, port, sentinel_params(params), SENTINEL_CREDENTIALS, retries)


def sentinel_command(client: t.Any, where: str, *args: t.Any) -> t.Any:
    try:
        return client.execute_command(*args)
    except Exception as exc:
        raise RedisModuleError(describe_error(where, exc, SENTINEL_CREDENTIALS)) from exc


def sentinel_master(client: t.Any, where: str, name: str) -> dict[str, str] | None:
    """SENTINEL MASTER <name> as a dict, None when this Sentinel monitors no master of that name."""
    try:
        return pairs(client.execute_command('SENTINEL', 'MASTER', name))
    except Exception as exc:
        if 'No such master' in str(exc):
            return None
        raise RedisModuleError(describe_error(where, exc, SENTINEL_CREDENTIALS)) from exc


def collect_sentinel(host: str, port: int, params: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    """One Sentinel view (see ``_sentinel.py``); an unreachable Sentinel gets ``reachable: false``
    and the reason, never an exception."""
    def read(client: t.Any, key: str, view: dict[str, t.Any]) -> None:
        view['master'] = sentinel_master(client, key, name)
        if view['master'] is not None:
            view['replicas'] = [pairs(x) for x in sentinel_command(client, key, 'SENTINEL', 'REPLICAS', name)]
            view['sentinels'] = [pairs(x) for x in sentinel_command(client, key, 'SENTINEL', 'SENTINELS', name)]

    return collect_endpoint(host, port, {'master': None, 'replicas': [], 'sentinels': []},
                            lambda h, p: connect_sentinel(h, p, params), read)


def collect_sentinels(sentinels: list[dict[str, t.Any]], params: dict[str, t.Any], name: str) -> list[dict[str, t.Any]]:
    return [collect_sentinel(s['host'], s['port'], params, name) for s in sentinels]


def usable_sentinels(sentinels: list[dict[str, t.Any]], params: dict[str, t.Any], name: str) -> list[dict[str, t.Any]]:
    """The views of the listed Sentinels, when a module may go on with them: RedisModuleError (nothing
    was changed) when one rejects the credentials or a command, or fewer than a majority answer."""
    views = collect_sentinels(sentinels, params, name)
    errors = sentinel_errors(views)
    if errors:
        raise RedisModuleError('; '.join(errors) + '; nothing was changed')
    refusal = reachable_refusal(views)
    if refusal:
        raise RedisModuleError(refusal + '; nothing was changed')
    return views
