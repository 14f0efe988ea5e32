"""Runs a fault schedule in its own thread, next to the load, and records each fault as an Op."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from ..history import Op
from .schedule import Fault

# A fault: does its damage and returns what it did ({"target": ..., ...}); raises when it could not.
FaultFn = Callable[[], dict[str, Any]]


class Nemesis:
    """Starts fault i at its scheduled time, but never before fault i-1 ended and `healed()` held
    (bounded by heal_timeout); stops at stop() or when the schedule is done."""

    def __init__(self, schedule: list[Fault], faults: dict[str, FaultFn], healed: Callable[[], bool],
                 heal_timeout: float = 90.0, log: Callable[[str], None] = print):
        unknown = sorted({f.kind for f in schedule} - set(faults))
        if unknown:
            raise ValueError("no implementation for faults: " + ", ".join(unknown))
        self.schedule = schedule
        self.faults = faults
        self.healed = healed
        self.heal_timeout = heal_timeout
        self.log = log
        self.ops: list[Op] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = 0.0

    def start(self) -> "Nemesis":
        self.started = time.time()
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> list[Op]:
        self._thread.join(timeout)
        return list(self.ops)

    def stop(self) -> list[Op]:
        self._stop.set()
        return self.join(600)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait_healed(self) -> bool:
        deadline = time.monotonic() + self.heal_timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if self.healed():
                    return True
            # a probe failing means not yet
            except Exception:  # noqa: BLE001  pylint: disable=broad-except
                pass
            self._stop.wait(1)
        return False

    def _run(self) -> None:
        for fault in self.schedule:
            due = self.started + fault.at
            if self._stop.wait(max(0.0, due - time.time())):
                return
            healed = self.wait_healed()
            if self._stop.is_set():
                return
            start = time.time()
            try:
                detail = self.faults[fault.kind]()
                outcome, error = "ok", None
            # recorded, the run goes on
            except Exception as exc:  # noqa: BLE001  pylint: disable=broad-except
                detail, outcome, error = {}, "fail", str(exc)[:300]
            detail = dict(detail, index=fault.index, healed_before=healed, scheduled=fault.at)
            op = Op("nemesis", fault.kind, start, time.time(), outcome, error=error, detail=detail)
            self.ops.append(op)
            self.log("fault %d %s: %s %s" % (fault.index, fault.kind, outcome, error or detail))
