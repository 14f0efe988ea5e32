"""The stack's per-replica gunicorn settings (shown beside the figures), read where the stack
takes them from, and the image's default threads (the bare case's).

Workers: the stack role's default (stack_web_gunicorn_workers, set as GUNICORN_WORKERS); threads:
stack_web_environment's GUNICORN_THREADS if set, else the image's ENV (app/Dockerfile); then,
when a lab is given, the deployed web service's environment overrides both (what really runs).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..checkout import ROOT


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
    defaults = yaml.safe_load((root / "roles/stack/defaults/main.yml").read_text())
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
