"""The write-loss checker of issue 14: writers through the app and straight at Redis, a fault
schedule against the Redis set, then every acknowledged value against the final counters.

Bounded: the schedule's length plus a tail; the writers stop by themselves; the web service's
REDIS_WAIT_REPLICAS is restored afterwards. Results: results/write-loss/<timestamp>/ (history.jsonl,
result.json, table.md).
"""
from __future__ import annotations

import json
import time
from typing import Any

from .checker.counter import check
from .checker.timeline import summarize
from .checkout import results_dir
from .client.http import CounterClient
from .client.redis_service import RedisWriters
from .generator import Load
from .history import to_jsonl
from .lab import Lab, Swarm
from .lab.swarm import service_env, set_env
from .lab.redis import RedisProbe
from .nemesis.faults import RedisFaults
from .nemesis.runner import Nemesis
from .nemesis.schedule import REDIS_FAULTS, make_schedule, per_kind
from .options import comma_list
from .report import log, render_writeloss


def run(args: Any) -> dict:
    lab = Lab(args.lab)
    swarm = Swarm(lab, args.stack)
    probe = RedisProbe(swarm)
    replicas = sum(1 for s in swarm.replicas() if s.startswith("redis-replica-"))
    wait = replicas if args.wait == "all" else int(args.wait)
    kinds = tuple(args.kinds)
    schedule = make_schedule(args.faults, kinds, args.interval, args.jitter, args.seed, args.max_seconds)
    # The writers run until the faults are done plus the tail; this bounds them if healing is slow.
    seconds = args.warmup + schedule[-1].at + len(schedule) * args.heal_timeout + args.tail
    out = results_dir("write-loss")
    log(f"write-loss on lab {lab.name}: {len(schedule)} faults {per_kind(schedule)}, WAIT {wait} of "
        f"{replicas} replicas, at most {seconds:.0f} s; results in {out}")
    web = swarm.service("web")["Spec"]
    app_key = service_env(web).get("COUNTER_KEY", "counter")
    restore = None
    if service_env(web).get("REDIS_WAIT_REPLICAS") != str(wait):
        log(f"web: REDIS_WAIT_REPLICAS={wait} (restored afterwards)")
        restore = swarm.update_spec("web", set_env("REDIS_WAIT_REPLICAS", str(wait)))
        swarm.wait_update("web", ("completed", "paused", "rollback_completed"))
    key = "swarmlab:write-loss:%d" % time.time()
    url = swarm.edge_url()
    faults = RedisFaults(swarm, probe)

    def healed() -> bool:
        return swarm.convergence()["converged"] and probe.healthy(replicas)

    history = []
    try:
        if not swarm.wait_converged(180) or not probe.wait_healthy(replicas, 120):
            raise RuntimeError("the stack is not healthy before the run")
        start_app = probe.values(app_key)[app_key]
        direct = RedisWriters(swarm, key, args.redis_writers, seconds, wait, args.wait_timeout_ms,
                              args.redis_rate).start()
        http = Load(lambda i: CounterClient(url, f"http-{i}"), workers=args.http_writers,
                    rate=args.http_rate, mix=("incr",), max_seconds=seconds).start()
        time.sleep(args.warmup)
        nemesis = Nemesis(schedule, faults.as_dict(), healed, heal_timeout=args.heal_timeout, log=log).start()
        nemesis.join(seconds)
        fault_ops = nemesis.stop()
        log(f"faults done; {args.tail:.0f} s more of load")
        time.sleep(args.tail)
        http_ops = http.stop()
        probe.set(direct.stop_key(), "1")
        history = fault_ops + http_ops + direct.wait()
        seconds = max(op.end for op in history) - min(op.start for op in history)
    finally:
        if restore is not None:
            log("web: restoring its environment")
            swarm.restore_spec("web", restore)
            swarm.wait_update("web", ("completed", "paused", "rollback_completed"))
    log("healing before the final read (converged, master with every replica online)")
    swarm.wait_converged(240)
    probe.wait_healthy(replicas, 180)
    final = probe.values(app_key, key)
    history.sort(key=lambda op: op.start)
    to_jsonl(history, out / "history.jsonl")
    result = {
        "lab": lab.name, "writer_trouble": direct.trouble, "wait": wait, "replicas": replicas, "seconds": round(seconds, 1),
        "schedule": [f.__dict__ for f in schedule],
        "faults": {k: {"ok": sum(1 for op in history if op.is_fault and op.kind == k and op.outcome == "ok"),
                       "failed": sum(1 for op in history if op.is_fault and op.kind == k and op.outcome != "ok")}
                   for k in kinds},
        "writers": {
            "app": dict(check(history, start_app, final[app_key], "http-"), key=app_key,
                        load=summarize(op for op in history if op.process.startswith("http-"))),
            "redis": dict(check(history, 0, final[key], "redis-"), key=key,
                          load=summarize(op for op in history if op.process.startswith("redis-"))),
        },
    }
    result["table"] = render_writeloss(result)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    (out / "table.md").write_text(result["table"] + "\n")
    print(result["table"])
    return result


def add_arguments(parser) -> None:
    parser.add_argument("--faults", type=int, default=21, help="number of faults (issue 14: at least 20)")
    parser.add_argument("--kinds", type=comma_list(REDIS_FAULTS), default=",".join(REDIS_FAULTS), help="fault kinds, comma-separated")
    parser.add_argument("--interval", type=float, default=25.0, help="seconds between fault starts (earliest)")
    parser.add_argument("--jitter", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--max-seconds", type=float, default=1500.0, help="bound of the fault schedule")
    parser.add_argument("--heal-timeout", type=float, default=90.0, help="seconds a fault waits for healing")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--tail", type=float, default=20.0, help="seconds of load after the last fault")
    parser.add_argument("--wait", default="all", help="replicas WAIT counts: all, or a number (0: no WAIT)")
    parser.add_argument("--wait-timeout-ms", type=int, default=500)
    parser.add_argument("--http-writers", type=int, default=2)
    parser.add_argument("--http-rate", type=float, default=20.0, help="increments/s through the app, in all")
    parser.add_argument("--redis-writers", type=int, default=2)
    parser.add_argument("--redis-rate", type=float, default=20.0, help="increments/s straight at Redis, in all")
