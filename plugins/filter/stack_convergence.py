# Copyright: swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter stack_convergence: how far a Swarm stack is from running its desired tasks."""
from __future__ import annotations

DOCUMENTATION = r"""
name: stack_convergence
short_description: Compare a stack's running tasks with the desired ones
version_added: 1.0.0
author: swarmlab maintainers
description:
  - Takes the tasks of a stack (the C(results) of M(community.docker.docker_stack_task_info)) and its
    services (the C(services) of M(community.docker.docker_swarm_info)) and says, per service, how many
    tasks should run, how many run, and the errors of the tasks that do not.
  - A task counts as running when Swarm wants it running and it is in state Running; with a health
    check, Swarm reports Running only once the task is healthy.
  - For a global service the desired count is the number of tasks Swarm wants running.
options:
  _input:
    description: Tasks, as C(docker_stack_task_info) returns them.
    type: list
    elements: dict
    required: true
  services:
    description: Services, as C(docker_swarm_info) returns them; others than the stack's are ignored.
    type: list
    elements: dict
    required: true
  stack:
    description: Name of the stack (its services are named C(<stack>_<service>)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Wait for the stack
  community.docker.docker_stack_task_info:
    name: swarmlab
  register: tasks
  until: (tasks.results | swarmlab.cluster.stack_convergence(services.services, 'swarmlab')).converged
"""

RETURN = r"""
_value:
  description: Convergence report.
  type: dict
  contains:
    converged:
      description: Every service runs its desired tasks.
      type: bool
    short:
      description: Names of the services that do not.
      type: list
      elements: str
    services:
      description: Per service (short name), C(desired), C(running), C(nodes) (running tasks per node) and C(errors).
      type: dict
"""


def _service_of(task_name: str) -> str:
    # Replicated tasks are <service>.<slot>, global ones <service>.<node id>.
    return task_name.strip().lstrip("\\_ ").rsplit(".", 1)[0]


def stack_convergence(tasks: list[dict], services: list[dict], stack: str) -> dict:
    prefix = f"{stack}_"
    report: dict[str, dict] = {}
    for svc in services:
        name = svc.get("Name", "")
        if not name.startswith(prefix):
            continue
        replicas = svc.get("Replicas") if svc.get("Mode") == "Replicated" else None
        report[name[len(prefix):]] = {"desired": replicas, "running": 0, "nodes": {}, "errors": []}

    wanted: dict[str, int] = {}
    for task in tasks:
        full = _service_of(task.get("Name", ""))
        if not full.startswith(prefix) or full[len(prefix):] not in report:
            continue
        entry = report[full[len(prefix):]]
        if task.get("DesiredState") != "Running":
            continue
        wanted[full] = wanted.get(full, 0) + 1
        if str(task.get("CurrentState", "")).startswith("Running"):
            entry["running"] += 1
            node = task.get("Node", "")
            entry["nodes"][node] = entry["nodes"].get(node, 0) + 1
        elif task.get("Error"):
            entry["errors"].append(f"{task.get('Name')} on {task.get('Node') or '?'}: {task['Error']}")

    for short, entry in report.items():
        if entry["desired"] is None:
            entry["desired"] = wanted.get(prefix + short, 0)
    short = sorted(name for name, e in report.items() if e["running"] < e["desired"])
    return {"converged": bool(report) and not short, "short": short, "services": report}


class FilterModule:
    """Stack convergence filters."""

    def filters(self) -> dict:
        return {"stack_convergence": stack_convergence}
