"""Fault drills on the lab: self-healing, drain under load, rolling update, Redis failover, node loss,
registry recreation; nothing acknowledged may be lost.

While a drill runs, a bounded load (threads that POST /api/counter/increment and GET /api/counter
through the edge) records every response in the history (ok / fail / unknown, see history.py); the
counter checker compares the acknowledged increments with the counter read on the Redis master
before and after. Every drill is bounded in time and requests, stops by itself, and restores the lab.
Targets are reported in the table, never asserted here.

With the monitoring stack deployed, each drill also records what Prometheus saw for its load's
window (requests by status class in the app and at the edge, p95 from the app's histogram, alerts
that fired and resolved up to the drill's end) and where that disagrees with the client's own count
(docs/monitoring.md, "What the drills and the load test read from Prometheus").
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from ..checkout import results_dir
from ..lab.prometheus import observe
from ..options import comma_list
from ..report import log, render_drills
from .common import Ctx, Opts
from .maintenance import drain, engine_config, engine_rollout, master_drain, node_loss
from .redis import redis_kill, redis_password, redis_renewal, web_partition
from .registry import registry
from .web import bad_deploy, edge_renewal, rolling_update, scale, web_kill

DRILLS: dict[str, Callable[[Ctx], dict]] = {
    "web-kill": web_kill,
    "drain": drain,
    "master-drain": master_drain,
    "rolling-update": rolling_update,
    "scale": scale,
    "redis-kill": lambda ctx: redis_kill(ctx, False),
    "redis-kill-wait": lambda ctx: redis_kill(ctx, True),
    "web-partition": web_partition,
    "redis-renewal": redis_renewal,
    "redis-password": redis_password,
    "edge-renewal": edge_renewal,
    "node-loss": node_loss,
    "registry": registry,
    "bad-image": lambda ctx: bad_deploy(ctx, "bad-image"),
    "never-ready": lambda ctx: bad_deploy(ctx, "never-ready"),
    # Last: they restart a worker's engine (drained).
    "engine-config": engine_config,
    "engine-upgrade": lambda ctx: engine_config(ctx, upgrade=True),
    "engine-rollout": engine_rollout,
}
ALL = list(DRILLS)


def run(args: Any) -> int:
    names = args.drills
    opts = Opts(short=args.short, workers=2 if args.short else args.workers, rate=30 if args.short else args.rate,
                max_ops=min(args.max_requests, 3000) if args.short else args.max_requests,
                wait_replicas=args.wait_replicas, worker=args.worker)
    ctx = Ctx.open(args.lab, args.stack, opts)
    out = args.json or results_dir("drills") / "drills.json"
    log("lab %s, edge %s, drills: %s; results in %s; Prometheus: %s" % (
        ctx.lab.name, ctx.edge_url, ", ".join(names), out, ctx.prom.url if ctx.prom else "not deployed"))
    rows = []
    for name in names:
        log("== %s" % name)
        started, wall = time.monotonic(), time.time()
        ctx.window = None
        try:
            row = DRILLS[name](ctx)
        # one drill's failure must not hide the others
        except Exception as exc:  # noqa: BLE001  pylint: disable=broad-except
            row = {"drill": name, "recover_text": "error: %s" % str(exc)[:300], "met": False, "met_text": "error"}
        finally:
            ctx.stop_loads()  # no load outlives its drill
        row["seconds"] = round(time.monotonic() - started, 1)
        # The load's window with the client's counts; a drill without load: its whole time, alerts only.
        window = ctx.window or {"start": wall, "end": time.time(), "client": None}
        row["prometheus"] = observe(ctx.prom, window["start"], window["end"], window["client"],
                                    alerts_until=time.time())
        rows.append(row)
        log("%s: %s; %s" % (name, row.get("recover_text"), json.dumps(row.get("accounting"))))
        log("%s: %s" % (name, row["prometheus"]["text"]))
    table = render_drills(rows)
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"lab": ctx.lab.name, "rows": rows, "table": table}, indent=2, default=str))
    return 1 if any(r.get("met_text") == "error" for r in rows) else 0


def add_arguments(parser) -> None:
    parser.add_argument("--drills", type=comma_list(ALL), default=",".join(ALL), help="comma-separated, from: " + ", ".join(ALL))
    parser.add_argument("--short", action="store_true", help="shorter, lighter runs (CI)")
    parser.add_argument("--workers", type=int, default=4, help="load threads")
    parser.add_argument("--rate", type=float, default=60.0, help="requests/s in all")
    parser.add_argument("--max-requests", type=int, default=20000, help="per drill")
    parser.add_argument("--wait-replicas", type=int, default=1, help="REDIS_WAIT_REPLICAS of the WAIT-mode drill")
    parser.add_argument("--worker", type=comma_list(), default="all",
                        help="nodes the drain drill drains, one after the other (comma-separated, or all workers)")
