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
from ansible_collections.swarmlab.cluster.plugins.module_utils import _redis_module
from argspec_helpers import PREFIX, capture_spec, compare, documented

MODULES = ['redis_replication', 'redis_topology_info', 'redis_failover', 'redis_sentinel', 'redis_password_rotation']


@pytest.mark.parametrize('name', MODULES)
def test_documentation_matches_argument_spec(monkeypatch, name):
    module, seen = capture_spec(monkeypatch, name)
    spec = seen['argument_spec']
    compare(documented(module)[0], spec)
    assert seen['supports_check_mode'] is True
    for option, value in spec.items():
        if 'password' in option or option in ('master_auth', 'auth_pass'):
            assert value.get('no_log') is True, option
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


@pytest.mark.parametrize('name', MODULES)
def test_missing_redis_py_is_reported(monkeypatch, capsys, name):
    module = importlib.import_module(PREFIX + name)
    monkeypatch.setattr(_redis_module, 'HAS_REDIS', False)
    args = {
        'redis_replication': {'role': 'master'},
        'redis_topology_info': {'instances': [{'host': 'h'}]},
        'redis_failover': {'instances': [{'host': 'h'}]},
        'redis_sentinel': {'sentinels': [{'host': 'h'}], 'instances': [{'host': 'h'}]},
        'redis_password_rotation': {'instances': [{'host': 'h'}], 'new_password': 'x' * 8},
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


@pytest.mark.parametrize('kwargs', [{'instances': True}, {'sentinels': 'yes'}, {'instances': 'Required'}])
def test_a_list_of_endpoints_is_required_or_optional(kwargs):
    # A module's author mistake, caught before AnsibleModule reads any argument.
    with pytest.raises(ValueError, match='required or optional'):
        _redis_module.redis_module({}, **kwargs)
