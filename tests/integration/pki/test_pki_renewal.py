"""Certificate renewal on age (issue 20): the pki role (used by the registry and the stack for their
server certificates) signs a new certificate on a normal run when the one in place expires within
pki_cert_renew_days, with the same key and CA, and changes nothing otherwise. Real files, real
community.crypto, on localhost.

Run from the checkout:  .venv/bin/pytest tests/integration/pki -q
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from ansible_collections.swarmlab.cluster.tests.integration.support.local_run import LOCAL_RUN_ENV

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PLAY = REPO / 'tests' / 'integration' / 'pki' / 'pki_certificate.yml'


def run(directory: Path, **extra) -> str:
    extra = dict(extra, pki_test_dir=str(directory))
    cmd = [str(REPO / '.venv' / 'bin' / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
           '-e', 'ansible_python_interpreter=%s' % (REPO / '.venv' / 'bin' / 'python'), '-e', json.dumps(extra), str(PLAY)]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, **LOCAL_RUN_ENV, ANSIBLE_NOCOLOR='1'), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def cert(directory: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((directory / 'server.crt').read_bytes())


def days_left(c: x509.Certificate) -> float:
    return (c.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400


def test_a_certificate_inside_the_window_is_renewed_then_left_alone(tmp_path):
    run(tmp_path, pki_cert_valid_days=10)
    old = cert(tmp_path)
    key = (tmp_path / 'server.key').read_bytes()
    ca = (tmp_path / 'ca' / 'ca.crt').read_bytes()
    assert days_left(old) < 11

    # Renewal off (what the role did before): the 10-day certificate stays.
    out = run(tmp_path, pki_cert_renew_days=0)
    assert 'changed=0' in out
    assert cert(tmp_path).serial_number == old.serial_number

    # Within the 30-day window: a new certificate, valid 825 days, same key and CA.
    out = run(tmp_path)
    new = cert(tmp_path)
    assert new.serial_number != old.serial_number
    assert days_left(new) > 800
    assert new.issuer == old.issuer
    assert (tmp_path / 'server.key').read_bytes() == key
    assert (tmp_path / 'ca' / 'ca.crt').read_bytes() == ca

    # Outside the window: nothing changes.
    out = run(tmp_path)
    assert 'changed=0' in out, out
    assert cert(tmp_path).serial_number == new.serial_number


def test_check_mode_reports_the_renewal_without_doing_it(tmp_path):
    run(tmp_path, pki_cert_valid_days=10)
    old = cert(tmp_path)
    cmd_out = subprocess.run(
        [str(REPO / '.venv' / 'bin' / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', '--check',
         '-e', 'ansible_python_interpreter=%s' % (REPO / '.venv' / 'bin' / 'python'),
         '-e', json.dumps({'pki_test_dir': str(tmp_path)}), str(PLAY)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ, **LOCAL_RUN_ENV, ANSIBLE_NOCOLOR='1'))
    assert cmd_out.returncode == 0, cmd_out.stdout
    assert 'changed=1' in cmd_out.stdout, cmd_out.stdout
    assert cert(tmp_path).serial_number == old.serial_number
