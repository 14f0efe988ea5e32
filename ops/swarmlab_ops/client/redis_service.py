"""Starts the writers straight at Redis (incontainer/redis_writer.py) as a one-task Swarm service
made from the web service's spec, and reads their history back from the task's logs (JSON lines)."""
from __future__ import annotations

import copy
import json
import time

from ..history import Op, from_dicts
from ..incontainer import source
from ..lab.swarm import Swarm
from ..report import log


class RedisWriters:
    def __init__(self, swarm: Swarm, key: str, writers: int, seconds: float, wait: int,
                 wait_timeout_ms: int = 500, rate: float = 20.0, name: str = "ops-redis-writer"):
        if seconds > 3600 or writers > 16:
            raise ValueError("the writers are bounded: at most 16 for at most an hour")
        self.swarm = swarm
        self.name = name
        self.seconds = seconds
        self.args = {"key": key, "stop_key": key + ":stop", "writers": writers, "seconds": seconds, "wait": wait,
                     "wait_timeout_ms": wait_timeout_ms, "rate": rate}
        self.service_id = ""
        self.trouble = ""

    def start(self) -> "RedisWriters":
        api = self.swarm.api
        for old in api.services(filters={"name": self.name}):
            api.remove_service(old["ID"])
        web = self.swarm.service("web")["Spec"]
        template = copy.deepcopy(web["TaskTemplate"])
        spec = template["ContainerSpec"]
        spec["Command"] = ["python3", "-c", source("redis_writer"), json.dumps(self.args)]
        spec.pop("Args", None)
        # Not the app: the image's health check (GET /healthz) would fail and Swarm would kill the
        # writers as an unhealthy task.
        spec["Healthcheck"] = {"Test": ["NONE"]}
        spec["Env"] = [e for e in spec.get("Env", []) if not e.startswith("REDIS_WAIT_REPLICAS=")]
        template["RestartPolicy"] = {"Condition": "none"}
        template.pop("Resources", None)
        template.pop("Placement", None)
        template.pop("ForceUpdate", None)
        # The stack network without web's alias: tasks.web (what the edge resolves) must not
        # name the writer.
        template["Networks"] = [{"Target": n["Target"]} for n in template.get("Networks", [])]
        spec["Labels"] = {k: v for k, v in (spec.get("Labels") or {}).items()
                          if not k.startswith("com.docker.stack.")}
        self.service_id = api.create_service(template, name=self.name,
                                             labels={"org.swarmlab.ops": "redis-writer"})["ID"]
        return self

    def _task(self) -> dict | None:
        tasks = self.swarm.api.tasks(filters={"service": self.service_id})
        return max(tasks, key=lambda t: t.get("CreatedAt", ""), default=None)

    def stop_key(self) -> str:
        """Set this key (to anything) on the master and the writers stop within a second."""
        return self.args["stop_key"]

    def wait(self, slack: float = 120) -> list[Op]:
        """Until the task has exited (bounded), then its history; the service is removed."""
        deadline = time.monotonic() + self.seconds + slack
        task = None
        try:
            while time.monotonic() < deadline:
                task = self._task()
                if task and task["Status"]["State"] in ("complete", "failed", "shutdown", "rejected"):
                    break
                time.sleep(2)
            if not task or not task["Status"].get("ContainerStatus", {}).get("ContainerID"):
                raise RuntimeError("the redis writer task did not run: %s" % (task or {}).get("Status"))
            node = next(n for n in self.swarm.lab.nodes.values()
                        if n.name == self._hostname(task["NodeID"]))
            container = node.client().containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
            rows = [json.loads(line) for line in container.logs(stdout=True, stderr=False).decode(
                errors="replace").splitlines() if line.startswith("{")]
            if not rows or rows[-1].get("kind") != "done":
                # The writers did not finish normally: say why, the history up to there still counts.
                self.trouble = "task %s (%s); %s" % (task["Status"]["State"], task["Status"].get("Err", ""),
                                                     container.logs(stdout=False, stderr=True).decode(
                                                         errors="replace")[-2000:])
                log("redis writers ended early: " + self.trouble)
            return [op for op in from_dicts(rows) if op.kind not in ("done", "note")]
        finally:
            self.swarm.api.remove_service(self.service_id)

    def _hostname(self, node_id: str) -> str:
        return self.swarm.api.inspect_node(node_id)["Description"]["Hostname"]
