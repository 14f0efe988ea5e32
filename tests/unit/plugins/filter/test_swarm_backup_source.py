"""Unit tests of the swarm_backup_source filter (which manager's engine playbooks/backup.yml stops). The
managers are as docker_swarm_info returns them (nodes, role=manager). On a real Swarm: molecule/ha's
test_30_backup.py (a drained follower) and test_40_manager_down.py (refused with a manager down)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.swarmlab.cluster.plugins.filter.swarm_backup_source import swarm_backup_source


def manager(n: int, status: str = "Reachable", state: str = "ready") -> dict:
    return {"ID": "id%d" % n, "Hostname": "manager%d" % n, "Status": state, "Availability": "active",
            "ManagerStatus": status, "EngineVersion": "20.10.24"}


def play(*numbers: int) -> dict:
    return {"manager%d" % n: "id%d" % n for n in numbers}


def choose(managers, hosts=None, master=""):
    return swarm_backup_source(managers, hosts or play(*range(1, len(managers) + 1)), "manager1", master)


THREE = [manager(1, "Leader"), manager(2), manager(3)]


def test_three_managers_a_follower_other_than_the_first_drained():
    assert choose(THREE) == {"host": "manager2", "follower": True, "managers": 3, "reachable": 3,
                             "unreachable": [], "problem": ""}


def test_never_the_leader_and_the_first_manager_last():
    leader2 = [manager(1), manager(2, "Leader"), manager(3)]
    assert choose(leader2)["host"] == "manager3"
    leader3 = [manager(1), manager(2), manager(3, "Leader")]
    assert choose(leader3)["host"] == "manager2"


def test_not_the_node_that_runs_the_redis_master():
    assert choose(THREE, master="manager2")["host"] == "manager3"
    # The leader on manager3, the master on manager2: the first manager is the one left.
    leader3 = [manager(1), manager(2), manager(3, "Leader")]
    chosen = choose(leader3, master="manager2")
    assert (chosen["host"], chosen["follower"], chosen["problem"]) == ("manager1", True, "")


def test_in_the_plays_order():
    assert choose(THREE, hosts={"manager3": "id3", "manager1": "id1", "manager2": "id2"})["host"] == "manager3"


@pytest.mark.parametrize("hosts", [play(1, 2), play(1, 2, 3)], ids=["left-out-of-the-play", "in-the-play"])
def test_three_managers_one_down_refused(hosts):
    down = [manager(1, "Leader"), manager(2), manager(3, "Unreachable", "down")]
    chosen = choose(down, hosts)
    # manager3 is never the one: Raft does not reach it, its copy may be stale.
    assert (chosen["host"], chosen["reachable"], chosen["unreachable"]) == ("manager2", 2, ["manager3"])
    assert chosen["problem"] == (
        "with manager2 down, 1 of the 3 managers would be reachable, fewer than the 2 a Raft quorum needs "
        "(unreachable: manager3): the Swarm could not be managed until it came back, and not at all if it did not")


def test_five_managers_keep_their_quorum_with_one_down_not_with_two():
    one_down = [manager(1, "Leader"), manager(2), manager(3), manager(4), manager(5, "Unreachable", "down")]
    assert choose(one_down)["problem"] == ""
    two_down = one_down[:3] + [manager(4, "Unreachable", "down"), one_down[4]]
    chosen = choose(two_down)
    assert chosen["unreachable"] == ["manager4", "manager5"]
    assert "with manager2 down, 2 of the 5 managers would be reachable, fewer than the 3" in chosen["problem"]


def test_a_reachable_follower_that_is_not_ready_is_not_chosen():
    assert choose([manager(1, "Leader"), manager(2, state="down"), manager(3)])["host"] == "manager3"


def test_no_follower_in_the_play_the_first_host_undrained():
    chosen = choose(THREE, hosts=play(1))
    assert (chosen["host"], chosen["follower"], chosen["problem"]) == ("manager1", False, "")


@pytest.mark.parametrize("managers", [[manager(1, "Leader")], [manager(1, "Leader"), manager(2)]], ids=["one", "two"])
def test_one_or_two_managers_the_first_undrained(managers):
    # No quorum to keep: with 2, neither has a majority without the other.
    chosen = choose(managers)
    assert (chosen["host"], chosen["follower"], chosen["problem"]) == ("manager1", False, "")


def test_a_manager_raft_does_not_reach_is_never_copied_from():
    chosen = choose([manager(1, "Unreachable"), manager(2, "Leader")], hosts=play(1))
    assert chosen["problem"] == "Raft does not reach manager1, the manager to copy the state from: its copy may be stale"


@pytest.mark.parametrize("managers, hosts", [
    ({"ID": "id1"}, play(1)),
    ([{"Hostname": "manager1"}], play(1)),
    (THREE, {}),
    (THREE, ["manager1"]),
])
def test_bad_input_is_refused(managers, hosts):
    with pytest.raises(AnsibleFilterError):
        swarm_backup_source(managers, hosts, "manager1")
