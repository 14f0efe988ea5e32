"""The chart of one `swarmlab-ops perf` run: perf.png beside perf.json, docs/performance/perf.png.

Three panels, each request side by side: req/s of bare, bare-replicated and swarm (each round a
dot on its bar); their p95; the sweep's 1 and 4 replicas. Each target of issue 17 is drawn where
the figure it judges would have to reach: a bar over swarm at 0.8 x bare req/s, at 1.5 x bare p95,
over replicas-4 at 1.6 x replicas-1; green when met, red when not, with the ratio written beside.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import figures

CASES = ("bare", "bare-replicated", "swarm")
SWEEP = ("replicas-1", "replicas-4")
COLOURS = {"bare": "#4c72b0", "bare-replicated": "#8172b2", "swarm": "#dd8452",
           "replicas-1": "#93c47d", "replicas-4": "#55a868"}
MET, NOT_MET = "#2d8a4e", "#c44e52"


def _short(request: str) -> str:
    """'POST /api/counter/increment' -> 'POST increment'."""
    method, _sep, path = request.partition(" ")
    return f"{method} {path.rstrip('/').rsplit('/', 1)[-1]}"


def _panel(ax, cases: dict[str, dict[str, Any]], requests: list[str], names: tuple[str, ...],
           key: str, goal: tuple[str, str, float, str], verdicts: dict[tuple[str, str], dict[str, Any]],
           ylabel: str) -> list[tuple[str, str, bool]]:
    """Grouped bars of `key` per request; `goal` = (judged case, reference case, factor, target
    name in figures.targets) draws that target's verdict (`verdicts`, by request and name) over the
    judged case's bar. Returns the targets drawn: (request, ratio as written, met)."""
    width = 0.8 / len(names)
    top = 0.0
    drawn = []
    labelled: set[str] = set()
    for i, request in enumerate(requests):
        for j, name in enumerate(names):
            r = cases.get(name, {}).get(request)
            if not r or "error" in r:
                continue
            x = i + (j - (len(names) - 1) / 2) * width
            drawn_bar = ax.bar(x, r[key], width * 0.92, color=COLOURS[name],
                               label=None if name in labelled else name)
            labelled.add(name)
            ax.bar_label(drawn_bar, fmt="%.0f", fontsize=7, label_type="center", color="white")
            rounds = r.get("rounds_rps" if key == "rps" else "rounds_p95_ms", [])
            if len(rounds) > 1:
                ax.plot([x] * len(rounds), rounds, "k.", ms=4,
                        label=None if "rounds" in labelled else "each round")
                labelled.add("rounds")
            top = max(top, r[key], *rounds)
        judged, reference, factor, target = goal
        verdict = verdicts.get((request, target))
        if verdict is None or verdict["value"] is None:
            continue  # a case not measured, or its wrk failed: figures.targets has no ratio
        line = factor * cases[reference][request][key]
        met = verdict["met"]
        x = i + (names.index(judged) - (len(names) - 1) / 2) * width
        ax.hlines(line, x - width / 2, x + width / 2, colors=MET if met else NOT_MET, linewidth=2.2)
        ax.annotate(f"{verdict['value']:.2f}x\n(goal {verdict['goal']}x)",
                    (x, max(line, cases[judged][request][key])),
                    textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7,
                    color=MET if met else NOT_MET)
        top = max(top, line)
        drawn.append((request, f"{verdict['value']:.2f}x", met))
    ax.set_xticks(range(len(requests)), [_short(r) for r in requests], fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_ylim(0, top * 1.3 or 1)
    ax.tick_params(axis="y", labelsize=7)
    if labelled:
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", color="grey")
    return drawn


def render(result: dict[str, Any], path: Path) -> dict[str, list[tuple[str, str, bool]]]:
    """Draw `result` (perf.json's content) into `path` (PNG); returns each panel's targets as
    drawn, {panel title: [(request, ratio, met)]}."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    cases, m, q = result["cases"], result["meta"], result["quiet"]
    requests = list(dict.fromkeys(r for c in cases.values() for r in c))
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 4.4), dpi=90,
                                        gridspec_kw={"width_ratios": [3, 3, 2]})
    # The verdicts figures.targets gave (the table's), drawn, not computed again.
    verdicts = {(t["request"], t["target"]): t for t in result["targets"]}
    drawn = {}
    for ax, title, names, key, goal, ylabel in (
            (ax1, "req/s: swarm against bare", CASES, "rps",
             ("swarm", "bare", figures.TARGET_SWARM_VS_BARE, "swarm / bare req/s"), "requests/s (higher is better)"),
            (ax2, "p95 at the same connections", CASES, "p95_ms",
             ("swarm", "bare", figures.TARGET_P95_VS_BARE, "swarm p95 / bare p95"),
             "p95 latency, ms (lower is better)"),
            (ax3, "1 and 4 web replicas, through the edge", SWEEP, "rps",
             ("replicas-4", "replicas-1", figures.TARGET_SCALE_4_VS_1, "4 / 1 replicas req/s"), "requests/s")):
        drawn[title] = _panel(ax, cases, requests, names, key, goal, verdicts, ylabel)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"swarmlab-ops perf, run {m['started']}: wrk -t{m['wrk_threads']} -c{m['connections']} "
                 f"-d{m['seconds']}s, {m.get('rounds', 1)} round(s); {q['cpus']} CPUs "
                 f"{q['idle_pct']:.0f} % idle before the start, quiet: {'yes' if q['quiet'] else 'no'}\n"
                 "the short line over a bar: where issue 17's target for it lies (green: met, red: not met)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return drawn
