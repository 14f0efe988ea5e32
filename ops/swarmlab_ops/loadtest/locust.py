"""Running the load: Locust headless against a URL (CPU profiled), the bare app on loopback, and the
checks that a URL is ready and that the edge spreads over the expected replicas."""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from ..checkout import ROOT
from ..report import log
from .bareredis import RedisLayout, app_env, make_tls, server_args, wait_online
from .cpu import CpuProfile
from .stats import parse_locust_stats, saturation_warnings

APP_DIR = ROOT / "app"
LOCUSTFILE = APP_DIR / "locustfile.py"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def sh(cmd: list[str], timeout: float = 60, check: bool = True) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 3) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.headers.get("X-Served-By", "")


def wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(f"{url}/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"timed out waiting for {url}/readyz")


def served_by(url: str, count: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    for _attempt in range(count):
        try:
            status, who = http_get(f"{url}/api/counter")
        except OSError:
            who = "(error)"
        seen[who] = seen.get(who, 0) + 1
    return seen


def wait_spread(url: str, replicas: int, timeout: float) -> dict[str, int]:
    """Until two windows in a row of 6*N requests hit exactly N distinct replicas, no errors."""
    deadline, good, seen = time.monotonic() + timeout, 0, {}
    while time.monotonic() < deadline:
        seen = served_by(url, 6 * replicas)
        ok = len(seen) == replicas and "(error)" not in seen
        good = good + 1 if ok else 0
        if good >= 2:
            return seen
        time.sleep(1)
    raise RuntimeError(f"edge did not spread over exactly {replicas} replicas: {seen}")


def run_locust(name: str, url: str, args: argparse.Namespace, outdir: Path,
               node_pids: list[int], bare_pids: list[int]) -> dict[str, Any]:
    locust = Path(sys.executable).with_name("locust")
    prefix = outdir / name
    cmd = [str(locust), "-f", str(LOCUSTFILE), "--headless", "-H", url,
           "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.seconds}s",
           "--processes", str(args.processes), "--csv", str(prefix),
           "--html", str(outdir / f"{name}.html"), "--only-summary", "--stop-timeout", "5",
           "--loglevel", "WARNING"]
    load0 = loadavg()
    log(f"case {name}: locust -u {args.users} -r {args.spawn_rate} -t {args.seconds}s "
        f"--processes {args.processes} against {url} (load average {load0})")
    window_start = time.time()
    with open(outdir / f"{name}.locust.log", "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
        prof = CpuProfile(proc.pid, node_pids, bare_pids)
        prof.start()
        try:
            proc.wait(timeout=args.seconds + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"locust did not stop for case {name}") from None
        finally:
            profile = prof.stop()
    result = parse_locust_stats(f"{prefix}_stats.csv")
    result.update(url=url, load_avg_start=load0, load_avg_end=loadavg(), profile=profile,
                  window={"start": window_start, "end": time.time()})
    gen = profile["cpu_pct"].get("generator", 0.0)
    result["warnings"] = saturation_warnings(gen, args.processes, profile["gen_per_process_pct"],
                                             os.cpu_count() or 1, profile["machine_busy_pct"])
    for warning in result["warnings"]:
        log(f"WARNING ({name}): {warning}")
    log(f"case {name}: {result['rps']:.0f} req/s, p95 {result['p95_ms']:.0f} ms, "
        f"{result['failures']} failures, generator {gen:.0f} % CPU, machine "
        f"{profile['machine_busy_pct']:.0f} % busy")
    return result


def spread_connections(clients: int, workers: int, threads: int) -> int:
    """GUNICORN_WORKER_CONNECTIONS that spreads `clients` keep-alive connections over every worker.

    gunicorn's gthread worker accepts up to worker_connections (1000 by default): a load
    generator's connections can all land in one worker, one core (900-1300 req/s instead of
    2500-3200 on 2 cores), and a baseline measured that way flatters whatever is compared with it.
    Each worker takes its share, plus its threads' worth of slack."""
    return -(-clients // workers) + threads


class BareApp:
    """redis-server + gunicorn on loopback (the bare case, and `swarmlab-ops bench`), sized for
    `clients` keep-alive connections (spread_connections). `redis`: a lone redis-server by default,
    or Redis laid out as the stack runs it (bareredis.RedisLayout)."""

    def __init__(self, workers: int, threads: int, clients: int, redis: RedisLayout | None = None):
        self.workers, self.threads = workers, threads
        self.worker_connections = spread_connections(clients, workers, threads)
        self.redis = redis or RedisLayout()
        self.redis.check()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="swarmlab-loadtest-"))

    def _start_redis(self) -> dict[str, str]:
        tls = make_tls(self.workdir) if self.redis.tls else None
        ports = [free_port() for _port in range(1 + self.redis.replicas)]
        for i, port in enumerate(ports):
            workdir = self.workdir / f"redis-{i}"
            workdir.mkdir()
            self.procs.append(subprocess.Popen(server_args(self.redis, port, workdir, tls,
                                                           master_port=ports[0] if i else None)))
        wait_online(ports[0], self.redis.replicas, tls)
        return app_env(self.redis, ports[0], ports[1:], tls)

    def __enter__(self) -> "BareApp":
        # `with` calls __exit__ only after __enter__ returned: a failed start stops what it started.
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        redis_env = self._start_redis()
        app_port, metrics_port = free_port(), free_port()
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(app_port),
               "GUNICORN_WORKERS": str(self.workers), "GUNICORN_THREADS": str(self.threads),
               "GUNICORN_WORKER_CONNECTIONS": str(self.worker_connections),
               **redis_env,
               "COUNTER_KEY": "loadtest:counter",
               # No balancer in front to drain from: stop at once.
               "SHUTDOWN_DELAY": "0",
               # The app's metrics as in the stack, on a free loopback port (not 0.0.0.0:9102).
               "METRICS_PORT": str(metrics_port), "METRICS_HOST": "127.0.0.1"}
        with open(self.workdir / "gunicorn.log", "wb") as logf:
            self.procs.append(subprocess.Popen(
                [str(Path(sys.executable).with_name("gunicorn")), "--config",
                 str(APP_DIR / "gunicorn.conf.py"), "counter:create_app()"],
                cwd=APP_DIR, env=env, stdout=logf, stderr=subprocess.STDOUT))
        self.url = f"http://127.0.0.1:{app_port}"
        self.metrics_address = f"127.0.0.1:{metrics_port}"
        wait_ready(self.url, 30)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
