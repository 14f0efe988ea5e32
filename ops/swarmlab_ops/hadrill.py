"""Manager (leader) loss drill on a lab with at least 3 managers (SWARMLAB_LAB_MANAGERS=3).

Stops the Raft leader's node container (or kills it: --stop-mode kill, a power cut) under a bounded
control-plane load (one GET /nodes every --interval s on another manager's Engine API, plus HTTP GETs
to --url if given), measures the time until a new Leader answers, the failed requests, and the time
until every replicated service runs its desired tasks on ready nodes (the collection's convergence
rule); updates a probe service through the new leader; starts the old leader again and waits until
it is a Reachable manager. Prints the result and a row for docs/reliability.md; exit status 1 when
the Swarm did not come through. The fault is a stopped lab node: lab only.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import docker
import requests

from .checkout import rules
from .lab import Lab
from .report import log

PROBE = "drill-probe"


def leader_of(nodes: list[dict]) -> str:
    return next((rules.node_hostname(n) for n in nodes if (n.get("ManagerStatus") or {}).get("Leader")), "")


class Watcher(threading.Thread):
    """Polls one manager's API (its own client: one request at a time) until a new leader answers
    and no service is short, or the timeout."""

    def __init__(self, socket: str, old_leader: str, urls: list[str], interval: float, timeout: float):
        super().__init__(daemon=True)
        self.api = docker.APIClient(base_url=socket, timeout=2)
        self.old_leader, self.urls, self.interval, self.timeout = old_leader, urls, interval, timeout
        self.stopped_at: float | None = None
        self.control: list[tuple[float, bool, str]] = []
        self.http: list[tuple[float, bool]] = []
        self.new_leader, self.new_leader_at, self.services_ok_at = "", None, None
        self.short: list[str] = []

    def run(self) -> None:
        started = time.time()
        while time.time() - started < self.timeout:
            tick = time.time()
            try:
                nodes = self.api.nodes()
                self.control.append((tick, True, ""))
            except (docker.errors.DockerException, OSError) as exc:
                nodes = None
                self.control.append((tick, False, str(exc)[:160]))
            if nodes is not None:
                leader = leader_of(nodes)
                if self.new_leader_at is None and leader and leader != self.old_leader:
                    self.new_leader, self.new_leader_at = leader, tick
                if self.new_leader_at is not None and self.services_ok_at is None:
                    try:
                        short = rules.short_services(self.api.services(), self.api.tasks(
                            filters={"desired-state": "running"}), nodes)
                        self.short = ["%(name)s %(running)d/%(replicas)d" % s for s in short]
                        if not short:
                            self.services_ok_at = tick
                    except (docker.errors.DockerException, OSError):
                        pass
            for url in self.urls:
                try:
                    self.http.append((time.time(), requests.get(url, timeout=2).ok))
                except requests.RequestException:
                    self.http.append((time.time(), False))
            if self.stopped_at is not None and self.new_leader_at is not None and self.services_ok_at is not None:
                break
            time.sleep(max(0.0, self.interval - (time.time() - tick)))

    def result(self, stop_returned_at: float | None) -> dict[str, Any]:
        origin = self.stopped_at or time.time()
        after = [c for c in self.control if c[0] >= origin]
        failed = [c for c in after if not c[1]]
        http_after = [h for h in self.http if h[0] >= origin]

        def since(moment):
            return None if moment is None else round(moment - origin, 1)

        return {
            "old_leader": self.old_leader, "new_leader": self.new_leader, "stop_seen": self.stopped_at is not None,
            "stop_took_s": since(stop_returned_at), "leader_after_s": since(self.new_leader_at),
            "services_ok_after_s": since(self.services_ok_at),
            "services_short": self.short if self.services_ok_at is None else [],
            "control_requests": len(after), "control_failed": len(failed),
            "control_failed_window_s": [since(failed[0][0]), since(failed[-1][0])] if failed else [],
            "control_errors": sorted({c[2] for c in failed})[:5],
            "http_requests": len(http_after), "http_failed": sum(1 for h in http_after if not h[1]),
            "timed_out": self.new_leader_at is None or self.services_ok_at is None,
        }


def wait_for(check, timeout: float, poll: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except (docker.errors.DockerException, OSError):
            pass
        time.sleep(poll)
    return False


def run(args: Any) -> int:  # pylint: disable=too-many-locals
    lab = Lab(args.lab)
    managers = lab.group("swarm_managers")
    if len(managers) < 3 or args.stop_mode not in ("stop", "kill"):
        raise SystemExit(f"the drill needs at least 3 managers (lab {lab.name} has {len(managers)}: with fewer, "
                         "losing the leader loses the Raft quorum) and --stop-mode stop or kill")
    nodes = managers[0].client().api.nodes()
    seen = [n for n in nodes if n["Spec"]["Role"] == "manager"]
    if {(n.get("ManagerStatus") or {}).get("Reachability") for n in seen} != {"reachable"} \
            or {rules.node_state(n) for n in nodes} != {"ready"}:
        raise SystemExit("Not every node is ready and every manager reachable before the drill; fix that first.")
    old_leader = leader_of(nodes)
    leader_addr = next(n["Status"]["Addr"] for n in nodes if rules.node_hostname(n) == old_leader)
    observer = next(m for m in managers if m.name != old_leader)
    api = observer.client().api
    result: dict[str, Any] = {"managers": len(seen), "workers": len(nodes) - len(seen), "stop_mode": args.stop_mode,
                              "old_leader": old_leader, "observer": observer.name}
    if args.probe:
        api.create_service({"ContainerSpec": {"Image": args.probe_image, "Command": ["sleep", "infinity"],
                                              "StopGracePeriod": 1_000_000_000}},
                           name=PROBE, mode={"Replicated": {"Replicas": args.probe_replicas}},
                           endpoint_spec={"Mode": "dnsrr"})
        wait_for(lambda: rules.convergence(api.services(filters={"name": PROBE}), api.tasks(),
                                           api.nodes())["converged"], 120, 2)
    watcher = Watcher(observer.socket, old_leader, args.url, args.interval, args.timeout)
    watcher.start()
    time.sleep(2)  # a baseline
    update_ok, update_output, restarted_at = False, "", time.time()
    try:
        watcher.stopped_at = time.time()
        log(f"ha-drill: {args.stop_mode} {old_leader} (the leader); watching from {observer.name}")
        # stop: a clean shutdown (Docker's default 10 s before it kills), as `docker stop` does.
        lab.stop_node(old_leader, kill=args.stop_mode == "kill", timeout=10)
        stop_returned_at = time.time()
        watcher.join(args.timeout + 30)
        result["watcher"] = watcher.result(stop_returned_at)
        if args.probe:
            try:
                svc = api.inspect_service(PROBE)
                spec = svc["Spec"]
                spec["TaskTemplate"]["ContainerSpec"]["Env"] = [f"DRILL_RUN={watcher.stopped_at}"]
                api.update_service(svc["ID"], svc["Version"]["Index"], task_template=spec["TaskTemplate"],
                                   name=spec["Name"], mode=spec["Mode"], endpoint_spec=spec.get("EndpointSpec"))
                update_ok = wait_for(lambda: (api.inspect_service(PROBE).get("UpdateStatus") or {}).get("State")
                                     == "completed", 120, 2)
                update_output = (api.inspect_service(PROBE).get("UpdateStatus") or {}).get("Message", "")
            except docker.errors.DockerException as exc:
                update_output = str(exc)[-300:]
    finally:
        restarted_at = time.time()
        lab.start_node(old_leader)

    def rejoined() -> bool:
        node = rules.find_node(api.nodes(), old_leader)
        return rules.node_state(node) == "ready" and (node.get("ManagerStatus") or {}).get("Reachability") == "reachable"

    back = wait_for(rejoined, args.rejoin_timeout)
    rejoined_after = round(time.time() - restarted_at, 1)
    wait_for(lambda: sum(1 for n in api.nodes() if (n.get("ManagerStatus") or {}).get("Leader")) == 1, 30, 2)
    after = api.nodes()
    if args.probe and not args.keep_probe:
        api.remove_service(PROBE)
    watch = result["watcher"]
    result.update(update_ok=update_ok, update_output=update_output, rejoined=back, rejoined_after_s=rejoined_after,
                  address_kept=rules.find_node(after, old_leader)["Status"]["Addr"] == leader_addr,
                  leader_after_drill=leader_of(after))
    ok = (not watch["timed_out"] and watch["new_leader"] not in ("", old_leader)
          and watch["leader_after_s"] <= args.max_election_s and (not args.probe or update_ok) and back)
    failed_pct = 100.0 * watch["control_failed"] / max(watch["control_requests"], 1)
    result["row"] = (
        f"| manager (leader) loss, docker {args.stop_mode} ({result['managers']} managers + {result['workers']} workers) "
        f"| new leader {watch['new_leader']} answering after {watch['leader_after_s']} s; services at desired counts "
        f"after {watch['services_ok_after_s']} s; {old_leader} Reachable {rejoined_after} s after start "
        f"| {watch['control_failed']} / {watch['control_requests']} ({failed_pct:.2f} %) control requests"
        + (f", {watch['http_failed']} / {watch['http_requests']} HTTP" if args.url else "")
        + f" | n/a | n/a | n/a | n/a | new leader <= {args.max_election_s:g} s, service update ok | {'yes' if ok else 'no'} |")
    print(json.dumps(result, indent=2))
    if args.report:
        Path(args.report).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


def add_arguments(parser) -> None:
    parser.add_argument("--stop-mode", default="stop", choices=["stop", "kill"])
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between control requests")
    parser.add_argument("--url", action="append", default=[], help="HTTP URL to load (repeatable)")
    parser.add_argument("--max-election-s", type=float, default=30.0)
    parser.add_argument("--no-probe", dest="probe", action="store_false", help="no probe service")
    parser.add_argument("--probe-image", default="swarmlab-lab/python:bookworm")
    parser.add_argument("--probe-replicas", type=int, default=4)
    parser.add_argument("--keep-probe", action="store_true")
    parser.add_argument("--rejoin-timeout", type=float, default=120.0)
    parser.add_argument("--report", help="also write the result (JSON) here")
