"""The Redis modules: DOCUMENTATION matches the argument spec, passwords are no_log, a missing
redis-py fails through missing_required_lib, and no module returns a key Ansible reserves."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import yaml

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

MODULES = ['redis_replication', 'redis_topology_info', 'redis_failover', 'redis_sentinel']
PREFIX = 'ansible_collections.swarmlab.cluster.plugins.modules.'


class Captured(Exception):
    pass


def capture_spec(monkeypatch, name):
    module = importlib.import_module(PREFIX + name)
    seen = {}

    def fake_init(self, **kwargs):
        seen.update(kwargs)
        raise Captured()

    monkeypatch.setattr(module, 'AnsibleModule', type('M', (), {'__init__': fake_init}))
    with pytest.raises(Captured):
        module.main()
    return module, seen


def compare(doc_options, spec):
    assert sorted(doc_options) == sorted(spec)
    for name, option in spec.items():
        doc = doc_options[name]
        assert doc.get('type', 'str') == option.get('type', 'str'), name
        assert doc.get('default') == option.get('default'), name
        assert bool(doc.get('required')) == bool(option.get('required')), name
        assert doc.get('elements') == option.get('elements'), name
        if 'options' in option:
            compare(doc['suboptions'], option['options'])


def documented_options(module):
    """The module's options with its documentation fragments merged in, as ansible-doc shows them."""
    doc = yaml.safe_load(module.DOCUMENTATION)
    options = dict(doc['options'])
    for fragment in doc.get('extends_documentation_fragment', []):
        # namespace.collection.file, or namespace.collection.file.variable (upper-cased in the class)
        namespace, collection, name, *variable = fragment.split('.')
        frag = importlib.import_module('ansible_collections.%s.%s.plugins.doc_fragments.%s' % (namespace, collection, name))
        text = getattr(frag.ModuleDocFragment, variable[0].upper() if variable else 'DOCUMENTATION')
        frag_options = yaml.safe_load(text)['options']
        assert not set(frag_options) & set(options), 'option documented twice'
        options.update(frag_options)
    return options


@pytest.mark.parametrize('name', MODULES)
def test_documentation_matches_argument_spec(monkeypatch, name):
    module, seen = capture_spec(monkeypatch, name)
    spec = seen['argument_spec']
    compare(documented_options(module), spec)
    assert seen['supports_check_mode'] is True
    for option, value in spec.items():
        if 'password' in option or option in ('master_auth', 'auth_pass'):
            assert value.get('no_log') is True, option
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


@pytest.mark.parametrize('name', MODULES)
def test_missing_redis_py_is_reported(monkeypatch, capsys, name):
    module = importlib.import_module(PREFIX + name)
    monkeypatch.setattr(module, 'HAS_REDIS', False)
    args = {
        'redis_replication': {'role': 'master'},
        'redis_topology_info': {'instances': [{'host': 'h'}]},
        'redis_failover': {'instances': [{'host': 'h'}]},
        'redis_sentinel': {'sentinels': [{'host': 'h'}], 'instances': [{'host': 'h'}]},
    }[name]
    monkeypatch.setattr(basic, '_ANSIBLE_ARGS', to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args})))
    monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy', raising=False)
    with pytest.raises(SystemExit):
        module.main()
    out = json.loads(capsys.readouterr().out)
    assert out['failed'] is True and 'redis' in out['msg'] and 'Failed to import' in out['msg']


# Result keys Ansible interprets itself: a module that returns "unreachable" (a non-empty list of
# instances, say) makes Ansible mark the HOST unreachable; "failed", "changed", "skipped", "rc",
# "results" and the rest change how the task is reported or looped.
RESERVED_RESULT_KEYS = {
    'changed', 'failed', 'failed_when_result', 'unreachable', 'skipped', 'skip_reason', 'results',
    'invocation', 'warnings', 'deprecations', 'exception', 'attempts', 'retries', 'rc', 'stdout',
    'stderr', 'stdout_lines', 'stderr_lines', 'diff', 'item', 'add_host', 'add_group', 'ansible_facts',
}
ALL_MODULES = sorted(p.stem for p in (Path(__file__).resolve().parents[4] / 'plugins' / 'modules').glob('*.py')
                     if p.stem != '__init__')


def test_every_module_is_checked():
    assert set(MODULES) <= set(ALL_MODULES) and len(ALL_MODULES) >= 6


@pytest.mark.parametrize('name', ALL_MODULES)
def test_no_return_key_is_reserved_by_ansible(name):
    module = importlib.import_module(PREFIX + name)
    keys = set(yaml.safe_load(module.RETURN) or {})
    bad = sorted(k for k in keys if k in RESERVED_RESULT_KEYS or k.startswith(('ansible_', '_ansible')))
    assert not bad, '%s returns keys Ansible reserves: %s' % (name, bad)
