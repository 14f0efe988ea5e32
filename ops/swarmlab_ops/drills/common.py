"""What every drill shares: the lab handles, a bounded load through the edge, the accounting."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..checker.counter import check
from ..checker.prometheus import client_counts
from ..checker.timeline import summarize
from ..client.http import CounterClient
from ..generator import Load
from ..history import Op
from ..lab import Lab, Swarm
from ..lab.prometheus import Prometheus, find as find_prometheus
from ..lab.redis import RedisProbe
from ..lab.swarm import service_env


@dataclass
class Opts:
    short: bool = False
    workers: int = 4
    rate: float = 60.0
    max_ops: int = 20000
    wait_replicas: int = 1
    worker: list = field(default_factory=lambda: ["all"])  # nodes the drain drill drains


@dataclass
class Ctx:
    lab: Lab
    swarm: Swarm
    probe: RedisProbe
    opts: Opts
    edge_url: str = ""
    app_key: str = "counter"
    loads: list[Load] = field(default_factory=list)
    # Prometheus as the monitoring role publishes it (None: not deployed), and the last load's
    # window with the client's own counts, for the drill's "Prometheus saw" line.
    prom: Prometheus | None = None
    window: dict | None = None

    @classmethod
    def open(cls, lab_name: str, stack: str, opts: Opts) -> "Ctx":
        lab = Lab(lab_name)
        swarm = Swarm(lab, stack)
        ctx = cls(lab, swarm, RedisProbe(swarm), opts)
        ctx.edge_url = swarm.edge_url()
        ctx.app_key = service_env(swarm.service("web")["Spec"]).get("COUNTER_KEY", "counter")
        ctx.prom = find_prometheus(swarm)
        return ctx

    def counter(self) -> int:
        return self.probe.values(self.app_key)[self.app_key]

    def with_load(self, max_seconds: float, workers: int | None = None) -> Load:
        """A load through the edge (increments and reads); stopped by stop_loads() whatever happens.
        Each worker keeps one connection to the edge, which sends its requests to one task while
        that task is up: `workers` above the tasks' count reaches every task."""
        load = Load(lambda i: CounterClient(self.edge_url, f"http-{i}"), workers=workers or self.opts.workers,
                    rate=self.opts.rate, max_seconds=max_seconds, max_ops=self.opts.max_ops).start()
        self.loads.append(load)
        time.sleep(2)  # a baseline before the fault
        return load

    def finish(self, load: Load, start_value: int, tail: float = 2.0) -> tuple[list[Op], dict, dict]:
        time.sleep(tail)
        ops = load.stop()
        self.window = {"start": load.started, "end": time.time(), "client": client_counts(ops)}
        time.sleep(1.5)  # let in-flight replication settle before reading the master
        return ops, summarize(ops), check(ops, start_value, self.counter())

    def stop_loads(self) -> None:
        while self.loads:
            self.loads.pop().stop()

    def watch(self, service: str = "web", interval: float = 0.5) -> "Watch":
        """Samples how many tasks of the service run (healthy, on ready nodes) until stopped."""
        return Watch(self, service, interval).start()


class Watch:
    """A thread that counts a service's running tasks by the convergence rule (with a health check:
    healthy) every `interval` seconds; min() is the lowest count seen."""

    def __init__(self, ctx: Ctx, service: str, interval: float):
        self.ctx, self.service, self.interval = ctx, service, interval
        self.samples: list[tuple[float, int]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Watch":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), len(self.ctx.swarm.running_tasks(self.service))))
            # a busy manager may time out a call: a missed sample, not a failed drill
            except Exception:  # noqa: BLE001  pylint: disable=broad-except
                self.errors += 1
            self._stop.wait(self.interval)

    def stop(self) -> "Watch":
        self._stop.set()
        self._thread.join(10)
        return self

    def min(self) -> int | None:
        return min((n for _t, n in self.samples), default=None)


def met(row: dict, ok: bool) -> dict:
    row["met"] = ok
    row["met_text"] = "yes" if ok else "no"
    return row
