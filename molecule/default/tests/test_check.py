"""Issue 21: `site.yml --check --diff`, what a careful operator runs before every change, over SSH
as the lab's unprivileged user with sudo and the vault (inventories/lab-ssh), on the converged lab:
it runs to the end, fails nothing and has nothing to change. (Molecule's check action ran the same on
the bare nodes before converge.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-default")
ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventories" / "lab-ssh"
NODES = {"manager1", "worker1", "worker2"}


def test_check_diff_over_ssh_on_the_converged_lab_changes_nothing():
    env = {**os.environ, "SWARMLAB_LAB_NAME": LAB, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_VAULT_PASSWORD_FILE": str(INVENTORY / "vault-password.txt")}
    started = time.monotonic()
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(INVENTORY), "site.yml", "--check", "--diff"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)
    print(f"site.yml --check --diff over SSH: {time.monotonic() - started:.0f} s")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    out = json.loads(run.stdout)
    stats = out["stats"]
    assert NODES <= set(stats), stats
    changed = [f"{host}: {task['task']['name']}" for play in out["plays"] for task in play["tasks"]
               for host, result in task["hosts"].items() if result.get("changed")]
    for host, counts in stats.items():
        assert counts["failures"] == 0 and counts["unreachable"] == 0, (host, counts)
    assert all(counts["changed"] == 0 for counts in stats.values()), changed
    # Over SSH as the lab's user, root through sudo (become) — not the docker connection's root.
    facts = {host: result["ansible_facts"] for play in out["plays"] for task in play["tasks"]
             if task["task"]["name"] == "Gathering Facts" for host, result in task["hosts"].items()}
    for host in NODES:
        assert facts[host]["ansible_user_id"] == "root", host
        assert facts[host]["ansible_env"].get("SUDO_USER") == "swarmlab", (host, facts[host]["ansible_env"])
