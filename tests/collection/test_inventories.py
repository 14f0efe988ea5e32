"""The staging and production inventories are examples a user copies; these tests keep them from
rotting: each renders with the same groups as the lab, reaches its hosts over SSH as an unprivileged
user with become, takes its secrets from an ansible-vault file (the example encrypted here with a
throw-away vault password), and site.yml passes --syntax-check against it. Nothing connects to the
example addresses (192.0.2.0/24 is TEST-NET-1): the debug action runs on the controller."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
