#!/usr/bin/python
# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_stage
short_description: Compare a Docker stack's compose file with the deployed one, and stage some services' updates
version_added: 2.0.0
description:
  - A C(docker stack deploy) sends every changed service's new spec to Swarm at once, and Swarm
    starts their rolling updates together. For services that must not restart at the same time (a
    Redis master, its replicas and its Sentinels) this module writes a compose file in which only
    O(services) take their new definition from O(compose), and every other service keeps the
    definition it was deployed with (O(deployed)). Deploying that file with
    M(community.docker.docker_stack) updates those services only; a deploy of O(compose) afterwards
    finds them up to date.
  - It also compares the two files and returns the services whose definition differs (RV(differ)),
    with their secrets, configs, networks and volumes resolved to the names Swarm knows them by, so a
    new secret behind an unchanged service definition counts as a change.
  - In the staged file a service kept at its deployed definition refers to the secrets and configs
    it runs with as C(external) ones (they exist, since its tasks use them), so the deploy neither needs
    their old files nor tries to update them.
  - Why not M(community.docker.docker_stack) alone? It deploys a whole compose file and has no way
    to hold some services back. Why not C(docker service update)? A service updated outside the
    compose file would differ from what the next stack deploy sends; the staged file gives each
    service exactly the spec the full deploy gives it.
  - Reads the files on the managed host; needs PyYAML there (the docker_engine role installs it,
    M(community.docker.docker_stack) needs it too).
author: "swarmlab maintainers (!UNKNOWN)"
attributes:
  check_mode:
    support: full
    description: Compares and reports what it would write; writes nothing.
  diff_mode:
    support: none
    description: Returns what differs in RV(differ) and RV(objects_changed) instead.
options:
  stack:
    description:
      - The stack's name, which prefixes the names of secrets, configs, networks and volumes that
        the compose files do not name themselves.
    type: str
    required: true
  compose:
    description: The compose file to deploy (the new definitions).
    type: path
    required: true
  deployed:
    description:
      - The compose file the stack was last deployed with (what runs). When it does not exist, every
        service of O(compose) is reported in RV(added) and nothing is staged.
    type: path
    required: true
  services:
    description:
      - Services (by their compose name) that take their new definition in O(dest). Every other
        service of O(deployed) keeps its deployed definition; a service only in O(compose) and not
        listed here is left out (the full deploy creates it).
    type: list
    elements: str
    default: []
  dest:
    description:
      - Where to write the staged compose file, in the directory of O(compose) (its relative file
        paths stay valid). Without it the module only compares.
    type: path
notes:
  - The staged file carries no YAML anchors or extension fields (C(x-)); they are resolved.
"""

EXAMPLES = r"""
- name: Which Redis-side services would the deploy change?
  swarmlab.cluster.stack_stage:
    stack: swarmlab
    compose: /opt/swarmlab/stack/docker-compose.swarm.yml
    deployed: /opt/swarmlab/stack.deployed/docker-compose.swarm.yml
  register: plan

- name: Update the first Sentinel only
  swarmlab.cluster.stack_stage:
    stack: swarmlab
    compose: /opt/swarmlab/stack/docker-compose.swarm.yml
    deployed: /opt/swarmlab/stack.deployed/docker-compose.swarm.yml
    services: [redis-sentinel-1]
    dest: /opt/swarmlab/stack/docker-compose.staged.yml

- name: Deploy it
  community.docker.docker_stack:
    name: swarmlab
    compose: [/opt/swarmlab/stack/docker-compose.staged.yml]
"""

RETURN = r"""
deployed_exists:
  description: Whether O(deployed) exists.
  returned: always
  type: bool
differ:
  description: Services in both files whose definitions differ, secrets and configs resolved to their names.
  returned: always
  type: list
  elements: str
  sample: [redis-master, redis-sentinel-1, web]
added:
  description: Services only in O(compose).
  returned: always
  type: list
  elements: str
removed:
  description: Services only in O(deployed).
  returned: always
  type: list
  elements: str
objects_changed:
  description:
    - Secrets and configs (by their key in the compose files) whose name differs between the two
      files, i.e. whose content changed.
  returned: always
  type: list
  elements: str
  sample: [redis_tls_cert, redis_tls_key]
staged:
  description: The services written with their new definition in O(dest).
  returned: when O(dest) is set
  type: list
  elements: str
"""

import hashlib
import json
import os
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import yaml
except ImportError:
    YAML_IMPORT_ERROR = traceback.format_exc()
    yaml = None
else:
    YAML_IMPORT_ERROR = None

KINDS = ('secrets', 'configs')
# Prefix of the keys under which the staged file lists a kept service's secrets and configs.
DEPLOYED_PREFIX = 'deployed__'


class StageError(Exception):
    pass


def _load(path):
    with open(path, encoding='utf-8') as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict) or not isinstance(data.get('services'), dict):
        raise StageError('%s is not a compose file with services' % path)
    return data


def object_name(stack, kind, key, definition):
    """The name Swarm knows a top-level secret, config, network or volume by."""
    definition = definition or {}
    if definition.get('name'):
        return definition['name']
    external = definition.get('external')
    if isinstance(external, dict) and external.get('name'):
        return external['name']
    if external:
        return key
    return '%s_%s' % (stack, key)


def _references(service, kind):
    """(key, item) for each secret or config a service mounts, short or long syntax."""
    for item in service.get(kind) or []:
        yield (item if isinstance(item, str) else item.get('source')), item


def _list_keys(value):
    if isinstance(value, dict):
        return list(value)
    return list(value or [])


def resolved(stack, compose, name):
    """A service's definition with what it refers to by key replaced by what Swarm sees."""
    service = compose['services'][name]
    out = {'service': service}
    for kind in KINDS:
        top = compose.get(kind) or {}
        out[kind] = {key: object_name(stack, kind, key, top.get(key)) for key, _item in _references(service, kind)}
    out['networks'] = {key: (compose.get('networks') or {}).get(key)
                       for key in _list_keys(service.get('networks'))}
    out['volumes'] = {}
    for volume in service.get('volumes') or []:
        source = volume.split(':', 1)[0] if isinstance(volume, str) else volume.get('source')
        if source and source in (compose.get('volumes') or {}):
            out['volumes'][source] = compose['volumes'][source]
    return out


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def compare(stack, new, old):
    new_services, old_services = set(new['services']), set(old['services'])
    differ = sorted(name for name in new_services & old_services
                    if _digest(resolved(stack, new, name)) != _digest(resolved(stack, old, name)))
    changed = []
    for kind in KINDS:
        for key, definition in (new.get(kind) or {}).items():
            if key in (old.get(kind) or {}) and \
                    object_name(stack, kind, key, definition) != object_name(stack, kind, key, old[kind][key]):
                changed.append(key)
    return {'differ': differ, 'added': sorted(new_services - old_services),
            'removed': sorted(old_services - new_services), 'objects_changed': sorted(changed)}


def _kept(stack, old, name, staged):
    """The deployed definition of a service, its secrets and configs as external ones."""
    service = json.loads(json.dumps(old['services'][name]))
    for kind in KINDS:
        items = []
        for key, item in _references(service, kind):
            staged_key = DEPLOYED_PREFIX + key
            staged.setdefault(kind, {})[staged_key] = {
                'external': True, 'name': object_name(stack, kind, key, (old.get(kind) or {}).get(key))}
            if isinstance(item, str):
                items.append({'source': staged_key, 'target': key})
            else:
                item = dict(item, source=staged_key)
                item.setdefault('target', key)
                items.append(item)
        if items:
            service[kind] = items
    return service


def stage(stack, new, old, services):
    unknown = sorted(set(services) - set(new['services']))
    if unknown:
        raise StageError('not services of the compose file: %s' % ', '.join(unknown))
    staged = {key: value for key, value in new.items() if key not in ('services',) and not str(key).startswith('x-')}
    for kind in ('networks', 'volumes'):
        merged = dict(old.get(kind) or {})
        merged.update(new.get(kind) or {})
        if merged:
            staged[kind] = merged
    for kind in KINDS:
        staged[kind] = dict(new.get(kind) or {})
    staged['services'] = {}
    for name in list(old['services']) + [n for n in new['services'] if n not in old['services']]:
        if name in services:
            staged['services'][name] = new['services'][name]
        elif name in old['services']:
            staged['services'][name] = _kept(stack, old, name, staged)
    for kind in KINDS:
        if not staged[kind]:
            del staged[kind]
    return staged


def _write(path, content):
    """Whether the file changed; written atomically, root's only (it names the secrets)."""
    try:
        with open(path, encoding='utf-8') as handle:
            if handle.read() == content:
                return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.', prefix='.stage-')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(content)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def run(module):
    params = module.params
    new = _load(params['compose'])
    result = {'changed': False, 'deployed_exists': os.path.exists(params['deployed'])}
    if not result['deployed_exists']:
        result.update(differ=[], added=sorted(new['services']), removed=[], objects_changed=[])
        if params['dest']:
            result['staged'] = []
        return result
    old = _load(params['deployed'])
    result.update(compare(params['stack'], new, old))
    if params['dest']:
        if os.path.dirname(os.path.abspath(params['dest'])) != os.path.dirname(os.path.abspath(params['compose'])):
            raise StageError('dest must be in the directory of compose (%s): its file paths are relative to it'
                             % os.path.dirname(os.path.abspath(params['compose'])))
        staged = stage(params['stack'], new, old, params['services'])
        content = '# Staged by swarmlab.cluster.stack_stage: %s new, the others as deployed.\n%s' % (
            ', '.join(params['services']) or 'no service', yaml.safe_dump(staged, default_flow_style=False, sort_keys=False))
        result['staged'] = [name for name in params['services'] if name in staged['services']]
        if module.check_mode:
            try:
                with open(params['dest'], encoding='utf-8') as handle:
                    result['changed'] = handle.read() != content
            except FileNotFoundError:
                result['changed'] = True
        else:
            result['changed'] = _write(params['dest'], content)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            'stack': {'type': 'str', 'required': True},
            'compose': {'type': 'path', 'required': True},
            'deployed': {'type': 'path', 'required': True},
            'services': {'type': 'list', 'elements': 'str', 'default': []},
            'dest': {'type': 'path'},
        },
        supports_check_mode=True,
    )
    if yaml is None:
        module.fail_json(msg=missing_required_lib('PyYAML'), exception=YAML_IMPORT_ERROR)
    try:
        module.exit_json(**run(module))
    except (StageError, OSError, yaml.YAMLError) as exc:
        module.fail_json(msg=str(exc))


if __name__ == '__main__':
    main()
