# Copyright: swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter stack_convergence: how far a Swarm stack is from running its desired tasks."""
from __future__ import annotations

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm import convergence

DOCUMENTATION = r"""
name: stack_convergence
short_description: Compare a stack's running tasks with the desired ones
version_added: 1.0.0
author: swarmlab maintainers
description:
  - Takes the tasks of a stack (the C(results) of M(community.docker.docker_stack_task_info)) and its
    services (the C(services) of M(community.docker.docker_swarm_info)) and says, per service, how many
    tasks should run, how many run, and the errors of the tasks that do not.
  - The rule is the collection's one convergence rule (module_utils C(_swarm.convergence)), the one the
    swarm modules and the ops tooling use. A task counts as running when Swarm wants it running, it is
    in state Running (with a health check, Swarm reports Running only once the task is healthy) and,
    when O(nodes) is given, its node is ready (a down node's last report is stale).
  - For a global service the desired count is the number of tasks Swarm wants running (on ready nodes).
options:
  _input:
    description:
      - Tasks, as C(docker_stack_task_info) returns them, or the C(tasks) of M(community.docker.docker_swarm_info)
        with C(verbose_output=true) (the Engine API's objects; then O(nodes) must be its C(nodes) too).
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
  nodes:
    description:
      - Nodes, as the C(nodes) of M(community.docker.docker_swarm_info) returns them (verbose or not, as the
        tasks). Tasks on nodes that are not ready do not count. Omitted, every node counts as ready.
      - Read them with the tasks, in the same loop. A node that was down when read once (an engine
        restart) would never count again.
    type: list
    elements: dict
    required: false
"""

EXAMPLES = r"""
- name: Wait for the stack (nodes and tasks read together on each try)
  community.docker.docker_swarm_info:
    nodes: true
    tasks: true
    verbose_output: true
  register: state
  until: (state.tasks | swarmlab.cluster.stack_convergence(swarm.services, 'swarmlab', state.nodes)).converged
  retries: 60
  delay: 5
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


def _is_api_shape(tasks: list[dict]) -> bool:
    """docker_swarm_info with verbose_output returns the Engine API's objects (Status a dict)."""
    return any(isinstance(task.get("Status"), dict) for task in tasks)


def _as_api(tasks: list[dict], services: list[dict], nodes: list[dict] | None, prefix: str):
    """The modules' summaries in the Engine API's shape, so the one rule in _swarm applies.

    docker_stack_task_info names a task's node by hostname, so hostnames serve as node IDs here.
    Tasks and nodes that already are in the API's shape (docker_swarm_info, verbose_output) keep
    their IDs; their services are matched by the summaries' IDs."""
    api_services = []
    names = {}
    for svc in services:
        name = svc.get("Name", "")
        if not name.startswith(prefix):
            continue
        names[svc.get("ID")] = name
        mode = {"Replicated": {"Replicas": svc.get("Replicas") or 0}} if svc.get("Mode") == "Replicated" else {"Global": {}}
        api_services.append({"ID": name, "Spec": {"Name": name[len(prefix):], "Mode": mode}})
    if _is_api_shape(tasks):
        api_tasks = [{
            "ID": task.get("ID", ""), "ServiceID": names.get(task.get("ServiceID"), ""),
            "Name": "%s.%s" % (names.get(task.get("ServiceID"), ""), task.get("Slot") or task.get("NodeID") or "?"),
            "NodeID": task.get("NodeID") or "", "DesiredState": str(task.get("DesiredState", "")).lower(),
            "Status": {"State": str(task["Status"].get("State", "")).lower(), "Err": task["Status"].get("Err") or ""},
        } for task in tasks if task.get("ServiceID") in names]
        return api_tasks, api_services, nodes
    api_tasks = []
    for task in tasks:
        current = str(task.get("CurrentState", "")).split(" ", 1)[0].lower()
        api_tasks.append({
            "ID": task.get("ID", ""), "Name": task.get("Name", "").strip().lstrip("\\_ "),
            "ServiceID": _service_of(task.get("Name", "")), "NodeID": task.get("Node") or "",
            "DesiredState": str(task.get("DesiredState", "")).lower(),
            "Status": {"State": current, "Err": task.get("Error") or ""},
        })
    api_nodes = None
    if nodes is not None:
        api_nodes = [{"ID": node.get("Hostname", ""), "Description": {"Hostname": node.get("Hostname", "")},
                      "Status": {"State": str(node.get("Status", "")).lower()}} for node in nodes]
    return api_tasks, api_services, api_nodes


def stack_convergence(tasks: list[dict], services: list[dict], stack: str, nodes: list[dict] | None = None) -> dict:
    api_tasks, api_services, api_nodes = _as_api(tasks, services, nodes, f"{stack}_")
    return convergence(api_services, api_tasks, api_nodes)


class FilterModule:
    """Stack convergence filters."""

    def filters(self) -> dict:
        return {"stack_convergence": stack_convergence}
