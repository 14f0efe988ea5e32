"""Drills of the web service: a task killed, a rolling update under load."""
from __future__ import annotations

import io
import time
from collections import Counter

from ..lab.ansible import host_vars, inventory_name, run_playbook
from ..report import fmt_seconds, log
from .common import Ctx, met


def web_kill(ctx: Ctx) -> dict:
    opts = ctx.opts
    desired = ctx.swarm.replicas()["web"]
    tasks = ctx.swarm.running_tasks("web")
    victim = next((t for t in tasks if t["node"] != ctx.swarm.manager.name), tasks[0])
    start_value = ctx.counter()
    load = ctx.with_load(40 if opts.short else 60)
    log("web-kill: killing task %s on %s" % (victim["id"][:12], victim["node"]))
    t0 = time.time()
    ctx.swarm.kill_task(victim)
    recovered, dipped = None, False
    while time.time() - t0 < (30 if opts.short else 45):
        running = ctx.swarm.running_tasks("web")
        dipped = dipped or victim["id"] not in {t["id"] for t in running}
        if dipped and len(running) >= desired:
            recovered = round(time.time() - t0, 2)
            break
        time.sleep(0.3)
    _ops, summary, acc = ctx.finish(load, start_value, tail=3)
    return met({"drill": "web-kill", "recover": recovered,
                "recover_text": (f"{desired}/{desired} after " + fmt_seconds(recovered)) if recovered is not None
                else f"not {desired}/{desired} in time",
                "load": summary, "accounting": acc, "detail": {"killed": victim["id"], "node": victim["node"]}},
               recovered is not None and recovered <= 15 and summary["failed_pct"] <= 1.0)


def registry_auth(ctx: Ctx) -> dict:
    """The first registry user, from the lab inventory through Ansible (ansible-inventory --host)."""
    host = inventory_name(ctx.lab.name, ctx.swarm.manager)
    user = host_vars(host, ["registry_users"])["registry_users"][0]
    return {"username": user["name"], "password": user["password"]}


def rolling_update(ctx: Ctx) -> dict:
    image = ctx.swarm.image("web")
    repo = image.split("@")[0].rsplit(":", 1)[0]
    tag = "drill-%d" % time.time()
    engine = ctx.swarm.manager.client()
    auth = registry_auth(ctx)
    engine.login(registry=repo.split("/")[0], **auth)  # also gives the service update its registry auth
    engine.images.get(image.split("@")[0]).tag(repo, tag)
    for line in engine.images.push(repo, tag=tag, auth_config=auth, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError("push %s:%s: %s" % (repo, tag, line["error"]))
    start_value = ctx.counter()
    load = ctx.with_load(400)
    log("rolling-update: %s -> %s:%s (start-first)" % (image, repo, tag))
    t0 = time.time()

    def new_image(spec: dict) -> None:
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = f"{repo}:{tag}"

    desired = ctx.swarm.replicas()["web"]
    watch = ctx.watch("web")
    try:
        before = ctx.swarm.update_spec("web", new_image)
        state = ctx.swarm.wait_update("web", ("completed", "rollback_completed", "paused", "rollback_paused"))
        took = round(time.time() - t0, 2)
        _ops, summary, acc = ctx.finish(load, start_value, tail=3)
    finally:
        watch.stop()
    low = watch.min()
    log("rolling-update: %s in %.0f s; restoring %s" % (state, took, image))
    ctx.swarm.restore_spec("web", before)
    ctx.swarm.wait_update("web", ("completed", "rollback_completed", "paused", "rollback_paused"))
    return met({"drill": "rolling-update", "recover": took, "min_running": low, "desired": desired,
                "recover_text": "update %s in %s" % (state, fmt_seconds(took)), "load": summary, "accounting": acc,
                "detail": {"image": f"{repo}:{tag}", "state": state, "min_running": low,
                           "counter_equals_acknowledged": acc["delta"] == acc["acknowledged"]}},
               state == "completed" and summary["failed_requests"] == 0 and acc["lost"] == 0
               and low is not None and low >= desired)


def scale(ctx: Ctx) -> dict:
    """Scale web out by two tasks and back under load (what stack_web_replicas does through the stack
    playbook): a new task gets requests only once ready, a removed one only until it stops."""
    desired = ctx.swarm.replicas()["web"]
    start_value = ctx.counter()
    # One connection per worker: more workers than tasks, so that the new and the removed ones serve.
    load = ctx.with_load(240, workers=max(ctx.opts.workers, desired + 4))
    took = {}
    try:
        log("scale: web %d -> %d" % (desired, desired + 2))
        took["out"] = round(ctx.swarm.scale("web", desired + 2, 150), 2)
        time.sleep(5)
        log("scale: web %d -> %d" % (desired + 2, desired))
        took["in"] = round(ctx.swarm.scale("web", desired, 150), 2)
        # N/N counts the tasks Swarm wants; the two removed ones stop within their grace period.
        took["stopped"] = round(ctx.swarm.wait_stopped("web", 90), 2)
        ops, summary, acc = ctx.finish(load, start_value, tail=3)
    finally:
        if ctx.swarm.replicas()["web"] != desired:
            ctx.swarm.scale("web", desired, 150)
    return met({"drill": "scale", "recover": took["out"] + took["in"],
                "recover_text": "%d -> %d in %s, back in %s (stopped in %s)" % (
                    desired, desired + 2, fmt_seconds(took["out"]), fmt_seconds(took["in"]),
                    fmt_seconds(took["stopped"])),
                "load": summary, "accounting": acc,
                "detail": {"desired": desired, "took": took, "failures": failure_kinds(ops),
                           # The app's tasks that answered: the two new ones among them once ready.
                           "served_by": len({op.served_by for op in ops if op.served_by})}},
               summary["failed_requests"] == 0 and acc["lost"] == 0)


# A version whose /readyz never passes: the app's own image with a command that points it at a Redis
# master that does not exist (under Sentinel, a master name no Sentinel monitors). /healthz answers;
# /readyz never does.
NEVER_READY_DOCKERFILE = """FROM {base}
ENV NEVER_READY="REDIS_URL=redis://never-ready.invalid:6379/0 REDIS_SENTINEL_MASTER=never-ready-drill"
CMD ["sh", "-c", "exec env $NEVER_READY gunicorn --config /srv/app/gunicorn.conf.py 'counter:create_app()'"]
"""
STACK = "playbooks/stack.yml"
ROLLOUT = "swarmlab.cluster.swarm_rollout"


def failure_kinds(ops: list) -> dict[str, int]:
    """The requests that did not succeed, by HTTP status or by the client's error, most frequent first."""
    return dict(Counter("HTTP %d" % op.status if op.status else op.error or "?"
                        for op in ops if op.outcome != "ok").most_common(5))


def push_never_ready(ctx: Ctx, image: str) -> str:
    """Build the never-ready version on the manager from the running image and push it; its reference."""
    base = image.split("@")[0]
    repo = base.rsplit(":", 1)[0]
    ref = "%s:never-ready-%d" % (repo, time.time())
    engine = ctx.swarm.manager.client()
    auth = registry_auth(ctx)
    engine.login(registry=repo.split("/")[0], **auth)
    engine.images.build(fileobj=io.BytesIO(NEVER_READY_DOCKERFILE.format(base=base).encode()), tag=ref, rm=True,
                        pull=False)
    for line in engine.images.push(ref, auth_config=auth, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError("push %s: %s" % (ref, line["error"]))
    return ref


def bad_deploy(ctx: Ctx, kind: str) -> dict:
    """Deploy a bad version of web with the stack playbook under load: an image reference that does
    not exist (bad-image) or an image whose /readyz never passes (never-ready).

    Expected: Swarm rolls the update back by itself (start-first: the previous tasks keep serving),
    the play fails with a message naming the service, the image and the task errors (read from the
    swarm_rollout result in the runner's events, and the role's set_stats), web keeps its spec image
    and never drops below its replicas, no request fails, nothing is lost; then the stack playbook with
    the good image reports changed=0."""
    good = ctx.swarm.image("web")
    repo = good.split("@")[0].rsplit(":", 1)[0]
    bad = push_never_ready(ctx, good) if kind == "never-ready" else "%s:does-not-exist" % repo
    desired = ctx.swarm.replicas()["web"]
    start_value = ctx.counter()
    load = ctx.with_load(900)
    watch = ctx.watch("web")
    try:
        log("%s: deploying %s with %s" % (kind, bad, STACK))
        failed_run = run_playbook(STACK, ctx.lab.name, {"stack_web_image": bad})
        rollout = failed_run.result(ROLLOUT) or {}
        returned = failed_run.data.get("stack_rollout", {})
        log("%s: play %s in %.0f s: %s" % (kind, "FAILED" if not failed_run.ok else "succeeded", failed_run.seconds,
                                           " | ".join(failed_run.failures())[-600:] or "no failure"))
        serving = ctx.swarm.image("web")
        log("%s: rerunning %s with the good image %s" % (kind, STACK, good))
        rerun = run_playbook(STACK, ctx.lab.name, {"stack_web_image": good})
        _ops, summary, acc = ctx.finish(load, start_value, tail=3)
    finally:
        watch.stop()
    low = watch.min()
    web = next((r for r in rollout.get("rollouts", []) if r["name"].endswith("_web")), {})
    message = rollout.get("msg", "")
    rolled_back = (not failed_run.ok and web.get("outcome") == "rolled_back" and web.get("image_attempted") == bad
                   and "_web" in message and bad in message and serving == good)
    return met({"drill": kind, "recover": web.get("seconds"), "min_running": low, "desired": desired,
                "recover_text": "%s; play %s (%s); rerun with the good image: %s, changed=%d" % (
                    "rolled back by Swarm after %s" % fmt_seconds(web.get("seconds")) if web.get("outcome") == "rolled_back"
                    else "NOT rolled back (%s)" % (web.get("outcome") or "no rollout result"),
                    "failed" if not failed_run.ok else "SUCCEEDED",
                    "; ".join(web.get("task_errors", [])[-1:]) or "no task error", "ok" if rerun.ok else "FAILED",
                    rerun.changed),
                "load": summary, "accounting": acc,
                "detail": {"image": bad, "good": good, "serving_after": serving, "play_failed": not failed_run.ok,
                           "message": message, "rollout": web, "returned": returned, "min_running": low,
                           "rerun_ok": rerun.ok, "rerun_changed": rerun.changed,
                           "rerun_changed_tasks": [r["task"] for r in rerun.results if r["res"].get("changed")]}},
               rolled_back and rerun.ok and rerun.changed == 0 and summary["failed_requests"] == 0
               and low is not None and low >= desired and acc["lost"] == 0)


def edge_renewal(ctx: Ctx) -> dict:
    """A new edge certificate, as a normal stack run signs it within stack_edge_tls_renew_days of the
    old one's expiry (forced here with a window longer than its validity), under the drills' load
    through the edge: each edge task stops (its port is published on its node, so the new one can
    only start once the old one is gone) and starts again on the new secret. Target: 0 failed,
    0 lost."""
    edge = ctx.swarm.service("edge") if ctx.swarm.has_service("edge") else None
    secrets = (edge or {}).get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {}).get("Secrets") or []
    if not secrets:
        return {"drill": "edge-renewal", "recover_text": "skipped: no edge, or no HTTPS at the edge (stack_edge_tls)",
                "met": None, "met_text": "not run"}
    before = {t["ID"] for t in ctx.swarm.tasks("edge")}
    web_image = ctx.swarm.image("web")
    start_value = ctx.counter()
    load = ctx.with_load(300)
    log("edge-renewal: %s with a new edge certificate (stack_edge_tls_renew_days=100000)" % STACK)
    run = run_playbook(STACK, ctx.lab.name, {"stack_web_image": web_image, "stack_edge_tls_renew_days": 100000})
    ops, summary, acc = ctx.finish(load, start_value, tail=3)
    bad = [op.start for op in ops if op.outcome != "ok"]
    after = ctx.swarm.tasks("edge")
    replaced = [t for t in after if t["ID"] not in before]
    text = "play %s in %s; %d of %d edge tasks replaced" % (
        "ok" if run.ok else "FAILED", fmt_seconds(run.seconds), len(replaced), len(after))
    log("edge-renewal: %s" % text)
    return met({"drill": "edge-renewal", "recover": run.seconds, "recover_text": text, "load": summary,
                "accounting": acc, "detail": {"play_ok": run.ok, "replaced": len(replaced), "tasks": len(after),
                                              "failures": failure_kinds(ops),
                                              "failing": [min(bad), max(bad)] if bad else [], "play_failures": run.failures()[-3:]}},
               run.ok and replaced and len(replaced) == len(after) and summary["failed_requests"] == 0
               and acc["lost"] == 0)
