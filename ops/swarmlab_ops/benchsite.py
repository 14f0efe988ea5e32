"""Benchmark (not a test): site.yml on bare lab nodes (lab images cached), then the idempotent re-run.

Before each timed site.yml run it prints the quiet-machine guard (quiet.py; its own lab excluded)
and records the readings with the times; a run that was not quiet says so in its last line.
Uses its own lab (default bench-site): takes it down if it exists, brings it up, runs site.yml twice
through ansible-runner, and prints both wall times and the re-run's changed count (from the play
recap as data). The lab is taken down at the end, also after a failure.
"""
from __future__ import annotations

import json
from typing import Any

from . import quiet
from .checkout import results_dir
from .lab.ansible import run_playbook
from .report import log


def run(args: Any) -> int:
    runs: dict[str, Any] = {}
    try:
        for state in ("down", "up"):
            lab = run_playbook("playbooks/lab.yml", args.lab, {"lab_state": state}, timeout=1800)
            if not lab.ok:
                raise SystemExit(f"lab {state} failed: " + " | ".join(lab.failures()))
        for name in ("bare nodes", "re-run"):
            reading = quiet.guard(args.lab)
            log(f"site.yml ({name}) on lab {args.lab} ...")
            site = run_playbook("site.yml", args.lab, timeout=3600)
            if not site.ok:
                raise SystemExit(f"site.yml ({name}) failed: " + " | ".join(site.failures()))
            runs[name] = {"seconds": site.seconds, "changed": site.changed, "quiet": reading}
    finally:
        run_playbook("playbooks/lab.yml", args.lab, {"lab_state": "down"})
    print(f"site.yml on bare nodes: {runs['bare nodes']['seconds']:.0f} s")
    print(f"site.yml re-run:        {runs['re-run']['seconds']:.0f} s (changed={runs['re-run']['changed']})")
    noisy = [name for name, r in runs.items() if not r["quiet"]["quiet"]]
    print("quiet machine: yes" if not noisy else
          "NOT a quiet machine before: " + ", ".join(noisy) + " (times not comparable)")
    (results_dir("bench-site") / "result.json").write_text(json.dumps(runs, indent=2))
    return 0 if runs["re-run"]["changed"] == 0 else 1


def add_arguments(parser) -> None:
    parser.add_argument("--lab", default="bench-site", help="the benchmark's own lab (brought up and removed)")
