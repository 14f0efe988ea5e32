"""Drills of the web service: a task killed, a rolling update under load."""
from __future__ import annotations

import time

from ..lab.ansible import host_vars, inventory_name
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
    image = ctx.swarm.service("web")["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
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

    before = ctx.swarm.update_spec("web", new_image)
    state = ctx.swarm.wait_update("web", ("completed", "rollback_completed", "paused", "rollback_paused"))
    took = round(time.time() - t0, 2)
    _ops, summary, acc = ctx.finish(load, start_value, tail=3)
    log("rolling-update: %s in %.0f s; restoring %s" % (state, took, image))
    ctx.swarm.restore_spec("web", before)
    ctx.swarm.wait_update("web", ("completed", "rollback_completed", "paused", "rollback_paused"))
    return met({"drill": "rolling-update", "recover": took,
                "recover_text": "update %s in %s" % (state, fmt_seconds(took)), "load": summary, "accounting": acc,
                "detail": {"image": f"{repo}:{tag}", "state": state,
                           "counter_equals_acknowledged": acc["delta"] == acc["acknowledged"]}},
               state == "completed" and summary["failed_requests"] == 0 and acc["lost"] == 0)
