"""CPU by component while a load runs, sampled from /proc (generator, the lab's nodes, the bare app)."""
from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path
from typing import Any, Callable

TICKS = os.sysconf("SC_CLK_TCK")


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
        if comm.startswith(("python", "gunicorn", "locust", "redis")):  # redis: Sentinel or not
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


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def proc_cpu_seconds(pids: list[int]) -> float:
    """utime+stime of the given processes, from /proc (gunicorn master and workers)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(fn: Callable[[], dict[str, Any]], app_pids: list[int]) -> dict[str, Any]:
    """fn() (a generator run as our child, e.g. wrk) with the generator's CPU (our children), the
    app's CPU (app_pids) and the whole machine's busy share over its wall time (100 = one core;
    machine: 100 = all CPUs)."""
    cpu0, app0, mach0, wall0 = child_cpu(), proc_cpu_seconds(app_pids), machine_cpu(), time.monotonic()
    data = fn()
    wall = time.monotonic() - wall0
    mach1 = machine_cpu()
    data["gen_cpu_pct"] = 100 * (child_cpu() - cpu0) / wall
    data["app_cpu_pct"] = 100 * (proc_cpu_seconds(app_pids) - app0) / wall
    total = mach1[1] - mach0[1]
    data["machine_busy_pct"] = 100 * (mach1[0] - mach0[0]) / total if total else 0.0
    return data
