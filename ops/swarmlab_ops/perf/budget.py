"""Where a request's CPU goes: milliseconds of CPU per request by component, over one wrk run.

Every process on the machine counts (the lab's nodes, the bare app, the monitoring stack, this
machine's own engine), grouped by what it is. CPU that no process still running at the end holds
is the generator's (wrk, our reaped child) or that of processes that started and ended inside
the run (health checks, `docker exec`). The components add up to the machine's busy time over the
run, so the bare and Swarm columns compare like for like.

"kernel irq" (irq + softirq from /proc/stat: where the overlay's VXLAN, the bridges and the veths
are processed) is shown apart, as a part of the total: with tick-based accounting and no
CONFIG_IRQ_TIME_ACCOUNTING (our machines' kernel, /proc/config.gz) each interrupt tick is also
charged to whichever process was running, so it is inside the rows above, not beside them. On a
kernel with it, interrupt time is charged to no process and lands in "short-lived".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ..loadtest.cpu import TICKS, child_cpu, classify, cpu_deltas, proc_snapshot

# In the order of the table; "short-lived" and "generator" are derived, not matched by name.
COMPONENTS = ("web", "redis", "sentinel", "edge", "docker engine", "monitoring", "other",
              "short-lived", "generator")
# Shown under the total, not added to it (see above).
APART = ("kernel irq", "steal")
MONITORING = ("prometheus", "alertmanager", "grafana")


class Sample(NamedTuple):
    procs: dict[int, tuple[str, str, int, float, str]]
    stat: list[int]      # /proc/stat's aggregate cpu line, jiffies
    children: float      # CPU seconds of our reaped children (the generator)


def take() -> Sample:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return Sample(proc_snapshot(), [int(x) for x in fields], child_cpu())


def component(comm: str, cmdline: str = "") -> str:
    """What a process is: the load test's classes (loadtest.cpu.classify), with the monitoring
    stack and the Sentinels apart from "other" and "redis"."""
    if comm.endswith("_exporter") or comm.startswith(MONITORING):
        return "monitoring"
    kind = classify(comm, cmdline)
    # Sentinel is the same binary as the server: its command line says which.
    if kind == "redis" and (comm == "redis-sentinel" or "[sentinel]" in cmdline):
        return "sentinel"
    return kind


def split(before: Sample, after: Sample, requests: int) -> dict[str, float]:
    """CPU ms per request by component between two samples, plus "total" (the machine's busy
    time), "kernel irq" (part of the total) and "steal" (time the hypervisor gave to others: not
    in the total). Empty when no request was served."""
    if requests <= 0:
        return {}
    seconds = {name: 0.0 for name in COMPONENTS}
    used = cpu_deltas({p: (i[1], i[3]) for p, i in before.procs.items()},
                      {p: (i[1], i[3]) for p, i in after.procs.items()})
    for pid, cpu in used.items():
        if cpu > 0:
            comm, _start, _ppid, _cpu, cmd = after.procs[pid]
            seconds[component(comm, cmd)] += cpu
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    d = [(b - a) / TICKS for a, b in zip(before.stat, after.stat)]
    while len(d) < 8:
        d.append(0.0)
    busy = d[0] + d[1] + d[2] + d[5] + d[6]
    seconds["generator"] = max(after.children - before.children, 0.0)
    counted = sum(seconds.values())
    # Tick accounting rounds per process: a small negative remainder is noise, not CPU.
    seconds["short-lived"] = max(busy - counted, 0.0)
    out = {name: 1000 * s / requests for name, s in seconds.items()}
    out["total"] = 1000 * max(busy, counted) / requests
    out["kernel irq"] = 1000 * (d[5] + d[6]) / requests
    out["steal"] = 1000 * d[7] / requests
    return out


def rows(cases: dict[str, dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    """The markdown table: one row per component, one column per (case, request) that has a
    budget; [] when none has."""
    have = [(c, r) for c, r in columns if cases.get(c, {}).get(r, {}).get("cpu_ms")]
    if not have:
        return []
    head = "| CPU ms per request | " + " | ".join(f"{c} {r.split()[0]}" for c, r in have) + " |"
    out = [head, "|---|" + "---:|" * len(have)]
    for name in (*COMPONENTS, "total", *APART):
        values = [cases[c][r]["cpu_ms"].get(name, 0.0) for c, r in have]
        label = f"**{name}**" if name == "total" else name
        out.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    return out
