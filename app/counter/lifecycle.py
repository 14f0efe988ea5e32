"""Shutdown state the gunicorn master shares with its workers (see gunicorn.conf.py).

On SIGTERM the master sets one byte in an anonymous shared mapping that every worker inherited
through fork; /readyz reads it, so the load balancer takes this task out while the app still
serves. Outside gunicorn (tests with Flask's client, `flask run`) nothing is attached and the app
never reports draining.
"""
from __future__ import annotations

import mmap

_flag: mmap.mmap | None = None


def attach(flag: mmap.mmap) -> None:
    """Called in each worker right after fork, with the master's mapping."""
    global _flag  # pylint: disable=global-statement
    _flag = flag


def draining() -> bool:
    return _flag is not None and _flag[0] == 1
