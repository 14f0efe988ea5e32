"""The Swarm maintenance modules: DOCUMENTATION (with the shared swarm fragment merged in, as
ansible-doc shows it) matches the argument spec, and both modules take the shared options from one
place (SWARM_API_ARGUMENT_SPEC)."""

from __future__ import annotations

import importlib

import pytest
import yaml

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm_api import SWARM_API_ARGUMENT_SPEC

MODULES = ['swarm_node_drain', 'swarm_rebalance', 'swarm_rollout']
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


def documented(module):
    """Options and notes with the documentation fragments merged in, as ansible-doc does."""
    doc = yaml.safe_load(module.DOCUMENTATION)
    options, notes = dict(doc['options']), list(doc.get('notes', []))
    for fragment in doc.get('extends_documentation_fragment', []):
        namespace, collection, name = fragment.split('.')
        frag = importlib.import_module('ansible_collections.%s.%s.plugins.doc_fragments.%s' % (namespace, collection, name))
        frag_doc = yaml.safe_load(frag.ModuleDocFragment.DOCUMENTATION)
        assert not set(frag_doc['options']) & set(options), 'option documented twice'
        options.update(frag_doc['options'])
        notes.extend(frag_doc.get('notes', []))
    return options, notes


@pytest.mark.parametrize('name', MODULES)
def test_documentation_matches_argument_spec(monkeypatch, name):
    module, seen = capture_spec(monkeypatch, name)
    spec = seen['argument_spec']
    options, notes = documented(module)
    assert sorted(options) == sorted(spec)
    for option, value in spec.items():
        doc = options[option]
        assert doc.get('type', 'str') == value.get('type', 'str'), option
        assert doc.get('default') == value.get('default'), option
        assert bool(doc.get('required')) == bool(value.get('required')), option
        assert doc.get('elements') == value.get('elements'), option
    assert seen['supports_check_mode'] is True
    assert any('Unix socket' in note for note in notes)
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


@pytest.mark.parametrize('name', MODULES)
def test_shared_options_come_from_the_shared_spec(monkeypatch, name):
    module, seen = capture_spec(monkeypatch, name)
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert 'swarmlab.cluster.swarm' in doc['extends_documentation_fragment']
    for option, value in SWARM_API_ARGUMENT_SPEC.items():
        assert seen['argument_spec'][option] == value
        assert option not in doc['options'], '%s is documented in the module and in the fragment' % option
