"""Faults of the Redis set on the stack: planned switchover, Sentinel failover, master kill.

Each returns what it did as data; the runner records it. The master is Sentinel's answer (RedisProbe).
"""
from __future__ import annotations

from typing import Any

from ..lab.ansible import inventory_name, run_playbook
from ..lab.redis import RedisProbe
from ..lab.swarm import Swarm

# Where the stack role keeps its files on the manager (stack_dir).
STACK_DIR = "/opt/swarmlab/stack"


class RedisFaults:
    def __init__(self, swarm: Swarm, probe: RedisProbe, stack_dir: str = STACK_DIR):
        self.swarm = swarm
        self.probe = probe
        self.stack_dir = stack_dir

    def as_dict(self) -> dict[str, Any]:
        return {"switchover": self.switchover, "sentinel-failover": self.sentinel_failover,
                "master-kill": self.master_kill}

    def switchover(self) -> dict[str, Any]:
        """playbooks/redis_failover.yml on the stack: it finds the servers and Sentinels by name and
        runs on the manager inside the stack network, with the stack's TLS settings and the
        inventory's passwords (templated by Ansible, never seen here)."""
        before = self.probe.master()
        run = run_playbook("playbooks/redis_failover.yml", self.swarm.lab.name, {
            "redis_failover_runner": inventory_name(self.swarm.lab.name, self.swarm.manager),
        }, timeout=300)
        if not run.ok:
            raise RuntimeError("redis_failover.yml %s: %s" % (run.status, " | ".join(run.failures())[-400:]))
        return {"old_master": before, "new_master": self.probe.master(), "playbook_s": run.seconds}

    def sentinel_failover(self) -> dict[str, Any]:
        before = self.probe.master()
        done = self.probe.failover()
        return {"old_master": before, "sentinel": done.get("sentinel")}

    def master_kill(self) -> dict[str, Any]:
        master = self.probe.master()
        task = self.swarm.task_by_address().get(master)
        if not task:
            raise RuntimeError("the master %s is no running task of the stack" % master)
        self.swarm.kill_task(task)
        return {"old_master": master, "killed": task["service"], "node": task["node"]}
