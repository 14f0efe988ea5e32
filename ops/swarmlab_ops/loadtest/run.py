"""Load test of the counter app: bare gunicorn vs single mode vs the Swarm stack, and a replica sweep.

Runs Locust headless (app/locustfile.py, FastHttpUser, several processes) for the same users, spawn
rate and duration against each case, samples the CPU of the generator and of the lab's processes
from /proc while it runs, and writes one folder per run (results/loadtest/<timestamp>/): Locust's
CSVs and HTML per case, summary.json, summary.md (table, targets, warnings, profile), loadtest.png.

Cases (each one only when asked):
  --bare     the app under gunicorn on this machine with a local redis-server (loopback): the ceiling
  --single   1 web + 1 Redis as plain containers on one lab node (playbooks/single.yml, brought up
             and, unless --keep-single, taken down here)
  --swarm    the stack through its edge, at the replica count it has
  --replicas the stack scaled to each count (Engine API), waiting for N/N by the collection's
             convergence rule and until the edge spreads over exactly N replicas (X-Served-By)
  --profile  wrk at 1 and 32 connections from the host and from a probe on the overlay network,
             redis-cli --latency in the master and from a replica's container
Traffic goes only to loopback and the lab's containers; every case is bounded in time.

With the monitoring stack deployed, each case through the edge (--swarm, --replicas) also records
what Prometheus saw for the case's window and where it disagrees with Locust's own count
(docs/monitoring.md, "What the drills and the load test read from Prometheus").
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from .. import quiet
from ..checkout import RESULTS
from ..lab import Lab, Swarm
from ..lab.ansible import run_playbook
from ..lab.prometheus import find as find_prometheus, observe
from ..options import comma_list
from ..report import log
from .locust import BareApp, loadavg, run_locust, served_by, sh, wait_ready, wait_spread
from .profile import run_profile
from .report import render_chart, render_markdown
from .stats import check_targets

WRK_LUA = files("swarmlab_ops").joinpath("wrk_report.lua")


def prometheus_saw(prom: Any, name: str, case: dict[str, Any]) -> None:
    """What Prometheus saw in the case's window beside Locust's count (Locust does not tell 5xx from
    other failures, nor which answers the app gave: its failures against the 5xx answers)."""
    window = case["window"]
    case["prometheus"] = observe(prom, window["start"], window["end"],
                                 {"requests": case["requests"], "failures": case["failures"]})
    log(f"case {name}: {case['prometheus']['text']}")


def single_mode(lab_name: str, state: str, host: str) -> None:
    run = run_playbook("playbooks/single.yml", lab_name, {"single_state": state, "single_host": host})
    if not run.ok:
        raise RuntimeError(f"single.yml ({state}) failed: " + " | ".join(run.failures()))


def render_only(run_dir: Path) -> int:
    data = json.loads((run_dir / "summary.json").read_text())
    meta, cases = data["meta"], data["cases"]
    (run_dir / "summary.md").write_text(render_markdown(meta, cases, check_targets(cases), data.get("profile")))
    render_chart(cases, run_dir / "loadtest.png", f"Locust {meta['users']} users, {meta['seconds']} s per case, "
                 f"{meta['cpus']} CPUs (shared; load avg at start {meta['load_avg']})")
    return 0


def run(args: Any) -> int:  # pylint: disable=too-many-locals,too-many-branches,too-many-statements
    if args.render:
        return render_only(args.render)
    if not 5 <= args.seconds <= 120 or not 1 <= args.profile_seconds <= 30:
        raise SystemExit("--seconds must be 5..120 and --profile-seconds 1..30 (every case is bounded)")
    if args.bare and shutil.which("redis-server") is None:
        raise SystemExit("redis-server not found (apt-get install redis-server)")
    sweep = list(args.replicas)
    reading = quiet.guard(args.lab)
    needs_lab = args.single or args.swarm or sweep or args.profile
    started = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    outdir = args.out / started
    outdir.mkdir(parents=True)
    lua = outdir / "wrk.lua"  # kept with the results, and copied into the overlay probe
    lua.write_text(WRK_LUA.read_text())
    meta = {"started": started, "cpus": os.cpu_count(),
            "locust": sh([str(Path(sys.executable).with_name("locust")), "--version"]).split()[1],
            "users": args.users, "spawn_rate": args.spawn_rate, "seconds": args.seconds,
            "processes": args.processes, "workers": args.workers, "threads": args.threads,
            "profile_seconds": args.profile_seconds, "argv": sys.argv, "load_avg": loadavg(),
            "quiet": reading}
    log(f"results in {outdir}; load average {meta['load_avg']}")
    lab = Lab(args.lab) if needs_lab else None
    swarm = Swarm(lab, args.stack) if lab else None
    node_pids = lab.node_pids() if lab else []
    cases: dict[str, dict[str, Any]] = {}
    profile = None
    original = None
    try:
        if args.bare:
            with BareApp(args.workers, args.threads, args.users) as bare:
                cases["bare"] = run_locust("bare", bare.url, args, outdir, [], bare.pids)
        if args.single and lab:
            single_mode(lab.name, "present", args.single_host)
            url = f"http://{lab.nodes[args.single_host].address}:{args.single_port}"
            wait_ready(url, 60)
            log(f"single mode served by {served_by(url, 4)}")
            cases["single"] = run_locust("single", url, args, outdir, node_pids, [])
            if not args.keep_single:
                single_mode(lab.name, "absent", args.single_host)
        if swarm and (args.swarm or sweep or args.profile):
            edge = swarm.edge_url()
            wait_ready(edge, 30)
            original = swarm.replicas()["web"]
            prom = find_prometheus(swarm)
            log(f"Prometheus: {prom.url if prom else 'not deployed'}")
            if args.swarm:
                meta["swarm_replicas"] = original
                meta["swarm_spread"] = wait_spread(edge, original, args.converge_timeout)
                log(f"edge spreads over {original} replicas: {meta['swarm_spread']}")
                cases["swarm"] = run_locust("swarm", edge, args, outdir, node_pids, [])
                prometheus_saw(prom, "swarm", cases["swarm"])
            if args.profile:
                profile = run_profile(swarm, edge, args.profile_seconds, outdir, lua)
            for n in sweep:
                took = swarm.scale("web", n, args.converge_timeout)
                spread = wait_spread(edge, n, args.converge_timeout)
                log(f"scaled to {n} in {took:.0f} s; edge spreads over {spread}")
                cases[f"replicas-{n}"] = run_locust(f"replicas-{n}", edge, args, outdir, node_pids, [])
                cases[f"replicas-{n}"]["spread"] = spread
                prometheus_saw(prom, f"replicas-{n}", cases[f"replicas-{n}"])
    finally:
        if swarm and sweep and (args.restore_replicas or original):
            restore = args.restore_replicas or original
            log(f"restoring {swarm.service_name('web')} to {restore} replicas")
            try:
                swarm.scale("web", restore, args.converge_timeout)
            except RuntimeError as exc:
                log(f"WARNING: {exc}")
        meta["load_avg_end"] = loadavg()
        targets = check_targets(cases)
        (outdir / "summary.json").write_text(json.dumps(
            {"meta": meta, "cases": cases, "targets": targets, "profile": profile}, indent=2))
        if cases:
            md = render_markdown(meta, cases, targets, profile)
            (outdir / "summary.md").write_text(md)
            render_chart(cases, outdir / "loadtest.png", f"Locust {args.users} users, {args.seconds} s per case, "
                         f"{meta['cpus']} CPUs (shared; load avg at start {meta['load_avg']})")
            print(md)
        log(f"results in {outdir}")
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("--bare", action="store_true", help="the bare gunicorn baseline on loopback")
    parser.add_argument("--single", action="store_true", help="single mode (playbooks/single.yml) on --single-host")
    parser.add_argument("--single-host", default="worker2")
    parser.add_argument("--single-port", type=int, default=8081)
    parser.add_argument("--keep-single", action="store_true", help="leave single mode up afterwards")
    parser.add_argument("--swarm", action="store_true", help="the stack through its edge, as deployed")
    parser.add_argument("--replicas", type=comma_list(item=int), default="", help="sweep, e.g. 1,2,4")
    parser.add_argument("--restore-replicas", type=int, help="replicas to leave web at (default: what it had)")
    parser.add_argument("--profile", action="store_true", help="wrk/redis-cli path profile")
    parser.add_argument("--profile-seconds", type=int, default=4)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--spawn-rate", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=25, help="duration of each case (5..120)")
    parser.add_argument("--processes", type=int, default=2, help="Locust worker processes")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers of the bare case (sized for the machine, as perf --bare-workers)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads of the bare case (the image's)")
    parser.add_argument("--converge-timeout", type=float, default=180)
    parser.add_argument("--out", type=Path, default=RESULTS / "loadtest")
    parser.add_argument("--render", type=Path, metavar="RUN_DIR",
                        help="only re-render summary.md and loadtest.png from RUN_DIR/summary.json")
