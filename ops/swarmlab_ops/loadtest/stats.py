"""Pure figures of a load test: Locust's CSV, the targets of issue 8, generator saturation."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

# Targets of issue 8, checked by check_targets().
TARGET_SWARM_VS_BARE = 0.8
TARGET_SCALE_4_VS_1 = 1.6
TARGET_P95_MS = 50.0
SATURATION = 0.9  # generator CPU at or above this share of its cores: warn


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
