"""The quiet-machine guard of the benchmarks (issue 17): is this machine fit to measure on?

Before a benchmark starts it reads, over a 5 s window: the load average, the CPUs' idle share (from
/proc/stat), the other labs' containers (labelled org.swarmlab.lab=<name>, any name but the lab
under test) and the heaviest processes (CPU over the window, the lab under test's own and this
process's excluded). The machine is quiet when the CPUs were >= 90 % idle, not counting what the
lab under test used itself, and no other lab runs. The lab's own use is part of what is measured,
not noise: an idle lab with monitoring (Prometheus scraping, health checks) keeps 2 CPUs only about
85 % idle, so a raw idle threshold would refuse every run on the lab it is meant to measure. The
load average alone is not the test either (an idle lab keeps it near 3 on 2 cores). The readings
are always printed and recorded; only writing figures into docs/ is refused on a machine that was
not quiet.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable

from .lab.nodes import LAB_LABEL
from .loadtest.cpu import cpu_deltas, descendants, proc_snapshot

MIN_IDLE_PCT = 90.0
WINDOW_S = 5.0
HEAVY_MIN_PCT = 5.0  # a process using at least this share of one core over the window is listed
HEAVY_TOP = 5


def cpu_jiffies(stat_text: str) -> tuple[int, int]:
    """(idle, total) jiffies of all CPUs from the text of /proc/stat (its aggregate "cpu" line;
    idle counts iowait too; guest time is already inside user/nice and is not added twice)."""
    line = next(l for l in stat_text.splitlines() if l.startswith("cpu "))
    fields = [int(x) for x in line.split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


def idle_pct(stat_before: str, stat_after: str) -> float:
    """The CPUs' idle share (0-100, all CPUs) between two /proc/stat samples."""
    idle0, total0 = cpu_jiffies(stat_before)
    idle1, total1 = cpu_jiffies(stat_after)
    if total1 <= total0:
        raise ValueError("the second /proc/stat sample is not later than the first")
    return 100.0 * (idle1 - idle0) / (total1 - total0)


def other_labs(containers: Iterable[dict[str, Any]], lab: str | None) -> dict[str, list[str]]:
    """{lab name: [container names]} of running containers labelled org.swarmlab.lab with a name
    other than `lab`. Each container: {"name": ..., "labels": {...}}."""
    found: dict[str, list[str]] = {}
    for ctr in containers:
        name = (ctr.get("labels") or {}).get(LAB_LABEL)
        if name and name != lab:
            found.setdefault(name, []).append(ctr["name"])
    return {k: sorted(v) for k, v in sorted(found.items())}


def verdict(idle: float | None, others: dict[str, list[str]] | None,
            min_idle: float = MIN_IDLE_PCT, lab_pct: float = 0.0) -> tuple[bool, list[str]]:
    """(quiet, reasons it is not): CPUs >= min_idle % idle once the lab under test's own share
    (lab_pct, % of all CPUs) is counted as idle, and no other lab (None: unknown)."""
    reasons = []
    if idle is None:
        reasons.append("CPU idle share unknown")
    elif idle + lab_pct < min_idle:
        reasons.append(f"CPUs only {idle + lab_pct:.0f} % idle over the {WINDOW_S:.0f} s before "
                       f"the start, the lab under test's own {lab_pct:.0f} % counted as idle "
                       f"(needs >= {min_idle:.0f} %)")
    if others is None:
        reasons.append("could not list the containers (other labs unknown)")
    elif others:
        reasons.append("other labs running: " + ", ".join(
            f"{name} ({len(ctrs)} containers)" for name, ctrs in others.items()))
    return not reasons, reasons


def heavy_processes(snap0: dict[int, tuple], snap1: dict[int, tuple], wall: float,
                    exclude: set[int], min_pct: float = HEAVY_MIN_PCT, top: int = HEAVY_TOP
                    ) -> list[dict[str, Any]]:
    """The top CPU users between two cpu.proc_snapshot()s, pids in `exclude` left out."""
    used = cpu_deltas({p: (i[1], i[3]) for p, i in snap0.items()},
                      {p: (i[1], i[3]) for p, i in snap1.items()})
    rows = [{"pid": pid, "comm": snap1[pid][0], "cpu_pct": round(100 * sec / wall, 1)}
            for pid, sec in used.items() if pid not in exclude and 100 * sec / wall >= min_pct]
    return sorted(rows, key=lambda r: -r["cpu_pct"])[:top]


def lab_share(snap0: dict[int, tuple], snap1: dict[int, tuple], wall: float, roots: set[int],
              cpus: int | None = None) -> float:
    """The share of all CPUs (0-100) that the processes under `roots` (the lab under test's node
    containers) used between two cpu.proc_snapshot()s."""
    pids = descendants(snap1, roots) | descendants(snap0, roots)
    used = cpu_deltas({p: (i[1], i[3]) for p, i in snap0.items()},
                      {p: (i[1], i[3]) for p, i in snap1.items()})
    if wall <= 0:
        return 0.0
    return 100.0 * sum(sec for pid, sec in used.items() if pid in pids) / (wall * (cpus or os.cpu_count() or 1))


def _containers() -> list[dict[str, Any]]:
    """Running containers with a lab label on this machine's engine: name, labels, init pid."""
    import docker  # pylint: disable=import-outside-toplevel

    client = docker.from_env()
    try:
        return [{"name": c.name, "labels": c.labels, "pid": c.attrs["State"]["Pid"]}
                for c in client.containers.list(filters={"label": LAB_LABEL})]
    finally:
        client.close()


def read(lab: str | None, window: float | None = None) -> dict[str, Any]:
    """The guard's readings over `window` seconds (default WINDOW_S) from now: call it right
    before the start."""
    containers: list[dict[str, Any]] | None
    error = ""
    try:
        containers = _containers()
    except Exception as exc:  # pylint: disable=broad-except  # any engine failure: unknown, not quiet
        containers, error = None, str(exc)
    own = {c["pid"] for c in containers or [] if c["labels"].get(LAB_LABEL) == lab and c["pid"]}
    stat0, snap0, t0 = Path("/proc/stat").read_text(), proc_snapshot(), time.monotonic()
    time.sleep(WINDOW_S if window is None else window)
    stat1, snap1, t1 = Path("/proc/stat").read_text(), proc_snapshot(), time.monotonic()
    exclude = descendants(snap1, own | {os.getpid()}) | descendants(snap0, own)
    idle = idle_pct(stat0, stat1)
    lab_pct = lab_share(snap0, snap1, t1 - t0, own)
    others = other_labs(containers, lab) if containers is not None else None
    quiet, reasons = verdict(idle, others, lab_pct=lab_pct)
    return {"lab": lab, "load_avg": Path("/proc/loadavg").read_text().split()[:3],
            "cpus": os.cpu_count(), "window_s": round(t1 - t0, 1), "idle_pct": round(idle, 1),
            "lab_pct": round(lab_pct, 1),
            "other_labs": others, "containers_error": error,
            "heavy": heavy_processes(snap0, snap1, t1 - t0, exclude),
            "quiet": quiet, "reasons": reasons}


def recheck(reading: dict[str, Any]) -> None:
    """After the run: another lab that came up meanwhile makes the run not quiet after all."""
    try:
        others = other_labs(_containers(), reading["lab"])
    except Exception as exc:  # pylint: disable=broad-except
        others, reading["containers_error"] = None, str(exc)
    if others != {}:
        reading["quiet"] = False
        reading["reasons"].append("after the run: " + (
            "could not list the containers" if others is None else
            "other labs running: " + ", ".join(others)))


def describe(reading: dict[str, Any]) -> str:
    """The guard's lines, printed first by every benchmark."""
    others = reading["other_labs"]
    heavy = ", ".join(f"{h['comm']} ({h['pid']}) {h['cpu_pct']:.0f} %" for h in reading["heavy"])
    lines = [
        f"machine: {reading['cpus']} CPUs, load average {' '.join(reading['load_avg'])}",
        f"CPU idle over the {reading['window_s']:.0f} s before the start: {reading['idle_pct']:.0f} %"
        f" (the lab under test used {reading.get('lab_pct', 0):.0f} % of the CPUs)",
        "other labs: " + ("unknown (" + reading["containers_error"] + ")" if others is None else
                          ", ".join(f"{k}: {' '.join(v)}" for k, v in others.items()) or "none"),
        "heavy processes (% of one core, lab under test excluded): " + (heavy or "none"),
        "quiet: yes" if reading["quiet"] else "quiet: NO (" + "; ".join(reading["reasons"]) + ")",
    ]
    return "\n".join(lines)


def guard(lab: str | None, window: float | None = None) -> dict[str, Any]:
    """Read and print the guard (stdout, the benchmark's first lines); return the readings."""
    reading = read(lab, window)
    print(describe(reading), flush=True)
    return reading


def refuse_unless_quiet(reading: dict[str, Any], what: str = "--write-docs") -> None:
    """SystemExit naming why, when the machine was not quiet."""
    if not reading.get("quiet"):
        raise SystemExit(f"{what} refused: the machine was not quiet: " + "; ".join(reading.get("reasons") or
                                                                                    ["no reading"]))
