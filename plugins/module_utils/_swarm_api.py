# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small Docker Engine API client over the daemon's Unix socket, standard library only.

Why not the Docker SDK or community.docker: the maintenance modules need six endpoints (list
nodes, services and tasks; inspect and update a node or a service). A force update here sends
back the service spec exactly as the daemon returned it, with TaskTemplate.ForceUpdate raised by
one, as the docker CLI does; the Docker SDK's update_service (5.0.3 on Debian 12) instead rebuilds
the spec from keyword arguments. community.docker's API client is private to that collection and
may change. Plain HTTP over the socket needs nothing on the manager beyond Python. Private to
this collection.
"""

from __future__ import annotations

import json
import socket
import time
import traceback
import typing as t
from http.client import HTTPConnection
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swarmlab.cluster.plugins.module_utils._swarm import SwarmLogicError

DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'

# Options every Swarm maintenance module takes; documented in doc_fragments/swarm.py.
SWARM_API_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    'poll_interval': {'type': 'float', 'default': 0.5},
    'docker_host': {'type': 'str', 'default': DEFAULT_DOCKER_HOST},
    'api_timeout': {'type': 'int', 'default': 60},
}


class DockerApiError(Exception):
    """The daemon answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _UnixHTTPConnection(HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__('localhost', timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


def socket_path(docker_host: str) -> str:
    """The socket path of a ``unix://`` docker_host; other schemes are refused."""
    if not docker_host.startswith('unix://'):
        raise DockerApiError('docker_host must be a unix:// socket (got %r); these modules run on a manager.' % docker_host)
    return docker_host[len('unix://'):]


class SwarmApi:
    """The endpoints the maintenance modules use. Each call opens its own connection."""

    def __init__(self, docker_host: str = DEFAULT_DOCKER_HOST, timeout: float = 60) -> None:
        self.path = socket_path(docker_host)
        self.timeout = timeout

    def request(self, method: str, path: str, query: dict[str, t.Any] | None = None,
                body: t.Any = None) -> t.Any:
        url = path + ('?' + urlencode(query) if query else '')
        payload = json.dumps(body).encode() if body is not None else None
        headers = {'Content-Type': 'application/json'} if payload is not None else {}
        connection = _UnixHTTPConnection(self.path, self.timeout)
        try:
            connection.request(method, url, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except OSError as exc:
            raise DockerApiError('Cannot reach the Docker daemon at unix://%s: %s' % (self.path, exc))
        finally:
            connection.close()
        if response.status >= 400:
            try:
                message = json.loads(data).get('message', '')
            except ValueError:
                message = data.decode(errors='replace')
            raise DockerApiError('%s %s: HTTP %d: %s' % (method, path, response.status, message.strip()),
                                 status=response.status)
        return json.loads(data) if data.strip() else None

    def swarm_manager(self) -> bool:
        info = self.request('GET', '/info')
        return bool(info.get('Swarm', {}).get('ControlAvailable'))

    def nodes(self) -> list[dict[str, t.Any]]:
        return self.request('GET', '/nodes')

    def services(self) -> list[dict[str, t.Any]]:
        return self.request('GET', '/services')

    def service(self, service_id: str) -> dict[str, t.Any]:
        return self.request('GET', '/services/' + quote(service_id, safe=''))

    def tasks(self) -> list[dict[str, t.Any]]:
        return self.request('GET', '/tasks')

    def update_node(self, node: dict[str, t.Any], spec: dict[str, t.Any]) -> None:
        self.request('POST', '/nodes/%s/update' % quote(node['ID'], safe=''),
                     query={'version': node['Version']['Index']}, body=spec)

    def update_service(self, service: dict[str, t.Any], spec: dict[str, t.Any]) -> None:
        self.request('POST', '/services/%s/update' % quote(service['ID'], safe=''),
                     query={'version': service['Version']['Index']}, body=spec)


class SwarmResultError(Exception):
    """A module's failure that carries the (partial) result, so the user sees what was observed."""

    def __init__(self, message: str, result: dict[str, t.Any]) -> None:
        super().__init__(message)
        self.result = result


class SwarmWorker:
    """What a Swarm maintenance module does, given the module and the API: run() returns the result.
    sleep and clock are parameters so the unit tests drive the waits without waiting."""

    def __init__(self, module: t.Any, api: t.Any, sleep: t.Callable[[float], None] = time.sleep,
                 clock: t.Callable[[], float] = time.monotonic) -> None:
        self.module = module
        self.api = api
        self.params = module.params
        self.sleep = sleep
        self.clock = clock

    def require_manager(self) -> None:
        if not self.api.swarm_manager():
            raise SwarmLogicError('This host is not a Swarm manager; run the module on (or delegate it to) a manager.')

    def run(self) -> dict[str, t.Any]:
        raise NotImplementedError


def run_swarm_module(module: t.Any, worker: t.Callable[[t.Any, SwarmApi], SwarmWorker]) -> None:
    """Run a worker against the Engine API the module's shared options name, then exit or fail."""
    try:
        api = SwarmApi(module.params['docker_host'], module.params['api_timeout'])
        result = worker(module, api).run()
    except SwarmResultError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    except (DockerApiError, SwarmLogicError) as exc:
        module.fail_json(msg=str(exc), exception=traceback.format_exc())
    module.exit_json(**result)


def swarm_module_main(argument_spec: dict[str, t.Any], worker: t.Callable[[t.Any, SwarmApi], SwarmWorker]) -> None:
    """main() of a Swarm maintenance module: its own options and the shared ones, check mode, then the worker."""
    module = AnsibleModule(argument_spec=dict(argument_spec, **SWARM_API_ARGUMENT_SPEC), supports_check_mode=True)
    run_swarm_module(module, worker)
