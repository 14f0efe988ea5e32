"""Gunicorn settings for the counter app, from environment variables (see README.md).

Besides gunicorn's own settings, the hooks below give the master two jobs:
- metrics: workers write prometheus-client's multi-process files; the master serves their sum on
  METRICS_PORT (a port the app's own one never serves), and forgets a dead worker's live gauges.
- drain-aware stop: on SIGTERM the master first sets the flag that turns /readyz to 503 and keeps
  serving for SHUTDOWN_DELAY seconds, so the load balancer stops sending new requests here; only
  then comes gunicorn's graceful stop (listeners closed, in-flight requests finish within
  graceful_timeout). The container's stop grace period must cover both.
"""
from __future__ import annotations

import glob
import mmap
import os
import shutil
import signal
import tempfile
import threading
from typing import Any


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise SystemExit(f"{name} must be >= 0, got {raw!r}")
    return value


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(_number("GUNICORN_WORKERS", 2))
# threads > 1 makes gunicorn use the gthread worker: a request waiting on Redis retries
# does not block the whole worker.
threads = int(_number("GUNICORN_THREADS", 4))
timeout = int(_number("GUNICORN_TIMEOUT", 30))
graceful_timeout = int(_number("GUNICORN_GRACEFUL_TIMEOUT", 10))
keepalive = int(_number("GUNICORN_KEEPALIVE", 5))
# A gthread worker keeps accepting keep-alive connections up to this many: a client holding a few
# persistent connections (a proxy, a load generator) can land them all in one worker, one core.
# About connections / workers + threads spreads them, all kept alive (gthread keeps this minus
# threads idle); docs/performance.md, issue 17.
worker_connections = max(1, int(_number("GUNICORN_WORKER_CONNECTIONS", 1000)))
# Heartbeat files on tmpfs: an overlay filesystem can stall them and get workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG", "0") == "1" else None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# gunicorn's control socket (gunicornc) is not used here, and the non-root user cannot create it
# under its read-only home: leave it off rather than log an error at every start.
control_socket_disable = True

# Not gunicorn settings (gunicorn ignores these names): read by the hooks below.
_SHUTDOWN_DELAY = _number("SHUTDOWN_DELAY", 5)
_METRICS_PORT = int(_number("METRICS_PORT", 9102))  # 0 turns the metrics server off
_METRICS_HOST = os.environ.get("METRICS_HOST", "0.0.0.0")
_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"


def on_starting(server: Any) -> None:
    """In the master, before any worker exists."""
    # One shared byte (an anonymous MAP_SHARED mapping survives fork): 1 = draining. Kept on
    # the arbiter, which outlives a configuration reload (SIGHUP) unlike this module.
    server.counter_draining = mmap.mmap(-1, 1)
    if not os.environ.get(_MULTIPROC):
        # The workers inherit the variable; prometheus-client reads it when first imported.
        os.environ[_MULTIPROC] = tempfile.mkdtemp(prefix="counter-metrics-", dir=worker_tmp_dir)
        server.counter_metrics_tmp = os.environ[_MULTIPROC]
    path = os.environ[_MULTIPROC]
    os.makedirs(path, exist_ok=True)
    # Files of an earlier run would be summed with this one's: start from zero.
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)


def when_ready(server: Any) -> None:
    """In the master, listeners bound, before the first worker is forked."""
    if _METRICS_PORT:
        # Imported only now, after on_starting set the directory.
        # pylint: disable=import-outside-toplevel
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        httpd, _thread = start_http_server(_METRICS_PORT, addr=_METRICS_HOST, registry=registry)
        server.counter_metrics_httpd = httpd
        server.log.info("Serving metrics on %s:%d (sum of all workers)", _METRICS_HOST,
                        _METRICS_PORT)
    _drain_on_sigterm(server)


def _drain_on_sigterm(server: Any) -> None:
    # Gunicorn's master stops at once on SIGTERM (handle_term raises StopIteration, then
    # closes its listeners). Docker sends SIGTERM to the master only, so the master is where
    # the delay goes: the first SIGTERM sets the flag and a timer; the timer's own SIGTERM
    # then runs gunicorn's graceful stop as before.
    stop_now = threading.Event()

    def handle_term() -> None:
        if stop_now.is_set() or _SHUTDOWN_DELAY <= 0:
            raise StopIteration
        if server.counter_draining[0]:
            server.log.info("SIGTERM while draining: stopping as planned "
                            "(SIGINT or SIGQUIT stop at once)")
            return
        server.counter_draining[0] = 1
        server.log.info("SIGTERM: /readyz answers 503; serving %.1f s more, then a graceful "
                        "stop (graceful_timeout %s s)", _SHUTDOWN_DELAY,
                        server.cfg.graceful_timeout)

        def stop() -> None:
            stop_now.set()
            os.kill(os.getpid(), signal.SIGTERM)

        timer = threading.Timer(_SHUTDOWN_DELAY, stop)
        timer.daemon = True
        timer.start()

    server.handle_term = handle_term


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker, before it sets its signal handlers and loads the app: keep it short,
    a SIGTERM that arrives before the handlers exist is lost."""
    httpd = getattr(server, "counter_metrics_httpd", None)
    if httpd is not None:
        httpd.socket.close()  # the master's listener, inherited through fork: not the worker's
    worker.counter_draining = server.counter_draining


def post_worker_init(worker: Any) -> None:
    """In each worker, app loaded, before it serves."""
    # pylint: disable-next=import-outside-toplevel
    from counter import lifecycle

    lifecycle.attach(worker.counter_draining)


def child_exit(server: Any, worker: Any) -> None:  # pylint: disable=unused-argument
    """In the master, when a worker has exited (or was killed)."""
    # pylint: disable-next=import-outside-toplevel
    from prometheus_client import multiprocess

    # Its counters stay (they are totals); its share of the live gauges goes.
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    tmp = getattr(server, "counter_metrics_tmp", None)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
