"""The checkout's strategy (ansible.cfg: mitogen_linear from strategy_plugins) is Mitogen
for Ansible where the pinned package is installed. Without it, a playbook still runs, on Ansible's
linear strategy, and says why. The missing package is simulated by an ``ansible_mitogen`` earlier on
PYTHONPATH that fails to import, as an uninstalled one would. Mitogen does not pin Ansible's
processes to CPUs (below 4 CPUs its pinning put every worker on one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Both plays: one host, the controller, with the venv's Python.
ON_CONTROLLER = """\
  hosts: localhost
  connection: local
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  gather_facts: false
  tasks:
"""
PLAY = """
- name: One task on the controller
""" + ON_CONTROLLER + """    - name: Run a module
      ansible.builtin.command: echo ran
      changed_when: false
      register: ran

    - name: It ran
      ansible.builtin.assert:
        that: ran.stdout == 'ran'
"""


AFFINITY_PLAY = """
- name: Where a task on the controller may run
""" + ON_CONTROLLER + """    - name: Read the CPUs the task's process may run on
      ansible.builtin.command:
        argv: ["{{ ansible_playbook_python }}", "-c", "import os; print(sorted(os.sched_getaffinity(0)))"]
      changed_when: false
      register: cpus

    - name: Print them
      ansible.builtin.debug:
        msg: "cpus={{ cpus.stdout }}"
"""


def playbook(tmp_path: Path, pythonpath: str | None, text: str = PLAY) -> subprocess.CompletedProcess:
    play = tmp_path / 'play.yml'
    play.write_text(text, encoding='utf-8')
    env = dict(os.environ)
    env['ANSIBLE_STRATEGY'] = 'mitogen_linear'
    if pythonpath:
        env['PYTHONPATH'] = pythonpath
    return subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'localhost,', str(play)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_with_mitogen_installed_the_strategy_loads_quietly(tmp_path: Path) -> None:
    done = playbook(tmp_path, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'not installed' not in done.stdout + done.stderr


def test_without_mitogen_the_playbook_runs_on_linear_and_says_so(tmp_path: Path) -> None:
    stub = tmp_path / 'stub' / 'ansible_mitogen'
    stub.mkdir(parents=True)
    (stub / '__init__.py').write_text("raise ImportError('No module named ansible_mitogen (test stub)')\n",
                                      encoding='utf-8')
    done = playbook(tmp_path, str(stub.parent))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "ok=2 " in output
    assert 'Mitogen for Ansible is not installed' in output and "running Ansible's linear" in output


def test_a_task_may_run_on_every_cpu_the_controller_gives(tmp_path: Path) -> None:
    """Mitogen pinned the top-level process, every worker and their children (ssh, local modules) to
    one CPU on controllers with fewer than 4 (ansible_mitogen/affinity.py); the strategy turns that
    off. With one CPU there is nothing to pin, so the test needs two or more (CI has 2)."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip('one CPU: Mitogen pins nothing')
    done = playbook(tmp_path, None, AFFINITY_PLAY)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert 'cpus=%s' % allowed in output, output
