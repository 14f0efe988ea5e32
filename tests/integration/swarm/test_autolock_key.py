"""The swarm role's keeping of the unlock key (tasks/autolock.yml, swarm_autolock) on the controller,
run here as the role runs it: the key the first manager gave (a test value here, as docker_swarm_info
returns it; the lab's molecule/swarm takes it from a real locked Swarm) goes to a 0600 file in a 0700
directory, a second run changes nothing, a rotated key is rewritten, a file the user encrypted with
ansible-vault is read with the run's vault secret and left as it is, and no output shows the key."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

from ansible_collections.swarmlab.cluster.tests.integration.support.local_run import run_role_tasks

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
KEY = 'SWMKEY-1-' + 'TestOnlyKeyNotARealOne0123456789abcdefABCDE'


def run(tmp_path: Path, key: str, key_file: Path, *options: str) -> tuple[subprocess.CompletedProcess, int]:
    extra = {'swarm_info': {'swarm_unlock_key': key or None}, 'swarm_bootstrap_host': 'manager1',
             'swarm_unlock_key_file': str(key_file)}
    done = run_role_tasks(tmp_path, 'swarm', 'autolock.yml', extra, '-v', *options)
    assert KEY not in done.stdout + done.stderr and 'SWMKEY-' not in done.stdout + done.stderr, done.stdout
    recap = re.search(r'localhost\s+: ok=\d+\s+changed=(\d+)', done.stdout)
    return done, int(recap.group(1)) if recap else -1


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_goes_to_a_0600_file_once_and_follows_a_rotation(tmp_path):
    key_file = tmp_path / 'cache' / 'lab' / 'swarm-unlock-key'
    done, changed = run(tmp_path, KEY, key_file)
    assert done.returncode == 0 and changed >= 1, done.stdout[-3000:]
    assert key_file.read_text() == KEY + '\n'
    assert mode(key_file) == 0o600 and mode(key_file.parent) == 0o700
    done, changed = run(tmp_path, KEY, key_file)
    assert done.returncode == 0 and changed == 0, done.stdout[-3000:]
    # A looser mode is put back.
    key_file.chmod(0o644)
    done, changed = run(tmp_path, KEY, key_file)
    assert done.returncode == 0 and changed == 1 and mode(key_file) == 0o600, done.stdout[-3000:]
    # docker swarm unlock-key --rotate: the next run writes the new key.
    rotated = KEY[:-5] + 'ZZZZZ'
    done, changed = run(tmp_path, rotated, key_file)
    assert done.returncode == 0 and changed == 1 and key_file.read_text() == rotated + '\n', done.stdout[-3000:]


def test_an_existing_directory_keeps_its_mode(tmp_path):
    inventory_dir = tmp_path / 'inventory'
    inventory_dir.mkdir(mode=0o755)
    inventory_dir.chmod(0o755)
    done = run(tmp_path, KEY, inventory_dir / '.swarm-unlock-key')[0]
    assert done.returncode == 0 and mode(inventory_dir) == 0o755
    assert mode(inventory_dir / '.swarm-unlock-key') == 0o600


def test_a_vault_encrypted_key_file_is_read_with_the_vault_secret_and_left_as_it_is(tmp_path):
    key_file = tmp_path / 'swarm-unlock-key'
    key_file.write_text(KEY + '\n')
    secret = tmp_path / 'vault-pass'
    secret.write_text('autolock-test-only\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    subprocess.run([str(BIN / 'ansible-vault'), 'encrypt', '--vault-password-file', str(secret), str(key_file)],
                   env=env, cwd=ROOT, check=True, capture_output=True)
    encrypted = key_file.read_text()
    assert encrypted.startswith('$ANSIBLE_VAULT')
    key_file.chmod(0o644)
    done, changed = run(tmp_path, KEY, key_file, '--vault-password-file', str(secret))
    # The mode only: the content holds the key already.
    assert done.returncode == 0 and changed == 1, done.stdout[-3000:]
    assert key_file.read_text() == encrypted and mode(key_file) == 0o600
    done, changed = run(tmp_path, KEY, key_file, '--vault-password-file', str(secret))
    assert done.returncode == 0 and changed == 0, done.stdout[-3000:]
    # Without the vault secret the run stops, saying which file, before anything is written.
    done = run(tmp_path, KEY, key_file)[0]
    assert done.returncode != 0 and 'Check that the key file can be read' in done.stdout, done.stdout[-3000:]
    assert str(key_file) in ' '.join((done.stdout + done.stderr).split()), done.stdout[-3000:]
    assert key_file.read_text() == encrypted


def test_check_mode_reports_and_writes_nothing(tmp_path):
    key_file = tmp_path / 'dir' / 'swarm-unlock-key'
    # The key exists (the Swarm is locked): the write is reported.
    done, changed = run(tmp_path, KEY, key_file, '--check')
    assert done.returncode == 0 and changed >= 1 and not key_file.exists(), done.stdout[-3000:]
    # No key yet (autolock turned on by this run): reported as what a run would write.
    done, changed = run(tmp_path, '', key_file, '--check')
    assert done.returncode == 0 and changed >= 1 and 'gets the unlock key once the Swarm is locked' in done.stdout
    assert not key_file.exists()


def test_a_real_run_without_a_key_fails(tmp_path):
    done = run(tmp_path, '', tmp_path / 'swarm-unlock-key')[0]
    assert done.returncode != 0 and 'gave no unlock key although swarm_autolock is on' in done.stdout
