"""The policy-rc.d the docker_engine role writes for one apt run on an active Swarm node, run as
invoke-rc.d and deb-systemd-invoke run it (Debian's policy-rc.d interface: 101 = not now, 0 = go)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

POLICY = Path(__file__).resolve().parents[3] / 'roles' / 'docker_engine' / 'files' / 'policy-rc.d'


def verdict(*args: str) -> int:
    return subprocess.run(['/bin/sh', str(POLICY), *args], check=False).returncode


@pytest.mark.parametrize('unit', ['docker.service', 'docker.socket', 'containerd.service', 'docker', 'containerd'])
@pytest.mark.parametrize('action', ['restart', 'start', 'stop', 'try-restart'])
def test_the_engines_services_are_held_back(unit, action):
    assert verdict(unit, action) == 101
    assert verdict('--quiet', unit, action, '2') == 101  # invoke-rc.d's form, with a runlevel


@pytest.mark.parametrize('unit', ['ssh.service', 'cron', 'dockerd-exporter.service', 'containerd-shim', 'my-docker.service'])
def test_every_other_service_is_left_to_its_package(unit):
    assert verdict(unit, 'restart') == 0
    assert verdict('--quiet', unit, 'start') == 0
