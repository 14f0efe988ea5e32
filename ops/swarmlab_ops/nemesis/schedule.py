"""A fault schedule: which fault, when. Pure and seeded, so a run can be repeated and tested.

Faults come in rounds; each round holds every kind once, in an order shuffled by the seed, so N
faults spread evenly over the kinds. Fault i is due at i * interval (+ up to `jitter` seconds). The
runner never starts a fault before the previous one ended and the system healed, so the schedule's
times are the earliest starts; `max_seconds` bounds the whole run.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

# Write-loss faults of issue 14.
REDIS_FAULTS = ("switchover", "sentinel-failover", "master-kill")


@dataclass(frozen=True)
class Fault:
    index: int
    kind: str
    at: float  # seconds after the start of the run, earliest


def make_schedule(count: int, kinds: tuple[str, ...] = REDIS_FAULTS, interval: float = 20.0,
                  jitter: float = 0.0, seed: int = 0, max_seconds: float = 1800.0) -> list[Fault]:
    """`count` faults over `kinds`, one every `interval` seconds; refuses a schedule that cannot
    fit in `max_seconds` or that has nothing to do."""
    if count < 1:
        raise ValueError("a fault schedule needs at least one fault")
    if not kinds or len(set(kinds)) != len(kinds):
        raise ValueError("fault kinds must be given, each once: %r" % (kinds,))
    if interval <= 0 or jitter < 0:
        raise ValueError("interval must be > 0 and jitter >= 0")
    last = (count - 1) * interval + jitter
    if last > max_seconds:
        raise ValueError("%d faults every %.0f s need %.0f s, more than the bound of %.0f s"
                         % (count, interval, last, max_seconds))
    rng = random.Random(seed)
    order: list[str] = []
    while len(order) < count:
        round_ = list(kinds)
        rng.shuffle(round_)
        order.extend(round_)
    return [Fault(i, kind, round(i * interval + rng.uniform(0, jitter), 2))
            for i, kind in enumerate(order[:count])]


def per_kind(schedule: list[Fault]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for fault in schedule:
        counts[fault.kind] = counts.get(fault.kind, 0) + 1
    return counts
