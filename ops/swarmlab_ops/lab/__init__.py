"""The lab, through the Docker Engine API: the machine's engine for the node containers, each node's
own engine through the socket the lab role bind-mounts (lab_api_dir), ansible-runner for playbooks."""
from .nodes import Lab, Node
from .swarm import Swarm

__all__ = ["Lab", "Node", "Swarm"]
