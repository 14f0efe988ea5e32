"""The Swarm and the stack as the manager's Engine API shows them, judged by the collection's rules.

Convergence and task placement are decided by module_utils/_swarm (``rules``), the same code the
swarm modules and the stack_convergence filter run; nothing here re-implements them.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Callable

import docker

from ..checkout import rules
from .nodes import Lab, Node


def service_env(spec: dict) -> dict[str, str]:
    """A service spec's container environment as a dict."""
    return dict(e.split("=", 1) for e in spec["TaskTemplate"]["ContainerSpec"].get("Env", []))


def set_env(name: str, value: str) -> Callable[[dict], None]:
    """A spec change for Swarm.update_spec: set one environment variable."""
    def mutate(spec: dict) -> None:
        container = spec["TaskTemplate"]["ContainerSpec"]
        container["Env"] = [e for e in container.get("Env", []) if not e.startswith(name + "=")] + [f"{name}={value}"]
    return mutate


class Swarm:
    """Services, tasks and nodes of one stack, read from a manager."""

    def __init__(self, lab: Lab, stack: str = "swarmlab"):
        self.lab = lab
        self.stack = stack
        self.manager: Node = lab.manager()

    @property
    def api(self) -> docker.APIClient:
        return self.manager.client().api

    def service_name(self, short: str) -> str:
        return f"{self.stack}_{short}"

    def edge_url(self) -> str:
        """The stack's edge on the manager (published in host mode there)."""
        ports = self.service("edge")["Spec"].get("EndpointSpec", {}).get("Ports", [])
        return f"http://{self.manager.address}:{ports[0]['PublishedPort'] if ports else 8080}"

    # Raw state
    def nodes(self) -> list[dict]:
        return self.api.nodes()

    def services(self) -> list[dict]:
        return self.api.services(filters={"label": f"com.docker.stack.namespace={self.stack}"})

    def service(self, short: str) -> dict:
        return self.api.inspect_service(self.service_name(short))

    def image(self, short: str) -> str:
        """The image a service's spec runs (after a rollback, the one it went back to)."""
        return self.service(short)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]

    def tasks(self, short: str | None = None) -> list[dict]:
        filters: dict[str, Any] = {"desired-state": "running"}
        if short:
            filters["service"] = self.service_name(short)
        return self.api.tasks(filters=filters)

    # Judged by the rules
    def has_service(self, short: str) -> bool:
        return any(s["Spec"]["Name"] == self.service_name(short) for s in self.services())

    def replicas(self) -> dict[str, int]:
        """Replicated services of the stack (short names) and their desired replicas."""
        return {s["Spec"]["Name"][len(self.stack) + 1:]: rules.desired_replicas(s)
                for s in self.services() if rules.is_replicated(s)}

    def convergence(self) -> dict:
        return rules.convergence(self.services(), self.api.tasks(), self.nodes())

    def running_tasks(self, short: str) -> list[dict]:
        """Running tasks of a service on ready nodes: [{id, node, node_id, addresses, container_id}]."""
        return rules.running_tasks(self.service(short), self.tasks(short), self.nodes())

    def wait_converged(self, timeout: float = 300, poll: float = 2) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.convergence()["converged"]:
                    return True
            except (docker.errors.DockerException, OSError):
                pass  # the manager may be busy electing or restarting
            time.sleep(poll)
        return False

    def node_ready(self, hostname: str) -> bool:
        return any(rules.node_hostname(n) == hostname and rules.node_state(n) == "ready" for n in self.nodes())

    def stranded_if_lost(self, hostname: str) -> list[str]:
        """Services that could not run all their tasks without this node (pinned to it, or no room
        elsewhere): the plan the drain module makes (rules.drain_plan), its stranded and reduced ones."""
        nodes = self.nodes()
        target = rules.find_node(nodes, hostname)
        plan = rules.drain_plan(target, nodes, self.services(), self.api.tasks())
        return sorted(s["name"][len(self.stack) + 1:] for s in plan["stranded"] + plan["reduced"])

    def task_by_address(self) -> dict[str, dict]:
        """Overlay address, and service name (short) -> {service (short), task, node, container_id}
        for every running task: the stack's Sentinels name the Redis master by service name."""
        found = {}
        for svc in self.services():
            short = svc["Spec"]["Name"][len(self.stack) + 1:]
            tasks = self.api.tasks(filters={"service": svc["ID"], "desired-state": "running"})
            for task in rules.running_tasks(svc, tasks, self.nodes()):
                for address in task["addresses"]:
                    found[address] = dict(task, service=short)
                found.setdefault(short, dict(task, service=short))
        return found

    # Changes
    def update_spec(self, short: str, mutate: Callable[[dict], None]) -> dict:
        """Update a service from its current spec as the daemon returned it, changed by `mutate`;
        returns the spec before (pass it to restore_spec to undo)."""
        svc = self.service(short)
        before = copy.deepcopy(svc["Spec"])
        spec = copy.deepcopy(svc["Spec"])
        mutate(spec)
        self._put(svc, spec)
        return before

    def restore_spec(self, short: str, spec: dict) -> None:
        self._put(self.service(short), spec)

    def _put(self, svc: dict, spec: dict) -> None:
        self.api.update_service(
            svc["ID"], svc["Version"]["Index"], task_template=spec.get("TaskTemplate"), name=spec["Name"],
            labels=spec.get("Labels"), mode=spec.get("Mode"), update_config=spec.get("UpdateConfig"),
            rollback_config=spec.get("RollbackConfig"), endpoint_spec=spec.get("EndpointSpec"))

    def scale(self, short: str, replicas: int, timeout: float) -> float:
        """Scale a replicated service (Engine API) and wait for N/N by the collection's convergence
        rule with exactly N running tasks; returns the seconds it took."""
        started = time.monotonic()

        def mutate(spec: dict) -> None:
            spec["Mode"]["Replicated"]["Replicas"] = replicas

        self.update_spec(short, mutate)
        deadline = started + timeout
        while time.monotonic() < deadline:
            svc = self.convergence()["services"].get(self.service_name(short), {})
            if svc.get("desired") == replicas and svc.get("running") == replicas \
                    and len(self.tasks(short)) == replicas:
                return time.monotonic() - started
            time.sleep(1)
        raise RuntimeError(f"{self.service_name(short)} did not converge to {replicas}/{replicas}")

    def wait_stopped(self, short: str, timeout: float) -> float:
        """Wait until no task Swarm shuts down still runs (its grace period); returns the seconds."""
        started = time.monotonic()
        while time.monotonic() < started + timeout:
            # Scaled in: DesiredState "remove"; replaced: "shutdown".
            tasks = self.api.tasks(filters={"service": self.service_name(short)})
            if not any(t["DesiredState"] != "running" and t["Status"]["State"] in ("running", "starting")
                       for t in tasks):
                return time.monotonic() - started
            time.sleep(0.5)
        raise RuntimeError(f"{self.service_name(short)}: removed tasks still running after {timeout} s")

    def wait_update(self, short: str, states: tuple[str, ...] = ("completed",), timeout: float = 400) -> str:
        """The service's UpdateStatus.State once it is one of `states` (or 'timeout')."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = (self.service(short).get("UpdateStatus") or {}).get("State", "")
            if state in states:
                return state
            time.sleep(2)
        return state or "timeout"

    def kill_task(self, task: dict) -> None:
        """Kill a task's container on its node (the fault of a crashed process)."""
        node = next(n for n in self.lab.nodes.values() if n.name == task["node"])
        node.client().containers.get(task["container_id"]).kill()
