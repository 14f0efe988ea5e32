"""The air-gapped path: the docker_engine role loads image archives into this machine's real engine
when the image is missing, and leaves it alone when present (changed=0).

A slow engine is stood in for by a proxy in front of the real engine's socket that holds the answer to
a load for a few seconds: a loaded disk cannot be made slow on demand, and the lab's CI once waited
more than community.docker's 60 s for three nodes loading one archive at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.swarmlab.cluster.tests.integration.support.local_run import run_role_tasks
from ansible_collections.swarmlab.cluster.tests.integration.support.ports import free_port
from ansible_collections.swarmlab.cluster.tests.integration.support.tcplink import relay

ENGINE = '/var/run/docker.sock'

pytestmark = pytest.mark.skipif(not os.path.exists(ENGINE), reason='needs the Docker engine on this machine')


def docker(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(['docker', *args], capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture
def archive(tmp_path):
    """(name, path): an image of its own (a few MB of random data), saved and then removed from the engine."""
    name = 'swarmlab-test/preload:%d-%d' % (os.getpid(), time.monotonic_ns())
    root = tmp_path / 'root'
    root.mkdir()
    (root / 'blob').write_bytes(os.urandom(4 << 20))
    tar = subprocess.run(['tar', '-C', str(root), '-c', '.'], capture_output=True, check=True).stdout
    subprocess.run(['docker', 'import', '-', name], input=tar, capture_output=True, check=True)
    path = tmp_path / 'preload.tar'
    assert docker('save', '-o', str(path), name).returncode == 0
    assert docker('rmi', name).returncode == 0
    try:
        yield name, path
    finally:
        docker('rmi', '-f', name)


class SlowEngine:
    """TCP on loopback to the engine's socket; the answer to each image load is held `hold` seconds."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.port = free_port()
        self.listener = socket.create_server(('127.0.0.1', self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(ENGINE)
            armed = threading.Event()

            def to_engine(data: bytes, armed: threading.Event = armed) -> None:
                if data.startswith(b'POST ') and b'/images/load' in data.split(b'\r\n', 1)[0]:
                    armed.set()

            def to_client(_data: bytes, armed: threading.Event = armed) -> None:
                if armed.is_set():
                    armed.clear()
                    time.sleep(self.hold)
            threading.Thread(target=relay, args=(client, engine, to_engine), daemon=True).start()
            threading.Thread(target=relay, args=(engine, client, to_client), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def run_role(tmp_path: Path, name: str, path: Path, docker_host: str | None = None, tasks: str = 'images.yml',
             **extra) -> dict:
    variables = {'docker_engine_image_archives': [{'name': name, 'archive': str(path)}],
                 'docker_engine_image_upload_dir': str(tmp_path / 'upload'), **extra}
    done = run_role_tasks(tmp_path, 'docker_engine', tasks, variables, callback='json',
                          env={'DOCKER_HOST': docker_host} if docker_host else None, drop_env=('ANSIBLE_', 'DOCKER_'))
    start = done.stdout.find('{')
    assert start >= 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout[start:])


def test_a_missing_image_is_copied_loaded_once_and_the_copy_removed(tmp_path, archive):
    name, path = archive
    first = run_role(tmp_path, name, path)
    assert first['stats']['localhost']['failures'] == 0 and first['stats']['localhost']['changed'] > 0, first['stats']
    assert docker('image', 'inspect', name).returncode == 0
    assert not (tmp_path / 'upload').exists()
    again = run_role(tmp_path, name, path)
    assert again['stats']['localhost']['failures'] == 0 and again['stats']['localhost']['changed'] == 0, again['stats']


def test_the_load_waits_for_a_slow_engine_as_long_as_the_inventory_says(tmp_path, archive):
    name, path = archive
    engine = SlowEngine(hold=4)
    try:
        short = run_role(tmp_path, name, path, 'tcp://127.0.0.1:%d' % engine.port, docker_engine_image_load_timeout=2)
        assert short['stats']['localhost']['failures'] == 1, short['stats']
        assert 'timed out' in json.dumps(short['plays']), 'expected a read time-out'
        # The engine goes on loading what it was sent: wait for it, then take the image out again.
        time.sleep(5)
        docker('rmi', '-f', name)
        waited = run_role(tmp_path, name, path, 'tcp://127.0.0.1:%d' % engine.port, docker_engine_image_load_timeout=20)
        assert waited['stats']['localhost']['failures'] == 0, waited['stats']
        assert docker('image', 'inspect', name).returncode == 0
    finally:
        engine.close()


@pytest.mark.parametrize('timeout', [0, -5, 'soon'])
def test_a_bad_load_timeout_is_refused_before_the_engine_is_touched(tmp_path, timeout):
    """The role's main entry point (install, configure, load): refused at the start, nothing changed."""
    path = tmp_path / 'never-read.tar'
    done = run_role(tmp_path, 'swarmlab-test/never:1', path, tasks='main.yml', docker_engine_image_load_timeout=timeout)
    stats = done['stats']['localhost']
    assert stats['failures'] == 1 and stats['changed'] == 0, stats
    assert 'docker_engine_image_load_timeout' in json.dumps(done['plays'])
