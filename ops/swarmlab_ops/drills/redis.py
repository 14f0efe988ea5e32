"""Redis drills: the master killed under load, without and with WAIT in the app; a new Redis
certificate deployed under load."""
from __future__ import annotations

import re
import secrets
import time
from datetime import datetime, timezone

from ..checker.timeline import writes_back_after
from ..lab.ansible import host_vars, inventory_name, run_playbook
from ..lab.swarm import set_env
from ..report import fmt_seconds, log
from .common import Ctx, met
from .web import STACK


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


# How long the task stays cut off, and by when its failures must stop: the edge marks a server down
# after 2 failed checks 2 s apart (stack_edge_check_fall, _inter), plus a check's own time.
PARTITION_SECONDS = 20
PARTITION_OUT_BY = 8.0


def web_partition(ctx: Ctx) -> dict:
    """One web task cut off from the Redis master, the master and the other tasks unharmed: its
    packets to the master's addresses are answered "no route to host" (as when the overlay loses
    the master's node for that one node). The task must leave the edge (its /readyz 503: the
    Sentinels still reach the master), and the other tasks take its writes."""
    swarm, lab = ctx.swarm, ctx.lab
    if not swarm.has_service("redis-sentinel-1"):
        return {"drill": "web-partition", "recover_text": "skipped: Sentinel is off (stack_sentinel_enabled)",
                "met": None, "met_text": "not run"}
    master = swarm.task_by_address().get(ctx.probe.master())
    if not master:
        raise RuntimeError("the Redis master is not a task of the stack")
    tasks = swarm.running_tasks("web")
    victim = next((t for t in tasks if t["node"] != master["node"]), tasks[0])

    def netns(argv: list[str]) -> tuple[int, str]:
        return lab.in_task_netns(victim["node"], victim["container_id"], argv)

    def rules(action: str) -> None:
        for address in master["addresses"]:
            code, out = netns(["iptables", action, "OUTPUT", "-d", address, "-p", "tcp", "-j", "REJECT",
                               "--reject-with", "icmp-host-unreachable"])
            if code != 0 and action == "-I":
                raise RuntimeError("iptables in web task %s: %s" % (victim["id"][:12], out.strip()[:200]))

    start_value = ctx.counter()
    # Two connections per task at least, so that the cut task serves some of them.
    load = ctx.with_load(PARTITION_SECONDS + 20, workers=max(ctx.opts.workers, 2 * len(tasks)))
    log("web-partition: cutting web task %s on %s off from the master %s (%s) for %d s" % (
        victim["id"][:12], victim["node"], master["service"], ", ".join(master["addresses"]), PARTITION_SECONDS))
    t0 = time.time()
    readyz: list[tuple[float, str]] = []
    try:
        rules("-I")
        while time.time() - t0 < PARTITION_SECONDS:
            _code, status = netns(["curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}",
                                   "http://127.0.0.1:8000/readyz"])
            readyz.append((round(time.time() - t0, 1), status.strip()))
            time.sleep(2)
    finally:
        rules("-D")
    mended = round(time.time() - t0, 1)
    ops, summary, acc = ctx.finish(load, start_value, tail=5)
    failed = sorted(op.start - t0 for op in ops if op.outcome != "ok" and op.start >= t0)
    last = round(failed[-1], 2) if failed else None
    out_of_the_edge = any(status == "503" for _t, status in readyz)
    return met({"drill": "web-partition", "recover": last,
                "recover_text": ("no request failed" if last is None else
                                 "%d failed, the last %s after the cut" % (len(failed), fmt_seconds(last)))
                + ("; the task's /readyz said 503" if out_of_the_edge else "; the task's /readyz never said 503"),
                "load": summary, "accounting": acc,
                "detail": {"task": victim["id"], "node": victim["node"], "master": master["service"],
                           "master_node": master["node"], "cut_seconds": mended, "readyz": readyz,
                           "failed_after_cut": [round(f, 2) for f in failed]}},
               out_of_the_edge and (last is None or last <= PARTITION_OUT_BY) and acc["lost"] == 0)


def _stamp(text: str) -> float | None:
    """Docker's RFC 3339 time with nanoseconds, cut to microseconds, in seconds since the epoch."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,6})?\d*Z$", text or "")
    if not match:
        return None
    stamp = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return stamp + float(match.group(2) or 0)


def _restart_window(tasks: list[dict]) -> tuple[float, float] | None:
    """When a one-replica service's running task was created (its update began: the old task stops
    first) and when it ran; None without a running task."""
    running = [t for t in tasks if t.get("DesiredState") == "running" and (t.get("Status") or {}).get("State") == "running"]
    if not running:
        return None
    task = max(running, key=lambda t: _stamp(t.get("CreatedAt", "")) or 0)
    begun, up = _stamp(task.get("CreatedAt", "")), _stamp((task.get("Status") or {}).get("Timestamp", ""))
    return (begun, up) if begun is not None and up is not None else None


def _overlapping(windows: dict[str, tuple[float, float]]) -> list[list[str]]:
    """Pairs of services whose restart windows overlap (both down, or starting, at once)."""
    names = sorted(windows, key=lambda n: windows[n][0])
    return [[a, b] for i, a in enumerate(names) for b in names[i + 1:] if windows[b][0] < windows[a][1]]


def redis_renewal(ctx: Ctx) -> dict:
    """A new Redis certificate, as a normal stack run signs it within stack_redis_tls_renew_days of
    the old one's expiry (forced here with a window longer than its validity), under load: the
    servers and the Sentinels restart onto the new secret, one at a time (the stack role's Redis
    rolling update). Target: 0 failed, 0 lost. Reports the order of the restarts and any two that
    overlapped (the stack deploy alone restarted all six at once: about 15 s of 503s; docs/redis.md,
    "The Redis rolling update")."""
    before = _redis_side_secrets(ctx)
    start_value = ctx.counter()
    load = ctx.with_load(600)
    log("redis-renewal: %s with a new Redis certificate (stack_redis_tls_renew_days=100000)" % STACK)
    roll = _roll(ctx, "redis-renewal", before, {"stack_redis_tls_renew_days": 100000})
    roll.pop("after")
    _ops, summary, acc = ctx.finish(load, start_value, tail=3)
    text = "play %s in %s; %d of %d Redis services restarted onto the new certificate, %s" % (
        "ok" if roll["play_ok"] else "FAILED", fmt_seconds(roll["seconds"]), len(roll["renewed"]), len(before), roll["how"])
    return met({"drill": "redis-renewal", "recover": roll["seconds"], "recover_text": text,
                "load": summary, "accounting": acc, "detail": roll},
               roll["play_ok"] and len(roll["renewed"]) == len(before) and summary["failed_requests"] == 0 and acc["lost"] == 0)


def _redis_side_secrets(ctx: Ctx) -> dict[str, list[str]]:
    """The secrets each Redis server and Sentinel runs with; needs the stack's Redis over TLS."""
    redis_side = sorted(name for name in ctx.swarm.replicas() if name.startswith("redis-"))
    env = ctx.swarm.service("redis-master")["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") or []
    if "BOOT_TLS=yes" not in env:
        raise RuntimeError("needs the stack's Redis over TLS (stack_redis_tls: true, as the lab inventory sets it)")
    return {name: sorted(s["SecretName"] for s in
                         ctx.swarm.service(name)["Spec"]["TaskTemplate"]["ContainerSpec"].get("Secrets") or [])
            for name in redis_side}


def _roll(ctx: Ctx, drill: str, before: dict[str, list[str]], extravars: dict) -> dict:
    """The stack playbook with `extravars`, and how the Redis side restarted: which services moved
    onto new secrets, their restart windows, and any two that overlapped."""
    web_image = ctx.swarm.image("web")
    master_before = ctx.probe.master()
    run = run_playbook(STACK, ctx.lab.name, {"stack_web_image": web_image, **extravars})
    master_after = ctx.probe.master()
    after = _redis_side_secrets(ctx)
    renewed = [name for name in before if after[name] != before[name]]
    windows = {name: w for name, w in ((name, _restart_window(ctx.swarm.tasks(name))) for name in renewed) if w}
    together = _overlapping(windows)
    order = " -> ".join(sorted(windows, key=lambda n: windows[n][0]))
    how = ("one at a time (%s)" % order if not together
           else "%d pair(s) restarting together (%s)" % (len(together), ", ".join("+".join(p) for p in together)))
    log("%s: play %s in %.0f s, changed=%d; new secrets for %s; restarted %s" % (
        drill, "ok" if run.ok else "FAILED", run.seconds, run.changed, ", ".join(renewed) or "none", how))
    return {"renewed": renewed, "restart_windows": windows, "restarted_together": together, "how": how,
            "master_before": master_before, "master_after": master_after,
            "seconds": run.seconds, "play_ok": run.ok, "play_failures": run.failures()[-3:], "after": after}


def _refused_everywhere(ctx: Ctx, passwords: dict[str, str]) -> dict:
    """Where the given Redis and Sentinel passwords are still accepted (empty lists: nowhere), and how
    many servers and Sentinels were asked."""
    seen = ctx.probe.accepted(passwords["stack_redis_password"], passwords["stack_sentinel_password"])
    out: dict = {kind: sorted(addr for addr, ok in seen[kind].items() if ok) for kind in ("servers", "sentinels")}
    out["checked"] = {kind: len(seen[kind]) for kind in ("servers", "sentinels")}
    return out


def redis_password(ctx: Ctx) -> dict:
    """A new Redis and Sentinel password through the stack playbook under load, then back to the
    inventory's (so the lab ends as it began): each time every server and Sentinel first accepts
    the new password beside the old one, web and the monitoring exporter move to it, and they
    restart onto it one at a time (the stack role's Redis rolling update). After each play the
    password it replaced must be refused by every server and Sentinel. Target: both plays ok, every
    Redis service on the new secret each time, the old password refused, 0 failed, 0 lost."""
    before = _redis_side_secrets(ctx)
    inventory = host_vars(inventory_name(ctx.lab.name, ctx.swarm.manager), ["stack_redis_password", "stack_sentinel_password"])
    rotated = {"stack_redis_password": "drill-" + secrets.token_hex(12), "stack_sentinel_password": "drill-" + secrets.token_hex(12)}
    start_value = ctx.counter()
    load = ctx.with_load(900)
    log("redis-password: %s with a new Redis and Sentinel password, then back to the inventory's" % STACK)
    there = _roll(ctx, "redis-password", before, rotated)
    there["old_still_accepted"] = _refused_everywhere(ctx, inventory)
    back = _roll(ctx, "redis-password", there.pop("after"), {})
    back.pop("after")
    back["old_still_accepted"] = _refused_everywhere(ctx, rotated)
    _ops, summary, acc = ctx.finish(load, start_value, tail=3)
    plays_ok = there["play_ok"] and back["play_ok"]
    # Asked every server and Sentinel (none left out), and none accepted the replaced password.
    refused = all(seen["checked"]["servers"] > 0 and seen["checked"]["sentinels"] > 0
                  and not seen["servers"] and not seen["sentinels"]
                  for seen in (there["old_still_accepted"], back["old_still_accepted"]))
    text = ("plays %s in %s and %s; %d and %d of %d Redis services restarted onto the new password, %s; back: %s; "
            "the replaced password %s") % (
        "ok" if plays_ok else "FAILED", fmt_seconds(there["seconds"]), fmt_seconds(back["seconds"]),
        len(there["renewed"]), len(back["renewed"]), len(before), there["how"], back["how"],
        "refused everywhere both times" if refused else "STILL ACCEPTED: %s / %s" % (
            there["old_still_accepted"], back["old_still_accepted"]))
    log("redis-password: " + text)
    return met({"drill": "redis-password", "recover": there["seconds"], "recover_text": text,
                "load": summary, "accounting": acc, "detail": {"rotated": there, "back": back}},
               plays_ok and refused and len(there["renewed"]) == len(back["renewed"]) == len(before)
               and summary["failed_requests"] == 0 and acc["lost"] == 0)
