"""The disaster-recovery drill (scripts/dr_drill.sh, docs/operations.md) on a running lab: the counter
at a known value, playbooks/backup.yml, the lab destroyed and made again, playbooks/restore.yml,
then web 4/4, the same counter value, every image of the catalog pulled on every node, both CAs
unchanged, Redis with its master and 2 replicas online.

    SWARMLAB_DR_LAB=dr .venv/bin/pytest -m lab tests/drills/test_recovery.py -v

Skipped unless SWARMLAB_DR_LAB names a lab that is up with the stack deployed. The lab is destroyed
and made again: in Molecule's default scenario this file runs last (after test_drills_short.py),
and the scenario's destroy follows. The drill prints the time of each step; they are not asserted.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from test_drills_short import lab_is_up

ROOT = Path(__file__).resolve().parents[2]
LAB = os.environ.get("SWARMLAB_DR_LAB", "")

pytestmark = pytest.mark.lab


def test_backup_then_restore_on_new_hosts_brings_the_same_data_back():
    why = lab_is_up(LAB) if LAB else "SWARMLAB_DR_LAB is not set"
    if why:
        pytest.skip(why)
    # The drill runs the checkout's playbooks as a user would: not with the settings of the Ansible
    # run around it (Molecule's configuration, inventory, verbosity and log).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env["SWARMLAB_LAB_NAME"] = LAB
    proc = subprocess.run(["bash", "scripts/dr_drill.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    print(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Redis: master with 2 replicas online" in proc.stdout
