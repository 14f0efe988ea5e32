"""Timing of a history around a fault: request counts, when writes worked again."""
from __future__ import annotations

from typing import Iterable

from ..history import Op


def summarize(ops: Iterable[Op]) -> dict:
    """Request counts of a load run (faults excluded)."""
    ops = [op for op in ops if not op.is_fault]
    total = len(ops)
    bad = [op for op in ops if op.outcome != "ok"]
    incr = [op for op in ops if op.kind == "incr"]
    return {
        "requests": total,
        "failed_requests": len(bad),
        "failed_pct": round(100.0 * len(bad) / total, 2) if total else 0.0,
        "increments": len(incr),
        "acknowledged": sum(1 for op in incr if op.outcome == "ok"),
        "incr_failed": sum(1 for op in incr if op.outcome == "fail"),
        "incr_unknown": sum(1 for op in incr if op.outcome == "unknown"),
        "gets_failed": sum(1 for op in ops if op.kind == "get" and op.outcome != "ok"),
    }


def writes_back_after(ops: Iterable[Op], t0: float) -> dict:
    """When writes worked again after a fault at t0.

    Looks at increments that ended at or after t0: the outage runs from the first one that was not
    acknowledged to the first acknowledged one started after the last that was not. Seconds from
    t0; writes_back is None when no write succeeded after the outage, 0.0 when none failed."""
    incr = sorted((op for op in ops if op.kind == "incr" and op.end >= t0), key=lambda op: op.start)
    bad = [op for op in incr if op.outcome != "ok"]
    if not bad:
        return {"first_failure": None, "last_failure": None, "writes_back": 0.0}
    last_bad = max(bad, key=lambda op: op.start)
    after = [op for op in incr if op.outcome == "ok" and op.start > last_bad.start]
    return {
        "first_failure": round(min(op.start for op in bad) - t0, 2),
        "last_failure": round(last_bad.start - t0, 2),
        "writes_back": round(min(op.end for op in after) - t0, 2) if after else None,
    }


def first_time(samples: list[tuple[float, bool]], t0: float, after: float | None = None) -> float | None:
    """Seconds from t0 to the first sample (time, condition) whose condition holds, at or after `after`."""
    for when, holds in samples:
        if holds and when >= t0 and (after is None or when >= after):
            return round(when - t0, 2)
    return None
