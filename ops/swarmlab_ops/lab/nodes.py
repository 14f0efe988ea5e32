"""The lab's nodes, found by their container labels, and a Docker SDK client for each node's engine.

The lab role labels every node container org.swarmlab.lab=<lab name> and org.swarmlab.group=<group>
(swarm_managers / swarm_workers), and bind-mounts <lab_api_dir>/<container> at /run/swarmlab-api,
where the node's dockerd also listens (the node image's docker.socket drop-in). So the controller
reaches each inner engine as unix://<that directory>/docker.sock, with no `docker exec` and no text.
"""
from __future__ import annotations

import io
import tarfile
import time
from dataclasses import dataclass, field

import docker
from docker.errors import DockerException, NotFound

LAB_LABEL = "org.swarmlab.lab"
GROUP_LABEL = "org.swarmlab.group"
API_MOUNT = "/run/swarmlab-api"


@dataclass
class Node:
    """One lab node: its container on this machine and the Engine API inside it."""
    name: str            # inventory/Swarm hostname: manager1, worker1, ...
    container: str       # <lab>-<name>
    group: str
    address: str         # on the lab's bridge network
    api_dir: str | None
    _client: docker.DockerClient | None = field(default=None, repr=False)

    @property
    def is_manager(self) -> bool:
        return self.group == "swarm_managers"

    @property
    def socket(self) -> str:
        if not self.api_dir:
            raise RuntimeError(f"{self.container} has no {API_MOUNT} mount: bring the lab up again with "
                               "this checkout's lab role (playbooks/lab.yml)")
        return f"unix://{self.api_dir}/docker.sock"

    def client(self, timeout: float = 60) -> docker.DockerClient:
        """The node's own engine (cached; reconnects lazily after the node restarted)."""
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.socket, timeout=timeout)
        return self._client

    def reachable(self) -> bool:
        try:
            return bool(self.client().ping())
        except (DockerException, OSError):
            self._client = None
            return False


class Lab:
    """The nodes of lab `name`, read from the machine's engine by label."""

    def __init__(self, name: str, host: docker.DockerClient | None = None):
        self.name = name
        self.host = host or docker.from_env()
        self.nodes = self._discover()
        if not self.nodes:
            raise RuntimeError(f"no lab named {name!r}: no container labelled {LAB_LABEL}={name} "
                               "(ansible-playbook playbooks/lab.yml with SWARMLAB_LAB_NAME set)")

    def _discover(self) -> dict[str, Node]:
        found = {}
        for ctr in self.host.containers.list(all=True, filters={"label": f"{LAB_LABEL}={self.name}"}):
            attrs = ctr.attrs
            nets = attrs["NetworkSettings"]["Networks"]
            address = next((n.get("IPAddress") for k, n in nets.items() if k != "bridge" and n.get("IPAddress")), "")
            api_dir = next((m["Source"] for m in attrs.get("Mounts", []) if m.get("Destination") == API_MOUNT), None)
            short = attrs["Config"]["Hostname"] or ctr.name[len(self.name) + 1:]
            found[short] = Node(short, ctr.name, ctr.labels.get(GROUP_LABEL, ""), address, api_dir)
        return dict(sorted(found.items()))

    def group(self, group: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.group == group]

    def manager(self) -> Node:
        """A manager whose engine answers as a Swarm manager (the first one by name)."""
        for node in self.group("swarm_managers"):
            try:
                if node.client().info().get("Swarm", {}).get("ControlAvailable"):
                    return node
            except (DockerException, OSError):
                node._client = None  # pylint: disable=protected-access
        raise RuntimeError(f"no manager of lab {self.name} answers")

    def node_pids(self) -> list[int]:
        """Host PIDs of the node containers' init processes (for CPU accounting)."""
        return [self.host.containers.get(n.container).attrs["State"]["Pid"] for n in self.nodes.values()]

    # The node containers themselves (faults of the whole host)
    def stop_node(self, name: str, kill: bool = False, timeout: int = 0) -> None:
        """Stop a node's container: a clean shutdown given `timeout` seconds (systemd's stop signal),
        or with kill a power cut."""
        ctr = self.host.containers.get(self.nodes[name].container)
        if kill:
            ctr.kill()
        else:
            ctr.stop(timeout=timeout)
        self.nodes[name]._client = None  # pylint: disable=protected-access

    def start_node(self, name: str) -> None:
        self.host.containers.get(self.nodes[name].container).start()

    def wait_node_api(self, name: str, timeout: float = 180) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nodes[name].reachable():
                return True
            time.sleep(1)
        return False

    def on_node(self, name: str, argv: list[str]) -> tuple[int, str]:
        """Run argv on node `name` itself (its systemd, dpkg, /proc), not in a container inside it."""
        code, out = self.host.containers.get(self.nodes[name].container).exec_run(argv)
        return code, out.decode(errors="replace")

    def in_task_netns(self, name: str, container_id: str, argv: list[str]) -> tuple[int, str]:
        """Run argv (the node's iptables, curl) in the network namespace of a container inside node
        `name`: a fault on one task's network path, the node and its other tasks untouched."""
        pid = self.nodes[name].client().containers.get(container_id).attrs["State"]["Pid"]
        return self.on_node(name, ["nsenter", "-t", str(pid), "-n", *argv])

    def read_file(self, name: str, path: str) -> bytes:
        """A file of a node's own filesystem (not a container inside it), through the Engine API."""
        try:
            stream, _stat = self.host.containers.get(self.nodes[name].container).get_archive(path)
        except NotFound as exc:
            raise FileNotFoundError(f"{path} on {name}") from exc
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            handle = tar.extractfile(member) if member else None
            if handle is None:
                raise FileNotFoundError(f"{path} on {name} is not a file")
            return handle.read()
