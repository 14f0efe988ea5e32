# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: lab
short_description: The nodes of a lab made by the swarmlab.cluster.lab role, found by their labels
version_added: 2.0.0
description:
  - Lists the node containers of one lab from the Docker Engine API, by the labels the lab role gives
    them (C(org.swarmlab.lab=<lab name>), C(org.swarmlab.group=swarm_managers|swarm_workers)), like
    P(community.docker.docker_containers#inventory) keyed on those labels, but with the hosts named
    after the nodes (C(manager1), C(worker1) ...) rather than after their containers
    (C(<lab name>-manager1)), so the same host names serve every lab.
  - Each node goes into the group its C(org.swarmlab.group) label names, under C(swarm); the groups
    C(swarm), C(swarm_managers) and C(swarm_workers) exist even when no node does, so playbooks that
    make the lab (C(playbooks/lab.yml), on localhost) and C(--syntax-check) work before it is up.
  - Sets C(ansible_host) (the container) and C(ansible_connection) on each node, and the variables
    C(lab_name), C(lab_managers) and C(lab_workers) (and C(lab_node_suite) when O(lab_node_suite) is
    given) on the group C(all), so the lab role brings up the lab this inventory lists.
  - With O(connection_type=ssh) the same nodes are reached as real hosts are, over SSH. C(ansible_host)
    is the node's address on the lab network, C(ansible_user) the lab's unprivileged user (O(ssh_user),
    which has passwordless sudo) and C(ansible_ssh_private_key_file) the key pair the lab role made for
    this lab (C(<ssh_key_dir>/<lab name>/id_ed25519)). Each node also gets its own C(ansible_control_path),
    named after its container ID, so that a lab made again with the same addresses never reuses an SSH
    master connection to a node that is gone.
  - Uses a YAML configuration file whose name ends with C(lab.yml) or C(lab.yaml).
author: "swarmlab maintainers (!UNKNOWN)"
extends_documentation_fragment:
  - ansible.builtin.constructed
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [swarmlab.cluster.lab]
  lab_name:
    description:
      - The lab to list, the value of the nodes' C(org.swarmlab.lab) label (the lab role's C(lab_name)).
    type: str
    default: swarmlab
    env:
      - name: SWARMLAB_LAB_NAME
  lab_managers:
    description: Managers the lab role brings up (the lab role's C(lab_managers), 1 to 7).
    type: int
    default: 1
    env:
      - name: SWARMLAB_LAB_MANAGERS
  lab_workers:
    description: Workers the lab role brings up (the lab role's C(lab_workers), 0 to 9).
    type: int
    default: 2
    env:
      - name: SWARMLAB_LAB_WORKERS
  lab_node_suite:
    description:
      - Debian suite of the lab's hosts (the lab role's C(lab_node_suite)), e.g. V(trixie) for Debian 13
        and its docker.io 26. Empty leaves the role's default, the suite of the runtime images (bookworm).
    type: str
    default: ""
    env:
      - name: SWARMLAB_LAB_NODE_SUITE
  connection_type:
    description:
      - How Ansible reaches the nodes. V(docker-api) selects P(community.docker.docker_api#connection),
        which talks to the Engine API; V(docker-cli) selects P(community.docker.docker#connection),
        which runs the docker CLI for every command and file; V(ssh) selects P(ansible.builtin.ssh#connection)
        to the node's address as O(ssh_user), as for a real host.
      - V(docker-cli) sets C(ansible_connection) to the short name C(docker), which Ansible routes to that
        plugin; under Mitogen for Ansible's strategy (the checkout's C(ansible.cfg)) it becomes one
        persistent Python per node for the whole run (one C(docker exec)), the fastest way to the lab.
        Without Mitogen, V(docker-api) is the faster of the two docker ones.
      - With V(docker-cli) the docker CLI's own C(DOCKER_HOST) applies, not O(docker_host).
    type: str
    choices: [docker-api, docker-cli, ssh]
    default: docker-api
  ssh_user:
    description:
      - With O(connection_type=ssh), the user Ansible logs in as (the lab role's C(lab_ssh_user), made by
        the node image with passwordless sudo).
    type: str
    default: swarmlab
  ssh_key_dir:
    description:
      - With O(connection_type=ssh), the controller's directory of the labs' key pairs (the lab role's
        C(lab_ssh_key_dir)); the key of a lab is C(<ssh_key_dir>/<lab name>/id_ed25519).
    type: path
    default: /var/cache/swarmlab-lab/ssh
  docker_host:
    description:
      - The Docker daemon that runs the lab, as a C(unix://) socket URL.
    type: str
    default: unix:///var/run/docker.sock
  include_stopped:
    description:
      - List stopped nodes too (a drill may have stopped one); they are unreachable until started.
    type: bool
    default: true
notes:
  - When the daemon cannot be reached the source fails to parse and Ansible goes on with the other
    sources (with a warning), so playbooks on localhost still run.
"""

EXAMPLES = r"""
---
# inventories/lab/lab.yml: the lab named by SWARMLAB_LAB_NAME (default swarmlab)
plugin: swarmlab.cluster.lab

---
# inventories/lab-ssh/lab.yml: the same nodes over SSH, as the lab's user with its key
plugin: swarmlab.cluster.lab
connection_type: ssh

---
# A named lab, reached through the docker CLI, with one more group from a node label
plugin: swarmlab.cluster.lab
lab_name: molecule-swarm
connection_type: docker-cli
groups:
  first_manager: inventory_hostname == 'manager1'
"""

import json
import os
import typing as t

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm_api import (
    DockerApiError,
    SwarmApi,
)

LAB_LABEL = 'org.swarmlab.lab'
GROUP_LABEL = 'org.swarmlab.group'
PARENT_GROUP = 'swarm'
NODE_GROUPS = ('swarm_managers', 'swarm_workers')
# docker by the short name Ansible routes to community.docker.docker: Mitogen's strategy (the
# checkout's, strategy_plugins/mitogen_linear.py) redirects that name, not the FQCN.
CONNECTIONS = {'docker-api': 'community.docker.docker_api', 'docker-cli': 'docker', 'ssh': 'ansible.builtin.ssh'}


def node_address(container: dict[str, t.Any], network: str) -> str:
    """The container's IPv4 address on the lab network (the one named after the lab, else the first
    that gives one); empty for a stopped container."""
    networks = (container.get('NetworkSettings') or {}).get('Networks') or {}
    ordered = [networks[network]] if network in networks else []
    for settings in ordered + list(networks.values()):
        if (settings or {}).get('IPAddress'):
            return settings['IPAddress']
    return ''


def lab_nodes(containers: list[dict[str, t.Any]], lab_name: str, include_stopped: bool = True) -> list[dict[str, t.Any]]:
    """The lab's nodes among the daemon's containers (the list of GET /containers/json), sorted by
    name: [{'host': 'manager1', 'container': 'lab-manager1', 'group': 'swarm_managers',
    'address': '172.18.0.2', ...}]."""
    prefix = lab_name + '-'
    nodes = []
    for container in containers:
        labels = container.get('Labels') or {}
        names = [name.lstrip('/') for name in container.get('Names') or []]
        if labels.get(LAB_LABEL) != lab_name or labels.get(GROUP_LABEL) not in NODE_GROUPS or not names:
            continue
        if not include_stopped and container.get('State') != 'running':
            continue
        name = names[0]
        # The lab role names a node's container <lab_name>-<node> and its hostname <node>.
        host = name[len(prefix):] if name.startswith(prefix) else name
        nodes.append({'host': host, 'container': name, 'group': labels[GROUP_LABEL],
                      'state': container.get('State', ''), 'labels': labels, 'id': container.get('Id', ''),
                      'address': node_address(container, lab_name)})
    return sorted(nodes, key=lambda node: node['host'])


class InventoryModule(BaseInventoryPlugin, Constructable):
    """Hosts from the lab's node containers, grouped by their labels."""

    NAME = 'swarmlab.cluster.lab'

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(('lab.yml', 'lab.yaml'))

    def containers(self) -> list[dict[str, t.Any]]:
        lab_name = self.get_option('lab_name')
        try:
            api = SwarmApi(self.get_option('docker_host'), 30)
            return api.request('GET', '/containers/json', {
                'all': 'true', 'filters': json.dumps({'label': ['%s=%s' % (LAB_LABEL, lab_name)]})})
        except DockerApiError as exc:
            raise AnsibleParserError('Cannot list the containers of lab %s: %s' % (lab_name, exc)) from exc

    def ssh_vars(self, lab_name: str, node: dict[str, t.Any]) -> dict[str, str]:
        """How the ssh connection reaches a node as a real host: its address (a stopped node has none:
        it stays named after its container, unreachable until started), the lab's user and key."""
        key = os.path.join(self.get_option('ssh_key_dir'), lab_name, 'id_ed25519')
        ssh_vars = {'ansible_host': node['address'] or node['container'],
                    'ansible_user': self.get_option('ssh_user'),
                    'ansible_ssh_private_key_file': key}
        if node['id']:
            # One master connection per container: a lab made again on the same addresses within
            # ControlPersist must not reuse a master whose node is gone.
            ssh_vars['ansible_control_path'] = '%(directory)s/lab-' + node['id'][:12]
        return ssh_vars

    def parse(self, inventory: t.Any, loader: t.Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        lab_name = self.get_option('lab_name')
        for name, value in (('lab_name', lab_name), ('lab_managers', self.get_option('lab_managers')),
                            ('lab_workers', self.get_option('lab_workers'))):
            self.inventory.set_variable('all', name, value)
        if self.get_option('lab_node_suite'):
            self.inventory.set_variable('all', 'lab_node_suite', self.get_option('lab_node_suite'))
        self.inventory.add_group(PARENT_GROUP)
        for group in NODE_GROUPS:
            self.inventory.add_group(group)
            self.inventory.add_child(PARENT_GROUP, group)
        connection = CONNECTIONS[self.get_option('connection_type')]
        strict = self.get_option('strict')
        for node in lab_nodes(self.containers(), lab_name, self.get_option('include_stopped')):
            host = node['host']
            self.inventory.add_host(host, group=node['group'])
            host_vars = {'ansible_host': node['container'], 'ansible_connection': connection,
                         'lab_container': node['container'], 'lab_container_state': node['state'],
                         'lab_labels': node['labels'], 'lab_address': node['address']}
            if connection == CONNECTIONS['ssh']:
                host_vars.update(self.ssh_vars(lab_name, node))
            for key, value in host_vars.items():
                self.inventory.set_variable(host, key, value)
            if connection == CONNECTIONS['docker-api']:
                # the connection plugin's own option (community.docker's common docker_host)
                self.inventory.set_variable(host, 'ansible_docker_docker_host', self.get_option('docker_host'))
            self._set_composite_vars(self.get_option('compose'), host_vars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), host_vars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), host_vars, host, strict=strict)
