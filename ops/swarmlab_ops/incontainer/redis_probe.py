"""One question to Redis or Sentinel, asked from inside a web task container; prints one JSON line.

    python3 -c "$(cat redis_probe.py)" '{"op": "master"}'

Ops: master (Sentinel's answer, else the configured master), get {keys}, set {key, value},
replication (INFO of the master), auth {password, sentinel_password} (which servers and Sentinels
accept them), failover (SENTINEL FAILOVER through the first Sentinel that accepts it), reset
(SENTINEL RESET on each Sentinel in turn, each time waiting until CKQUORUM passes again).
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


def accepts(settings, host, port, password):
    """Whether the server or Sentinel at host:port accepts the password (PING after AUTH)."""
    import redis  # pylint: disable=import-error,import-outside-toplevel

    tls = {"ssl": True, "ssl_cert_reqs": "required", "ssl_ca_certs": settings.tls_ca_file} if settings.tls else {}
    try:
        return redis.Redis(host=host, port=port, password=password, socket_timeout=5, **tls).ping()
    except redis.exceptions.AuthenticationError:
        return False
    except redis.exceptions.ResponseError as exc:
        if "WRONGPASS" in str(exc) or "invalid password" in str(exc):
            return False
        raise


def auth(store, settings, request):
    """Which of the servers Sentinel knows and of the Sentinels accept the given passwords."""
    servers = [tuple(master_address(store, settings))]
    servers += [(h, int(p)) for h, p in store.sentinel.discover_slaves(settings.sentinel_master)]
    sentinels = [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
                 for s in store.sentinel.sentinels]
    return {"servers": {"%s:%s" % a: accepts(settings, *a, request["password"]) for a in servers},
            "sentinels": {"%s:%s" % a: accepts(settings, *a, request["sentinel_password"]) for a in sentinels}}


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
    if op == "auth":
        return auth(store, settings, request)
    raise ValueError("unknown op %r" % op)


if __name__ == "__main__":
    try:
        print(json.dumps({"ok": True, **main(json.loads(sys.argv[1]))}))
    # reported as data
    except Exception as exc:  # pylint: disable=broad-except
        print(json.dumps({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}))
