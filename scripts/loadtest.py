#!/usr/bin/env python
"""Load test of the counter app: bare gunicorn vs single mode vs the Swarm stack, and a replica sweep.

Runs Locust headless (app/locustfile.py, FastHttpUser, several processes) for the same users, spawn
rate and duration against each case, samples the CPU of the generator and of the lab's processes
from /proc while it runs, and writes one folder per run (results/loadtest/<timestamp>/):

  <case>_stats.csv, <case>_stats_history.csv, <case>_failures.csv, <case>.html   Locust's own output
  summary.json, summary.md   the table, the ratios against the targets, warnings, the profile
  loadtest.png               requests/s and p95 per case and per replica count

Cases (each one is skipped when its option is not given):
  bare     the app under gunicorn on this machine with a local redis-server (loopback), no
           containers: the machine's ceiling (--bare)
  single   1 web + 1 Redis as plain containers on one lab node (--single-url, playbooks/single.yml)
  swarm    the stack through its edge (--edge-url), at the replica count it has
  sweep    the stack scaled to each of --replicas (via `docker exec <manager> docker service scale`),
           waiting for N/N and until the edge spreads over exactly N replicas (X-Served-By)
  profile  where the time goes (--profile): wrk at 1 and 32 connections to the edge from the host,
           to the edge and to each web task from a probe container on the stack's overlay network,
           redis-cli --latency in the master and from a replica's container

Traffic goes only to the URLs given (loopback or the lab's container addresses); every case is
bounded in time. playbooks/loadtest.yml computes the addresses from the lab and runs this script.

    .venv/bin/python scripts/loadtest.py --bare --single-url http://172.20.0.4:8081 \\
        --edge-url http://172.20.0.2:8080 --manager loadtest-manager1 --replicas 1,2,4 --profile
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "app"
LOCUSTFILE = APP_DIR / "locustfile.py"
BARE_PASSWORD = "loadtest-pw"

# Targets of issue 8, checked by check_targets().
TARGET_SWARM_VS_BARE = 0.8
TARGET_SCALE_4_VS_1 = 1.6
TARGET_P95_MS = 50.0
SATURATION = 0.9  # generator CPU at or above this share of its cores: warn

# One wrk script for both benchmarks: WRK_METHOD in, a "WRK_JSON {...}" line out.
WRK_LUA = Path(__file__).resolve().parent / "wrk_report.lua"


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested in tests/unit/scripts/test_loadtest.py)
# ---------------------------------------------------------------------------------------------

def parse_locust_stats(path: Path | str) -> dict[str, Any]:
    """Read Locust's <prefix>_stats.csv: the Aggregated row plus each endpoint's rps and p95."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    total = next((r for r in rows if r.get("Name") == "Aggregated"), None)
    if total is None or not total.get("Request Count"):
        raise ValueError(f"{path}: no Aggregated row")

    def num(row: dict[str, str], key: str) -> float:
        value = (row.get(key) or "").strip()
        return float(value) if value not in ("", "N/A") else 0.0

    result: dict[str, Any] = {
        "requests": int(num(total, "Request Count")),
        "failures": int(num(total, "Failure Count")),
        "rps": num(total, "Requests/s"),
        "failures_per_s": num(total, "Failures/s"),
        "avg_ms": num(total, "Average Response Time"),
        "p50_ms": num(total, "50%"),
        "p95_ms": num(total, "95%"),
        "p99_ms": num(total, "99%"),
        "max_ms": num(total, "Max Response Time"),
        "endpoints": {},
    }
    for row in rows:
        if row.get("Name") and row["Name"] != "Aggregated":
            result["endpoints"][f"{row.get('Type', '')} {row['Name']}".strip()] = {
                "requests": int(num(row, "Request Count")),
                "failures": int(num(row, "Failure Count")),
                "rps": num(row, "Requests/s"),
                "p95_ms": num(row, "95%"),
            }
    return result


def saturation_warnings(gen_cpu_pct: float, processes: int, per_process_pct: list[float],
                        cpu_count: int, machine_busy_pct: float | None = None,
                        threshold: float = SATURATION) -> list[str]:
    """Warnings when the load generator (or the machine) was CPU-saturated.

    gen_cpu_pct: CPU of every Locust process over the case's wall time (100 = one core).
    processes: Locust worker processes; each is single-threaded (gevent), so the generator can
    use at most min(processes, cpu_count) cores, and a single process at most one core.
    machine_busy_pct: the whole machine's busy share (0-100 of all cores), from /proc/stat.
    """
    warnings = []
    cores = max(1, min(processes, cpu_count))
    if gen_cpu_pct >= threshold * 100 * cores:
        warnings.append(f"generator saturated: Locust used {gen_cpu_pct:.0f} % CPU, "
                        f">= {threshold:.0%} of its {cores} core(s)")
    hot = [p for p in per_process_pct if p >= threshold * 100]
    if hot:
        warnings.append(f"generator saturated: {len(hot)} Locust process(es) at "
                        f"{', '.join(f'{p:.0f}' for p in hot)} % of one core (one process cannot "
                        "use more)")
    if machine_busy_pct is not None and machine_busy_pct >= threshold * 100:
        warnings.append(f"machine saturated: all CPUs {machine_busy_pct:.0f} % busy, the "
                        "generator competed with the system under test")
    return warnings


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def check_targets(cases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets against this run's cases (names: bare, swarm, replicas-1, replicas-4...).

    Each entry: target, value, goal, met (None when a case is missing), missed_by (how far off, in
    the target's unit, 0 when met).
    """
    def rps(name: str) -> float | None:
        return cases[name]["rps"] if name in cases else None

    out = []
    swarm = rps("swarm") if "swarm" in cases else rps("replicas-4")
    value = ratio(swarm, rps("bare"))
    out.append({"target": "Swarm through the edge / bare baseline (req/s)", "value": value,
                "goal": f">= {TARGET_SWARM_VS_BARE}x",
                "met": None if value is None else value >= TARGET_SWARM_VS_BARE,
                "missed_by": None if value is None else max(0.0, TARGET_SWARM_VS_BARE - value)})
    value = ratio(rps("replicas-4"), rps("replicas-1"))
    out.append({"target": "4 replicas / 1 replica (req/s)", "value": value,
                "goal": f">= {TARGET_SCALE_4_VS_1}x",
                "met": None if value is None else value >= TARGET_SCALE_4_VS_1,
                "missed_by": None if value is None else max(0.0, TARGET_SCALE_4_VS_1 - value)})
    four = cases.get("replicas-4") or cases.get("swarm")
    value = four["p95_ms"] if four else None
    out.append({"target": "p95 at 4 replicas (ms)", "value": value,
                "goal": f"<= {TARGET_P95_MS:.0f} ms",
                "met": None if value is None else value <= TARGET_P95_MS,
                "missed_by": None if value is None else max(0.0, value - TARGET_P95_MS)})
    failed = {name: c["failures"] for name, c in cases.items() if c.get("failures")}
    out.append({"target": "failed requests, every case", "value": sum(failed.values()),
                "goal": "0", "met": None if not cases else not failed,
                "missed_by": sum(failed.values()), "detail": failed})
    return out


def cpu_ms_per_request(cpu_pct: float, rps: float) -> float:
    """CPU milliseconds per request from a CPU share (100 = one core) and a request rate."""
    return 10.0 * cpu_pct / rps if rps else 0.0


def cpu_deltas(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
               ) -> dict[int, float]:
    """CPU seconds each pid used between two snapshots ({pid: (starttime key, cpu seconds)}).

    A pid seen only in `after` counts from 0 (it started during the case); a pid whose start time
    changed was reused and also counts from 0.
    """
    out = {}
    for pid, (start, cpu) in after.items():
        prev = before.get(pid)
        out[pid] = cpu - prev[1] if prev and prev[0] == start else cpu
    return out


def classify(comm: str, cmdline: str = "") -> str:
    """Component of a process, for the CPU profile."""
    if comm.startswith("locust") or "/locust " in f"{cmdline} ":
        return "generator"
    if comm == "haproxy":
        return "edge"
    if comm.startswith("redis-"):
        return "redis"
    if comm.startswith("gunicorn") or "gunicorn" in cmdline:
        return "web"
    if comm in ("dockerd", "containerd", "docker-proxy", "runc") or comm.startswith(
            "containerd-shim"):
        return "docker engine"
    return "other"


# ---------------------------------------------------------------------------------------------
# /proc sampling
# ---------------------------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def proc_snapshot() -> dict[int, tuple[str, str, int, float, str]]:
    """{pid: (comm, start key, ppid, cpu seconds, cmdline head)} of every process on the machine."""
    snap = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS
        cmd = ""
        if comm.startswith(("python", "gunicorn", "locust")):
            try:
                cmd = Path(entry.path, "cmdline").read_bytes()[:300].replace(b"\0", b" ").decode(
                    errors="replace")
            except OSError:
                pass
        snap[int(entry.name)] = (comm, fields[19], int(fields[1]), cpu, cmd)
    return snap


def descendants(snap: dict[int, tuple[str, str, int, float, str]], roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, info in snap.items():
        children.setdefault(info[2], []).append(pid)
    out, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.add(pid)
        todo.extend(children.get(pid, []))
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, sum(fields[:8])


class CpuProfile:
    """CPU by component while a load runs: the generator (descendants of its pid), the lab's nodes
    (descendants of each node container's init), the bare app's processes, and the whole machine.

    Samples /proc every `interval` s until stop(); the steady window runs from `warmup` s after
    the generator's worker processes appear to the last sample where they still exist, so Locust's
    start-up and shutdown do not dilute the figures.
    """

    def __init__(self, generator_pid: int | None, node_pids: list[int], bare_pids: list[int],
                 interval: float = 1.0, warmup: float = 1.5):
        self.generator_pid = generator_pid
        self.roots = set(node_pids) | set(bare_pids)
        self.interval, self.warmup = interval, warmup
        self.samples: list[tuple[float, tuple[float, float], dict[int, tuple], set[int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _sample(self) -> None:
        snap = proc_snapshot()
        gen = descendants(snap, {self.generator_pid}) if self.generator_pid else set()
        self.samples.append((time.monotonic(), machine_cpu(), snap, gen))

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        with_workers = [i for i, s in enumerate(self.samples) if len(s[3]) > 1]
        if len(with_workers) >= 2:
            t_first = self.samples[with_workers[0]][0]
            start = next((i for i in with_workers if self.samples[i][0] >= t_first + self.warmup),
                         with_workers[0])
            end = with_workers[-1]
            if end <= start:
                start = with_workers[0]
        else:
            start, end = 0, len(self.samples) - 1
        (t0, m0, snap0, gen0), (t1, m1, snap1, gen1) = self.samples[start], self.samples[end]
        wall = max(t1 - t0, 1e-6)
        used = cpu_deltas({p: (i[1], i[3]) for p, i in snap0.items()},
                          {p: (i[1], i[3]) for p, i in snap1.items()})
        gen_pids = gen0 | gen1
        lab = descendants(snap1, self.roots) if self.roots else set()
        components: dict[str, float] = {}
        for pid, seconds in used.items():
            if pid in gen_pids:
                key = "generator"
            elif pid in lab:
                key = classify(snap1[pid][0], snap1[pid][4])
            else:
                continue
            components[key] = components.get(key, 0.0) + seconds
        per_proc = [100 * used[p] / wall for p in gen_pids
                    if p in used and p != self.generator_pid]
        total_j = m1[1] - m0[1]
        return {
            "window_s": round(wall, 1),
            "cpu_pct": {k: round(100 * v / wall, 1) for k, v in sorted(components.items())},
            "gen_per_process_pct": [round(p, 1) for p in sorted(per_proc, reverse=True)],
            "machine_busy_pct": round(100 * (m1[0] - m0[0]) / total_j, 1) if total_j else 0.0,
        }


# ---------------------------------------------------------------------------------------------
# Running things
# ---------------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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
    result.update(url=url, load_avg_start=load0, load_avg_end=loadavg(), profile=profile)
    gen = profile["cpu_pct"].get("generator", 0.0)
    result["warnings"] = saturation_warnings(gen, args.processes, profile["gen_per_process_pct"],
                                             os.cpu_count() or 1, profile["machine_busy_pct"])
    for warning in result["warnings"]:
        log(f"WARNING ({name}): {warning}")
    log(f"case {name}: {result['rps']:.0f} req/s, p95 {result['p95_ms']:.0f} ms, "
        f"{result['failures']} failures, generator {gen:.0f} % CPU, machine "
        f"{profile['machine_busy_pct']:.0f} % busy")
    return result


class BareApp:
    """redis-server + gunicorn on loopback, as scripts/bench_app.py starts them."""

    def __init__(self, workers: int, threads: int):
        self.workers, self.threads = workers, threads
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="swarmlab-loadtest-"))

    def __enter__(self) -> "BareApp":
        redis_port, app_port = free_port(), free_port()
        self.procs.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
             "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
             "--requirepass", BARE_PASSWORD, "--logfile", str(self.workdir / "redis.log")]))
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(app_port),
               "GUNICORN_WORKERS": str(self.workers), "GUNICORN_THREADS": str(self.threads),
               "REDIS_URL": f"redis://:{BARE_PASSWORD}@127.0.0.1:{redis_port}/0",
               "COUNTER_KEY": "loadtest:counter"}
        with open(self.workdir / "gunicorn.log", "wb") as logf:
            self.procs.append(subprocess.Popen(
                [str(Path(sys.executable).with_name("gunicorn")), "--config",
                 str(APP_DIR / "gunicorn.conf.py"), "counter:create_app()"],
                cwd=APP_DIR, env=env, stdout=logf, stderr=subprocess.STDOUT))
        self.url = f"http://127.0.0.1:{app_port}"
        wait_ready(self.url, 30)
        return self

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


class Lab:
    """The stack on the lab, reached with `docker exec <node> docker ...`."""

    def __init__(self, manager: str, stack: str):
        self.manager, self.stack = manager, stack
        self.prefix = manager.rsplit("-", 1)[0]

    def node_containers(self) -> list[str]:
        names = sh(["docker", "ps", "--format", "{{.Names}}"]).split()
        return sorted(n for n in names if n.startswith(self.prefix + "-")
                      and re.fullmatch(r"(manager|worker)\d+", n[len(self.prefix) + 1:]))

    def node_pids(self) -> list[int]:
        return [int(sh(["docker", "inspect", "-f", "{{.State.Pid}}", n]).strip())
                for n in self.node_containers()]

    def docker(self, *args: str, node: str | None = None, timeout: float = 60,
               check: bool = True) -> str:
        return sh(["docker", "exec", node or self.manager, "docker", *args], timeout=timeout,
                  check=check)

    def replicas(self) -> tuple[int, int]:
        out = self.docker("service", "ls", "--filter", f"name={self.stack}_web", "--format",
                          "{{.Name}} {{.Replicas}}")
        for line in out.splitlines():
            name, reps = line.split()[:2]
            if name == f"{self.stack}_web":
                running, desired = reps.split("/")[:2]
                return int(running), int(desired.split()[0])
        raise RuntimeError(f"service {self.stack}_web not found on {self.manager}")

    def scale(self, replicas: int, timeout: float) -> float:
        t0 = time.monotonic()
        self.docker("service", "scale", "--detach", f"{self.stack}_web={replicas}")
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            running, desired = self.replicas()
            tasks = self.docker("service", "ps", "--filter", "desired-state=running", "-q",
                                f"{self.stack}_web").split()
            if running == desired == replicas and len(tasks) == replicas:
                return time.monotonic() - t0
            time.sleep(1)
        raise RuntimeError(f"{self.stack}_web did not converge to {replicas}/{replicas}")

    def task_containers(self, service: str) -> list[tuple[str, str]]:
        """[(node container, container id)] of a service's running tasks."""
        out = []
        for node in self.node_containers():
            ids = self.docker("ps", "-q", "--filter", f"name={self.stack}_{service}.",
                              node=node, check=False).split()
            out.extend((node, cid) for cid in ids)
        return out


def wrk(url: str, connections: int, seconds: int, lua: Path,
        prefix: list[str] | None = None, lua_in: str | None = None) -> dict[str, Any]:
    """wrk -t1 -c<connections> on this machine, or with `prefix` (a docker exec into the probe
    container) the copy at /opt/loadtest-probe with the lua script at lua_in."""
    binary = "/opt/loadtest-probe/wrk" if prefix else "wrk"
    cmd = [*(prefix or []), binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
           "-s", lua_in if prefix and lua_in else str(lua), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((l for l in out.stdout.splitlines() if l.startswith("WRK_JSON ")), None)
    if line is None:
        return {"error": (out.stdout + out.stderr).strip()[-300:]}
    data = json.loads(line.split(" ", 1)[1])
    data["rps"] = round(data["requests"] / (data["duration_us"] / 1e6), 1)
    return data


def run_profile(lab: Lab, edge_url: str, seconds: int, outdir: Path, lua: Path
                ) -> dict[str, Any]:
    """Latency and throughput along the path: host -> edge -> overlay -> web -> Redis."""
    prof: dict[str, Any] = {"load_avg_start": loadavg(), "wrk": {}, "redis": {}}
    net = f"{lab.stack}_backend"
    log(f"profile: wrk {seconds}s per probe (load average {prof['load_avg_start']})")
    prof["wrk"]["host -> edge, 1 conn"] = wrk(edge_url + "/api/counter", 1, seconds, lua)
    prof["wrk"]["host -> edge, 32 conn"] = wrk(edge_url + "/api/counter", 32, seconds, lua)
    # A probe container on the manager, attached to the stack's (attachable) overlay network, with
    # this machine's wrk and its libraries copied into the node (Debian 12 both sides).
    probe_dir = outdir / "probe"
    probe_dir.mkdir(exist_ok=True)
    shutil.copy2("/usr/bin/wrk", probe_dir / "wrk")
    for lib in ("libluajit-5.1.so.2",):
        shutil.copy2(os.path.realpath(f"/lib/x86_64-linux-gnu/{lib}"), probe_dir / lib)
    shutil.copy2(lua, probe_dir / "probe.lua")
    sh(["docker", "exec", lab.manager, "rm", "-rf", "/opt/loadtest-probe"])
    sh(["docker", "cp", str(probe_dir), f"{lab.manager}:/opt/loadtest-probe"])
    image = lab.docker("service", "inspect", "-f", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                       f"{lab.stack}_web").strip()
    name = "loadtest-probe"
    lab.docker("rm", "-f", name, check=False)
    lab.docker("run", "-d", "--name", name, "--network", net, "--user", "0",
               "--entrypoint", "sleep", "-v", "/opt/loadtest-probe:/opt/loadtest-probe:ro",
               "-e", "LD_LIBRARY_PATH=/opt/loadtest-probe", image, str(20 * seconds + 120),
               timeout=120)
    try:
        resolve = ("import socket,sys; print(' '.join(sorted(set(a[4][0] for a in "
                   "socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET)))))")
        web_ips = lab.docker("exec", name, "python3", "-c", resolve, "tasks.web").split()
        edge_ips = lab.docker("exec", name, "python3", "-c", resolve, "tasks.edge").split()
        prefix = ["docker", "exec", lab.manager, "docker", "exec", "-e", "WRK_METHOD=GET",
                  name]
        lua_in = "/opt/loadtest-probe/probe.lua"
        if edge_ips:
            prof["wrk"]["overlay probe -> edge, 1 conn"] = wrk(
                f"http://{edge_ips[0]}:8080/api/counter", 1, seconds, lua, prefix, lua_in)
        for ip in web_ips:
            prof["wrk"][f"overlay probe -> web {ip} direct, 1 conn"] = wrk(
                f"http://{ip}:8000/api/counter", 1, seconds, lua, prefix, lua_in)
        if web_ips:
            prof["wrk"][f"overlay probe -> web {web_ips[0]} direct, 32 conn"] = wrk(
                f"http://{web_ips[0]}:8000/api/counter", 32, seconds, lua, prefix, lua_in)
        if edge_ips:
            prof["wrk"]["overlay probe -> edge, 32 conn"] = wrk(
                f"http://{edge_ips[0]}:8080/api/counter", 32, seconds, lua, prefix, lua_in)
        prof["web_tasks"] = web_ips
    finally:
        lab.docker("rm", "-f", name, check=False)
    # Redis round trips: inside the master's container (loopback), and from a replica's container
    # to the master over the overlay network. With --raw, redis-cli --latency -i S samples for S
    # seconds, prints "min max avg samples" (ms) once and exits.
    cli = ("REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" "
           "redis-cli -h {h} --latency --raw -i {s} 2>&1 | tail -n 1")
    for label, service, host in (("in master container (loopback)", "redis-master", "127.0.0.1"),
                                 ("replica container -> master (overlay)", "redis-replica-1",
                                  "redis-master")):
        tasks = lab.task_containers(service)
        if not tasks:
            prof["redis"][label] = "no task found"
            continue
        node, cid = tasks[0]
        out = lab.docker("exec", cid, "sh", "-c", cli.format(s=seconds, h=host), node=node,
                         timeout=seconds + 30, check=False).strip()
        prof["redis"][label] = out
    prof["load_avg_end"] = loadavg()
    (outdir / "profile.json").write_text(json.dumps(prof, indent=2))
    return prof


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def fmt(value: Any, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def render_markdown(meta: dict[str, Any], cases: dict[str, dict[str, Any]],
                    targets: list[dict[str, Any]], profile: dict[str, Any] | None) -> str:
    lines = [f"Run {meta['started']} on {meta['cpus']} CPUs; Locust {meta['locust']} "
             f"FastHttpUser, {meta['users']} users, spawn rate {meta['spawn_rate']}/s, "
             f"{meta['seconds']} s per case, {meta['processes']} worker processes; "
             f"gunicorn {meta['workers']} workers x {meta['threads']} threads in every case.",
             "",
             "| case | req/s | p50 ms | p95 ms | p99 ms | failures | gen CPU | web CPU "
             "| web CPU ms/req | edge CPU | redis CPU | engine CPU | machine busy "
             "| load avg (start → end) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, c in cases.items():
        cpu = c["profile"]["cpu_pct"]
        lines.append(
            f"| {name} | {c['rps']:.0f} | {c['p50_ms']:.0f} | {c['p95_ms']:.0f} | "
            f"{c['p99_ms']:.0f} | {c['failures']} | {cpu.get('generator', 0):.0f} % | "
            f"{cpu.get('web', 0):.0f} % | {cpu_ms_per_request(cpu.get('web', 0), c['rps']):.2f} | "
            f"{cpu.get('edge', 0):.0f} % | "
            f"{cpu.get('redis', 0):.0f} % | {cpu.get('docker engine', 0):.0f} % | "
            f"{c['profile']['machine_busy_pct']:.0f} % | {c['load_avg_start']} → "
            f"{c['load_avg_end']} |")
    lines += ["", "CPU columns: CPU time over the case's steady window, 100 % = one core (web, "
              "edge, redis, engine: processes of the lab's nodes or of the bare app; kernel network "
              "work in softirq is in no process; machine busy: all CPUs, 100 % = all, including "
              "other jobs on the machine).", "", "| target | this run | goal | met |",
              "|---|---:|---|---|"]
    for t in targets:
        value = t["value"]
        shown = fmt(value, ".0f" if "ms" in t["target"] or "failed" in t["target"] else ".2f")
        if value is not None and "req/s" in t["target"]:
            shown += "x"
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else
                                              f"**no** (short by {t['missed_by']:.2f})"
                                              if "req/s" in t["target"] else
                                              f"**no** (over by {t['missed_by']:.0f})")
        lines.append(f"| {t['target']} | {shown} | {t['goal']} | {met} |")
    warnings = [(n, w) for n, c in cases.items() for w in c.get("warnings", [])]
    if warnings:
        lines += ["", "Warnings:", ""] + [f"- {n}: {w}" for n, w in warnings]
    if profile:
        lines += ["", f"Profile (wrk GET /api/counter, {meta['profile_seconds']} s each; load "
                  f"average {profile['load_avg_start']} → {profile['load_avg_end']}):", "",
                  "| path | conns | req/s | p50 ms | p95 ms | errors |", "|---|---:|---:|---:|---:|---:|"]
        for label, r in profile["wrk"].items():
            path, _sep, conns = label.rpartition(", ")
            if "error" in r:
                lines.append(f"| {path} | {conns.split()[0]} | error: {r['error'][:80]} | | | |")
            else:
                lines.append(f"| {path} | {conns.split()[0]} | {r['rps']:.0f} | "
                             f"{r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['errors']} |")
        lines += ["", "Redis (`redis-cli --latency --raw`: min max avg ms, samples):", ""]
        lines += [f"- {k}: `{v}`" for k, v in profile["redis"].items()]
    return "\n".join(lines) + "\n"


def render_chart(cases: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=90,
                                   gridspec_kw={"width_ratios": [3, 2]})
    names = [n for n in cases if not n.startswith("replicas-")]
    names += [n for n in cases if n.startswith("replicas-")]
    rps = [cases[n]["rps"] for n in names]
    p95 = [cases[n]["p95_ms"] for n in names]
    xs = range(len(names))
    bars = ax1.bar(xs, rps, color=["#4c72b0" if not n.startswith("replicas-") else "#55a868"
                                   for n in names])
    ax1.bar_label(bars, fmt="%.0f", fontsize=8, label_type="center", color="white",
                  fontweight="bold")
    labels = {"bare": "bare\n(host)", "single": "single\n(1+1 ctr)", "swarm": "swarm\n(as dep.)"}
    ax1.set_xticks(list(xs), [labels.get(n, n.replace("replicas-", "swarm\nx")) for n in names],
                   fontsize=8)
    ax1.set_ylabel("requests/s (bars)")
    ax1.set_title("per case", fontsize=10)
    t1 = ax1.twinx()
    t1.plot(list(xs), p95, "o-", color="#c44e52", label="p95 ms")
    for x, y in zip(xs, p95):
        t1.annotate(f"{y:.0f} ms", (x, y), textcoords="offset points", xytext=(0, 6),
                    fontsize=8, color="#c44e52", ha="center",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    t1.axhline(TARGET_P95_MS, color="#c44e52", ls=":", lw=1)
    t1.set_ylabel("p95 ms (line; dotted: 50 ms target)", color="#c44e52")
    t1.set_ylim(0, max(p95 + [TARGET_P95_MS]) * 1.25)

    sweep = sorted((int(n.split("-")[1]), cases[n]) for n in cases if n.startswith("replicas-"))
    if sweep:
        reps = [r for r, _case in sweep]
        ax2.plot(reps, [c["rps"] for _reps, c in sweep], "s-", color="#55a868", label="req/s")
        for r, c in sweep:
            ax2.annotate(f"{c['rps']:.0f}", (r, c["rps"]), textcoords="offset points",
                         xytext=(0, -13), fontsize=8, ha="center", color="#2d6a3e")
        ax2.set_xticks(reps)
        ax2.set_xlabel("web replicas (via edge)")
        ax2.set_ylabel("requests/s", color="#55a868")
        ax2.set_ylim(0, max(c["rps"] for _reps, c in sweep) * 1.3)
        t2 = ax2.twinx()
        t2.plot(reps, [c["p95_ms"] for _reps, c in sweep], "o--", color="#c44e52")
        t2.axhline(TARGET_P95_MS, color="#c44e52", ls=":", lw=1)
        t2.set_ylim(0, max([c["p95_ms"] for _reps, c in sweep] + [TARGET_P95_MS]) * 1.25)
        t2.set_ylabel("p95 ms", color="#c44e52")
        ax2.set_title("replica sweep", fontsize=10)
    else:
        ax2.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--bare", action="store_true", help="run the bare gunicorn baseline")
    parser.add_argument("--single-url", help="single mode, e.g. http://<worker2 ip>:8081")
    parser.add_argument("--edge-url", help="the stack's edge, e.g. http://<manager1 ip>:8080")
    parser.add_argument("--manager", help="the lab's manager node container (for scale/profile)")
    parser.add_argument("--stack", default="swarmlab")
    parser.add_argument("--replicas", default="", help="sweep, e.g. 1,2,4 (needs --manager)")
    parser.add_argument("--restore-replicas", type=int,
                        help="replicas to leave the service at (default: what it had)")
    parser.add_argument("--profile", action="store_true", help="wrk/redis-cli path profile")
    parser.add_argument("--profile-seconds", type=int, default=4)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--spawn-rate", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=25, help="duration of each case")
    parser.add_argument("--processes", type=int, default=2, help="Locust worker processes")
    parser.add_argument("--workers", type=int, default=3,
                        help="gunicorn workers of the bare case (the stack's default)")
    parser.add_argument("--threads", type=int, default=4,
                        help="gunicorn threads of the bare case (the image's default)")
    parser.add_argument("--converge-timeout", type=float, default=180)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "loadtest")
    parser.add_argument("--render", type=Path, metavar="RUN_DIR",
                        help="only re-render summary.md and loadtest.png from RUN_DIR/summary.json")
    args = parser.parse_args(argv)
    if args.render:
        data = json.loads((args.render / "summary.json").read_text())
        meta, cases = data["meta"], data["cases"]
        (args.render / "summary.md").write_text(
            render_markdown(meta, cases, check_targets(cases), data.get("profile")))
        render_chart(cases, args.render / "loadtest.png",
                     f"Locust {meta['users']} users, {meta['seconds']} s per case, "
                     f"{meta['cpus']} CPUs (shared; load avg at start {meta['load_avg']})")
        return 0
    if not 5 <= args.seconds <= 120:
        parser.error("--seconds must be 5..120 (every case is bounded)")
    if not 1 <= args.profile_seconds <= 30:
        parser.error("--profile-seconds must be 1..30")
    sweep = [int(x) for x in args.replicas.split(",") if x.strip()]
    if (sweep or args.profile) and not (args.manager and args.edge_url):
        parser.error("--replicas and --profile need --manager and --edge-url")
    if args.bare and shutil.which("redis-server") is None:
        parser.error("redis-server not found (apt-get install redis-server)")

    started = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    outdir = args.out / started
    outdir.mkdir(parents=True)
    lua = outdir / "wrk.lua"  # kept with the results, and copied into the overlay probe
    shutil.copy2(WRK_LUA, lua)
    locust_version = sh([str(Path(sys.executable).with_name("locust")), "--version"]).split()[1]
    meta = {"started": started, "cpus": os.cpu_count(), "locust": locust_version,
            "users": args.users, "spawn_rate": args.spawn_rate, "seconds": args.seconds,
            "processes": args.processes, "workers": args.workers, "threads": args.threads,
            "profile_seconds": args.profile_seconds, "argv": sys.argv, "load_avg": loadavg()}
    log(f"results in {outdir}; load average {meta['load_avg']}")
    lab = Lab(args.manager, args.stack) if args.manager else None
    node_pids = lab.node_pids() if lab else []
    cases: dict[str, dict[str, Any]] = {}
    profile = None
    original = None
    try:
        if args.bare:
            with BareApp(args.workers, args.threads) as bare:
                cases["bare"] = run_locust("bare", bare.url, args, outdir, [], bare.pids)
        if args.single_url:
            wait_ready(args.single_url, 30)
            log(f"single mode served by {served_by(args.single_url, 4)}")
            cases["single"] = run_locust("single", args.single_url, args, outdir, node_pids, [])
        if args.edge_url:
            wait_ready(args.edge_url, 30)
            if lab:
                original = lab.replicas()[1]
                meta["swarm_replicas"] = original
                meta["swarm_spread"] = wait_spread(args.edge_url, original, args.converge_timeout)
                log(f"edge spreads over {original} replicas: {meta['swarm_spread']}")
            cases["swarm"] = run_locust("swarm", args.edge_url, args, outdir, node_pids, [])
            if args.profile and lab:
                profile = run_profile(lab, args.edge_url, args.profile_seconds, outdir, lua)
        for n in sweep:
            assert lab is not None
            took = lab.scale(n, args.converge_timeout)
            spread = wait_spread(args.edge_url, n, args.converge_timeout)
            log(f"scaled to {n} in {took:.0f} s; edge spreads over {spread}")
            cases[f"replicas-{n}"] = run_locust(f"replicas-{n}", args.edge_url, args, outdir,
                                                node_pids, [])
            cases[f"replicas-{n}"]["spread"] = spread
    finally:
        if lab and sweep and (args.restore_replicas or original):
            restore = args.restore_replicas or original
            log(f"restoring {args.stack}_web to {restore} replicas")
            try:
                lab.scale(restore, args.converge_timeout)
            except RuntimeError as exc:
                log(f"WARNING: {exc}")
        meta["load_avg_end"] = loadavg()
        targets = check_targets(cases)
        (outdir / "summary.json").write_text(json.dumps(
            {"meta": meta, "cases": cases, "targets": targets, "profile": profile}, indent=2))
        if cases:
            md = render_markdown(meta, cases, targets, profile)
            (outdir / "summary.md").write_text(md)
            render_chart(cases, outdir / "loadtest.png",
                         f"Locust {args.users} users, {args.seconds} s per case, "
                         f"{meta['cpus']} CPUs (shared; load avg at start {meta['load_avg']})")
            print(md)
        log(f"results in {outdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
