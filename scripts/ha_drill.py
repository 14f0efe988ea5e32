#!/usr/bin/env python
"""Watcher for the manager-loss drill (playbooks/ha_drill.yml), run on a manager that stays up.

It polls that manager's Docker Engine API (the same call as `docker node ls`) every --interval
seconds: a bounded control-plane load of one request at a time. Optionally it also sends one HTTP
GET per tick to each --url (an application behind the stack's edge). The drill writes --stop-file
(JSON {"stopped_at": epoch}) on this host right after it stopped the leader; the watcher ends once
it has read that file, seen a Leader other than --old-leader, and every replicated service runs its
desired count on ready nodes, or after --timeout seconds. It prints one JSON document (also written
to --out) with times measured from the stop and the failed requests after it.

Standard library only: it runs with the node's python3, over /var/run/docker.sock.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse
import urllib.request


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the engine's unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def api(socket_path: str, path: str, timeout: float):
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError("%s %s" % (response.status, body[:160].decode(errors="replace").strip()))
        return json.loads(body)
    finally:
        conn.close()


def leader_of(nodes: list) -> str:
    for node in nodes:
        if (node.get("ManagerStatus") or {}).get("Leader"):
            return node["Description"]["Hostname"]
    return ""


def services_short(socket_path: str, nodes: list, timeout: float) -> list[str]:
    """Replicated services with fewer running tasks on ready nodes than desired: ['name 3/4', ...]."""
    ready = {n["ID"] for n in nodes if n["Status"]["State"] == "ready"}
    services = api(socket_path, "/services", timeout)
    query = urllib.parse.quote(json.dumps({"desired-state": ["running"]}))
    tasks = api(socket_path, "/tasks?filters=" + query, timeout)
    running: dict[str, int] = {}
    for task in tasks:
        if task["Status"]["State"] == "running" and task.get("NodeID") in ready:
            running[task["ServiceID"]] = running.get(task["ServiceID"], 0) + 1
    short = []
    for service in services:
        replicated = service["Spec"].get("Mode", {}).get("Replicated")
        if replicated is None:
            continue
        want = replicated.get("Replicas", 0)
        have = running.get(service["ID"], 0)
        if have < want:
            short.append("%s %d/%d" % (service["Spec"]["Name"], have, want))
    return short


def http_ok(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (drill target)
            response.read()
            return 200 <= response.status < 400
    except Exception:  # pylint: disable=broad-except
        return False


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--old-leader", required=True, help="Swarm hostname of the leader being stopped")
    parser.add_argument("--stop-file", required=True, help="JSON file the drill writes after the stop")
    parser.add_argument("--out", required=True, help="Where to write the result (JSON)")
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--request-timeout", type=float, default=2.0)
    parser.add_argument("--url", action="append", default=[], help="HTTP URL to load (repeatable)")
    parser.add_argument("--socket", default="/var/run/docker.sock")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.time()
    stopped_at = stop_returned_at = None
    control: list[tuple[float, bool, str]] = []  # (time, ok, error)
    http: list[tuple[float, bool]] = []
    new_leader, new_leader_at, services_ok_at = "", None, None
    short: list[str] = []
    while time.time() - started < args.timeout:
        tick = time.time()
        if stopped_at is None and os.path.exists(args.stop_file):
            with open(args.stop_file, encoding="utf-8") as handle:
                stop = json.load(handle)
            stopped_at = float(stop["stopped_at"])
            stop_returned_at = float(stop.get("stop_returned_at", stopped_at))
        try:
            nodes = api(args.socket, "/nodes", args.request_timeout)
            control.append((tick, True, ""))
        except Exception as error:  # pylint: disable=broad-except
            nodes = None
            control.append((tick, False, str(error)[:160]))
        if nodes is not None:
            leader = leader_of(nodes)
            if new_leader_at is None and leader and leader != args.old_leader:
                new_leader, new_leader_at = leader, tick
            if new_leader_at is not None and services_ok_at is None:
                try:
                    short = services_short(args.socket, nodes, args.request_timeout)
                    if not short:
                        services_ok_at = tick
                except Exception:  # pylint: disable=broad-except
                    pass
        for url in args.url:
            http.append((time.time(), http_ok(url, args.request_timeout)))
        if stopped_at is not None and new_leader_at is not None and services_ok_at is not None:
            break
        time.sleep(max(0.0, args.interval - (time.time() - tick)))

    origin = stopped_at if stopped_at is not None else started
    after = [c for c in control if c[0] >= origin]
    failed = [c for c in after if not c[1]]
    http_after = [h for h in http if h[0] >= origin]

    def since(moment):
        return None if moment is None else round(moment - origin, 1)

    result = {
        "old_leader": args.old_leader,
        "new_leader": new_leader,
        "stop_seen": stopped_at is not None,
        # How long the stop command itself took (a clean shutdown of the node; a kill is near 0).
        "stop_took_s": since(stop_returned_at),
        "leader_after_s": since(new_leader_at),
        "services_ok_after_s": since(services_ok_at),
        "services_short": short if services_ok_at is None else [],
        "control_requests": len(after),
        "control_failed": len(failed),
        "control_failed_window_s": [since(failed[0][0]), since(failed[-1][0])] if failed else [],
        "control_errors": sorted({c[2] for c in failed})[:5],
        "http_requests": len(http_after),
        "http_failed": sum(1 for h in http_after if not h[1]),
        "timed_out": stopped_at is None or new_leader_at is None or services_ok_at is None,
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
