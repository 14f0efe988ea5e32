"""Roles have explicit interfaces: each declares its inputs in meta/argument_specs.yml (defaults
matching defaults/main.yml), reads no other role's variables or results, and every tasks_from used
from outside the role has an argument-spec entry point. Playbooks hand one role's results to the
next (site.yml, playbooks/app_image.yml); these tests read the files, no host is needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = sorted(p.name for p in (ROOT / 'roles').iterdir() if (p / 'tasks').is_dir())


def load(path: Path):
    with path.open(encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def specs(role: str) -> dict:
    return load(ROOT / 'roles' / role / 'meta' / 'argument_specs.yml')['argument_specs']


def role_files(role: str) -> list[Path]:
    base = ROOT / 'roles' / role
    return [p for sub in ('defaults', 'vars', 'tasks', 'handlers', 'templates')
            for p in sorted((base / sub).rglob('*')) if p.is_file()]


def names_set(role: str) -> set[str]:
    """What a role owns: its options (every entry point) and the variables its tasks set or register."""
    owned = {option for entry in specs(role).values() for option in entry.get('options', {})}
    for path in (ROOT / 'roles' / role / 'tasks').rglob('*.yml'):
        for task in _tasks(load(path) or []):
            owned.update(task.get('ansible.builtin.set_fact', {}) or {})
            if 'register' in task:
                owned.add(task['register'])
    return {name for name in owned if isinstance(name, str) and not name.startswith('ansible_')}


def _tasks(tasks):
    for task in tasks:
        yield task
        for key in ('block', 'rescue', 'always'):
            yield from _tasks(task.get(key, []))


@pytest.mark.parametrize('role', ROLES)
def test_every_default_is_a_declared_option_with_the_same_default(role):
    defaults = load(ROOT / 'roles' / role / 'defaults' / 'main.yml') or {}
    options = specs(role)['main']['options']
    for name, value in defaults.items():
        assert name in options, '%s: defaults/main.yml sets %s, which meta/argument_specs.yml does not declare' % (role, name)
    for entry, spec in specs(role).items():
        for name, option in spec.get('options', {}).items():
            if name in defaults:
                assert 'default' in option and option['default'] == defaults[name], \
                    '%s (%s): %s defaults to %r in the spec, %r in defaults/main.yml' % (
                        role, entry, name, option.get('default'), defaults[name])
            else:
                assert option.get('required') or 'default' not in option, \
                    '%s (%s): %s has a spec default but none in defaults/main.yml' % (role, entry, name)


@pytest.mark.parametrize('role', ROLES)
def test_no_spec_default_needs_facts(role):
    """Argument specs are validated before the role's first task, where the playbooks have not
    gathered facts (each role gathers what it uses): a default made of facts cannot be resolved."""
    for entry, spec in specs(role).items():
        for name, option in spec.get('options', {}).items():
            assert 'ansible_facts' not in str(option.get('default', '')), '%s (%s): %s' % (role, entry, name)


@pytest.mark.parametrize('role', ROLES)
def test_a_role_reads_no_other_roles_variables(role):
    # A role that includes another (registry and stack include pki) passes it parameters and reads
    # the results that role documents: that is the included role's interface.
    tasks_text = ''.join(p.read_text(encoding='utf-8') for p in (ROOT / 'roles' / role / 'tasks').rglob('*.yml'))
    included = set(re.findall(r'name:\s*swarmlab\.cluster\.(\w+)', tasks_text)) & set(ROLES)
    others = {name: other for other in ROLES if other != role and other not in included for name in names_set(other)}
    # Not after a dot: a collection's plugin (swarmlab.cluster.stack_convergence) is not a variable.
    pattern = re.compile(r'(?<![.\w])(%s)\b' % '|'.join(sorted(map(re.escape, others), key=len, reverse=True)))
    found = []
    for path in role_files(role):
        for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
            code = line.split('#', 1)[0] if path.suffix in ('.yml', '.yaml') else line
            for match in pattern.finditer(code):
                found.append('%s:%d reads %s (role %s)' % (path.relative_to(ROOT), number, match.group(1),
                                                           others[match.group(1)]))
    assert not found, 'a role must get these as its own parameters:\n' + '\n'.join(found)


def _tasks_from_uses():
    """(role, tasks file, where) for every include_role/import_role with tasks_from in the checkout."""
    uses = []
    for path in sorted(ROOT.rglob('*.yml')):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ('.venv', 'collections', '.ansible') or '.molecule' in rel.parts:
            continue
        text = path.read_text(encoding='utf-8')
        if 'tasks_from' not in text:
            continue
        for block in re.finditer(r'(?:include|import)_role:\s*\n((?:\s+\S.*\n)+)', text):
            body = block.group(1)
            name = re.search(r'name:\s*(\S+)', body)
            tasks_from = re.search(r'tasks_from:\s*(\S+)', body)
            if name and tasks_from:
                uses.append((name.group(1).split('.')[-1], tasks_from.group(1), str(rel)))
    return uses


def test_tasks_from_are_found():
    assert ('stack', 'redis_topology.yml', 'playbooks/site.yml') in _tasks_from_uses()


@pytest.mark.parametrize('role,tasks_from,where', _tasks_from_uses())
def test_every_tasks_from_used_from_outside_has_an_entry_point(role, tasks_from, where):
    if where.startswith('roles/%s/' % role):
        return  # inside the role itself
    entry = Path(tasks_from).stem
    assert entry in specs(role), '%s uses %s tasks_from %s: add entry point %r to its meta/argument_specs.yml' % (
        where, role, tasks_from, entry)
    assert (ROOT / 'roles' / role / 'tasks' / tasks_from).is_file()


def test_the_engine_restart_hook_restarts_as_the_role_does_and_clears_its_mark():
    # One restart for node maintenance's hook and the role's rollout in turn: the role's entry point,
    # which clears the mark the role writes (a playbook hook cannot read the role's vars).
    marker = load(ROOT / 'roles' / 'docker_engine' / 'vars' / 'main.yml')['docker_engine_restart_marker']
    hook = load(ROOT / 'playbooks' / 'tasks' / 'engine_restart.yml')
    included = [t['ansible.builtin.include_role'] for block in hook for t in block.get('block', [])
                if 'ansible.builtin.include_role' in t]
    assert [(i['name'], i['tasks_from']) for i in included] == [('swarmlab.cluster.docker_engine', 'restart.yml')]
    restart = load(ROOT / 'roles' / 'docker_engine' / 'tasks' / 'restart.yml')
    cleared = [t['ansible.builtin.file']['path'] for block in restart for t in block['block']
               if t.get('ansible.builtin.file', {}).get('state') == 'absent']
    assert cleared == ['{{ docker_engine_restart_marker }}'] and marker.startswith('/etc/docker/')
