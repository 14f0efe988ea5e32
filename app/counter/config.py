"""Settings for the counter app, read from environment variables only."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping


class ConfigError(ValueError):
    """An environment variable holds a value the app cannot use."""


# How much sooner than the socket timeout a WAIT must answer: the round trip, and a busy server's
# timer (Redis checks WAIT timeouts 10 times a second).
WAIT_MARGIN_MS = 250


def _number(env: Mapping[str, str], name: str, default: float, kind: type[int] | type[float] = int,
            minimum: int = 0) -> int | float:
    """The variable as ``kind`` (int or float), at least ``minimum``; ``default`` when unset or blank."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def parse_hostports(raw: str, name: str) -> list[tuple[str, int]]:
    """Parse 'host:port,host:port' (spaces allowed) into a list of pairs."""
    pairs: list[tuple[str, int]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"{name}: expected host:port, got {item!r}")
        pairs.append((host.strip("[]"), int(port)))
    return pairs


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """<name>_FILE (a Docker/Kubernetes secret file) or <name> itself, if set. A file keeps the
    password out of the process environment, where `ps e` and `docker inspect` show it."""
    path = env.get(name + "_FILE", "").strip()
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                # Secret files usually end with a newline that is not part of the password.
                return handle.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc}") from exc
    return env.get(name) or None


def _tls(env: Mapping[str, str], redis_url: str) -> bool:
    """REDIS_TLS as a boolean; unset: TLS when REDIS_URL is rediss://."""
    raw = env.get("REDIS_TLS", "").strip().lower()
    if not raw:
        return redis_url.startswith("rediss://")
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"REDIS_TLS must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def _ca_file(env: Mapping[str, str]) -> str | None:
    path = env.get("REDIS_TLS_CA_FILE", "").strip()
    if path and not os.access(path, os.R_OK):
        raise ConfigError(f"REDIS_TLS_CA_FILE: cannot read {path}")
    return path or None


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://localhost:6379/0"
    # Overrides the password in REDIS_URL, for every Redis node (master, replicas, Sentinel's).
    redis_password: str | None = None
    replicas: list[tuple[str, int]] = field(default_factory=list)
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    sentinel_master: str = "mymaster"
    sentinel_password: str | None = None
    # TLS to every Redis node and Sentinel, verified against this CA bundle (None: the system's).
    tls: bool = False
    tls_ca_file: str | None = None
    counter_key: str = "counter"
    # Per-request retry: attempts after the first, with exponential backoff between them.
    retries: int = 3
    backoff_base: float = 0.05
    backoff_cap: float = 0.5
    connect_timeout: float = 1.0
    socket_timeout: float = 2.0
    # How long create_app() keeps trying to reach Redis before it starts anyway.
    startup_timeout: float = 10.0
    # A replica that failed is skipped for this long, so reads do not pay its timeout each time.
    replica_cooldown: float = 5.0
    wait_replicas: int = 0
    # Over a second: while a switchover pauses writes the master does not ask its replicas for an
    # ACK, they send one each second, and a shorter WAIT fails writes that were replicated.
    wait_timeout_ms: int = 1500
    # Largest request body accepted (413 above); the API's own bodies are a few dozen bytes.
    max_body_bytes: int = 4096

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        redis_url = env.get("REDIS_URL", "").strip() or cls.redis_url
        tls = _tls(env, redis_url)
        settings = cls(
            redis_url=redis_url,
            redis_password=_secret(env, "REDIS_PASSWORD"),
            replicas=parse_hostports(env.get("REDIS_REPLICAS", ""), "REDIS_REPLICAS"),
            sentinels=parse_hostports(env.get("REDIS_SENTINELS", ""), "REDIS_SENTINELS"),
            sentinel_master=env.get("REDIS_SENTINEL_MASTER", "").strip() or cls.sentinel_master,
            sentinel_password=_secret(env, "REDIS_SENTINEL_PASSWORD"),
            tls=tls,
            tls_ca_file=_ca_file(env) if tls else None,
            counter_key=env.get("COUNTER_KEY", "").strip() or cls.counter_key,
            retries=_number(env, "REDIS_RETRIES", cls.retries),
            backoff_base=_number(env, "REDIS_BACKOFF_BASE", cls.backoff_base, float),
            backoff_cap=_number(env, "REDIS_BACKOFF_CAP", cls.backoff_cap, float),
            connect_timeout=_number(env, "REDIS_CONNECT_TIMEOUT", cls.connect_timeout, float),
            socket_timeout=_number(env, "REDIS_SOCKET_TIMEOUT", cls.socket_timeout, float),
            startup_timeout=_number(env, "REDIS_STARTUP_TIMEOUT", cls.startup_timeout, float),
            replica_cooldown=_number(env, "REDIS_REPLICA_COOLDOWN", cls.replica_cooldown, float),
            wait_replicas=_number(env, "REDIS_WAIT_REPLICAS", cls.wait_replicas),
            wait_timeout_ms=_number(env, "REDIS_WAIT_TIMEOUT_MS", cls.wait_timeout_ms, minimum=1),
            max_body_bytes=_number(env, "MAX_BODY_BYTES", cls.max_body_bytes, minimum=1),
        )
        # A WAIT that outlasts the socket timeout makes redis-py take the write for unanswered and
        # send it again: a write the replicas do not acknowledge would be applied 1 + REDIS_RETRIES
        # times, and answered 503 all the same.
        if settings.wait_replicas and settings.wait_timeout_ms + WAIT_MARGIN_MS > settings.socket_timeout * 1000:
            raise ConfigError(
                f"REDIS_WAIT_TIMEOUT_MS ({settings.wait_timeout_ms}) must be at least {WAIT_MARGIN_MS} ms below "
                f"REDIS_SOCKET_TIMEOUT ({settings.socket_timeout:g} s) when REDIS_WAIT_REPLICAS is set: a WAIT that "
                "outlasts the socket timeout makes the client send the write again")
        return settings
