"""Redis drills: the master killed under load, without and with WAIT in the app."""
from __future__ import annotations

import time

from ..checker.timeline import writes_back_after
from ..lab.swarm import set_env
from ..report import fmt_seconds, log
from .common import Ctx, met


def redis_kill(ctx: Ctx, wait_mode: bool) -> dict:
    name = "redis-kill-wait" if wait_mode else "redis-kill"
    swarm, probe = ctx.swarm, ctx.probe
    if not swarm.has_service("redis-sentinel-1"):
        return {"drill": name, "recover_text": "skipped: Sentinel is off (stack_sentinel_enabled)",
                "met": None, "met_text": "not run"}
    replicas = sum(1 for s in swarm.replicas() if s.startswith("redis-replica-"))
    # Each mode sets web's WAIT itself: the stack's default (1) is the WAIT mode's, so "no WAIT"
    # must be set too.
    wait = ctx.opts.wait_replicas if wait_mode else 0
    log("%s: web with REDIS_WAIT_REPLICAS=%d" % (name, wait))
    before = swarm.update_spec("web", set_env("REDIS_WAIT_REPLICAS", str(wait)))
    swarm.wait_update("web", ("completed", "paused", "rollback_completed"))
    try:
        old = probe.master()
        task = swarm.task_by_address().get(old)
        if not task:
            raise RuntimeError("master %s is not a task of the stack" % old)
        start_value = ctx.counter()
        load = ctx.with_load(90)
        log("%s: killing the master %s (%s on %s)" % (name, old, task["service"], task["node"]))
        t0 = time.time()
        swarm.kill_task(task)
        promoted = new = None
        while time.time() - t0 < 45:
            try:
                address = probe.ask({"op": "master"}, attempts=1)["address"][0]
            except RuntimeError:
                address = None
            if address and address != old:
                promoted, new = round(time.time() - t0, 2), address
                break
            time.sleep(0.25)
        deadline = time.time() + 40  # keep the load until writes have worked for a while
        while time.time() < deadline:
            back = writes_back_after(load.snapshot(), t0)
            if promoted is not None and back["writes_back"] is not None and time.time() - t0 > back["writes_back"] + 5:
                break
            time.sleep(1)
        ops, summary, acc = ctx.finish(load, start_value)
        back = writes_back_after(ops, t0)
    finally:
        if before is not None:
            log("%s: restoring web's environment" % name)
            swarm.restore_spec("web", before)
            swarm.wait_update("web", ("completed", "paused", "rollback_completed"))
    log("%s: restoring: the killed task's successor follows %s; SENTINEL RESET of stale entries" % (name, new))
    swarm.wait_converged(180)
    probe.wait_healthy(replicas, 120)
    probe.sentinel_reset()
    return met({"drill": name + (" (WAIT %d)" % ctx.opts.wait_replicas if wait_mode else " (no WAIT)"),
                "recover": promoted,
                "recover_text": "promoted after %s, writes back after %s" % (
                    fmt_seconds(promoted), fmt_seconds(back["writes_back"])),
                "load": summary, "accounting": acc,
                "detail": {"old_master": old, "new_master": new, "killed": task, **back}},
               promoted is not None and promoted <= 10 and back["writes_back"] is not None
               and back["writes_back"] <= 15 and (not wait_mode or acc["lost"] == 0))
