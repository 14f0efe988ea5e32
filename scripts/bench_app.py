#!/usr/bin/env python
"""Baseline benchmark of the counter app under bare gunicorn on this machine.

Starts its own redis-server (loopback, free port, temp dir, password) and gunicorn serving
app/ (`counter:create_app()`), then loads GET /api/counter and POST /api/counter/increment
with wrk (a lua script reports p95, which wrk's own --latency table lacks). Optionally a
Locust FastHttpUser run of app/locustfile.py's mix. All traffic goes to 127.0.0.1; every case
is time-bounded; everything started here is stopped at the end.

    .venv/bin/python scripts/bench_app.py                     # wrk GET + POST, 15 s each
    .venv/bin/python scripts/bench_app.py --locust            # plus the Locust mix
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "app"
PASSWORD = "bench-pw"

# One wrk script for both benchmarks: WRK_METHOD in, a "WRK_JSON {...}" line out.
WRK_LUA = Path(__file__).resolve().parent / "wrk_report.lua"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {url}")


def proc_cpu_seconds(pids: list[int]) -> float:
    """utime+stime of the given processes, from /proc (gunicorn master and workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def children_of(pid: int) -> list[int]:
    try:
        out = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [int(p) for p in out]


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, method: str, seconds: int, threads: int, connections: int,
            lua: Path, app_pids: list[int]) -> dict[str, float]:
    env = {**os.environ, "WRK_METHOD": method}
    cpu0, app0, wall0 = child_cpu(), proc_cpu_seconds(app_pids), time.monotonic()
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                          "--timeout", "5s", "-s", str(lua), url],
                         env=env, capture_output=True, text=True, timeout=seconds + 60,
                         check=False)
    wall = time.monotonic() - wall0
    line = next((l for l in out.stdout.splitlines() if l.startswith("WRK_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.split(" ", 1)[1])
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["gen_cpu_pct"] = 100 * (child_cpu() - cpu0) / wall
    data["app_cpu_pct"] = 100 * (proc_cpu_seconds(app_pids) - app0) / wall
    return data


def run_locust(base: str, seconds: int, users: int, processes: int, workdir: Path,
               app_pids: list[int]) -> dict[str, float]:
    locust = Path(sys.executable).with_name("locust")
    prefix = workdir / "locust"
    cpu0, app0, wall0 = child_cpu(), proc_cpu_seconds(app_pids), time.monotonic()
    out = subprocess.run([str(locust), "-f", str(APP_DIR / "locustfile.py"), "--headless",
                          "-H", base, "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
                          "--processes", str(processes), "--csv", str(prefix),
                          "--only-summary", "--stop-timeout", "5"],
                         capture_output=True, text=True, timeout=seconds + 90,
                         check=False)
    wall = time.monotonic() - wall0
    rows = list(csv.DictReader(open(f"{prefix}_stats.csv")))
    total = next((r for r in rows if r["Name"] == "Aggregated"), None)
    if total is None:
        raise SystemExit(f"locust produced no stats:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    result: dict[str, float] = {
        "requests": int(total["Request Count"]), "errors": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]), "p50_ms": float(total["50%"]),
        "p95_ms": float(total["95%"]), "p99_ms": float(total["99%"]),
        "gen_cpu_pct": 100 * (child_cpu() - cpu0) / wall,
        "app_cpu_pct": 100 * (proc_cpu_seconds(app_pids) - app0) / wall,
    }
    for row in rows:
        if row["Name"] != "Aggregated":
            result[f"{row['Name']} rps"] = float(row["Requests/s"])
            result[f"{row['Name']} p95_ms"] = float(row["95%"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--seconds", type=int, default=15, help="duration of each case")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4,
                        help="threads per worker (1 = sync worker)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--locust", action="store_true", help="also run the Locust mix")
    parser.add_argument("--locust-users", type=int, default=32)
    parser.add_argument("--locust-processes", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120:
        parser.error("--seconds must be 1..120 (the benchmark is meant to be bounded)")
    for tool in ("redis-server", "wrk"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found (apt-get install redis-server wrk)")

    workdir = Path(tempfile.mkdtemp(prefix="swarmlab-bench-app-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        redis_port, app_port = free_port(), free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
             "--dir", str(workdir), "--save", "", "--appendonly", "no",
             "--requirepass", PASSWORD, "--logfile", str(workdir / "redis.log")]))
        gunicorn = Path(sys.executable).with_name("gunicorn")
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(app_port),
               "GUNICORN_WORKERS": str(args.workers), "GUNICORN_THREADS": str(args.threads),
               "REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{redis_port}/0",
               "COUNTER_KEY": "bench:counter"}
        with open(workdir / "gunicorn.log", "wb") as log:
            app = subprocess.Popen([str(gunicorn), "--config", str(APP_DIR / "gunicorn.conf.py"),
                                    "counter:create_app()"], cwd=APP_DIR, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        procs.append(app)
        base = f"http://127.0.0.1:{app_port}"
        wait_http(f"{base}/readyz", 30)
        app_pids = [app.pid, *children_of(app.pid)]
        lua = WRK_LUA

        results: dict[str, dict[str, float]] = {}
        for name, method, path in [("GET /api/counter", "GET", "/api/counter"),
                                   ("POST /api/counter/increment", "POST",
                                    "/api/counter/increment")]:
            print(f"wrk {name} for {args.seconds}s ...", file=sys.stderr, flush=True)
            results[f"wrk {name}"] = run_wrk(base + path, method, args.seconds,
                                             args.wrk_threads, args.connections, lua, app_pids)
        if args.locust:
            print(f"locust mix for {args.seconds}s ...", file=sys.stderr, flush=True)
            results["locust mix (16:3:2:1 GET:inc:dec:reset)"] = run_locust(
                base, args.seconds, args.locust_users, args.locust_processes, workdir, app_pids)

        mode = "sync" if args.threads == 1 else f"gthread x{args.threads}"
        print(f"\ngunicorn {args.workers} workers ({mode}), redis-server {redis_port}, "
              f"{os.cpu_count()} CPUs, {args.seconds}s per case, "
              f"wrk -t{args.wrk_threads} -c{args.connections}")
        print(f"{'case':48} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
              f"{'errors':>6} {'gen CPU':>8} {'app CPU':>8}")
        for name, r in results.items():
            print(f"{name:48} {r['rps']:8.0f} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} "
                  f"{r['p99_ms']:7.1f} {int(r['errors']):6d} {r['gen_cpu_pct']:7.0f}% "
                  f"{r['app_cpu_pct']:7.0f}%")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
