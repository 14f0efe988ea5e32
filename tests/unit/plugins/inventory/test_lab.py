"""The lab inventory (plugins/inventory/lab.py): the lab's nodes by their labels, named after the
nodes, grouped by org.swarmlab.group, and usable when no lab is up.

The selection is tested on a list in the shape of the Engine API's GET /containers/json; the
plugin itself against the machine's real dockerd, with containers created (never started) with the
lab role's labels and removed afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ansible_collections.swarmlab.cluster.plugins.inventory.lab import lab_nodes, node_address
from inventory_json import plain

ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent


def container(name, lab, group, state='running', extra=None):
    labels = {'org.swarmlab.lab': lab, 'org.swarmlab.group': group}
    labels.update(extra or {})
    return {'Id': uuid.uuid4().hex, 'Names': ['/' + name], 'Labels': labels, 'State': state}


def test_the_lab_nodes_are_named_after_the_nodes_and_grouped_by_label():
    containers = [
        container('demo-worker1', 'demo', 'swarm_workers'),
        container('demo-manager1', 'demo', 'swarm_managers'),
        container('demo-worker2', 'demo', 'swarm_workers', state='exited'),
        container('other-manager1', 'other', 'swarm_managers'),   # another lab
        {'Id': 'x', 'Names': ['/registry'], 'Labels': {'org.swarmlab.role': 'registry'}, 'State': 'running'},
        container('demo-helper', 'demo', 'not_a_node_group'),      # labelled, but no node group
    ]
    nodes = lab_nodes(containers, 'demo')
    assert [(n['host'], n['container'], n['group']) for n in nodes] == [
        ('manager1', 'demo-manager1', 'swarm_managers'),
        ('worker1', 'demo-worker1', 'swarm_workers'),
        ('worker2', 'demo-worker2', 'swarm_workers'),
    ]
    assert [n['host'] for n in lab_nodes(containers, 'demo', include_stopped=False)] == ['manager1', 'worker1']
    assert lab_nodes(containers, 'nobody') == []


def test_a_lab_name_with_a_dash_keeps_the_node_names():
    nodes = lab_nodes([container('molecule-ha-manager3', 'molecule-ha', 'swarm_managers')], 'molecule-ha')
    assert nodes[0]['host'] == 'manager3'


def with_networks(entry, **networks):
    """A /containers/json entry with its NetworkSettings (network name -> IPv4 address)."""
    entry['NetworkSettings'] = {'Networks': {name: {'IPAddress': ip} for name, ip in networks.items()}}
    return entry


def test_the_ssh_address_is_the_nodes_address_on_the_lab_network():
    # Named after the lab; a node on two networks gives the lab network's address, whatever the order.
    both = with_networks(container('demo-manager1', 'demo', 'swarm_managers'), other='10.9.0.5', demo='172.30.0.2')
    assert node_address(both, 'demo') == '172.30.0.2'
    # The lab role's lab_network may name another network: then the one that gives an address.
    assert node_address(with_networks(container('demo-worker1', 'demo', 'swarm_workers'), lan='172.31.0.3'),
                        'demo') == '172.31.0.3'
    # A stopped node has no address.
    assert node_address(with_networks(container('demo-worker2', 'demo', 'swarm_workers', 'exited'), demo=''),
                        'demo') == ''
    assert node_address(container('demo-worker2', 'demo', 'swarm_workers', 'exited'), 'demo') == ''
    assert [n['address'] for n in lab_nodes([both], 'demo')] == ['172.30.0.2']


def inventory(tmp_path: Path, lab: str, config: str = '', *args: str) -> subprocess.CompletedProcess:
    """ansible-inventory on a lab.yml in tmp_path (outside the checkout, so no ansible.cfg applies)."""
    source = tmp_path / 'lab.yml'
    source.write_text('plugin: swarmlab.cluster.lab\n' + config, encoding='utf-8')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'SWARMLAB_'))}
    env.update(SWARMLAB_LAB_NAME=lab, ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_NOCOLOR='1')
    return subprocess.run([str(BIN / 'ansible-inventory'), '-i', str(source), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def docker_available() -> bool:
    return shutil.which('docker') is not None and subprocess.run(
        ['docker', 'info'], capture_output=True, check=False).returncode == 0


@pytest.mark.docker
@pytest.mark.skipif(not docker_available(), reason='needs a running Docker daemon')
def test_the_plugin_lists_the_labelled_containers_of_its_lab(tmp_path):
    lab = 'inv-test-%s' % uuid.uuid4().hex[:8]
    image = subprocess.run(['docker', 'images', '-q'], capture_output=True, text=True, check=True).stdout.split()
    if not image:
        pytest.skip('no local image to create containers from')
    made = []
    try:
        for node, group in (('manager1', 'swarm_managers'), ('worker1', 'swarm_workers'), ('worker2', 'swarm_workers')):
            name = '%s-%s' % (lab, node)
            subprocess.run(['docker', 'create', '--name', name, '--label', 'org.swarmlab.lab=' + lab,
                            '--label', 'org.swarmlab.group=' + group, image[0], 'true'],
                           capture_output=True, check=True)
            made.append(name)
        done = inventory(tmp_path, lab, 'groups:\n  first_manager: inventory_hostname == "manager1"\n', '--list')
        assert done.returncode == 0, done.stderr
        data = plain(json.loads(done.stdout))
        assert sorted(data['swarm']['children']) == ['swarm_managers', 'swarm_workers']
        assert data['swarm_managers']['hosts'] == ['manager1']
        assert sorted(data['swarm_workers']['hosts']) == ['worker1', 'worker2']
        assert data['first_manager']['hosts'] == ['manager1']    # constructed options work
        worker = data['_meta']['hostvars']['worker1']
        assert worker['ansible_host'] == lab + '-worker1'
        assert worker['ansible_connection'] == 'community.docker.docker_api'
        assert worker['lab_container_state'] == 'created'
        cli = inventory(tmp_path, lab, 'connection_type: docker-cli\n', '--host', 'manager1')
        assert plain(json.loads(cli.stdout))['ansible_connection'] == 'docker'    # the name Mitogen redirects
        # Over SSH: the lab's user and this lab's key, a master connection per container. These
        # containers were never started, so they have no address: named after the container.
        ssh = inventory(tmp_path, lab, 'connection_type: ssh\nssh_key_dir: /keys\n', '--host', 'worker2')
        assert ssh.returncode == 0, ssh.stderr
        worker2 = plain(json.loads(ssh.stdout))
        assert worker2['ansible_connection'] == 'ansible.builtin.ssh'
        assert worker2['ansible_user'] == 'swarmlab'
        assert worker2['ansible_ssh_private_key_file'] == '/keys/%s/id_ed25519' % lab
        assert worker2['ansible_host'] == lab + '-worker2' and worker2['lab_address'] == ''
        container_id = subprocess.run(['docker', 'inspect', '-f', '{{.Id}}', lab + '-worker2'], capture_output=True,
                                      text=True, check=True).stdout.strip()
        assert worker2['ansible_control_path'] == '%(directory)s/lab-' + container_id[:12]
        assert 'ansible_docker_docker_host' not in worker2
    finally:
        if made:
            subprocess.run(['docker', 'rm', '-f', *made], capture_output=True, check=False)


@pytest.mark.docker
@pytest.mark.skipif(not docker_available(), reason='needs a running Docker daemon')
def test_with_no_lab_up_the_groups_exist_empty_and_localhost_plays_run(tmp_path):
    lab = 'inv-none-%s' % uuid.uuid4().hex[:8]
    done = inventory(tmp_path, lab, '', '--graph')
    assert done.returncode == 0, done.stderr
    assert '@swarm_managers' in done.stdout and '@swarm_workers' in done.stdout
    assert 'manager1' not in done.stdout
    listed = plain(json.loads(inventory(tmp_path, lab, '', '--list', '--export').stdout))
    assert listed['all']['vars']['lab_name'] == lab
    # No suite given: the lab role's own default (the runtime images' suite) applies.
    assert 'lab_node_suite' not in listed['all']['vars']
    trixie = plain(json.loads(inventory(tmp_path, lab, 'lab_node_suite: trixie\n', '--list', '--export').stdout))
    assert trixie['all']['vars']['lab_node_suite'] == 'trixie'


def test_an_unreachable_daemon_fails_the_source_with_the_reason(tmp_path):
    done = inventory(tmp_path, 'any', 'docker_host: unix:///nonexistent/docker.sock\n', '--graph')
    assert 'Cannot list the containers of lab any' in done.stderr
    assert '/nonexistent/docker.sock' in done.stderr
