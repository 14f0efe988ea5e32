"""The load schedule: which operations, how fast, for how long. It calls clients; it decides nothing.

Load goes only where the caller points it (the lab's containers or loopback), and stops by itself
after max_seconds or max_ops, or at stop().
"""
from __future__ import annotations

import random
import threading
import time
from typing import Callable, Protocol

from .history import Op


class Client(Protocol):
    def invoke(self, kind: str) -> Op: ...


class Load:
    """`workers` threads, each with its own client, alternating the kinds in `mix` (e.g. incr, get),
    paced so that all of them together issue about `rate` operations per second."""

    def __init__(self, make_client: Callable[[int], Client], workers: int = 4, rate: float = 60.0,
                 mix: tuple[str, ...] = ("incr", "get"), max_seconds: float = 120.0,
                 max_ops: int = 20000):
        if workers < 1 or max_seconds <= 0 or max_ops < 1:
            raise ValueError("a load needs at least one worker, a time bound and an operation bound")
        self.make_client = make_client
        self.workers = workers
        self.interval = workers / rate if rate > 0 else 0.0
        self.mix = mix
        self.max_seconds = max_seconds
        self.max_ops = max_ops
        self.ops: list[Op] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started = 0.0

    def start(self) -> "Load":
        self.started = time.time()
        for index in range(self.workers):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def snapshot(self) -> list[Op]:
        with self._lock:
            return list(self.ops)

    def stop(self, join_timeout: float = 10.0) -> list[Op]:
        self._stop.set()
        for thread in self._threads:
            thread.join(join_timeout)
        return self.snapshot()

    def _record(self, op: Op) -> bool:
        with self._lock:
            self.ops.append(op)
            return len(self.ops) < self.max_ops

    def _run(self, index: int) -> None:
        client = self.make_client(index)
        deadline = self.started + self.max_seconds
        self._stop.wait(random.uniform(0, self.interval or 0.01))
        position = index % len(self.mix)  # workers start on different kinds
        while not self._stop.is_set() and time.time() < deadline:
            began = time.monotonic()
            if not self._record(client.invoke(self.mix[position])):
                break
            position = (position + 1) % len(self.mix)
            pause = self.interval - (time.monotonic() - began)
            if pause > 0:
                self._stop.wait(pause)
