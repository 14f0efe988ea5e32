"""Redis and Sentinel on the stack, asked from inside a web task container (incontainer/redis_probe).

Who the Redis master is, is Sentinel's answer (the redis helper owns module_utils/_redis*.py and
_sentinel.py; this tooling does not re-implement master election). Note for the future: once the
collection's redis_sentinel module can report the master as data, the tooling can call it through
ansible-runner instead; the answer must stay Sentinel's.
"""
from __future__ import annotations

import json
import time
from typing import Any

from docker.errors import DockerException

from ..incontainer import source
from .swarm import Swarm


class RedisProbe:
    def __init__(self, swarm: Swarm, service: str = "web"):
        self.swarm = swarm
        self.service = service
        self._code = source("redis_probe")

    def ask(self, request: dict[str, Any], attempts: int = 5) -> dict[str, Any]:
        """Run the probe in a running web task (the manager's first), retried on other tasks."""
        errors = []
        for _attempt in range(attempts):
            tasks = self.swarm.running_tasks(self.service)
            tasks.sort(key=lambda t: t["node"] != self.swarm.manager.name)
            for task in tasks[:2]:
                node = self.swarm.lab.nodes[task["node"]]
                try:
                    container = node.client().containers.get(task["container_id"])
                    code, (out, err) = container.exec_run(["python3", "-c", self._code, json.dumps(request)],
                                                          demux=True)
                except (DockerException, OSError) as exc:
                    errors.append(str(exc)[:200])
                    continue
                lines = (out or b"").decode(errors="replace").strip().splitlines()
                if code == 0 and lines:
                    answer = json.loads(lines[-1])
                    if answer.get("ok"):
                        return answer
                    errors.append(answer.get("error", "?"))
                else:
                    errors.append((err or b"").decode(errors="replace")[-300:])
            time.sleep(1)
        raise RuntimeError("redis probe %s failed: %s" % (request.get("op"), " | ".join(errors[-3:])))

    def master(self) -> str:
        return self.ask({"op": "master"})["address"][0]

    def values(self, *keys: str) -> dict[str, int]:
        got = self.ask({"op": "get", "keys": list(keys)})["values"]
        return {k: int(v or 0) for k, v in got.items()}

    def accepted(self, password: str, sentinel_password: str) -> dict[str, dict[str, bool]]:
        """Per server and Sentinel (by the addresses Sentinel gives), whether it accepts the password."""
        answer = self.ask({"op": "auth", "password": password, "sentinel_password": sentinel_password})
        return {"servers": answer["servers"], "sentinels": answer["sentinels"]}

    def set(self, key: str, value: str) -> None:
        self.ask({"op": "set", "key": key, "value": value})

    def healthy(self, replicas: int) -> bool:
        """The master is a master with `replicas` online replicas."""
        info = self.ask({"op": "replication"}, attempts=1)["info"]
        online = sum(1 for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
                     and v.get("state") == "online")
        return info.get("role") == "master" and online >= replicas

    def wait_healthy(self, replicas: int, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.healthy(replicas):
                    return True
            except RuntimeError:
                pass
            time.sleep(2)
        return False

    def failover(self) -> dict[str, Any]:
        return self.ask({"op": "failover"}, attempts=1)

    def sentinel_reset(self) -> list[str]:
        return self.ask({"op": "reset", "timeout": 30}, attempts=2)["reset"]
