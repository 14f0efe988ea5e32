"""The history: one record per operation a client issued, and per fault the nemesis injected.

Times are wall-clock seconds (time.time()): the writers inside the lab and the controller share one
kernel clock, so their records merge into one timeline. Outcomes, as Jepsen names them:
  ok       the operation took effect and the client was told so (an acknowledged increment)
  fail     it certainly did not take effect (refused connect, READONLY, a proxy error before the app)
  unknown  it may or may not have taken effect (timeout or reset after sending, an error the app
           answered after touching Redis, a write WAIT did not confirm on enough replicas)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

OUTCOMES = ("ok", "fail", "unknown")


@dataclass
class Op:
    process: str                 # who issued it: http-0, redis-2, nemesis
    kind: str                    # incr, get, or a fault's kind
    start: float
    end: float
    outcome: str                 # ok | fail | unknown
    value: int | None = None     # an increment: the counter after it, as the server said
    status: int | None = None    # HTTP status, when there was one
    served_by: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def is_fault(self) -> bool:
        return self.process == "nemesis"


def to_jsonl(ops: Iterable[Op], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for op in ops:
            handle.write(json.dumps(asdict(op), sort_keys=True) + "\n")


def from_dicts(rows: Iterable[dict[str, Any]]) -> list[Op]:
    fields = set(Op.__dataclass_fields__)  # pylint: disable=no-member
    return [Op(**{k: v for k, v in row.items() if k in fields}) for row in rows]


def from_jsonl(path: Path) -> list[Op]:
    with open(path, encoding="utf-8") as handle:
        return from_dicts(json.loads(line) for line in handle if line.strip())
