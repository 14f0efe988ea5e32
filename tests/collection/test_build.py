"""The collection as a user gets it: `ansible-galaxy collection build`, the tarball installed with
`ansible-galaxy collection install` into an empty path, and ansible-doc / ansible-playbook run from
there, outside the checkout (no ansible.cfg of ours, no collections/ link). Offline: the
dependencies galaxy.yml declares are taken from the `ansible` package in this virtualenv
(--no-deps), as on our machines Galaxy is not reachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / 'galaxy.yml').read_text(encoding='utf-8'))
FQCN = '%s.%s' % (GALAXY['namespace'], GALAXY['name'])
MODULES = sorted(p.stem for p in (ROOT / 'plugins' / 'modules').glob('*.py') if not p.name.startswith('_'))
ROLES = sorted(p.name for p in (ROOT / 'roles').iterdir() if (p / 'meta' / 'argument_specs.yml').is_file())
# What the tarball may hold at its top level (plus the files ansible-galaxy writes).
ALLOWED_TOP = {'plugins', 'roles', 'playbooks', 'meta', 'docs', 'changelogs', 'tests',
               'README.md', 'CHANGELOG.md', 'CHANGELOG.rst', 'MANIFEST.json', 'FILES.json'}


def run(*command: str, cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, '%s failed:\n%s\n%s' % (' '.join(command), done.stdout[-3000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope='module')
def installed(tmp_path_factory: pytest.TempPathFactory):
    """(tarball, collections path, environment) of the built and installed collection."""
    work = tmp_path_factory.mktemp('collection')
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env.update(ANSIBLE_NOCOLOR='1', ANSIBLE_CONFIG=str(work / 'none.cfg'), HOME=str(work))
    run(str(BIN / 'ansible-galaxy'), 'collection', 'build', '--output-path', str(work / 'dist'), cwd=ROOT, env=env)
    tarball = next((work / 'dist').glob('*.tar.gz'))
    collections = work / 'collections'
    run(str(BIN / 'ansible-galaxy'), 'collection', 'install', '--no-deps', '-p', str(collections), str(tarball),
        cwd=work, env=env)
    env['ANSIBLE_COLLECTIONS_PATH'] = str(collections)
    return tarball, collections, env, work


def test_the_tarball_holds_the_collection_only(installed):
    tarball = installed[0]
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    top = {name.split('/', 1)[0] for name in names}
    assert top <= ALLOWED_TOP, 'not part of the collection: %s' % sorted(top - ALLOWED_TOP)
    assert {name.split('/')[1] for name in names if name.startswith('tests/') and name.count('/') > 1} \
        <= {'unit', 'integration'}
    for needed in ('plugins/modules', 'plugins/inventory/lab.py', 'roles/stack/meta/argument_specs.yml',
                   'playbooks/site.yml', 'meta/runtime.yml', 'changelogs/changelog.yaml', 'docs/lab.md'):
        assert any(name == needed or name.startswith(needed + '/') for name in names), needed
    for absent in ('app', 'scripts', 'ops', 'inventories', 'molecule', 'k8s', 'site.yml',
                   'playbooks/drills.yml', 'playbooks/loadtest.yml', 'playbooks/ha_drill.yml'):
        assert not any(name == absent or name.startswith(absent + '/') for name in names), absent
    assert not [name for name in names if '__pycache__' in name or name.endswith('.pyc')]


def test_manifest_declares_the_dependencies(installed):
    collections = installed[1]
    manifest = json.loads((collections / 'ansible_collections' / GALAXY['namespace'] / GALAXY['name']
                           / 'MANIFEST.json').read_text(encoding='utf-8'))
    dependencies = manifest['collection_info']['dependencies']
    assert set(dependencies) >= {'community.docker', 'community.crypto', 'community.general', 'kubernetes.core'}
    assert dependencies == GALAXY['dependencies']


def test_the_dependencies_present_meet_the_declared_versions(installed):
    """The versions the ansible package ships (what the offline install relies on) satisfy galaxy.yml."""
    env, work = installed[2], installed[3]
    listed = json.loads(run(str(BIN / 'ansible-galaxy'), 'collection', 'list', '--format', 'json',
                            cwd=work, env=env).stdout)
    versions = {name: info['version'] for path in listed.values() for name, info in path.items()}
    from ansible.galaxy.dependency_resolution.versioning import meets_requirements
    for name, requirement in GALAXY['dependencies'].items():
        assert name in versions, '%s is not installed' % name
        assert meets_requirements(versions[name], requirement), '%s %s does not meet %s' % (
            name, versions[name], requirement)
    assert versions[FQCN] == GALAXY['version']


def test_ansible_doc_lists_every_module_from_the_installed_copy(installed):
    env, work = installed[2], installed[3]
    listed = json.loads(run(str(BIN / 'ansible-doc'), '-l', FQCN, '--json', cwd=work, env=env).stdout)
    assert sorted(listed) == ['%s.%s' % (FQCN, module) for module in MODULES]


@pytest.mark.parametrize('module', MODULES)
def test_ansible_doc_of_each_module(installed, module):
    env, work, collections = installed[2], installed[3], installed[1]
    doc = json.loads(run(str(BIN / 'ansible-doc'), '--json', '%s.%s' % (FQCN, module), cwd=work, env=env).stdout)
    entry = doc['%s.%s' % (FQCN, module)]
    assert entry['doc']['module'] == module
    assert entry['doc']['filename'].startswith(str(collections)), entry['doc']['filename']


@pytest.mark.parametrize('plugin_type,name', [('inventory', 'lab'), ('filter', 'stack_convergence'),
                                              ('filter', 'redis_switchover_plan')])
def test_ansible_doc_of_the_other_plugins(installed, plugin_type, name):
    env, work = installed[2], installed[3]
    run(str(BIN / 'ansible-doc'), '-t', plugin_type, '%s.%s' % (FQCN, name), cwd=work, env=env)


@pytest.mark.parametrize('role', ROLES)
def test_ansible_doc_of_each_role(installed, role):
    env, work = installed[2], installed[3]
    doc = json.loads(run(str(BIN / 'ansible-doc'), '-t', 'role', '--json', '%s.%s' % (FQCN, role),
                         cwd=work, env=env).stdout)
    assert 'main' in doc['%s.%s' % (FQCN, role)]['entry_points']


def test_the_playbooks_parse_from_the_installed_copy(installed):
    env, work = installed[2], installed[3]
    for playbook in ('site', 'node_maintenance', 'lab', 'k8s'):
        run(str(BIN / 'ansible-playbook'), '--syntax-check', '-i', 'localhost,', '%s.%s' % (FQCN, playbook),
            cwd=work, env=env)


def test_action_groups_set_module_defaults(installed):
    """meta/runtime.yml's action group swarm: module_defaults for the group reach each module."""
    env, work = installed[2], installed[3]
    play = work / 'defaults.yml'
    play.write_text("""
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/%s.swarm:
      docker_host: unix:///nonexistent/swarmlab-test.sock
  tasks:
    - name: The socket comes from the group's defaults
      %s.swarm_rebalance: {}
""" % (FQCN, FQCN), encoding='utf-8')
    done = subprocess.run([str(BIN / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
                           '-e', 'ansible_python_interpreter=%s' % sys.executable, str(play)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert 'Cannot reach the Docker daemon at unix:///nonexistent/swarmlab-test.sock' in done.stdout, done.stdout
