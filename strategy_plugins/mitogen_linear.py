# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The checkout's strategy (ansible.cfg, Molecule): Mitogen for Ansible's mitogen_linear.

Mitogen keeps one Python interpreter per host for the whole run (one ``docker exec``) and sends
modules to it, instead of starting Python and unpacking the module on the host for every task: on
the lab, site.yml's idempotent re-run takes 35 s instead of 85 s. The plays and their order are
linear's. Mitogen is used for the ``docker`` connection only (by that short name, which the lab
inventory gives with ``connection_type: docker-cli``); SSH hosts and the controller keep Ansible's
own runner (why: below). ANSIBLE_STRATEGY=linear runs Ansible's own strategy instead.

This file only finds the strategy in the installed ``mitogen`` package (requirements.txt), so
ansible.cfg does not have to name the virtual environment's path. Without the package it warns
and runs Ansible's own linear strategy: the same result, slower.
"""
from __future__ import annotations

from ansible.plugins.loader import strategy_loader
from ansible.utils.display import Display

try:
    import ansible_mitogen.loaders  # noqa: F401  (imported before the strategy, as mitogen's own shim does)
    import ansible_mitogen.affinity
    import ansible_mitogen.strategy
except ImportError as error:
    Display().warning(
        "strategy mitogen_linear: Mitogen for Ansible is not installed (%s); running Ansible's linear "
        "strategy instead. Install it with `pip install -r requirements.txt` (scripts/setup.sh does)." % error)

    class StrategyModule(strategy_loader.get('linear', class_only=True)):  # type: ignore[misc]
        pass
else:
    # Mitogen takes over the docker connection only (the lab's nodes); Mitogen reads this tuple each
    # time it picks a connection and leaves the others to Ansible. Not local: there is no round trip
    # to save on the controller, and Mitogen's in-process runner turned kubernetes.core's message
    # for an API server it cannot reach into a bare traceback (tests/k8s/test_role.py). Not ssh:
    # over SSH with become (Molecule default) the first task that switches to the stack's
    # interpreter in the Redis network (python-in-network, which runs docker) failed with "SSH
    # authentication is incorrect", most likely because Mitogen starts every hop of its chain with
    # that interpreter, the SSH login user's hop before sudo too.
    ansible_mitogen.strategy.REDIRECTED_CONNECTION_PLUGINS = ('docker',)
    # Mitogen pins the controller's processes to CPUs (ansible_mitogen/affinity.py). Below 4 CPUs it
    # puts the top-level process, every worker and every child they start (ssh, local modules) on
    # one CPU and keeps the other for its multiplexer: on 2 CPUs, 4 local hosts' 2 s of CPU each
    # took 15 s instead of 8. Only the docker connection is Mitogen's here; every other one runs in
    # Ansible's own processes, which the kernel places better (docs/performance.md).
    ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

    class StrategyModule(ansible_mitogen.strategy.StrategyMixin,  # type: ignore[no-redef]
                         strategy_loader.get('linear', class_only=True)):
        pass
