"""Writers straight at Redis: INCR + WAIT <replicas> <timeout> on the master, one JSON line per op.

Runs as a one-task Swarm service made from the web service's spec (image, environment, secrets,
network), so it reaches the master exactly as the app does (Sentinel's answer, the password from
the secret) but without the app's HTTP layer and without retries: every INCR is sent once.

    python3 -c "$(cat redis_writer.py)" '{"key": "...", "stop_key": "...", "writers": 2, "seconds": 600,
                                          "wait": 2, "wait_timeout_ms": 500, "rate": 20}'

Outcome of each INCR (see swarmlab_ops/history.py):
  ok       INCR answered and WAIT counted at least `wait` replicas (with wait 0: INCR answered)
  unknown  INCR answered but WAIT counted fewer (applied on the master only, value kept), or the
           connection broke after the command may have been sent
  fail     refused before anything was applied: no master known, connect refused, READONLY,
           NOREPLICAS (min-replicas-to-write)
"""
import dataclasses
import json
import sys
import threading
import time

import redis
from counter.config import Settings  # pylint: disable=import-error
from counter.store import CounterStore  # pylint: disable=import-error
from redis.sentinel import MasterNotFoundError

LOCK = threading.Lock()


def emit(row):
    with LOCK:
        sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()


def classify_error(exc):
    """fail when the INCR certainly was not applied, else unknown."""
    text = str(exc)
    if isinstance(exc, (MasterNotFoundError, redis.exceptions.ReadOnlyError)):
        return "fail"
    if isinstance(exc, redis.exceptions.ResponseError) and text.startswith(("READONLY", "NOREPLICAS")):
        return "fail"
    if isinstance(exc, redis.exceptions.ConnectionError) and (
            "connecting to" in text or "previous master is now a slave" in text):
        return "fail"
    return "unknown"


def writer(index, args, deadline):
    settings = dataclasses.replace(Settings.from_env(), retries=0)
    master = CounterStore(settings).master
    interval = args["writers"] / args["rate"] if args.get("rate") else 0.0
    process = "redis-%d" % index
    checked = 0.0
    while time.time() < deadline:
        start = time.time()
        if start - checked >= 1.0:
            # The controller ends the run early by setting stop_key (once its faults are done).
            checked = start
            try:
                if master.get(args["stop_key"]):
                    break
            except Exception as exc:  # pylint: disable=broad-except
                # Not a write: whatever the client raises mid-failover must not end the writer.
                emit({"process": process, "kind": "note", "start": start, "end": time.time(), "outcome": "ok",
                      "error": ("stop check: %s: %s" % (type(exc).__name__, exc))[:200]})
        row = {"process": process, "kind": "incr", "start": start}
        try:
            pipe = master.pipeline(transaction=False)
            pipe.incr(args["key"])
            if args["wait"]:
                pipe.wait(args["wait"], args["wait_timeout_ms"])
            replies = pipe.execute()
            value = int(replies[0])
            acked = int(replies[1]) if args["wait"] else 0
            row.update(value=value, outcome="ok" if acked >= args["wait"] else "unknown",
                       detail={"replicas_acked": acked})
        # every outcome is recorded
        except Exception as exc:  # pylint: disable=broad-except
            row.update(outcome=classify_error(exc), error=("%s: %s" % (type(exc).__name__, exc))[:200])
        row["end"] = time.time()
        emit(row)
        pause = interval - (time.time() - start)
        if pause > 0:
            time.sleep(pause)


def main(args):
    deadline = time.time() + float(args["seconds"])
    threads = [threading.Thread(target=writer, args=(i, args, deadline), daemon=True)
               for i in range(int(args["writers"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(float(args["seconds"]) + 30)
    emit({"process": "redis", "kind": "done", "start": time.time(), "end": time.time(), "outcome": "ok"})


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
