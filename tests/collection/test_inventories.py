"""The staging and production inventories are examples a user copies; these tests keep them from
rotting: each renders with the same groups as the lab (ansible-inventory --list and --graph), reaches
its hosts over SSH as an unprivileged user with become, takes its secrets from an ansible-vault file
(the example encrypted here with a throw-away vault password), and site.yml passes --syntax-check
against it. Nothing connects to the example addresses (192.0.2.0/24 is TEST-NET-1): the debug action
runs on the controller.

inventories/lab-ssh (the lab over SSH, issue 21) is tested as it is committed: its vault.yml is
encrypted with the lab-only password file beside it. Its hosts come from the lab's containers: with
none up its groups exist empty; with containers created (never started) under the lab role's labels,
each host is reached over SSH as the lab's user with become."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from ansible_collections.swarmlab.cluster.tests.unit.plugins.inventory.inventory_json import plain

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENVIRONMENTS = ['staging', 'production']


def run(*command: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert done.returncode == 0, '%s failed:\n%s\n%s' % (' '.join(command), done.stdout[-3000:], done.stderr[-3000:])
    return done


@pytest.fixture(params=ENVIRONMENTS)
def inventory(request, tmp_path):
    """(inventory copy with vault.yml encrypted from the example, vault password file, environment)."""
    copy = tmp_path / request.param
    shutil.copytree(ROOT / 'inventories' / request.param, copy)
    secret = tmp_path / 'vault-pass'
    secret.write_text('inventory-test-only\n')
    secret.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env.update(ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    for example in copy.rglob('vault.yml.example'):
        vault = example.with_name('vault.yml')
        vault.write_text(example.read_text(encoding='utf-8').replace('change me', 'example-secret-value'),
                         encoding='utf-8')
        run(str(BIN / 'ansible-vault'), 'encrypt', '--vault-password-file', str(secret), str(vault), env=env)
    return copy, secret, env


def test_the_graph_shows_the_groups_of_the_lab(inventory):
    copy, secret, env = inventory
    graph = run(str(BIN / 'ansible-inventory'), '-i', str(copy), '--vault-password-file', str(secret),
                '--graph', env=env).stdout
    for group in ('@swarm:', '@swarm_managers:', '@swarm_workers:'):
        assert group in graph, graph


def test_groups_match_the_lab(inventory):
    copy, secret, env = inventory
    listed = json.loads(run(str(BIN / 'ansible-inventory'), '-i', str(copy), '--vault-password-file', str(secret),
                            '--list', env=env).stdout)
    assert set(listed['swarm']['children']) == {'swarm_managers', 'swarm_workers'}
    assert listed['swarm_managers']['hosts'] and listed['swarm_workers']['hosts']


def test_hosts_are_reached_over_ssh_as_an_unprivileged_user_with_become(inventory):
    copy, secret, env = inventory
    listed = json.loads(run(str(BIN / 'ansible-inventory'), '-i', str(copy), '--vault-password-file', str(secret),
                            '--list', env=env).stdout)
    hostvars = listed['_meta']['hostvars']
    assert hostvars
    for host, variables in hostvars.items():
        assert variables.get('ansible_connection', 'ssh') == 'ssh', host
        assert variables.get('ansible_user') not in (None, 'root'), host
        assert variables.get('ansible_become') is True, host


def test_secrets_come_from_the_vault_and_nothing_else(inventory):
    copy, secret, env = inventory
    shown = run(str(BIN / 'ansible'), '-i', str(copy), '--vault-password-file', str(secret), 'swarm_managers[0]',
                '-m', 'ansible.builtin.debug', '-a', 'var=stack_redis_password', env=env)
    assert 'example-secret-value' in shown.stdout
    # Without the vault password the inventory's secrets cannot be read.
    refused = run(str(BIN / 'ansible'), '-i', str(copy), 'swarm_managers[0]', '-m', 'ansible.builtin.debug',
                  '-a', 'var=stack_redis_password', env=env, check=False)
    assert refused.returncode != 0 and 'vault' in (refused.stdout + refused.stderr).lower()
    # The plain group_vars carry no secret value of their own.
    for path in copy.rglob('*.yml'):
        if path.name != 'vault.yml':
            assert 'example-secret-value' not in path.read_text(encoding='utf-8'), path


def test_site_yml_passes_syntax_check(inventory):
    copy, secret, env = inventory
    run(str(BIN / 'ansible-playbook'), '-i', str(copy), '--vault-password-file', str(secret), 'site.yml',
        '--syntax-check', env=env)


# inventories/lab-ssh: the lab's own inventory over SSH, as committed.
LAB_SSH = ROOT / 'inventories' / 'lab-ssh'
LAB_VAULT_PASSWORD = LAB_SSH / 'vault-password.txt'


def lab_ssh_env(lab: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'SWARMLAB_'))}
    env.update(ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', SWARMLAB_LAB_NAME=lab)
    return env


def docker_available() -> bool:
    return shutil.which('docker') is not None and subprocess.run(
        ['docker', 'info'], capture_output=True, check=False).returncode == 0


def test_lab_ssh_renders_the_groups_and_site_yml_passes_syntax_check_with_no_lab_up():
    env = lab_ssh_env('inv-ssh-none-%s' % uuid.uuid4().hex[:8])
    graph = run(str(BIN / 'ansible-inventory'), '-i', str(LAB_SSH), '--vault-password-file', str(LAB_VAULT_PASSWORD),
                '--graph', env=env).stdout
    for group in ('@swarm:', '@swarm_managers:', '@swarm_workers:'):
        assert group in graph, graph
    run(str(BIN / 'ansible-playbook'), '-i', str(LAB_SSH), '--vault-password-file', str(LAB_VAULT_PASSWORD),
        'site.yml', '--syntax-check', env=env)


def test_lab_ssh_secrets_are_the_labs_own_and_only_in_its_vault():
    vault = LAB_SSH / 'group_vars' / 'swarm' / 'vault.yml'
    assert vault.read_text(encoding='utf-8').startswith('$ANSIBLE_VAULT;'), 'vault.yml is not encrypted'
    env = lab_ssh_env('any')
    plain = yaml.safe_load(run(str(BIN / 'ansible-vault'), 'view', '--vault-password-file', str(LAB_VAULT_PASSWORD),
                               str(vault), env=env).stdout)
    # The same credentials as the docker-connection lab's plain ones: the tests of the stack know them.
    lab = yaml.safe_load((ROOT / 'inventories' / 'lab' / 'group_vars' / 'swarm' / 'credentials.yml').read_text())
    assert plain == {'vault_registry_password': lab['registry_users'][0]['password'],
                     'vault_redis_password': lab['stack_redis_password'],
                     'vault_sentinel_password': lab['stack_sentinel_password']}
    # No plain file of the SSH inventory carries one of them (its symlinks to inventories/lab included).
    for path in LAB_SSH.rglob('*.yml'):
        if path.name != 'vault.yml':
            text = path.read_text(encoding='utf-8')
            assert not [value for value in plain.values() if value in text], path


@pytest.mark.docker
@pytest.mark.skipif(not docker_available(), reason='needs a running Docker daemon')
def test_lab_ssh_reaches_the_lab_nodes_over_ssh_as_the_labs_user_with_become():
    lab = 'inv-ssh-%s' % uuid.uuid4().hex[:8]
    image = subprocess.run(['docker', 'images', '-q'], capture_output=True, text=True, check=True).stdout.split()
    if not image:
        pytest.skip('no local image to create containers from')
    made = []
    env = lab_ssh_env(lab)
    try:
        for node, group in (('manager1', 'swarm_managers'), ('worker1', 'swarm_workers')):
            name = '%s-%s' % (lab, node)
            subprocess.run(['docker', 'create', '--name', name, '--label', 'org.swarmlab.lab=' + lab,
                            '--label', 'org.swarmlab.group=' + group, image[0], 'true'],
                           capture_output=True, check=True)
            made.append(name)
        listed = json.loads(run(str(BIN / 'ansible-inventory'), '-i', str(LAB_SSH), '--vault-password-file',
                                str(LAB_VAULT_PASSWORD), '--list', env=env).stdout)
        assert listed['swarm_managers']['hosts'] == ['manager1'] and listed['swarm_workers']['hosts'] == ['worker1']
        for host in ('manager1', 'worker1'):
            variables = plain(listed['_meta']['hostvars'][host])
            assert variables['ansible_connection'] == 'ansible.builtin.ssh', host
            assert variables['ansible_user'] == 'swarmlab' and variables['ansible_become'] is True, host
            assert variables['ansible_ssh_private_key_file'] == '/var/cache/swarmlab-lab/ssh/%s/id_ed25519' % lab
            assert 'ControlPersist' in variables['ansible_ssh_args'] and variables['ansible_pipelining'] is True
        # The vault opens with the lab's password file: the credentials reach the hosts' variables.
        shown = run(str(BIN / 'ansible'), '-i', str(LAB_SSH), '--vault-password-file', str(LAB_VAULT_PASSWORD),
                    'manager1', '-m', 'ansible.builtin.debug', '-a', 'var=stack_redis_password', env=env)
        assert 'lab-redis-gordon' in shown.stdout
        refused = run(str(BIN / 'ansible'), '-i', str(LAB_SSH), 'manager1', '-m', 'ansible.builtin.debug',
                      '-a', 'var=stack_redis_password', env=env, check=False)
        assert refused.returncode != 0 and 'vault' in (refused.stdout + refused.stderr).lower()
    finally:
        if made:
            subprocess.run(['docker', 'rm', '-f', *made], capture_output=True, check=False)
