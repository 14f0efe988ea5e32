"""Playbooks through ansible-runner, their module results read as data (runner events), never stdout.

The checkout's ansible.cfg and lab inventory are used explicitly, also when the tooling runs under
Molecule's verifier (whose ANSIBLE_CONFIG names no inventory: a play would match no host and
"succeed"). Artifacts (events, stdout) stay under results/ansible/ for a post-mortem.
"""
from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from ..checkout import ROOT, results_dir

INVENTORY = ROOT / "inventories" / "lab"
# ansible-runner finds ansible-playbook and ansible-inventory on PATH: those of this interpreter's
# virtual environment, also when swarmlab-ops runs from .venv/bin without activating it.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


@dataclass
class PlaybookRun:
    playbook: str
    status: str
    rc: int
    seconds: float
    # One entry per task result: {task, action, host, ok (bool), res (the module's return)}.
    results: list[dict[str, Any]] = field(default_factory=list)
    # The play recap per counter: {"changed": {host: n}, "failures": {...}, ...}.
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    # What the playbook returned with ansible.builtin.set_stats (the run's artifact data).
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(self.stats.get("changed", {}).values())

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    def result(self, action: str) -> dict[str, Any] | None:
        """The last result of a module (by its FQCN), failed or not."""
        found = [r for r in self.results if r["action"] == action]
        return found[-1]["res"] if found else None

    def failures(self) -> list[str]:
        return [f"{r['task']} on {r['host']}: {r['res'].get('msg', '')}"[:600] for r in self.results if not r["ok"]]


def _env(lab_name: str) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return {"SWARMLAB_LAB_NAME": lab_name, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "ANSIBLE_FORCE_COLOR": "0"}


def run_playbook(playbook: str, lab_name: str, extravars: dict[str, Any] | None = None,
                 timeout: int = 900, limit: str | None = None) -> PlaybookRun:
    """Run playbooks/<playbook> on the lab (on the hosts of `limit` only, when given) and collect every
    task result."""
    artifacts = results_dir("ansible", f"{Path(playbook).stem}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=str(artifacts), project_dir=str(ROOT), playbook=str(ROOT / playbook),
        inventory=str(INVENTORY), extravars={"lab_name": lab_name, **(extravars or {})},
        envvars=_env(lab_name), quiet=True, timeout=timeout, limit=limit)
    run = PlaybookRun(playbook, runner.status, runner.rc, round(time.monotonic() - started, 2),
                      stats=runner.stats or {})
    for event in runner.events:
        kind = event.get("event", "")
        if kind == "playbook_on_stats":
            run.data = event.get("event_data", {}).get("artifact_data") or {}
        if kind not in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            continue
        data = event.get("event_data", {})
        run.results.append({"task": data.get("task", ""), "action": data.get("task_action", ""),
                            "host": data.get("host", ""), "res": data.get("res") or {},
                            "ok": kind == "runner_on_ok" or bool(data.get("ignore_errors"))})
    return run


@functools.lru_cache(maxsize=4)
def inventory_hosts(lab_name: str) -> frozenset[str]:
    """The hosts of the lab inventory (ansible-inventory --list)."""
    out, err = ansible_runner.interface.get_inventory(
        action="list", inventories=[str(INVENTORY)], response_format="json", quiet=True,
        envvars=_env(lab_name), private_data_dir=str(results_dir("ansible", "inventory")))
    if not isinstance(out, dict):
        raise RuntimeError(f"ansible-inventory --list failed: {str(err)[-400:]}")
    return frozenset(out.get("_meta", {}).get("hostvars", {}))


def inventory_name(lab_name: str, node: Any) -> str:
    """How the lab inventory names a node: its hostname (manager1) or its container (<lab>-manager1)."""
    hosts = inventory_hosts(lab_name)
    for name in (node.name, node.container):
        if name in hosts:
            return name
    raise RuntimeError(f"the lab inventory has no host for node {node.name} ({node.container})")


def host_vars(host: str, names: list[str]) -> dict[str, Any]:
    """Variables of one inventory host as Ansible resolves them from the lab inventory
    (ansible-inventory --host: group_vars, host_vars and their precedence), not read from a file."""
    out, err = ansible_runner.interface.get_inventory(
        action="host", inventories=[str(INVENTORY)], host=host, response_format="json", quiet=True,
        envvars=_env(os.environ.get("SWARMLAB_LAB_NAME", "swarmlab")),
        private_data_dir=str(results_dir("ansible", "inventory")))
    if not isinstance(out, dict):
        raise RuntimeError(f"ansible-inventory --host {host} failed: {str(err)[-400:]}")
    missing = [n for n in names if n not in out]
    if missing:
        raise RuntimeError(f"the lab inventory has no {', '.join(missing)} for {host}")
    return {n: out[n] for n in names}
