"""Environment for the tests' ``ansible-playbook -c local`` runs on this machine, and
``run_role_tasks()``, which runs one of our roles' tasks files that way.

Ansible's own linear strategy instead of the checkout's mitogen_linear (ansible.cfg). Mitogen takes
over the lab's docker connection only and hands local ones back to Ansible's runner
(strategy_plugins/mitogen_linear.py), so the modules and roles under test run the same way. What
Mitogen still costs on a local run: its import, about 0.7 s of CPU per ansible-playbook run (a
one-task play: 2.4-2.7 s against 1.7-2.0 s; the suite starts about 190). Until its CPU pinning was
turned off, it also ran every local task on one CPU (docs/performance.md).
The tests of the strategy itself keep the checkout's: tests/collection/test_strategy.py, and the
k8s tests, which saw Mitogen's runner on a local connection turn kubernetes.core's message into a
traceback.

Import it as ``ansible_collections.swarmlab.cluster.tests.integration.support.local_run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: swarmlab.cluster.%s
        tasks_from: %s
"""

LOCAL_RUN_ENV = {'ANSIBLE_STRATEGY': 'linear'}


def run_role_tasks(tmp_path: Path, role: str, tasks_from: str, extra_vars: dict, *options: str,
                   callback: str | None = None, env: dict | None = None,
                   drop_env: tuple[str, ...] = ('ANSIBLE_',)) -> subprocess.CompletedProcess:
    """One of our roles' tasks files, run on this machine as a one-task play (``include_role``).

    The checkout's ansible.cfg, none of the caller's ``ANSIBLE_*`` settings (nor other prefixes in
    ``drop_env``), this machine's Python for the modules; ``callback`` sets the stdout callback
    (``json`` for a result the test can read), ``env`` adds variables, ``options`` go to
    ansible-playbook (``--check``, ``--vault-password-file``...).
    """
    playbook = tmp_path / 'play.yml'
    playbook.write_text(PLAYBOOK % (role, tasks_from))
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(drop_env)}
    run_env.update(LOCAL_RUN_ENV, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    if callback:
        run_env['ANSIBLE_STDOUT_CALLBACK'] = callback
    run_env.update(env or {})
    variables = {'ansible_python_interpreter': sys.executable, **extra_vars}
    return subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                           str(playbook), '-e', json.dumps(variables), *options],
                          cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300, check=False)
