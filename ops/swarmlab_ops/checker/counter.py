"""The counter checker: acknowledged increments against the counter's final state.

Every increment is +1 and returns the value after it, so in a history without loss the acknowledged
values are distinct, none is above the final value, and final - start = acknowledged + (unknown ones
that were applied). A counter that went back (a failover to a replica that missed writes) hands the
same values out again. Lost (a lower bound, exact when nothing is unknown) is the largest of:
  - acknowledged - (final - start): fewer increments in the counter than were acknowledged
  - duplicated: acknowledged values handed out more than once
  - acknowledged values above the final value
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from ..history import Op


def account(start_value: int, final_value: int, acknowledged: list[int], unknown: int, failed: int) -> dict:
    """Acknowledged increments (their values) against the counter before and after."""
    n_ack = len(acknowledged)
    delta = final_value - start_value
    seen = Counter(acknowledged)
    duplicated_values = sorted(v for v, n in seen.items() if n > 1)
    duplicated = n_ack - len(seen)
    above = sorted(v for v in seen if v > final_value)
    lost = max(0, n_ack - delta, duplicated, len(above))
    applied_unknown = max(0, delta - (n_ack - lost))
    return {
        "start": start_value,
        "final": final_value,
        "delta": delta,
        "acknowledged": n_ack,
        "unknown": unknown,
        "failed": failed,
        "lost": lost,
        "duplicated": duplicated,
        "duplicated_values": duplicated_values[:50],
        "above_final": len(above),
        "above_final_values": above[:50],
        # Unknown outcomes that the counter shows were applied (at most `unknown` when consistent).
        "unknown_applied": applied_unknown,
        "consistent": lost == 0 and applied_unknown <= unknown,
    }


def check(history: Iterable[Op], start_value: int, final_value: int, process_prefix: str = "") -> dict:
    """account() over the increments of a history (of the processes whose name starts with the prefix)."""
    incr = [op for op in history if op.kind == "incr" and op.process.startswith(process_prefix)]
    acked = [op.value for op in incr if op.outcome == "ok" and op.value is not None]
    return account(start_value, final_value, acked,
                   sum(1 for op in incr if op.outcome == "unknown"),
                   sum(1 for op in incr if op.outcome == "fail"))
