"""What the argument-spec tests of the modules share: the spec a module's main() builds, and its
DOCUMENTATION with the documentation fragments merged in, as ansible-doc shows it."""

from __future__ import annotations

import importlib

import pytest
import yaml

from ansible.module_utils import basic
from ansible.utils.plugin_docs import merge_fragment

PREFIX = 'ansible_collections.swarmlab.cluster.plugins.modules.'


class Captured(Exception):
    pass


def capture_spec(monkeypatch, name):
    """The module and the keyword arguments its main() gives AnsibleModule (which never runs)."""
    module = importlib.import_module(PREFIX + name)
    seen = {}

    def fake_init(self, **kwargs):
        seen.update(kwargs)
        raise Captured()

    # On the class, as validate-modules does: main() may build it through shared module_utils.
    monkeypatch.setattr(basic.AnsibleModule, '__init__', fake_init)
    with pytest.raises(Captured):
        module.main()
    return module, seen


def documented(module):
    """Options and notes with the documentation fragments merged in, as ansible-doc does."""
    doc = yaml.safe_load(module.DOCUMENTATION)
    options, notes = dict(doc['options']), list(doc.get('notes', []))
    for fragment in doc.get('extends_documentation_fragment', []):
        # namespace.collection.file, or namespace.collection.file.variable (upper-cased in the class)
        namespace, collection, name, *variable = fragment.split('.')
        frag = importlib.import_module('ansible_collections.%s.%s.plugins.doc_fragments.%s' % (namespace, collection, name))
        frag_doc = yaml.safe_load(getattr(frag.ModuleDocFragment, variable[0].upper() if variable else 'DOCUMENTATION'))
        for name in set(frag_doc['options']) & set(options):
            # A module may give a fragment's option its own description or required, nothing else.
            assert set(options[name]) <= {'description', 'required'}, 'option %s documented twice' % name
        merge_fragment(options, frag_doc['options'])  # as Ansible does: the module's keys win
        notes.extend(frag_doc.get('notes', []))
    return options, notes


def compare(doc_options, spec):
    """The documented options are the argument spec's, with the same type, default, required and
    elements (suboptions too)."""
    assert sorted(doc_options) == sorted(spec)
    for name, option in spec.items():
        doc = doc_options[name]
        assert doc.get('type', 'str') == option.get('type', 'str'), name
        assert doc.get('default') == option.get('default'), name
        assert bool(doc.get('required')) == bool(option.get('required')), name
        assert doc.get('elements') == option.get('elements'), name
        if 'options' in option:
            compare(doc['suboptions'], option['options'])
