"""Drills of a node: drained through the maintenance playbook, lost (its container stopped)."""
from __future__ import annotations

import threading
import time

from ..lab.ansible import run_playbook
from ..report import fmt_seconds, log
from .common import Ctx, met

MAINTENANCE = "playbooks/node_maintenance.yml"
# The playbook's variable that names what to do (drain, activate).
ACTION_VAR = "maintenance"
DRAIN = "swarmlab.cluster.swarm_node_drain"


def maintenance(ctx: Ctx, node: str, action: str, **extra) -> dict:
    """Run the maintenance playbook; returns swarm_node_drain's result (as data) for a drain."""
    run = run_playbook(MAINTENANCE, ctx.lab.name, {"node": node, ACTION_VAR: action, **extra})
    result = run.result(DRAIN) or {}
    result["_ok"] = run.ok
    result["_failures"] = run.failures()
    return result


def drain(ctx: Ctx) -> dict:
    node = ctx.opts.worker
    desired = ctx.swarm.replicas()["web"]
    start_value = ctx.counter()
    load = ctx.with_load(300)
    samples: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            samples.append(len(ctx.swarm.running_tasks("web")))
            stop.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    log("drain: draining %s (node maintenance playbook)" % node)
    t0 = time.time()
    result = maintenance(ctx, node, "drain")
    forced = False
    if not result["_ok"] and result.get("capacity_problems") and result.get("stranded"):
        # swarm_node_drain refused for services that cannot run elsewhere (the Sentinel pinned to the
        # node): the others keep the quorum, so drain anyway; with force it reports them as stranded
        # and does not wait for them.
        log("drain: refused (%s); again with force=true" % "; ".join(result["capacity_problems"])[:200])
        forced = True
        result = maintenance(ctx, node, "drain", force=True)
    if not result["_ok"]:
        raise RuntimeError("drain of %s failed: %s" % (node, " | ".join(result["_failures"])))
    took = round(time.time() - t0, 2)
    stranded = [s["name"] for s in result.get("stranded", [])]
    stop.set()
    watcher.join(5)
    _ops, summary, acc = ctx.finish(load, start_value)
    log("drain: restoring (activate + rebalance)")
    back = maintenance(ctx, node, "activate")
    if not back["_ok"]:
        raise RuntimeError("activate of %s failed: %s" % (node, " | ".join(back["_failures"])))
    low = min(samples) if samples else None
    return met({"drill": "drain", "recover": took,
                "recover_text": "drained in %s%s; web min %s/%d running" % (
                    fmt_seconds(took), " (force; stranded: %s)" % (", ".join(stranded) or "none") if forced else "",
                    low, desired),
                "load": summary, "accounting": acc,
                "detail": {"node": node, "min_running": low, "forced": forced, "stranded": stranded,
                           "waited": result.get("waited")}},
               summary["failed_requests"] == 0 and low is not None and low >= desired)


def node_loss(ctx: Ctx) -> dict:
    swarm = ctx.swarm
    master_task = swarm.task_by_address().get(ctx.probe.master()) if swarm.has_service("redis-sentinel-1") else None
    master_node = (master_task or {}).get("node")
    workers = [n.name for n in ctx.lab.group("swarm_workers")]
    node = next(n for n in reversed(workers) if n != master_node)
    desired = swarm.replicas()
    affected = {s for s in desired if any(t["node"] == node for t in swarm.running_tasks(s))}
    pinned = set(swarm.stranded_if_lost(node)) & affected
    movable = affected - pinned
    start_value = ctx.counter()
    load = ctx.with_load(120)
    log("node-loss: stopping %s (tasks: %s; pinned there: %s)" % (node, sorted(affected), sorted(pinned)))
    t0 = time.time()
    ctx.lab.stop_node(node)
    rescheduled = None
    while time.time() - t0 < 90:
        if all(sum(1 for t in swarm.running_tasks(s) if t["node"] != node) >= desired[s] for s in movable):
            rescheduled = round(time.time() - t0, 2)
            break
        time.sleep(0.5)
    _ops, summary, acc = ctx.finish(load, start_value)
    log("node-loss: restoring (start %s, rejoin, rebalance, Sentinel reset)" % node)
    ctx.lab.start_node(node)
    ctx.lab.wait_node_api(node, 180)
    deadline = time.time() + 180
    while time.time() < deadline and not swarm.node_ready(node):
        time.sleep(2)
    swarm.wait_converged(240)
    maintenance(ctx, node, "activate")
    if swarm.has_service("redis-sentinel-1"):
        ctx.probe.wait_healthy(sum(1 for s in desired if s.startswith("redis-replica-")), 120)
        ctx.probe.sentinel_reset()
    return met({"drill": "node-loss", "recover": rescheduled,
                "recover_text": ("%s's tasks elsewhere after %s" % (node, fmt_seconds(rescheduled)))
                + (" (pinned, not moved: %s)" % ", ".join(sorted(pinned)) if pinned else ""),
                "load": summary, "accounting": acc,
                "detail": {"node": node, "moved": sorted(movable), "pinned": sorted(pinned)}},
               rescheduled is not None and rescheduled <= 30)
