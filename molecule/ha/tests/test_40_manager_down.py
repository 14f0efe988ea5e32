"""With a manager down, as a user runs the playbooks: the Swarm state's backup (playbooks/backup.yml,
-e backup_redis=false -e backup_registry=false: no stack and no registry here) and node maintenance
(playbooks/node_maintenance.yml) of another manager refuse before the Raft quorum is at stake.

A follower's node container is paused, as a host that stopped answering: Raft marks it unreachable
within seconds, and Ansible cannot reach it. Before the fix (found on this lab, 2026-12-06):
- with that manager left out of the run (--limit), the backup drained the other follower and stopped
  its engine, leaving the leader alone of 3 managers: no Raft quorum until it came back;
- with it in the run, the plays after the unreachable host's still ran, and the backup ended on
  "src (or content) is required" instead of saying what was missing;
- node maintenance drained the other follower, to be taken down (Docker drains it without a word);
- with --limit leaving out localhost (whose play makes the backup's directory), a follower was
  drained before the run failed on the missing directory.
Runs after test_30_backup.py (file order).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import testinfra
from lab_checks import recap, run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-ha")
testinfra_hosts = ["docker://%s-manager1" % LAB]
NAMES = ["manager1", "manager2", "manager3"]


def node(name: str):
    return testinfra.get_host("docker://%s-%s" % (LAB, name))


def managers(host) -> dict[str, dict]:
    ids = host.check_output("docker node ls -q --filter role=manager").split()
    return {n["Description"]["Hostname"]: n for n in json.loads(host.check_output("docker node inspect %s" % " ".join(ids)))}


def reachability(host) -> dict[str, str]:
    return {name: n["ManagerStatus"]["Reachability"] for name, n in managers(host).items()}


def engine_started(names: list[str]) -> dict[str, str]:
    return {n: node(n).check_output("systemctl show docker -p ActiveEnterTimestamp --value") for n in names}


def wait_for(host, name: str, state: str) -> None:
    deadline = time.monotonic() + 60
    while reachability(host).get(name) != state and time.monotonic() < deadline:
        time.sleep(0.5)
    assert reachability(host).get(name) == state, reachability(host)


def said(done) -> str:
    """The run's output with its lines joined: Ansible wraps long messages where it likes."""
    return " ".join(done.stdout.split())


def availability(host) -> dict[str, str]:
    return {name: n["Spec"]["Availability"] for name, n in managers(host).items()}


@pytest.fixture(scope="module")
def one_down(host, tmp_path_factory):
    """A follower paused (never manager1, from which the lab is watched); the backup run twice: without
    it (--limit), and with it. Then unpaused."""
    down = sorted(name for name, n in managers(host).items() if not n["ManagerStatus"].get("Leader"))[-1]
    up = [n for n in NAMES if n != down]
    started = engine_started(up)
    runs = {}
    # The other follower, which node maintenance is asked to drain.
    other = sorted(name for name, n in managers(host).items() if name != down and not n["ManagerStatus"].get("Leader"))[0]
    subprocess.run(["docker", "pause", "%s-%s" % (LAB, down)], check=True)
    try:
        wait_for(host, down, "unreachable")
        for case, limit in (("left out", ["--limit", "localhost:all:!%s" % down]), ("in the run", [])):
            backups = tmp_path_factory.mktemp("backups")
            done = run_playbook(LAB, "playbooks/backup.yml", "-e", "backup_dir=%s" % backups,
                                "-e", "backup_redis=false", "-e", "backup_registry=false", *limit)
            runs[case] = done, backups, availability(host)
        done = run_playbook(LAB, "playbooks/node_maintenance.yml", "-e", "node=%s" % other, "-e", "maintenance=drain")
        runs["maintenance"] = done, other, availability(host)
    finally:
        subprocess.run(["docker", "unpause", "%s-%s" % (LAB, down)], check=True)
        # Before the fix the drain happened: the lab is left as it was for the tests after.
        host.run("docker node update --availability active %s" % other)
    wait_for(host, down, "reachable")
    return down, up, started, runs


def test_with_the_down_manager_left_out_the_backup_refuses_before_stopping_a_second(one_down):
    down, up, started, runs = one_down
    done, backups, availability_after = runs["left out"]
    assert done.returncode != 0
    assert "for the Swarm state's backup: with manager" in said(done), done.stdout[-3000:]
    assert "fewer than the 2 a Raft quorum needs (unreachable: %s)" % down in said(done)
    assert all(counts["changed"] == 0 for host, counts in recap(done.stdout).items() if host != "localhost")
    assert availability_after == {n: "active" for n in NAMES}
    assert not list(backups.glob("*/manifest.yml"))


def test_with_the_down_manager_in_the_run_the_backup_says_what_it_lacks(one_down):
    down, up, started, runs = one_down
    done, backups, availability_after = runs["in the run"]
    assert done.returncode != 0
    assert "fatal: [%s]: UNREACHABLE!" % down in done.stdout
    assert "This backup lacks the Swarm state" in said(done), done.stdout[-3000:]
    assert availability_after == {n: "active" for n in NAMES}
    assert not list(backups.glob("*/manifest.yml"))


def test_node_maintenance_refuses_to_drain_another_manager(one_down):
    down, up, started, runs = one_down
    done, other, availability_after = runs["maintenance"]
    assert done.returncode != 0
    assert "Refusing to drain %s: %s is a manager: with %s down, 1 of the 3 managers would be reachable" % (
        other, other, other) in said(done), done.stdout[-3000:]
    assert "(unreachable: %s)" % down in said(done)
    assert availability_after == {n: "active" for n in NAMES}


def test_no_engine_restarted_and_raft_whole_again(one_down, host):
    down, up, started, runs = one_down
    assert engine_started(up) == started
    assert sorted(reachability(host).values()) == ["reachable"] * 3


def test_a_limit_without_localhost_is_refused_before_any_drain(tmp_path):
    started = engine_started(NAMES)
    done = run_playbook(LAB, "playbooks/backup.yml", "-e", "backup_dir=%s" % tmp_path,
                        "-e", "backup_redis=false", "-e", "backup_registry=false", "--limit", "all")
    assert done.returncode != 0
    assert "The controller's play did not run, so this backup has no directory" in said(done), done.stdout[-3000:]
    assert availability(node("manager1")) == {n: "active" for n in NAMES}
    assert engine_started(NAMES) == started
    assert not list(tmp_path.iterdir())
