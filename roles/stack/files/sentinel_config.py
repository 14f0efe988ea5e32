"""Runtime configuration of the stack's Sentinels (written for the swarmlab.cluster stack role).

Runs inside the stack's overlay network (python-in-network). Input: one JSON argument (addresses and
settings); the Redis password in STACK_REDIS_PASSWORD. Output: one JSON object on stdout with ok,
changed, changes, master, summary. Changes only what differs from the wanted state:
  - a Sentinel that does not monitor the actual master: SENTINEL REMOVE (if needed) + MONITOR + SET
  - settings that differ: SENTINEL SET
  - stale entries (more peers or replicas than exist, e.g. old task addresses): SENTINEL RESET,
    one Sentinel at a time, waiting until it has found its peers again
Then waits until SENTINEL CKQUORUM passes on every Sentinel.
"""
from __future__ import annotations

import json
import os
import sys
import time

import redis

PORT = 6379
SENTINEL_PORT = 26379


def client(host: str, port: int, password: str | None = None) -> redis.Redis:
    return redis.Redis(host=host, port=port, password=password, socket_timeout=2,
                       socket_connect_timeout=2, decode_responses=True)


def as_dict(reply) -> dict:
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    return {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}


def sentinel_master(host: str, name: str) -> dict | None:
    try:
        return as_dict(client(host, SENTINEL_PORT).execute_command("SENTINEL", "MASTER", name))
    except redis.ResponseError as exc:
        if "No such master" in str(exc):
            return None
        raise


def find_master(cfg: dict, password: str, views: dict) -> tuple[str | None, str]:
    masters = []
    for ip in cfg["redis"]:
        try:
            role = client(ip, PORT, password).execute_command("ROLE")
        except redis.RedisError:
            continue
        if role[0] in ("master", b"master"):
            masters.append(ip)
    if len(masters) == 1:
        return masters[0], "the only master"
    if not masters:
        return None, "no reachable master among " + ", ".join(cfg["redis"])
    watched = [v.get("ip") for v in views.values() if v]
    voted = sorted(masters, key=watched.count, reverse=True)
    if watched.count(voted[0]) > 0 and (len(voted) == 1 or watched.count(voted[0]) > watched.count(voted[1])):
        return voted[0], "the master the Sentinels follow (other masters: %s)" % ", ".join(voted[1:])
    return None, "several masters and no Sentinel majority for one: " + ", ".join(masters)


def main() -> int:
    cfg = json.loads(sys.argv[1])
    password = os.environ["STACK_REDIS_PASSWORD"]
    name = cfg["master_name"]
    check = bool(cfg.get("check_mode"))
    wanted = {
        "quorum": str(cfg["quorum"]),
        "down-after-milliseconds": str(cfg["down_after_ms"]),
        "failover-timeout": str(cfg["failover_timeout_ms"]),
        "parallel-syncs": str(cfg["parallel_syncs"]),
    }
    sentinels = cfg["sentinels"]
    changes: list[str] = []
    out = {"ok": False, "changed": False, "changes": changes, "master": None, "summary": ""}

    views = {}
    deadline = time.monotonic() + 30
    while True:
        views = {s: sentinel_master(s, name) for s in sentinels}
        master, why = find_master(cfg, password, views)
        if master or time.monotonic() > deadline:
            break
        time.sleep(2)  # a failover may be under way
    if not master:
        out["summary"] = why
        print(json.dumps(out))
        return 0
    out["master"] = master

    for s in sentinels:
        sc = client(s, SENTINEL_PORT)
        view = views[s]
        if view is not None and view.get("ip") != master:
            changes.append("%s: monitored %s, the master is %s: REMOVE + MONITOR" % (s, view.get("ip"), master))
            if not check:
                sc.execute_command("SENTINEL", "REMOVE", name)
            view = None
        elif view is None:
            changes.append("%s: not monitoring %s: MONITOR %s" % (s, name, master))
        if view is None:
            if not check:
                sc.execute_command("SENTINEL", "MONITOR", name, master, PORT, cfg["quorum"])
                sc.execute_command("SENTINEL", "SET", name, "auth-pass", password)
                for key, value in wanted.items():
                    if key != "quorum":
                        sc.execute_command("SENTINEL", "SET", name, key, value)
            continue
        diff = {k: v for k, v in wanted.items() if view.get(k) != v}
        # A Sentinel without the right password cannot refresh INFO from the master.
        if int(view.get("info-refresh", "0")) > 30000:
            changes.append("%s: no INFO from the master for %s ms: SET auth-pass" % (s, view["info-refresh"]))
            if not check:
                sc.execute_command("SENTINEL", "SET", name, "auth-pass", password)
        if diff:
            changes.append("%s: SET %s" % (s, " ".join("%s %s" % kv for kv in diff.items())))
            if not check:
                for key, value in diff.items():
                    sc.execute_command("SENTINEL", "SET", name, key, value)
        peers = int(view.get("num-other-sentinels", "0"))
        replicas = int(view.get("num-slaves", "0"))
        if peers > len(sentinels) - 1 or replicas > len(cfg["redis"]) - 1:
            changes.append("%s: stale entries (%d peers, %d replicas; %d and %d exist): RESET"
                           % (s, peers, replicas, len(sentinels) - 1, len(cfg["redis"]) - 1))
            if not check:
                sc.execute_command("SENTINEL", "RESET", name)
                # Peers are found again through hello messages (every 2 s), replicas through INFO.
                until = time.monotonic() + 30
                while time.monotonic() < until:
                    v = sentinel_master(s, name) or {}
                    if int(v.get("num-other-sentinels", "0")) >= len(sentinels) - 1:
                        break
                    time.sleep(1)

    out["changed"] = bool(changes)
    quorum: dict[str, str] = {}
    until = time.monotonic() + (0 if check else int(cfg.get("ckquorum_timeout", 60)))
    while True:
        for s in sentinels:
            try:
                quorum[s] = str(client(s, SENTINEL_PORT).execute_command("SENTINEL", "CKQUORUM", name))
            except redis.RedisError as exc:
                quorum[s] = "NOQUORUM " + str(exc)
        if all(q.startswith("OK") for q in quorum.values()) or time.monotonic() >= until:
            break
        time.sleep(2)
    out["ok"] = check or all(q.startswith("OK") for q in quorum.values())
    out["ckquorum"] = quorum
    out["summary"] = ["master %s (%s)" % (master, why)] + changes + ["%s: %s" % kv for kv in quorum.items()]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
