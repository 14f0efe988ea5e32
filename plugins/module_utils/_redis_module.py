# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every Redis module of swarmlab.cluster does around its own logic: the argument spec of a
list of host/port endpoints, the AnsibleModule with the shared connection options, the check that
redis-py is there, and running the module's manager so that a RedisModuleError fails the task with
its message."""

from __future__ import annotations

import traceback
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_client import (
    REDIS_CONNECTION_ARGUMENT_SPEC,
    SENTINEL_AUTH_ARGUMENT_SPEC,
    HAS_REDIS,
    REDIS_IMPORT_ERROR,
    RedisModuleError,
)

REDIS_PORT = 6379
SENTINEL_PORT = 26379


def endpoint_options(port: int) -> dict[str, dict[str, t.Any]]:
    """Suboptions of one instance or Sentinel: host (required) and port."""
    return {
        'host': {'type': 'str', 'required': True},
        'port': {'type': 'int', 'default': port},
    }


def endpoints_spec(port: int, required: bool = False) -> dict[str, t.Any]:
    """A list of instances or Sentinels (doc_fragments/redis.py documents both lists)."""
    spec: dict[str, t.Any] = {'type': 'list', 'elements': 'dict', 'options': endpoint_options(port)}
    if required:
        spec['required'] = True
    return spec


def _listed(port: int, need: str) -> dict[str, t.Any]:
    if need not in ('required', 'optional'):
        raise ValueError('a list of endpoints is required or optional, not %r' % (need,))
    return endpoints_spec(port, required=need == 'required')


def redis_module(argument_spec: dict[str, t.Any], instances: str | None = None, sentinels: str | None = None,
                 **kwargs: t.Any) -> AnsibleModule:
    """The AnsibleModule of a Redis module: its own options, then the connection options, and as
    asked ('required' or 'optional') the list of instances (doc fragment
    swarmlab.cluster.redis.instances) and the list of Sentinels with their credentials
    (swarmlab.cluster.redis.sentinel). Check mode always. Fails when redis-py is missing."""
    spec = dict(argument_spec, **REDIS_CONNECTION_ARGUMENT_SPEC)
    if instances is not None:
        spec['instances'] = _listed(REDIS_PORT, instances)
    if sentinels is not None:
        spec['sentinels'] = _listed(SENTINEL_PORT, sentinels)
        spec.update(SENTINEL_AUTH_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **kwargs)
    if not HAS_REDIS:
        module.fail_json(msg=missing_required_lib('redis'), exception=REDIS_IMPORT_ERROR)
    return module


class RedisManager:
    """Base of the modules' managers: run() returns the result; warnings collects what the task warns."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.p = module.params
        self.check = module.check_mode
        self.warnings: list[str] = []

    def run(self) -> dict[str, t.Any]:
        raise NotImplementedError

    def with_warnings(self, result: dict[str, t.Any]) -> dict[str, t.Any]:
        if self.warnings:
            result['warnings'] = self.warnings
        return result


def run_manager(module: AnsibleModule, manager: t.Callable[[AnsibleModule], RedisManager]) -> dict[str, t.Any]:
    """The manager's result; a RedisModuleError fails the task with its message."""
    try:
        return manager(module).run()
    except RedisModuleError as exc:
        module.fail_json(msg=str(exc), exception=traceback.format_exc())
        raise  # not reached: fail_json exits
