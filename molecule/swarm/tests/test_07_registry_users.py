"""Rotating a registry password and removing a user, as docs/registry.md tells a user to do it.

After test_06_registry_gc.py (file order), before the Swarm tests restart the manager's engine.
playbooks/registry.yml runs three times from the checkout: with moby's password changed and a second
user added (at -v), then with the inventory's users again (moby/gordon: the added user is removed,
`registry_users_exclusive`), then once more. Each outcome is checked as a client sees it: the
registry's answer to each user and password, a push from the manager (its stored login follows),
and what the playbook printed.
"""

from __future__ import annotations

import json
import os
import re
import secrets

import pytest

from lab_checks import push_tiny, recap, run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-swarm")
# Made here, unknown to the inventory: the output of the runs must not show them.
NEW_PASSWORD = "rotated-" + secrets.token_hex(8)
CI_PASSWORD = "ci-" + secrets.token_hex(8)
REPO = "swarmlab/tiny"


def status(manager, address: str, user: str, password: str) -> int:
    """The registry's answer to GET /v2/ with these credentials (curl's --config on stdin keeps the
    password off the command line)."""
    out = manager.check_output(
        "printf 'user = \"%s:%s\"\\n' | curl -s -o /dev/null -w '%%{http_code}' --config - "
        "--cacert /etc/docker/certs.d/%s/ca.crt https://%s/v2/" % (user, password, address, address))
    return int(out)


def answers(manager, address: str) -> dict[str, int]:
    return {
        "moby:gordon": status(manager, address, "moby", "gordon"),
        "moby:new": status(manager, address, "moby", NEW_PASSWORD),
        "ci": status(manager, address, "ci", CI_PASSWORD),
    }


def users_in_htpasswd(manager) -> list[str]:
    text = manager.check_output("cat /etc/swarmlab-registry/registry/htpasswd")
    return sorted(line.split(":", 1)[0] for line in text.split())


@pytest.fixture(scope="module")
def rotation(manager, address):
    seen: dict = {}
    users = [{"name": "moby", "password": NEW_PASSWORD}, {"name": "ci", "password": CI_PASSWORD}]
    seen["rotate"] = run_playbook(LAB, "playbooks/registry.yml", "-v", "-e", json.dumps({"registry_users": users}),
                                  show=False)
    seen["rotated"] = answers(manager, address)
    seen["rotated_users"] = users_in_htpasswd(manager)
    seen["rotated_push"] = push_tiny(manager, address, REPO, "after-rotation", "users")

    seen["restore"] = run_playbook(LAB, "playbooks/registry.yml", show=False)
    seen["restored"] = answers(manager, address)
    seen["restored_users"] = users_in_htpasswd(manager)
    seen["restored_push"] = push_tiny(manager, address, REPO, "after-restore", "users")

    seen["again"] = run_playbook(LAB, "playbooks/registry.yml", show=False)
    return seen


def test_after_a_rotation_only_the_new_password_works(rotation):
    assert rotation["rotate"].returncode == 0, rotation["rotate"].stdout[-3000:].replace(NEW_PASSWORD, "***")
    assert rotation["rotated"] == {"moby:gordon": 401, "moby:new": 200, "ci": 200}
    assert rotation["rotated_users"] == ["ci", "moby"]


def test_the_managers_login_follows_the_new_password(rotation):
    assert rotation["rotated_push"].rc == 0, rotation["rotated_push"].stderr
    assert rotation["restored_push"].rc == 0, rotation["restored_push"].stderr


def test_a_user_no_longer_listed_is_removed_and_refused(rotation):
    assert rotation["restore"].returncode == 0, rotation["restore"].stdout[-3000:]
    assert rotation["restored"] == {"moby:gordon": 200, "moby:new": 401, "ci": 401}
    assert rotation["restored_users"] == ["moby"]


def test_a_second_run_changes_nothing(rotation):
    again = rotation["again"]
    assert again.returncode == 0, again.stdout[-3000:]
    assert all(counts["changed"] == 0 for counts in recap(again.stdout).values()), recap(again.stdout)


def test_no_run_prints_a_password_or_its_hash(rotation):
    for name in ("rotate", "restore", "again"):
        done = rotation[name]
        for secret in (NEW_PASSWORD, CI_PASSWORD, "gordon"):
            assert secret not in done.stdout and secret not in done.stderr, (name, "a password is in the output")
        # A bcrypt entry of htpasswd is a password to guess offline.
        assert not re.search(r"\$2[aby]\$\d\d\$", done.stdout + done.stderr), (name, "a password hash is in the output")
