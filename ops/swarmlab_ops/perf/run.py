"""The performance benchmark of issue 17: bare vs Swarm and 1 vs 4 replicas, one run, one generator.

Prints the quiet-machine guard first (swarmlab_ops.quiet), then runs wrk (the package's
wrk_report.lua for p50/p95/p99) with the same threads, connections and duration against each case,
for POST /api/counter/increment and GET /api/counter:

  bare        gunicorn serving app/, sized for the whole machine (--bare-workers, default 3 as in
              issue 17's reference; --bare-threads, default the image's GUNICORN_THREADS), and a
              local redis-server, both on loopback; GUNICORN_WORKER_CONNECTIONS = connections /
              workers + threads, so wrk's keep-alive connections use every worker (the bare app
              at its best, the strict baseline). Not the stack's per-replica settings: those
              are tuned for 4 replicas sharing the machine, and a baseline that followed them
              would move whenever the stack is tuned
  bare-replicated
              the same bare gunicorn with Redis as the deployed stack runs it (loadtest/bareredis.py;
              read from the lab when swarm or the sweep runs too, else the stack role's defaults):
              a master and its replicas, AOF, TLS for clients and replication when the stack has
              it, the app WAITing for as many replicas as the stack's; no Sentinel. Against it, the
              Swarm's own cost (edge, overlay, containers) apart from what its Redis guarantees cost
  swarm       the stack through its edge (manager's lab address), at the replicas it runs
  replicas-N  web scaled to 1, then 4 (Engine API, N/N by the collection's convergence rule and
              the edge seen spreading over exactly N replicas); restored afterwards, also on failure

Then one table (req/s, p50, p95, p99, errors, generator CPU, machine busy), the targets: swarm /
bare req/s >= 0.8, swarm p95 <= 1.5 x bare p95, 4 / 1 replicas req/s >= 1.6, each met or not (and
the first two against bare-replicated, for information), and the CPU per request by component,
bare, bare-replicated and swarm side by side (budget.py).
Results: results/perf/<time>/perf.json (with the guard's readings) and perf.png, the chart (req/s
and p95 per case with each target drawn where it lies, chart.py). --write-docs rewrites the table in
docs/performance.md between its markers and the chart beside it, and is refused unless the machine
was quiet. --render RUN_DIR prints and draws a past run again.
Traffic goes only to 127.0.0.1 and the lab's container addresses; every case is bounded in time.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import quiet
from ..checkout import ROOT, results_dir
from ..loadtest.cpu import children_of, measured
from ..loadtest.locust import BareApp, spread_connections, wait_ready, wait_spread
from ..loadtest.profile import wrk
from ..options import comma_list
from ..report import log
from . import budget, chart, figures, settings

REQUESTS = [("POST /api/counter/increment", "POST", "/api/counter/increment"),
            ("GET /api/counter", "GET", "/api/counter")]
SWEEP = (1, 4)
CASES = ("bare", "bare-replicated", "swarm", "sweep")
BARE_CASES = ("bare", "bare-replicated")
MAX_LOAD_SECONDS = 600  # all cases' wrk runs together
DOCS = ROOT / "docs" / "performance.md"
CHART = "perf.png"  # beside perf.json, and docs/performance/perf.png


def planned_seconds(cases: list[str], seconds: int, rounds: int = 1) -> int:
    runs = sum(len(SWEEP) if c == "sweep" else rounds for c in cases)
    return runs * len(REQUESTS) * seconds


def check_args(args: Any) -> list[str]:
    """The cases to run; SystemExit on bad or unbounded settings, before anything starts."""
    cases = list(args.cases)
    if not cases:
        raise SystemExit(f"--cases: a comma-separated subset of {','.join(CASES)}")
    if not 5 <= args.seconds <= 60:
        raise SystemExit("--seconds must be 5..60 (every case is bounded)")
    if not 1 <= args.bare_workers <= 16 or not 1 <= (args.bare_threads or 1) <= 64:
        raise SystemExit("--bare-workers must be 1..16 and --bare-threads 1..64")
    if not 1 <= args.wrk_threads <= args.connections <= 256:
        raise SystemExit("need 1 <= --wrk-threads <= --connections <= 256")
    if not 1 <= args.rounds <= 9:
        raise SystemExit("--rounds must be 1..9")
    planned = planned_seconds(cases, args.seconds, args.rounds)
    if planned > MAX_LOAD_SECONDS:
        raise SystemExit(f"{planned} s of load planned, more than {MAX_LOAD_SECONDS} s: lower "
                         "--seconds or --rounds")
    tools = ["wrk"]
    if set(cases) & set(BARE_CASES):
        tools += ["redis-server", "redis-cli"]
    if "bare-replicated" in cases:
        tools.append("openssl")
    for tool in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install redis-server wrk)")
    return cases


def load(url: str, args: Any, lua: str, allowed: set[str], app_pids: list[int]) -> dict[str, Any]:
    """Every request of REQUESTS against `url` with wrk, the generator's CPU measured and the
    machine's CPU per request by component (budget)."""
    host = urlsplit(url).hostname or ""
    if host not in allowed:
        raise RuntimeError(f"refusing to send load to {host}: only loopback and the lab's containers")
    out = {}
    for name, method, path in REQUESTS:
        log(f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.seconds}s {method} {url}{path}")
        before = budget.take()
        out[name] = measured(lambda m=method, p=path: wrk(url + p, args.connections, args.seconds, lua,
                                                          method=m, threads=args.wrk_threads), app_pids)
        out[name]["cpu_ms"] = budget.split(before, budget.take(), int(out[name].get("requests", 0)))
        if "error" in out[name]:
            log(f"WARNING: wrk failed: {out[name]['error']}")
    return out


def restore(swarm: Any, replicas: int, timeout: float) -> None:
    """Web back to the replicas it had; a failure here is logged, not raised over the run's own."""
    try:
        if swarm.replicas().get("web") != replicas:
            log(f"restoring {swarm.service_name('web')} to {replicas} replicas")
            swarm.scale("web", replicas, timeout)
    except Exception as exc:  # pylint: disable=broad-except
        log(f"WARNING: could not restore web to {replicas} replicas: {exc}")


def run(args: Any) -> int:  # pylint: disable=too-many-locals,too-many-branches,too-many-statements
    if args.render:
        return rerender(args)
    cases_wanted = check_args(args)
    reading = quiet.guard(args.lab)
    if args.write_docs and not reading["quiet"]:
        log("WARNING: --write-docs will be refused at the end: " + "; ".join(reading["reasons"]))
    needs_lab = "swarm" in cases_wanted or "sweep" in cases_wanted
    web = settings.from_checkout()
    swarm = None
    web_env: dict[str, str] = {}
    allowed = {"127.0.0.1"}
    if needs_lab:
        from ..lab import Lab, Swarm  # pylint: disable=import-outside-toplevel
        from ..lab.swarm import service_env  # pylint: disable=import-outside-toplevel
        lab = Lab(args.lab)
        swarm = Swarm(lab, args.stack)
        allowed |= {n.address for n in lab.nodes.values()}
        web_env = service_env(swarm.service("web")["Spec"])
        web = settings.from_service(web_env, web)
    layout = settings.redis_from_checkout()
    if swarm is not None and "bare-replicated" in cases_wanted:
        layout = settings.redis_from_stack(
            web_env, list(swarm.replicas()),
            swarm.service("redis-master")["Spec"]["TaskTemplate"]["ContainerSpec"].get("Args", []))
    outdir = results_dir("perf")
    meta: dict[str, Any] = {
        "started": outdir.name, "lab": args.lab, "command": "swarmlab-ops " + " ".join(sys.argv[1:]),
        "connections": args.connections, "wrk_threads": args.wrk_threads, "seconds": args.seconds,
        "workers": web["workers"], "threads": web["threads"], "settings_source": web["source"],
        "bare_workers": args.bare_workers, "bare_threads": args.bare_threads or settings.image_threads(),
        "swarm_wait_replicas": web.get("swarm_wait_replicas", 0),
        "bare_replicated_redis": layout.describe()}
    meta["bare_worker_connections"] = spread_connections(args.connections, args.bare_workers, meta["bare_threads"])
    cases: dict[str, dict[str, Any]] = {}
    rounds: dict[str, list[dict[str, Any]]] = {}
    original = None
    try:
        with as_file(files("swarmlab_ops").joinpath("wrk_report.lua")) as lua_path:
            lua = str(lua_path)
            edge = None
            if swarm is not None:
                edge = swarm.edge_url()
                wait_ready(edge, 30)
                original = swarm.replicas()["web"]
                if "swarm" in cases_wanted:
                    meta["swarm_replicas"] = original
                    meta["swarm_spread"] = wait_spread(edge, original, args.converge_timeout)
            # Bare and swarm alternate, round after round: the machine's speed drifts by more
            # than the differences looked for, so each case is seen at several moments.
            for number in range(1, args.rounds + 1):
                if args.rounds > 1:
                    log(f"round {number} of {args.rounds}")
                for case in (c for c in BARE_CASES if c in cases_wanted):
                    layout_of_case = layout if case == "bare-replicated" else None
                    with BareApp(meta["bare_workers"], meta["bare_threads"], args.connections,
                                 redis=layout_of_case) as bare:
                        gunicorn = bare.procs[-1].pid
                        rounds.setdefault(case, []).append(
                            load(bare.url, args, lua, allowed, [gunicorn, *children_of(gunicorn)]))
                if edge is not None and "swarm" in cases_wanted:
                    rounds.setdefault("swarm", []).append(load(edge, args, lua, allowed, []))
            if edge is not None:
                for n in SWEEP if "sweep" in cases_wanted else ():
                    took = swarm.scale("web", n, args.converge_timeout)
                    spread = wait_spread(edge, n, args.converge_timeout)
                    log(f"scaled web to {n} in {took:.0f} s; the edge spreads over {spread}")
                    cases[f"replicas-{n}"] = load(edge, args, lua, allowed, [])
    finally:
        if swarm is not None and original is not None:
            restore(swarm, original, args.converge_timeout)
        # Also after a failure: the rounds measured so far are kept and shown.
        cases = {**{case: figures.median_round(runs) for case, runs in rounds.items()}, **cases}
        meta["rounds"] = args.rounds
        meta["finished"] = time.strftime("%Y%m%dT%H%M%S")
        quiet.recheck(reading)
        result = {"meta": meta, "quiet": reading, "cases": cases,
                  "targets": figures.targets(cases, [r[0] for r in REQUESTS])}
        (outdir / "perf.json").write_text(json.dumps(result, indent=2))
        show(result, outdir)
    if args.write_docs:
        return write_docs(result, chart_png=outdir / CHART)
    return 0


def show(result: dict[str, Any], outdir: Path) -> None:
    """Print the run's tables and draw its chart beside perf.json (a chart that cannot be drawn is
    a warning: the figures are kept and printed all the same)."""
    print("\n" + figures.render(result) + "\n")
    try:
        chart.render(result, outdir / CHART)
    except Exception as exc:  # pylint: disable=broad-except
        log(f"WARNING: no chart: {exc}")
    log(f"results in {outdir}")


def rerender(args: Any) -> int:
    """--render RUN_DIR: the tables and the chart again from RUN_DIR/perf.json, nothing measured;
    with --write-docs, into docs/performance.md under the same refusals as after a run."""
    outdir = Path(args.render)
    try:
        result = json.loads((outdir / "perf.json").read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--render: no readable perf.json in {outdir}: {exc}") from exc
    show(result, outdir)
    if args.write_docs:
        return write_docs(result, chart_png=outdir / CHART)
    return 0


def write_docs(result: dict[str, Any], path: Path | None = None, chart_png: Path | None = None) -> int:
    """Rewrite the table in docs/performance.md between its markers, and the chart beside it
    (docs/performance/perf.png): only after a quiet start, and only with every case measured
    (SystemExit naming why, nothing written)."""
    quiet.refuse_unless_quiet(result["quiet"])
    missing = [c for c in ("bare", "bare-replicated", "swarm", "replicas-1", "replicas-4")
               if c not in result["cases"]]
    if missing:
        raise SystemExit("--write-docs refused: cases not measured: " + ", ".join(missing))
    path = path or DOCS
    body = figures.render(result)
    if chart_png is not None and chart_png.is_file():
        target = path.parent / "performance" / CHART
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(chart_png, target)
        body += (f"\n\n![req/s and p95 of bare, bare-replicated and swarm, and 1 and 4 replicas, with "
                 f"issue 17's targets (run {result['meta']['started']})](performance/{CHART})")
    path.write_text(figures.rewrite_between(path.read_text(), body))
    log(f"wrote the table into {path}")
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("--cases", type=comma_list(CASES), default=",".join(CASES),
                        help="comma-separated subset of bare,bare-replicated,swarm,sweep (sweep: 1 and 4 "
                             "replicas)")
    parser.add_argument("--seconds", type=int, default=20, help="wrk duration per case and request (5..60)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="bare, bare-replicated and swarm in turn this many times (1..9); each "
                             "case's figures are those of its median round (the sweep runs once)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections, every case")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads, every case")
    parser.add_argument("--bare-workers", type=int, default=3, help="gunicorn workers of the bare case")
    parser.add_argument("--bare-threads", type=int, default=0,
                        help="gunicorn threads of the bare case (default: the image's GUNICORN_THREADS)")
    parser.add_argument("--converge-timeout", type=float, default=180, help="seconds to wait for a scale")
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite the table in docs/performance.md and its chart (refused unless the "
                             "machine was quiet)")
    parser.add_argument("--render", metavar="RUN_DIR",
                        help="measure nothing: print the tables and draw the chart again from "
                             "RUN_DIR/perf.json (with --write-docs, into docs/performance.md)")
