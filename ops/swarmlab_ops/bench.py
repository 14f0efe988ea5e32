"""Baseline benchmark of the counter app under bare gunicorn on this machine.

Starts its own redis-server (loopback, free port, temp dir, password) and gunicorn serving app/
(`counter:create_app()`), then loads GET /api/counter and POST /api/counter/increment with wrk (the
package's wrk_report.lua reports p95, which wrk's own table lacks); optionally a Locust run of
app/locustfile.py's mix. All traffic goes to 127.0.0.1; every case is time-bounded; everything
started here is stopped at the end.
"""
from __future__ import annotations

import json
import os
import shutil
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from .loadtest.cpu import children_of, measured
from .loadtest.locust import BareApp
from .loadtest.profile import wrk
from . import quiet
from .report import log


def run(args: Any) -> int:
    if not 1 <= args.seconds <= 120:
        raise SystemExit("--seconds must be 1..120 (the benchmark is bounded)")
    for tool in ("redis-server", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install redis-server wrk)")
    reading = quiet.guard(None)  # no lab under test: every lab counts as another one
    results: dict[str, dict[str, Any]] = {}
    with BareApp(args.workers, args.threads, args.connections) as bare, as_file(files("swarmlab_ops").joinpath("wrk_report.lua")) as lua:
        gunicorn = bare.procs[-1].pid
        app_pids = [gunicorn, *children_of(gunicorn)]
        for name, method, path in [("GET /api/counter", "GET", "/api/counter"),
                                   ("POST /api/counter/increment", "POST", "/api/counter/increment")]:
            log(f"wrk {name} for {args.seconds}s ...")
            data = measured(lambda m=method, p=path: wrk(bare.url + p, args.connections, args.seconds, str(lua),
                                                         method=m, threads=args.wrk_threads), app_pids)
            if "error" in data:
                raise SystemExit(f"wrk failed: {data['error']}")
            results[f"wrk {name}"] = data
        if args.locust:
            from .loadtest.locust import run_locust  # pylint: disable=import-outside-toplevel
            log(f"locust mix for {args.seconds}s ...")
            args.users, args.spawn_rate, args.processes = args.locust_users, args.locust_users, args.locust_processes
            case = run_locust("bench", bare.url, args, Path(bare.workdir), [], app_pids)
            results["locust mix (16:3:2:1 GET:inc:dec:reset)"] = {
                "rps": case["rps"], "p50_ms": case["p50_ms"], "p95_ms": case["p95_ms"], "p99_ms": case["p99_ms"],
                "errors": case["failures"], "gen_cpu_pct": case["profile"]["cpu_pct"].get("generator", 0.0),
                "app_cpu_pct": case["profile"]["cpu_pct"].get("web", 0.0)}
    mode = "sync" if args.threads == 1 else f"gthread x{args.threads}"
    print(f"\ngunicorn {args.workers} workers ({mode}), {os.cpu_count()} CPUs, {args.seconds}s per case, "
          f"wrk -t{args.wrk_threads} -c{args.connections}")
    print(f"{'case':48} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} {'gen CPU':>8} {'app CPU':>8}")
    for name, r in results.items():
        print(f"{name:48} {r['rps']:8.0f} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} {r['p99_ms']:7.1f} "
              f"{int(r['errors']):6d} {r['gen_cpu_pct']:7.0f}% {r['app_cpu_pct']:7.0f}%")
    if args.json:
        args.json.write_text(json.dumps({"quiet": reading, "cases": results}, indent=2))
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=int, default=15, help="duration of each case (1..120)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (1 = sync worker)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--locust", action="store_true", help="also run the Locust mix")
    parser.add_argument("--locust-users", type=int, default=32)
    parser.add_argument("--locust-processes", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
