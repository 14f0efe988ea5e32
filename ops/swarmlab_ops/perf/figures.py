"""Pure figures of `swarmlab-ops perf`: the targets of issue 17, the table, the docs rewrite.

cases: {case: {request: wrk result}}, case in bare, bare-replicated, swarm, replicas-1, replicas-4; request e.g.
"POST /api/counter/increment"; a wrk result has rps, p50_ms, p95_ms, p99_ms, errors, gen_cpu_pct.
"""
from __future__ import annotations

from typing import Any

from . import budget

TARGET_SWARM_VS_BARE = 0.8   # swarm req/s >= 0.8 x bare req/s
TARGET_P95_VS_BARE = 1.5     # swarm p95 <= 1.5 x bare p95
TARGET_SCALE_4_VS_1 = 1.6    # 4 replicas req/s >= 1.6 x 1 replica
BEGIN = "<!-- perf:begin (written by swarmlab-ops perf --write-docs) -->"
END = "<!-- perf:end -->"
NOT_MEASURED = "Not measured yet on a quiet machine."
INFO = "(information)"


def _ratio(cases: dict[str, dict[str, Any]], num: str, den: str, request: str, key: str) -> float | None:
    a, b = cases.get(num, {}).get(request), cases.get(den, {}).get(request)
    if not a or not b or "error" in a or "error" in b or not b.get(key):
        return None
    return a[key] / b[key]


def targets(cases: dict[str, dict[str, Any]], requests: list[str]) -> list[dict[str, Any]]:
    """Each target for each request: {request, target, value, goal, met} (met None: not measured)."""
    out = []
    for request in requests:
        for target, num, den, key, goal, ok in (
                ("swarm / bare req/s", "swarm", "bare", "rps", f">= {TARGET_SWARM_VS_BARE}",
                 lambda v: v >= TARGET_SWARM_VS_BARE),
                ("swarm p95 / bare p95", "swarm", "bare", "p95_ms", f"<= {TARGET_P95_VS_BARE}",
                 lambda v: v <= TARGET_P95_VS_BARE),
                ("4 / 1 replicas req/s", "replicas-4", "replicas-1", "rps", f">= {TARGET_SCALE_4_VS_1}",
                 lambda v: v >= TARGET_SCALE_4_VS_1),
                # The same goals with the stack's Redis guarantees on both sides: what the Swarm
                # itself costs. Information beside issue 17's targets, not one of them.
                (f"{INFO} swarm / bare-replicated req/s", "swarm", "bare-replicated", "rps",
                 f">= {TARGET_SWARM_VS_BARE}", lambda v: v >= TARGET_SWARM_VS_BARE),
                (f"{INFO} swarm p95 / bare-replicated p95", "swarm", "bare-replicated", "p95_ms",
                 f"<= {TARGET_P95_VS_BARE}", lambda v: v <= TARGET_P95_VS_BARE)):
            value = _ratio(cases, num, den, request, key)
            out.append({"request": request, "target": target, "value": value, "goal": goal,
                        "met": None if value is None else ok(value)})
        errors = {case: int(r[request].get("errors", 0)) for case, r in cases.items()
                  if request in r and r[request].get("errors")}
        out.append({"request": request, "target": "errors, every case (else the ratios mean nothing)",
                    "value": sum(errors.values()), "goal": "0", "met": None if not cases else not errors,
                    "detail": errors})
    return out


def median_round(runs: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One case's rounds ({request: wrk result} each) as one: per request, the round with the
    median req/s (the lower middle of an even count), its other figures with it; every round's
    req/s and p95 kept (rounds_rps, rounds_p95_ms) and the errors of all rounds added up. A round
    whose wrk failed makes the request's result that failure: the ratios would mean nothing."""
    out: dict[str, dict[str, Any]] = {}
    for request in dict.fromkeys(r for run in runs for r in run):
        results = [run[request] for run in runs if request in run]
        failed = [r for r in results if "error" in r]
        if failed:
            out[request] = failed[0]
            continue
        chosen = dict(sorted(results, key=lambda r: r["rps"])[(len(results) - 1) // 2])
        chosen["errors"] = sum(int(r.get("errors", 0)) for r in results)
        chosen["rounds_rps"] = [r["rps"] for r in results]
        chosen["rounds_p95_ms"] = [r["p95_ms"] for r in results]
        out[request] = chosen
    return out


def _met(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "**not met**")


def _each_round(r: dict[str, Any]) -> str:
    if len(r.get("rounds_rps", [])) < 2:
        return "once"
    return ", ".join(f"{rps:.0f} ({p95:.0f})" for rps, p95 in zip(r["rounds_rps"], r["rounds_p95_ms"]))


def case_rows(cases: dict[str, dict[str, Any]]) -> list[str]:
    rows = ["| case | request | req/s | p50 ms | p95 ms | p99 ms | errors | generator CPU | machine busy | "
            "each round: req/s (p95 ms) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for case, by_request in cases.items():
        for request, r in by_request.items():
            if "error" in r:
                rows.append(f"| {case} | {request} | wrk failed: {r['error'][:60]} | | | | | | | |")
                continue
            rows.append(f"| {case} | {request} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                        f"{r['p99_ms']:.1f} | {int(r['errors'])} | {r.get('gen_cpu_pct', 0):.0f} % | "
                        f"{r.get('machine_busy_pct', 0):.0f} % | {_each_round(r)} |")
    return rows


def target_rows(checks: list[dict[str, Any]]) -> list[str]:
    rows = ["| request | target | this run | goal | verdict |", "|---|---|---:|---|---|"]
    for t in checks:
        value = t["value"]
        shown = "n/a" if value is None else (f"{value}" if isinstance(value, int) else f"{value:.2f}x")
        goal = t["goal"] if t["goal"] == "0" else t["goal"] + "x"
        rows.append(f"| {t['request']} | {t['target']} | {shown} | {goal} | {_met(t['met'])} |")
    return rows


def render(result: dict[str, Any]) -> str:
    """The markdown of one run: what ran, the guard's readings, the cases, the targets."""
    m, q = result["meta"], result["quiet"]
    lines = [
        f"Run {m['started']}, lab `{m['lab']}`: `{m['command']}`; wrk -t{m['wrk_threads']} "
        f"-c{m['connections']} -d{m['seconds']}s per case and request (the package's wrk_report.lua), "
        f"{m.get('rounds', 1)} round(s) of the bare cases and swarm in turn, each row the round with the "
        "median req/s; "
        f"bare: gunicorn {m.get('bare_workers', m['workers'])} workers x {m.get('bare_threads', m['threads'])} "
        f"threads, at most {m.get('bare_worker_connections', 1000)} connections per worker + redis-server "
        "on loopback; swarm: the stack through its edge at "
        f"{m.get('swarm_replicas', '?')} replicas of gunicorn {m['workers']} worker(s) x {m['threads']} threads "
        f"({m['settings_source']}), each increment WAITing for {m.get('swarm_wait_replicas', 0)} Redis replica(s) "
        "(bare: none, a lone redis-server); bare-replicated: the bare gunicorn with "
        f"{m.get('bare_replicated_redis', 'replicated Redis')} on loopback, as the stack runs Redis (no "
        "Sentinel); replicas-N: web scaled to N, then restored.",
        "",
        f"Machine before the start: {q['cpus']} CPUs, load average {' '.join(q['load_avg'])}, CPUs "
        f"{q['idle_pct']:.0f} % idle over {q['window_s']:.0f} s (the lab under test itself used "
        f"{q.get('lab_pct', 0):.0f} %), other labs: "
        f"{', '.join(q['other_labs'] or {}) or 'none'}; quiet: {'yes' if q['quiet'] else 'no'}.",
        "", *case_rows(result["cases"]), "", *target_rows(result["targets"])]
    columns = [(case, request) for request in dict.fromkeys(r for c in result["cases"].values() for r in c)
               for case in ("bare", "bare-replicated", "swarm")]
    table = budget.rows(result["cases"], columns)
    if table:
        lines += ["", "Where the CPU goes, bare, bare-replicated and swarm (ms of CPU per request, every process of the "
                  "machine by component; short-lived: processes that started and ended during the run, "
                  "health checks and `docker exec`; kernel irq: interrupt and softirq time, the network "
                  "path, already inside the rows above (charged to the process it interrupted); "
                  "steal: taken by the hypervisor, not in total):", "", *table]
    return "\n".join(lines)


def rewrite_between(text: str, body: str) -> str:
    """`text` with everything between the BEGIN and END markers replaced by `body` (exactly one
    pair, in that order, else ValueError: nothing is written)."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"need exactly one {BEGIN!r} followed by one {END!r}")
    head, rest = text.split(BEGIN)
    _old, tail = rest.split(END)
    return f"{head}{BEGIN}\n{body.strip()}\n{END}{tail}"
