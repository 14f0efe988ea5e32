"""The counter in Redis: writes to the master, reads from replicas when there are any."""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.connection import SSLConnection, parse_url
from redis.exceptions import (
    AuthenticationError,
    ConnectionError as RedisConnectionError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError as RedisTimeoutError,
)
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

from . import metrics
from .config import Settings

log = logging.getLogger(__name__)

# Errors that mean "Redis is not there right now": retried, then reported as 503.
# ReadOnlyError appears when a write reaches a master that a failover just demoted.
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)


class RedisUnavailable(Exception):
    """Redis could not be reached after the configured retries."""


def _describe(exc: BaseException) -> str:
    """A short reason for clients and logs; redis-py's own messages can embed whole reprs."""
    if isinstance(exc, MasterNotFoundError):
        return "no master found through Sentinel"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def error_kind(exc: BaseException) -> str:
    """One of a fixed set of words for the metrics' `kind` label."""
    if isinstance(exc, MasterNotFoundError):
        return "no_master"
    if isinstance(exc, AuthenticationError):
        return "auth"
    if isinstance(exc, (RedisTimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, ReadOnlyError):
        return "readonly"
    if isinstance(exc, (RedisConnectionError, OSError)):
        return "connection"
    if isinstance(exc, ResponseError):
        return "response"
    return "other"


def _count_error(exc: BaseException, role: str) -> None:
    metrics.REDIS_ERRORS.labels(error_kind(exc), role).inc()


class NotDurable(Exception):
    """The write happened on the master but too few replicas acknowledged it in time."""

    def __init__(self, value: int, acked: int, required: int, timeout_ms: int) -> None:
        super().__init__(
            f"write not acknowledged by {required} replica(s) within {timeout_ms} ms "
            f"(acknowledged by {acked})"
        )
        self.value = value
        self.acked = acked
        self.required = required


class CounterOverflow(Exception):
    """INCRBY/DECRBY would leave the 64-bit range Redis allows."""


class _VerifyingSentinel(Sentinel):
    """Sentinel discovery that does not trust one Sentinel's answer alone.

    A Sentinel that has not yet heard of a failover (hello messages travel every 2 s, or it is cut
    off for a while) still names the old master. redis-py takes the first answer and keeps asking
    that Sentinel first, so every write went to the demoted master and failed with READONLY until
    that Sentinel caught up. The Sentinel client guidelines say to check the role of the instance a
    Sentinel names; _RediscoveringConnection does, and asks the next Sentinel when it is no master.
    """

    def master_candidates(self, service_name: str):
        """(sentinel, address) for each Sentinel that names a master in good state, in the order
        they are asked (the one whose answer was last confirmed first); each address once."""
        seen: set[tuple[str, int]] = set()
        errors: list[str] = []
        for sentinel in list(self.sentinels):
            try:
                masters = sentinel.sentinel_masters()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                errors.append(f"{sentinel}: {exc!r}")
                continue
            state = masters.get(service_name)
            if state and self.check_master_state(state, service_name):
                address = (state["ip"], int(state["port"]))
                if address not in seen:
                    seen.add(address)
                    yield sentinel, address
        if not seen:
            detail = f": {', '.join(errors)}" if errors else ""
            raise MasterNotFoundError(f"No master found for {service_name!r}{detail}")

    def confirmed(self, sentinel: Any) -> None:
        """Ask this Sentinel first from now on (as redis-py does with the first that answers)."""
        index = self.sentinels.index(sentinel)
        self.sentinels[0], self.sentinels[index] = self.sentinels[index], self.sentinels[0]


def _role(reply: Any) -> str:
    first = reply[0] if isinstance(reply, (list, tuple)) and reply else reply
    return first.decode() if isinstance(first, bytes) else str(first)


class _RediscoveringConnection(SentinelManagedConnection):
    """Reconnects through Sentinel every time, not only in connect(), and to a verified master.

    redis-py 8.1 sends a command on a closed connection through connect_check_health(), which
    skips SentinelManagedConnection.connect() and so reconnects to the address it had: after a
    switchover the retries of a write all go back to the demoted master, get READONLY and fail
    (redis/redis-py#3874, open). Here a connection that is not connected asks Sentinel first.
    And the master a Sentinel names must answer ROLE as a master (see _VerifyingSentinel), or the
    next Sentinel's answer is tried.
    """

    _connecting_to = False

    def connect_to(self, address: tuple[str, int]) -> None:
        self._connecting_to = True
        try:
            super().connect_to(address)
        finally:
            self._connecting_to = False

    def connect_check_health(self, check_health: bool = True,
                             retry_socket_connect: bool = True) -> None:
        if self._sock or self._connecting_to:
            super().connect_check_health(check_health=check_health,
                                         retry_socket_connect=retry_socket_connect)
            return
        self._connect_retry()

    def _connect_retry(self) -> None:
        pool = self.connection_pool
        manager = pool.sentinel_manager
        if self._sock or not pool.is_master or not isinstance(manager, _VerifyingSentinel):
            super()._connect_retry()
            return
        rejected: list[str] = []
        for sentinel, address in manager.master_candidates(pool.service_name):
            try:
                self.connect_to(address)
                self.send_command("ROLE")
                role = _role(self.read_response())
            except AuthenticationError:
                raise  # wrong credentials, not a stale Sentinel: the next address would not help
            except ResponseError:
                role = "master"  # a user without ROLE: the Sentinel's answer has to do
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.disconnect()
                rejected.append(f"{address[0]}:{address[1]} ({_describe(exc)})")
                continue
            if role == "master":
                manager.confirmed(sentinel)
                self._follow(address)
                return
            self.disconnect()
            rejected.append(f"{address[0]}:{address[1]} is a {role}")
        raise MasterNotFoundError(f"No master found for {pool.service_name!r}: the Sentinels name "
                                  f"{'; '.join(rejected)}")

    def _follow(self, address: tuple[str, int]) -> None:
        """What redis-py's get_master_address does on a new master: the pool's idle connections
        are closed, so they too reconnect to it."""
        pool = self.connection_pool
        if pool.master_address != address:
            pool.master_address = address
            owner = pool.connection_pool_ref()
            if owner is not None:
                owner.disconnect(inuse_connections=False)


class _RediscoveringSSLConnection(_RediscoveringConnection, SSLConnection):
    pass


def _retry(settings: Settings) -> Retry:
    # One Retry per client: redis-py may adjust a Retry's error list per connection.
    return Retry(ExponentialBackoff(cap=settings.backoff_cap, base=settings.backoff_base),
                 settings.retries)


# Sentinel PINGs a master every second: an answer older than this is a PING missed.
_SENTINEL_FRESH_MS = 1500


def _reaches_master(state: dict[str, Any]) -> bool:
    """Whether a Sentinel's SENTINEL MASTER state says it reaches the master now."""
    flags = str(state.get("flags", ""))
    if state.get("is_sdown") or state.get("is_odown") or state.get("is_disconnected") \
            or "failover_in_progress" in flags:
        return False
    return int(state.get("last-ok-ping-reply", _SENTINEL_FRESH_MS + 1)) <= _SENTINEL_FRESH_MS


def _strip_password(url: str) -> str:
    """The URL without its password: redis-py's from_url lets the URL's password win over
    the password argument, and a password file must win."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


class CounterStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key = settings.counter_key
        url = parse_url(settings.redis_url)
        password = settings.redis_password or url.get("password")
        common: dict[str, Any] = {
            "username": url.get("username"),
            "password": password,
            "db": url.get("db", 0),
            "socket_connect_timeout": settings.connect_timeout,
            "socket_timeout": settings.socket_timeout,
            "decode_responses": True,
        }
        # TLS for the master, the replicas and the Sentinels alike, verified against the CA
        # (redis-py also checks the host name: Sentinel must report names in the certificate).
        tls: dict[str, Any] = ({"ssl": True, "ssl_cert_reqs": "required",
                                "ssl_ca_certs": settings.tls_ca_file} if settings.tls else {})
        common.update(tls)
        self._replicas: list[redis.Redis] = []
        self._replica_down_until: dict[int, float] = {}
        # Set once this process reached the master: its settings are proven, and from then on a
        # replica may stand in for the master at readiness (check_ready).
        self._master_reached = False
        self._lock = threading.Lock()
        self.sentinel: Sentinel | None = None
        if settings.sentinels:
            self.sentinel = _VerifyingSentinel(
                settings.sentinels,
                sentinel_kwargs={
                    "password": settings.sentinel_password,
                    # One attempt per sentinel: the master/replica clients' own Retry repeats
                    # the whole discovery, so retrying here too would multiply the waits.
                    "retry": Retry(NoBackoff(), 0),
                    "socket_connect_timeout": settings.connect_timeout,
                    "socket_timeout": settings.socket_timeout,
                    **tls,
                },
                **common,
            )
            # The pools ask Sentinel for the current master/replicas on each new connection,
            # so a failover is followed without a restart.
            connection_class = (_RediscoveringSSLConnection if settings.tls
                                else _RediscoveringConnection)
            self.master = self.sentinel.master_for(settings.sentinel_master, retry=_retry(settings),
                                                   connection_class=connection_class)
            self._master_once = self.sentinel.master_for(settings.sentinel_master, retry=Retry(NoBackoff(), 0),
                                                         connection_class=connection_class)
            # slave_for falls back to the master itself when Sentinel knows no replica.
            self._replicas.append(self.sentinel.slave_for(
                settings.sentinel_master, retry=Retry(NoBackoff(), 0),
                connection_class=connection_class))
        else:
            master_url = (_strip_password(settings.redis_url) if settings.redis_password
                          else settings.redis_url)
            if settings.tls and master_url.startswith("redis://"):
                master_url = "rediss://" + master_url[len("redis://"):]
            # from_url picks the TLS connection from the rediss:// scheme; it takes no `ssl`.
            plain = {k: v for k, v in common.items() if k not in ("username", "password", "db", "ssl")}
            self.master = redis.Redis.from_url(master_url, retry=_retry(settings), password=password, **plain)
            self._master_once = redis.Redis.from_url(master_url, retry=Retry(NoBackoff(), 0),
                                                     password=password, **plain)
            for host, port in settings.replicas:
                # A replica gets one attempt: on failure the read goes to the master instead.
                self._replicas.append(redis.Redis(host=host, port=port,
                                                  retry=Retry(NoBackoff(), 0), **common))

    # --- start-up -----------------------------------------------------------------------
    def wait_until_ready(self, timeout: float) -> bool:
        """Ping the master with backoff until it answers or `timeout` passes. Never raises."""
        deadline = time.monotonic() + timeout
        delay = max(self.settings.backoff_base, 0.05)
        attempt = 0
        while True:
            attempt += 1
            try:
                self.master.ping()
                self._master_reached = True
                log.info("redis master reachable after %d attempt(s)", attempt)
                return True
            except RedisError as exc:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Start anyway: /healthz stays up, /readyz and the API answer 503
                    # until Redis appears, instead of the container crash-looping.
                    _count_error(exc, "master")
                    log.warning("redis master not reachable after %d attempt(s): %s; "
                                "starting anyway", attempt, _describe(exc))
                    return False
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, max(self.settings.backoff_cap, 1.0))

    def check_ready(self) -> str:
        """Whether this process can answer requests, for /readyz: "master" when the master
        answers; "replicas" when it does not, this process has reached it before, a replica
        answers a read and the master is lost to the Redis side as well (reads go on, writes
        answer 503 until a master is back); RedisUnavailable otherwise. A master outage fails
        every task's master check alike, so requiring the master took every task out of the load
        balancer and turned the reads the replicas could answer into its 503s. A task cut off
        from a master that the others still reach must leave instead, so that its writes go to
        them. A process that never reached the master (a bad REDIS_URL, a deploy to roll back)
        stays out. One attempt each, no retry: the load balancer's check has its own timeout,
        and asks again."""
        try:
            self._master_once.ping()
        except _TRANSIENT as exc:
            _count_error(exc, "master")
            if self._master_reached and self._a_replica_answers() and self._master_lost_to_redis():
                return "replicas"
            raise RedisUnavailable(f"redis master unreachable: {_describe(exc)}") from exc
        self._master_reached = True
        return "master"

    def _a_replica_answers(self) -> bool:
        for replica in self._replicas:
            try:
                replica.get(self.key)
                return True
            except RedisError as exc:
                _count_error(exc, "replica")
        return False

    def _master_lost_to_redis(self) -> bool:
        """Whether the master is out of reach of the Redis side too, not of this process alone.
        With Sentinel: no Sentinel that answers still reaches it (each PINGs it every second),
        and one answered. Without: a replica's link to it is down (a stopped server closes it at
        once; a silent host after the replicas' repl-timeout)."""
        if self.sentinel is None:
            for replica in self._replicas:
                try:
                    if replica.info("replication").get("master_link_status") == "up":
                        return False
                except RedisError as exc:
                    _count_error(exc, "replica")
            return True
        answered = False
        for sentinel in list(self.sentinel.sentinels):  # discovery may reorder it meanwhile
            try:
                state = sentinel.sentinel_master(self.settings.sentinel_master)
            except RedisError as exc:
                _count_error(exc, "sentinel")
                continue
            answered = True
            if _reaches_master(state):
                return False
        return answered

    # --- reads ----------------------------------------------------------------------------
    def _pick_replica(self) -> tuple[int, redis.Redis] | None:
        now = time.monotonic()
        with self._lock:
            healthy = [i for i in range(len(self._replicas))
                       if self._replica_down_until.get(i, 0.0) <= now]
        if not healthy:
            return None
        index = random.choice(healthy)
        return index, self._replicas[index]

    def _counted(self, operation: str, func: Callable[[], int]) -> int:
        """Run one counter operation and count it by outcome (metrics.OPERATIONS)."""
        outcome = "error"
        try:
            value = func()
            outcome = "ok"
            return value
        except RedisUnavailable:
            outcome = "unavailable"
            raise
        except NotDurable:
            outcome = "not_durable"
            raise
        except CounterOverflow:
            outcome = "overflow"
            raise
        finally:
            metrics.OPERATIONS.labels(operation, outcome).inc()

    def get(self) -> int:
        return self._counted("get", self._get)

    def _get(self) -> int:
        picked = self._pick_replica()
        if picked is not None:
            index, replica = picked
            try:
                return int(replica.get(self.key) or 0)
            except RedisError as exc:
                # Includes a replica still loading or with its master link down: use the master.
                log.warning("replica read failed, falling back to master: %s", _describe(exc))
                _count_error(exc, "replica")
                with self._lock:
                    self._replica_down_until[index] = (time.monotonic()
                                                       + self.settings.replica_cooldown)
        try:
            return int(self.master.get(self.key) or 0)
        except _TRANSIENT as exc:
            _count_error(exc, "master")
            raise RedisUnavailable(f"redis unreachable: {_describe(exc)}") from exc
        except RedisError as exc:
            _count_error(exc, "master")
            raise

    # --- writes ---------------------------------------------------------------------------
    def _write(self, command: str, *args: Any) -> int:
        wait = self.settings.wait_replicas
        try:
            if wait:
                # WAIT only counts writes made on the same connection, so the write and the
                # WAIT travel together in one (non-transactional) pipeline.
                pipe = self.master.pipeline(transaction=False)
                getattr(pipe, command)(self.key, *args)
                pipe.wait(wait, self.settings.wait_timeout_ms)
                result, acked = pipe.execute()
            else:
                result, acked = getattr(self.master, command)(self.key, *args), None
        except _TRANSIENT as exc:
            _count_error(exc, "master")
            raise RedisUnavailable(f"redis master unreachable: {_describe(exc)}") from exc
        except ResponseError as exc:
            if "overflow" in str(exc):
                # The client asked for a value out of range: not a Redis failure.
                raise CounterOverflow(str(exc)) from exc
            _count_error(exc, "master")
            raise
        except RedisError as exc:
            _count_error(exc, "master")
            raise
        value = 0 if command == "set" else int(result)
        if acked is not None and int(acked) < wait:
            metrics.REDIS_ERRORS.labels("not_durable", "master").inc()
            raise NotDurable(value, int(acked), wait, self.settings.wait_timeout_ms)
        return value

    def increment(self, by: int) -> int:
        return self._counted("increment", lambda: self._write("incrby", by))

    def decrement(self, by: int) -> int:
        return self._counted("decrement", lambda: self._write("decrby", by))

    def reset(self) -> int:
        return self._counted("reset", lambda: self._write("set", 0))

    def describe_master(self) -> str:
        if self.sentinel is not None:
            host, port = self.sentinel.discover_master(self.settings.sentinel_master)
            return f"{host}:{port}"
        kwargs = self.master.connection_pool.connection_kwargs
        return f"{kwargs.get('host')}:{kwargs.get('port')}"
