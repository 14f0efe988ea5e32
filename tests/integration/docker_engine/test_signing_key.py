"""Docker's APT signing key is trusted only with the fingerprint Docker publishes (issue 15, supply
chain): the role's signing_key tasks run on this machine against keys made here with gpg and served
from a file:// URL (download.docker.com is not reachable from our machines, and a test must not
depend on it); the real key's fingerprint is the role's default."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.swarmlab.cluster.tests.integration.support.local_run import run_role_tasks

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope='module')
def key(tmp_path_factory):
    """(armored public key file, its fingerprint), made in a throwaway GnuPG home."""
    home = tmp_path_factory.mktemp('gnupg')
    home.chmod(0o700)
    env = {**os.environ, 'GNUPGHOME': str(home)}
    subprocess.run(['gpg', '--batch', '--quiet', '--pinentry-mode', 'loopback', '--passphrase', '',
                    '--quick-gen-key', 'swarmlab test <test@example.org>', 'ed25519', 'sign', 'never'],
                   env=env, check=True, capture_output=True)
    armored = home / 'key.asc'
    armored.write_bytes(subprocess.run(['gpg', '--armor', '--export', 'test@example.org'], env=env, check=True,
                                       capture_output=True).stdout)
    colons = subprocess.run(['gpg', '--with-colons', '--fingerprint', 'test@example.org'], env=env, check=True,
                            capture_output=True, text=True).stdout
    return armored, next(line.split(':')[9] for line in colons.splitlines() if line.startswith('fpr:'))


def run_role(tmp_path, url, fingerprint):
    dest = tmp_path / 'keyrings' / 'docker.asc'
    dest.parent.mkdir(exist_ok=True)
    extra = {'docker_engine_ce_gpg_key_url': url, 'docker_engine_ce_gpg_key_fingerprint': fingerprint,
             'docker_engine_ce_gpg_key_path': str(dest)}
    return run_role_tasks(tmp_path, 'docker_engine', 'signing_key.yml', extra, callback='json'), dest


def test_the_expected_key_is_kept(tmp_path, key):
    armored, fingerprint = key
    # Written as Docker writes it on its site, in groups of four.
    spaced = ' '.join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4))
    done, dest = run_role(tmp_path, armored.as_uri(), spaced)
    assert done.returncode == 0, done.stdout[-3000:]
    assert dest.read_bytes() == armored.read_bytes()


def test_a_key_with_another_fingerprint_is_removed_and_refused(tmp_path, key):
    armored, fingerprint = key
    done, dest = run_role(tmp_path, armored.as_uri(), '9DC858229FC7DD38854AE2D88D81803C0EBFCD88')
    assert done.returncode != 0
    assert fingerprint in done.stdout and 'it was removed' in done.stdout, done.stdout[-3000:]
    assert not dest.exists()


def test_the_default_is_dockers_published_fingerprint():
    import yaml  # pylint: disable=import-outside-toplevel
    defaults = yaml.safe_load((ROOT / 'roles/docker_engine/defaults/main.yml').read_text())
    assert defaults['docker_engine_ce_gpg_key_fingerprint'] == '9DC858229FC7DD38854AE2D88D81803C0EBFCD88'
