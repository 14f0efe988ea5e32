"""Helpers for the counter app tests: real redis-server / redis-sentinel processes on loopback
(Debian's binaries, free ports, temp dirs, password on) and a real gunicorn serving the app."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from ansible_collections.swarmlab.cluster.tests.integration.support.ports import free_port
from ansible_collections.swarmlab.cluster.tests.integration.support.tls import TlsFiles

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "app"
# The app is not installed: make `import counter` work from the source tree.
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

PASSWORD = "s3cret-test-pw"
SENTINEL_PASSWORD = "sentinel-test-pw"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - we report the last one on timeout
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc}")


def end_process(proc: subprocess.Popen[bytes], timeout: float, term: bool = True) -> None:
    """SIGTERM (unless told to stop otherwise, term=False), then SIGKILL after `timeout` seconds."""
    if term:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class RedisProcess:
    """One redis-server (or redis-sentinel) process on 127.0.0.1 with its own directory."""

    def __init__(self, workdir: Path, name: str, *, replica_of: int | None = None,
                 sentinel_conf: str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.replica_of = replica_of
        self.sentinel_conf = sentinel_conf
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def is_sentinel(self) -> bool:
        return self.sentinel_conf is not None

    def client(self, **kwargs: object) -> redis.Redis:
        password = SENTINEL_PASSWORD if self.is_sentinel else PASSWORD
        # No hidden retries in the test's own client (redis-py's default backs off for
        # seconds); tests poll explicitly with wait_for.
        kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        kwargs.setdefault("host", "127.0.0.1")
        return redis.Redis(port=self.port, password=password,
                           socket_timeout=2, socket_connect_timeout=1, decode_responses=True,
                           **kwargs)

    def start(self) -> RedisProcess:
        log = str(self.dir / "server.log")
        if self.is_sentinel:
            conf = self.dir / "sentinel.conf"
            # Sentinel rewrites its config file, so each one gets its own writable copy.
            conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                            f"logfile {log}\n{self.sentinel_conf}")
            argv = [REDIS_SENTINEL, str(conf)]
        else:
            argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                    "--requirepass", PASSWORD, "--masterauth", PASSWORD,
                    "--logfile", log, "--daemonize", "no",
                    # Full syncs start at once instead of after the default 5 s delay.
                    "--repl-diskless-sync-delay", "0"]
            if self.replica_of is not None:
                argv += ["--replicaof", "127.0.0.1", str(self.replica_of)]
            argv += list(self.extra_args)
        return self._run(argv)

    def _run(self, argv: list[str]) -> RedisProcess:
        """Start the process, and return once it answers PING."""
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.client().ping(), 10, f"{self.name} on port {self.port}")
        return self

    def stop(self, save: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if save:
            # SHUTDOWN SAVE writes dump.rdb, so a restart comes back with the data.
            try:
                self.client().shutdown(save=True)
            except redis.ConnectionError:
                pass
        end_process(self.proc, 10, term=not save)

    def wait_in_sync(self, master: RedisProcess) -> None:
        def synced() -> bool:
            info = self.client().info("replication")
            offset = master.client().info("replication")["master_repl_offset"]
            if not (info.get("master_link_status") == "up" and info.get("slave_repl_offset", -1) >= offset):
                return False
            # After a diskless sync Redis 7 sends the replica no write until its first ACK (a
            # second later): a WAIT until then times out. A PUBLISH (replicated, no key) it acknowledges
            # says the stream flows.
            pipe = master.client().pipeline(transaction=False)
            pipe.publish("__apptest_sync__", "")
            pipe.wait(1, 200)
            return pipe.execute()[1] >= 1
        wait_for(synced, 15, f"{self.name} in sync with {master.name}")


def redis_url(server: RedisProcess, host: str = "127.0.0.1") -> str:
    return f"redis://:{PASSWORD}@{host}:{server.port}/0"


# Short timeouts and backoff so that "Redis down" tests take fractions of a second.
FAST_RETRY_ENV = {
    "REDIS_RETRIES": "2",
    "REDIS_BACKOFF_BASE": "0.01",
    "REDIS_BACKOFF_CAP": "0.05",
    "REDIS_CONNECT_TIMEOUT": "0.5",
    "REDIS_SOCKET_TIMEOUT": "1",
    "REDIS_STARTUP_TIMEOUT": "2",
}


class Gunicorn:
    """The app under a real gunicorn process on loopback, as the image runs it, with its
    metrics server on a port of its own."""

    def __init__(self, env: dict[str, str], workers: int = 2, threads: int = 4) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.metrics_dir = tempfile.mkdtemp(prefix="swarmlab-apptest-metrics-")
        self.env = {**os.environ,
                    # Tests stop gunicorn at once unless they test the drain itself.
                    "SHUTDOWN_DELAY": "0",
                    "METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(self.metrics_port),
                    "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir,
                    **env, "HOST": "127.0.0.1", "PORT": str(self.port),
                    "GUNICORN_WORKERS": str(workers), "GUNICORN_THREADS": str(threads)}
        self.proc: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a full pipe would block gunicorn's logging.
        self.log = tempfile.NamedTemporaryFile(prefix="swarmlab-apptest-gunicorn-", suffix=".log")

    def start(self) -> Gunicorn:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.proc = subprocess.Popen(
            [str(gunicorn), "--config", str(APP_DIR / "gunicorn.conf.py"), "counter:create_app()"],
            cwd=APP_DIR, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: requests.get(f"{self.base}/healthz", timeout=1).ok, 20,
                     "gunicorn /healthz")
        except AssertionError:
            out = self.output()
            self.stop()
            raise AssertionError(f"gunicorn did not come up:\n{out}") from None
        return self

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The master's children, from /proc (Linux)."""
        assert self.proc is not None
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # The command may hold spaces and parentheses: fields start after the last ")".
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # the process went away meanwhile
            if int(fields[1]) == self.proc.pid:
                children.append(int(stat.parent.name))
        return sorted(children)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """One scrape of the metrics port: {(sample name, labels): value}."""
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(self.metrics_url, timeout=5).text
        return {(sample.name, frozenset(sample.labels.items())): sample.value
                for family in text_string_to_metric_families(text) for sample in family.samples}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            end_process(self.proc, 15)
        self.log.close()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def sample(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 if none)."""
    wanted = set(labels.items())
    return sum(value for (sample_name, sample_labels), value in scrape.items()
               if sample_name == name and wanted <= sample_labels)


class TlsRedis(RedisProcess):
    """A TLS-only redis-server or Sentinel on 127.0.0.1 that announces itself as `localhost`,
    as the stack's servers announce their service names (the name is in the certificate)."""

    def __init__(self, workdir: Path, name: str, tls: TlsFiles, conf: str,
                 sentinel: bool = False) -> None:
        super().__init__(workdir, name, sentinel_conf=conf if sentinel else None)
        self.tls = tls
        self.conf = self.dir / ("sentinel.conf" if sentinel else "redis.conf")
        self.conf.write_text(f"bind 127.0.0.1\ndir {self.dir}\nlogfile {self.dir / 'log'}\n"
                             f"{tls.server_conf(self.port)}{conf}")

    def client(self, **kwargs: object) -> redis.Redis:
        kwargs.setdefault("host", "localhost")
        return super().client(**dict(self.tls.client_kwargs(), **kwargs))

    def start(self) -> TlsRedis:
        return self._run([REDIS_SERVER, str(self.conf)] + (["--sentinel"] if self.is_sentinel else []))
