"""Environment for the tests' ``ansible-playbook -c local`` runs on this machine.

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

LOCAL_RUN_ENV = {'ANSIBLE_STRATEGY': 'linear'}
