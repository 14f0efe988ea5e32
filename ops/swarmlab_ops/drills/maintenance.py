"""Drills of a node: drained through the maintenance playbook, lost (its container stopped)."""
from __future__ import annotations

import time

from ..checkout import ROOT
from ..lab.ansible import inventory_name, run_playbook
from ..report import fmt_seconds, log
from .common import Ctx, met
from .web import failure_kinds

MAINTENANCE = "playbooks/node_maintenance.yml"
# The playbook's variable that names what to do (drain, activate).
ACTION_VAR = "maintenance"
DRAIN = "swarmlab.cluster.swarm_node_drain"
REBALANCE = "swarmlab.cluster.swarm_rebalance"


def maintenance(ctx: Ctx, node: str, action: str, **extra) -> dict:
    """Run the maintenance playbook; returns swarm_node_drain's result (as data: the module's return
    read from the runner's events) for a drain or an activation, and swarm_rebalance's as `rebalance`."""
    run = run_playbook(MAINTENANCE, ctx.lab.name, {"node": node, ACTION_VAR: action, **extra})
    result = run.result(DRAIN) or {}
    result["rebalance"] = run.result(REBALANCE) or {}
    result["_ok"] = run.ok
    result["_failures"] = run.failures()
    result["_seconds"] = run.seconds
    # What the playbook returned (set_stats): the Redis switchover among it.
    result["_returned"] = run.data.get("node_maintenance") or {}
    return result


def drain_nodes(ctx: Ctx) -> list[str]:
    """The nodes the drain drill drains: --worker (a name, a comma-separated list, or all workers)."""
    if ctx.opts.worker in ([], ["all"]):
        return [n.name for n in ctx.lab.group("swarm_workers")]
    return list(ctx.opts.worker)


def rebalanced(ctx: Ctx, node: str) -> dict:
    """After activate: web runs on the node again and is spread within one task per node."""
    per_node: dict[str, int] = {}
    for task in ctx.swarm.running_tasks("web"):
        per_node[task["node"]] = per_node.get(task["node"], 0) + 1
    counts = [per_node.get(n, 0) for n in ctx.lab.nodes]
    return {"web_per_node": per_node, "ok": per_node.get(node, 0) >= 1 and max(counts) - min(counts) <= 1}


def drain(ctx: Ctx) -> dict:
    """Drain each chosen worker under load with the plain playbook (no force), then activate it.

    The load and a watcher of web's healthy tasks run throughout; the drill reads what the playbook
    returned (swarm_node_drain's moved / reduced / stranded / times, swarm_rebalance's result) from
    the runner's events. Met: every drain accepted without force, 0 failed requests, web never below
    its replicas, nothing lost, and after activate web runs on the node again, spread evenly."""
    nodes = drain_nodes(ctx)
    desired = ctx.swarm.replicas()["web"]
    start_value = ctx.counter()
    load = ctx.with_load(300 * len(nodes))
    watch = ctx.watch("web")
    details, forced = [], False
    try:
        for node in nodes:
            log("drain: draining %s (node maintenance playbook)" % node)
            result = maintenance(ctx, node, "drain")
            used_force = False
            if not result["_ok"] and result.get("stranded") and not result.get("moved"):
                # Refused: work that would be lost (a service pinned to the node). Drain with force so
                # the rest of the drill still runs; the row says so and the target is not met.
                log("drain: refused (%s); again with force=true" % "; ".join(result.get("capacity_problems", []))[:300])
                used_force = forced = True
                result = maintenance(ctx, node, "drain", force=True)
            if not result["_ok"]:
                raise RuntimeError("drain of %s failed: %s" % (node, " | ".join(result["_failures"])))
            log("drain: %s drained in %s (moved first: %s; reduced: %s; stranded: %s); activating" % (
                node, fmt_seconds(result.get("times", {}).get("total")),
                ", ".join("%(name)s %(tasks)d" % m for m in result.get("moved", [])) or "none",
                ", ".join("%(name)s %(keeps)d/%(replicas)d" % r for r in result.get("reduced", [])) or "none",
                ", ".join(s["name"] for s in result.get("stranded", [])) or "none"))
            back = maintenance(ctx, node, "activate")
            if not back["_ok"]:
                raise RuntimeError("activate of %s failed: %s" % (node, " | ".join(back["_failures"])))
            ctx.swarm.wait_converged(180)
            spread = rebalanced(ctx, node)
            details.append({"node": node, "forced": used_force, "times": result.get("times"),
                            "moved": result.get("moved", []), "reduced": result.get("reduced", []),
                            "stranded": result.get("stranded", []), "capacity_problems": result.get("capacity_problems", []),
                            "restored": back.get("restored", []),
                            "rebalanced": back.get("rebalance", {}).get("services_updated", []),
                            "web_per_node_after_activate": spread["web_per_node"], "spread_ok": spread["ok"]})
    finally:
        watch.stop()
    _ops, summary, acc = ctx.finish(load, start_value)
    low = watch.min()
    text = "; ".join("%s drained in %s%s, activate: web %s" % (
        d["node"], fmt_seconds((d["times"] or {}).get("total")), " (force; stranded: %s)" % ", ".join(
            s["name"] for s in d["stranded"]) if d["forced"] else "",
        "spread %s" % d["web_per_node_after_activate"] if d["spread_ok"] else "NOT rebalanced %s"
        % d["web_per_node_after_activate"]) for d in details)
    return met({"drill": "drain", "recover": max(((d["times"] or {}).get("total") or 0) for d in details),
                "recover_text": text, "min_running": low, "desired": desired,
                "load": summary, "accounting": acc,
                "detail": {"nodes": details, "min_running": low, "watch_errors": watch.errors}},
               not forced and summary["failed_requests"] == 0 and low is not None and low >= desired
               and acc["lost"] == 0 and acc["delta"] == acc["acknowledged"] and all(d["spread_ok"] for d in details))


def _true(value) -> bool:
    """A boolean the playbook returned (a templated value may come back as a string)."""
    return value is True or str(value).lower() == "true"


def master_place(ctx: Ctx) -> tuple[str, str]:
    """(service, node) of the Redis master as the Sentinels name it (by service name)."""
    master = ctx.probe.master()
    task = ctx.swarm.task_by_address().get(master)
    if not task:
        raise RuntimeError("the Redis master %s is not a running task of the stack" % master)
    return task["service"], task["node"]


def switch_master(ctx: Ctx, service: str, replicas: int, why: str) -> None:
    """Hand the master to `service` with playbooks/redis_failover.yml (writes paused until it
    caught up: no write lost, the other replicas continue with PSYNC), no load running."""
    log("master-drain: %s: the master to %s (playbooks/redis_failover.yml)" % (why, service))
    run = run_playbook("playbooks/redis_failover.yml", ctx.swarm.lab.name, {
        "redis_failover_runner": inventory_name(ctx.swarm.lab.name, ctx.swarm.manager),
        "redis_target": service}, timeout=300)
    if not run.ok:
        raise RuntimeError("%s: redis_failover.yml %s: %s" % (why, run.status, " | ".join(run.failures())[-400:]))
    ctx.probe.wait_healthy(replicas, 120)
    ctx.swarm.wait_converged(180)
    if master_place(ctx)[0] != service:
        raise RuntimeError("%s: the Sentinels name %s, not %s" % (why, master_place(ctx)[0], service))


def restore_master(ctx: Ctx, service: str, replicas: int) -> None:
    """Restore: the master back to `service` (where it was before the drill), so that the checks
    after the drill find the stack as site.yml left it."""
    if master_place(ctx)[0] != service:
        switch_master(ctx, service, replicas, "restoring")


def master_drain(ctx: Ctx) -> dict:
    """Drain the node that runs the Redis master, under load, with the plain playbook (no force),
    then activate it. The playbook hands the master to a replica on another node first (Sentinel
    switchover, writes paused until it caught up), then drains.

    On a one-manager lab the manager also runs the edge, which no drain may take away: a master
    there is first moved to a replica on a worker (playbooks/redis_failover.yml), before the load
    starts. Met: the drain accepted without force, it returned the switchover (from the drained
    node to another), the Sentinels name a master on another node, 0 failed requests, nothing
    lost, activate ok."""
    swarm, probe = ctx.swarm, ctx.probe
    if not swarm.has_service("redis-sentinel-1"):
        return {"drill": "master-drain", "recover_text": "skipped: Sentinel is off (stack_sentinel_enabled)",
                "met": None, "met_text": "not run"}
    replicas = sum(1 for s in swarm.replicas() if s.startswith("redis-replica-"))
    managers = {n.name for n in ctx.lab.group("swarm_managers")}
    service, node = master_place(ctx)
    original = service
    if node in managers:
        on_workers = sorted({t["service"] for t in swarm.task_by_address().values()
                             if t["service"].startswith("redis-replica-") and t["node"] not in managers})
        if not on_workers:
            raise RuntimeError("the Redis master runs on %s, a manager, and no replica runs on a worker" % node)
        switch_master(ctx, on_workers[0], replicas,
                      "moving the master %s off %s, a manager (the edge's node), before the load" % (service, node))
        service, node = master_place(ctx)
    desired = swarm.replicas()["web"]
    start_value = ctx.counter()
    load = ctx.with_load(240)
    watch = ctx.watch("web")
    try:
        log("master-drain: draining %s, which runs the Redis master %s (node maintenance playbook, no force)"
            % (node, service))
        result = maintenance(ctx, node, "drain")
        new_service, new_node = master_place(ctx)
    finally:
        watch.stop()
    _ops, summary, acc = ctx.finish(load, start_value)
    switchover = result["_returned"].get("switchover") or {}
    log("master-drain: %s; drained %s in %s (ok: %s); master now %s on %s; activating" % (
        switchover.get("text"), node, fmt_seconds(result.get("times", {}).get("total")), result["_ok"],
        new_service, new_node))
    back = maintenance(ctx, node, "activate")
    swarm.wait_converged(180)
    probe.wait_healthy(replicas, 120)
    probe.sentinel_reset()
    restore_master(ctx, original, replicas)
    ok = (result["_ok"] and back["_ok"] and _true(switchover.get("done")) and switchover.get("from") == service
          and switchover.get("from_node") == node and switchover.get("to_node") not in (None, node)
          and new_node != node and new_service == switchover.get("to"))
    return met({"drill": "master-drain", "recover": result.get("_seconds"),
                "recover_text": ("%s: master %s on %s -> %s on %s (switchover %s s, writes paused %s s: %s), drain %s; "
                                 "activate %s") % (
                    node, service, node, new_service, new_node, switchover.get("seconds"),
                    switchover.get("writes_paused"),
                    ", ".join("%s %s" % tuple(p) for p in switchover.get("pause_phases") or []),
                    "ok" if result["_ok"] else "FAILED: " + " | ".join(result["_failures"])[:300],
                    "ok" if back["_ok"] else "FAILED"),
                "min_running": watch.min(), "desired": desired, "load": summary, "accounting": acc,
                "detail": {"node": node, "master_before": service, "master_after": new_service,
                           "master_node_after": new_node, "switchover": switchover, "drain_ok": result["_ok"],
                           "drain_failures": result["_failures"], "activate_ok": back["_ok"],
                           "moved": result.get("moved", []), "reduced": result.get("reduced", []),
                           "stranded": result.get("stranded", []), "primaries": result.get("primaries", [])}},
               ok and summary["failed_requests"] == 0 and acc["lost"] == 0 and acc["delta"] == acc["acknowledged"])


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
                + (" (not moved: pinned there or no room elsewhere: %s)" % ", ".join(sorted(pinned)) if pinned else ""),
                "load": summary, "accounting": acc,
                "detail": {"node": node, "moved": sorted(movable), "pinned": sorted(pinned)}},
               rescheduled is not None and rescheduled <= 30)


ENGINE = "playbooks/docker_engine.yml"


def _engines_started(ctx: Ctx) -> dict[str, float]:
    """When each node's Docker Engine last started (systemd's ActiveEnterTimestamp, epoch seconds)."""
    out = {}
    for node in ctx.lab.nodes:
        code, raw = ctx.lab.on_node(
            node, ["sh", "-c", 'date -d "$(systemctl show docker -p ActiveEnterTimestamp --value)" +%s'])
        out[node] = float(raw.strip()) if code == 0 else 0.0
    return out


def _running_binaries(ctx: Ctx, node: str) -> dict[str, str]:
    """What containerd's and dockerd's main processes run on the node."""
    code, out = ctx.lab.on_node(
        node, ["bash", "-c", "for u in containerd docker; do echo \"$u $(readlink /proc/$(systemctl show -p MainPID "
                             "--value $u)/exe)\"; done"])
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line) if code == 0 else {}


def _reinstall_engine(ctx: Ctx, node: str) -> dict[str, str]:
    """The engine's packages installed again by dpkg (from apt's cache) under the docker_engine role's
    policy-rc.d, as the role's apt run on an active Swarm node upgrades them: binaries replaced, the
    packages' own restarts held back. Returns what containerd's and dockerd's processes then run."""
    policy = (ROOT / "roles/docker_engine/files/policy-rc.d").read_text()
    script = ("cat > /usr/sbin/policy-rc.d <<'POLICY'\n%sPOLICY\nchmod 0755 /usr/sbin/policy-rc.d\n"
              "DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -q containerd docker.io; rc=$?\n"
              "rm -f /usr/sbin/policy-rc.d\nexit $rc\n") % policy
    code, out = ctx.lab.on_node(node, ["bash", "-c", script])
    if code != 0:
        raise RuntimeError("reinstalling the engine's packages on %s: %s" % (node, out[-500:]))
    return _running_binaries(ctx, node)


def engine_config(ctx: Ctx, upgrade: bool = False) -> dict:
    """A new Docker Engine configuration (a log option in daemon.json) for one worker through
    playbooks/docker_engine.yml, as site.yml applies one, then node maintenance's cycle with the
    hook playbooks/tasks/engine_restart.yml, under load. A restart stops every task of the node
    (no live-restore in swarm mode): the role leaves it waiting on an active Swarm node, and the
    cycle restarts the engine with the node drained. Then the configuration goes back the same way
    (no load). Target: the role restarts no engine, the cycle this one only, 0 failed, 0 lost.
    upgrade (engine-upgrade): the engine's packages upgraded instead (installed again by dpkg under
    the role's hold on their restarts, then the role run): the same target, and the cycle restarts
    containerd and dockerd onto their new binaries."""
    name = "engine-upgrade" if upgrade else "engine-config"
    swarm = ctx.swarm
    master_task = swarm.task_by_address().get(ctx.probe.master()) if swarm.has_service("redis-sentinel-1") else None
    node = next(n for n in reversed(drain_nodes(ctx)) if n != (master_task or {}).get("node"))
    host = inventory_name(ctx.lab.name, ctx.lab.nodes[node])
    hook = {"maintenance_hook": str(ROOT / "playbooks/tasks/engine_restart.yml")}
    before = _engines_started(ctx)
    start_value = ctx.counter()
    load = ctx.with_load(300)
    replaced: dict[str, str] = {}
    if upgrade:
        log("%s: the engine's packages installed again on %s, their restarts held back" % (name, node))
        replaced = _reinstall_engine(ctx, node)
        log("%s: %s on %s" % (name, ENGINE, node))
        run = run_playbook(ENGINE, ctx.lab.name, {}, limit=host)
    else:
        log("%s: %s on %s with docker_engine_log_max_file=4" % (name, ENGINE, node))
        run = run_playbook(ENGINE, ctx.lab.name, {"docker_engine_log_max_file": 4}, limit=host)
    by_role = sorted(n for n, t in _engines_started(ctx).items() if t != before.get(n))
    log("%s: engines the role restarted: %s; node maintenance cycle of %s" % (name, by_role or "none", node))
    cycle = maintenance(ctx, node, "cycle", **hook)
    ops, summary, acc = ctx.finish(load, start_value, tail=3)
    after = _engines_started(ctx)
    restarted = sorted(n for n in after if after[n] != before.get(n))
    text = "play %s, the role restarted %s; cycle of %s %s in %s, engines restarted: %s" % (
        "ok" if run.ok else "FAILED", ", ".join(by_role) or "no engine", node, "ok" if cycle["_ok"] else "FAILED",
        fmt_seconds(cycle["_seconds"]), ", ".join(restarted) or "none")
    now_running = _running_binaries(ctx, node) if upgrade else {}
    # Both daemons on replaced binaries before the cycle (held back), on the new ones after it.
    upgraded = not upgrade or (
        len(replaced) == len(now_running) == 2 and all(exe.endswith(" (deleted)") for exe in replaced.values())
        and not any(exe.endswith(" (deleted)") for exe in now_running.values()))
    restored = True  # the same packages, installed again: nothing to put back
    if upgrade:
        log("%s: %s; before the cycle %s, after it %s" % (name, text, replaced, now_running))
    else:
        log("%s: %s; putting the configuration back" % (name, text))
        back = run_playbook(ENGINE, ctx.lab.name, {}, limit=host)
        restored = back.ok and maintenance(ctx, node, "cycle", **hook)["_ok"]
    return met({"drill": name, "recover": cycle["_seconds"], "recover_text": text, "load": summary,
                "accounting": acc, "detail": {"node": node, "play_ok": run.ok, "restarted_by_role": by_role,
                                              "cycle_ok": cycle["_ok"], "restarted": restarted,
                                              "failures": failure_kinds(ops),
                                              "replaced_before": replaced, "running_after": now_running,
                                              "restored": restored,
                                              "play_failures": (run.failures() + cycle["_failures"])[-3:]}},
               run.ok and not by_role and cycle["_ok"] and restarted == [node]
               and summary["failed_requests"] == 0 and acc["lost"] == 0 and upgraded)


def engine_rollout(ctx: Ctx) -> dict:
    """A new Docker Engine configuration (a log option) for the workers through playbooks/docker_engine.yml
    with docker_engine_restart_swarm_nodes=true, under load: the role restarts their engines in this
    run, undrained, one at a time, each back with its tasks before the next. Their tasks stop with
    each engine: failed requests are counted, not expected to be 0 (node maintenance's cycle, the
    engine-config drill, is the restart without one). The managers are left out (--limit): the lab's
    only manager runs the edge, whose restart is an outage however it is done. Then the configuration
    goes back the same way (no load). Target: every worker restarted, one at a time, 0 lost."""
    workers = [n.name for n in ctx.lab.group("swarm_workers")]
    hosts = ",".join(inventory_name(ctx.lab.name, ctx.lab.nodes[n]) for n in workers)
    before = _engines_started(ctx)
    start_value = ctx.counter()
    load = ctx.with_load(300)
    log("engine-rollout: %s on %s with docker_engine_log_max_file=4, docker_engine_restart_swarm_nodes=true"
        % (ENGINE, ", ".join(workers)))
    run = run_playbook(ENGINE, ctx.lab.name, {"docker_engine_log_max_file": 4, "docker_engine_restart_swarm_nodes": True},
                       limit=hosts)
    ops, summary, acc = ctx.finish(load, start_value, tail=3)
    after = _engines_started(ctx)
    restarted = sorted(n for n in after if after[n] != before.get(n))
    # systemd's start times, in order: how far apart the engines came back.
    starts = sorted(after[n] for n in restarted)
    gaps = [round(b - a, 1) for a, b in zip(starts, starts[1:])]
    text = "play %s in %s, engines restarted: %s%s" % (
        "ok" if run.ok else "FAILED", fmt_seconds(run.seconds), ", ".join(restarted) or "none",
        ", %s s apart" % "/".join(str(g) for g in gaps) if gaps else "")
    log("engine-rollout: %s; putting the configuration back" % text)
    back = run_playbook(ENGINE, ctx.lab.name, {"docker_engine_restart_swarm_nodes": True}, limit=hosts)
    return met({"drill": "engine-rollout", "recover": run.seconds, "recover_text": text, "load": summary,
                "accounting": acc, "detail": {"workers": workers, "play_ok": run.ok, "restarted": restarted,
                                              "apart": gaps, "failures": failure_kinds(ops), "restored": back.ok,
                                              "play_failures": (run.failures() + back.failures())[-3:]}},
               run.ok and back.ok and restarted == sorted(workers) and acc["lost"] == 0)
