"""One question to Redis or Sentinel, asked from inside a web task container; prints one JSON line.

    python3 -c "$(cat redis_probe.py)" '{"op": "master"}'

Ops: master (Sentinel's answer, else the configured master), get {keys}, set {key, value},
replication (INFO of the
master), failover (SENTINEL FAILOVER through the first Sentinel that accepts it), reset (SENTINEL
RESET on each Sentinel in turn, each time waiting until CKQUORUM passes again).
"""
import dataclasses
import json
import sys
import time

from counter.config import Settings  # pylint: disable=import-error
from counter.store import CounterStore  # pylint: disable=import-error


def master_address(store, settings):
    if store.sentinel is not None:
        host, port = store.sentinel.discover_master(settings.sentinel_master)
        return [host, int(port)]
    kwargs = store.master.connection_pool.connection_kwargs
    return [kwargs.get("host"), int(kwargs.get("port", 6379))]


def reset(store, settings, timeout):
    done = []
    for sentinel in store.sentinel.sentinels:
        sentinel.execute_command("SENTINEL", "RESET", settings.sentinel_master)
        deadline = time.monotonic() + timeout
        while True:
            try:
                sentinel.execute_command("SENTINEL", "CKQUORUM", settings.sentinel_master)
                break
            # not yet
            except Exception:  # pylint: disable=broad-except
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        done.append(sentinel.connection_pool.connection_kwargs.get("host"))
    return done


def main(request):
    settings = dataclasses.replace(Settings.from_env(), retries=0)
    store = CounterStore(settings)
    op = request["op"]
    if op == "master":
        return {"address": master_address(store, settings)}
    if op == "get":
        return {"values": {k: (None if v is None else int(v))
                           for k, v in zip(request["keys"], store.master.mget(request["keys"]))}}
    if op == "set":
        store.master.set(request["key"], request["value"])
        return {}
    if op == "replication":
        return {"info": store.master.info("replication"), "address": master_address(store, settings)}
    if store.sentinel is None:
        raise RuntimeError("the app has no Sentinel configured (REDIS_SENTINELS)")
    if op == "failover":
        errors = []
        for sentinel in store.sentinel.sentinels:
            try:
                sentinel.execute_command("SENTINEL", "FAILOVER", settings.sentinel_master)
                return {"sentinel": sentinel.connection_pool.connection_kwargs.get("host")}
            # the next Sentinel may accept it
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(str(exc))
        raise RuntimeError("no Sentinel accepted SENTINEL FAILOVER: " + "; ".join(errors))
    if op == "reset":
        return {"reset": reset(store, settings, float(request.get("timeout", 30)))}
    raise ValueError("unknown op %r" % op)


if __name__ == "__main__":
    try:
        print(json.dumps({"ok": True, **main(json.loads(sys.argv[1]))}))
    # reported as data
    except Exception as exc:  # pylint: disable=broad-except
        print(json.dumps({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}))
