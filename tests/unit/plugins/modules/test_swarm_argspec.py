"""The Swarm maintenance modules: DOCUMENTATION (with the shared swarm fragment merged in, as
ansible-doc shows it) matches the argument spec, and both modules take the shared options from one
place (SWARM_API_ARGUMENT_SPEC)."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm_api import SWARM_API_ARGUMENT_SPEC
from argspec_helpers import capture_spec, compare, documented

MODULES = ['swarm_node_drain', 'swarm_rebalance', 'swarm_rollout']


@pytest.mark.parametrize('name', MODULES)
def test_documentation_matches_argument_spec(monkeypatch, name):
    module, seen = capture_spec(monkeypatch, name)
    spec = seen['argument_spec']
    options, notes = documented(module)
    compare(options, spec)
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
