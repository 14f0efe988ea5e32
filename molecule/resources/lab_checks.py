"""Helpers the scenarios' testinfra tests share (molecule/conftest.py puts this directory on the
path): a lab node by name, the Swarm's nodes as a manager sees them, and the log a scenario's
converge wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import testinfra


def lab_node(lab: str, name: str):
    """The lab node `name` (the container <lab>-<name>), through testinfra's docker backend."""
    return testinfra.get_host("docker://%s-%s" % (lab, name))


def swarm_nodes(manager) -> list[dict]:
    """`docker node inspect` of every node of the Swarm, run on `manager`."""
    ids = manager.check_output("docker node ls -q").split()
    return json.loads(manager.check_output("docker node inspect %s" % " ".join(ids)))


def converge_log(variable: str, scenario: str, task: str) -> str:
    """The text of the log of the scenario's playbook runs, at the path the environment variable
    `variable` names (set in molecule/<scenario>/molecule.yml); skips the test when it is not set
    (not run through the scenario). Fails unless the log is of a run that reached `task`."""
    path = os.environ.get(variable, "")
    if not path:
        pytest.skip("no converge log (%s): run through molecule/%s" % (variable, scenario))
    log = Path(path).read_text(errors="replace")
    assert "PLAY RECAP" in log and task in log
    return log
