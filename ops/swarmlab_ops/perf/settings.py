"""The stack's per-replica gunicorn settings (shown beside the figures), read where the stack
takes them from, and the image's default threads (the bare case's).

Workers: the stack role's default (stack_web_gunicorn_workers, set as GUNICORN_WORKERS); threads:
stack_web_environment's GUNICORN_THREADS if set, else the image's ENV (app/Dockerfile); then,
when a lab is given, the deployed web service's environment overrides both (what really runs).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

from ..checkout import ROOT
from ..loadtest.bareredis import RedisLayout


@functools.lru_cache(maxsize=4)
def role_defaults(root: Path = ROOT) -> dict[str, Any]:
    """roles/stack/defaults/main.yml, read once per run (the web settings and the Redis layout)."""
    return yaml.safe_load((root / "roles/stack/defaults/main.yml").read_text())


def dockerfile_env(text: str) -> dict[str, str]:
    """KEY=value pairs of the ENV instructions of a Dockerfile (continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", text)
    env: dict[str, str] = {}
    for line in joined.splitlines():
        parts = line.split()
        if parts and parts[0].upper() == "ENV":
            env.update(p.split("=", 1) for p in parts[1:] if "=" in p)
    return env


def image_threads(root: Path = ROOT) -> int:
    """GUNICORN_THREADS of the app image's ENV (app/Dockerfile)."""
    threads = dockerfile_env((root / "app/Dockerfile").read_text()).get("GUNICORN_THREADS")
    if threads is None:
        raise RuntimeError("app/Dockerfile sets no GUNICORN_THREADS: say --bare-threads")
    return int(threads)


def from_checkout(root: Path = ROOT) -> dict[str, Any]:
    """{"workers", "threads", "source"} from the stack role's defaults and the app's Dockerfile."""
    defaults = role_defaults(root)
    extra = defaults.get("stack_web_environment") or {}
    threads = extra.get("GUNICORN_THREADS") or image_threads(root)
    workers = extra.get("GUNICORN_WORKERS", defaults["stack_web_gunicorn_workers"])
    return {"workers": int(workers), "threads": int(threads),
            "source": "roles/stack/defaults/main.yml, app/Dockerfile"}


def from_service(env: dict[str, str], base: dict[str, Any]) -> dict[str, Any]:
    """`base` overridden by a deployed web service's environment (GUNICORN_WORKERS/THREADS)."""
    out = dict(base)
    for key, name in (("workers", "GUNICORN_WORKERS"), ("threads", "GUNICORN_THREADS")):
        if env.get(name):
            out[key] = int(env[name])
            out["source"] = "the deployed web service's environment, " + base["source"]
    # Not applied to bare (a lone redis-server has no replica to WAIT for), but said in the table:
    # with WAIT each increment through the stack also waits for a replica's acknowledgement.
    if env.get("REDIS_WAIT_REPLICAS"):
        out["swarm_wait_replicas"] = int(env["REDIS_WAIT_REPLICAS"])
    return out


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def redis_from_checkout(root: Path = ROOT) -> RedisLayout:
    """The stack role's defaults: replicas, WAIT, TLS (off unless an inventory turns it on), AOF."""
    defaults = role_defaults(root)
    return RedisLayout(replicas=int(defaults["stack_redis_replicas"]),
                       wait=int(defaults["stack_web_redis_wait_replicas"]),
                       tls=_truthy(defaults["stack_redis_tls"]),
                       aof=_truthy(defaults["stack_redis_appendonly"]))


def redis_from_stack(web_env: dict[str, str], services: list[str], master_args: list[str]) -> RedisLayout:
    """What the deployed stack runs: its redis-replica-N services, the web service's
    REDIS_WAIT_REPLICAS and REDIS_TLS (or a rediss:// REDIS_URL), the master's --appendonly."""
    replicas = sum(1 for name in services if re.fullmatch(r"redis-replica-\d+", name))
    aof = any(a == "--appendonly" and b == "yes" for a, b in zip(master_args, master_args[1:]))
    tls = (_truthy(web_env["REDIS_TLS"]) if web_env.get("REDIS_TLS", "").strip()
           else web_env.get("REDIS_URL", "").startswith("rediss://"))
    return RedisLayout(replicas=replicas, wait=min(int(web_env.get("REDIS_WAIT_REPLICAS") or 0), replicas),
                       tls=tls, aof=aof)
