"""The load test's report: summary.md (tables) and loadtest.png (chart)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .stats import TARGET_P95_MS, cpu_ms_per_request


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
    seen = [(n, c["prometheus"]["text"]) for n, c in cases.items() if c.get("prometheus")]
    if seen:
        lines += ["", "What Prometheus saw in each case's window (beside Locust's figures above):", ""]
        lines += [f"- {n}: {text.replace(chr(10), '; ')}" for n, text in seen]
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
