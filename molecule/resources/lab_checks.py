"""Helpers the scenarios' testinfra tests share (molecule/conftest.py puts this directory on the
path): a lab node by name, the Swarm's nodes as a manager sees them, the log a scenario's converge
wrote, a playbook run from the checkout as a user runs it, and a tiny image pushed to the registry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[2]))


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


def run_playbook(lab: str, playbook: str, *args: str, timeout: int = 600,
                 show: bool = True) -> subprocess.CompletedProcess:
    """`ansible-playbook <playbook> <args>` from the checkout against the lab `lab`, as a user runs
    it: the checkout's ansible.cfg and lab inventory, none of Molecule's ANSIBLE_/MOLECULE_ settings.
    Prints the end of its output (unless not `show`), which a failing test's report then shows."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", SWARMLAB_LAB_NAME=lab)
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), playbook, *args],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if show:
        print(done.stdout[-4000:], done.stderr[-2000:])
    return done


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of an ansible-playbook output: {host: {"ok": n, "changed": n, ...}}."""
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output.split("PLAY RECAP", 1)[-1], re.M):
        found[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
    return found


def push_tiny(manager, address: str, repo: str, tag: str, test: str):
    """A tiny image of its own content (the time in it: a new digest on every run) built on the
    manager and pushed as <address>/<repo>:<tag> with the login the role stored; the command's result."""
    context = "/tmp/registry-%s-%s" % (test, tag)
    return manager.run(
        "mkdir -p {c} && printf 'FROM scratch\\nCOPY hello.txt /hello.txt\\n' > {c}/Dockerfile"
        " && echo \"{test} test, tag {t}, $(date +%s.%N)\" > {c}/hello.txt"
        " && docker build -q -t {a}/{r}:{t} {c} && docker push {a}/{r}:{t}".format(
            c=context, test=test, t=tag, a=address, r=repo))
