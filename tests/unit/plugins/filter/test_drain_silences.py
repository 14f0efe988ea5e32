"""Unit tests of the drain_silences filter (what node maintenance and the backup silence during a drain).
The silences themselves are tested against a real Alertmanager in tests/monitoring/test_silence.py."""
from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.swarmlab.cluster.plugins.filter.drain_silences import drain_silences


def drained(*reduced: str, stranded: tuple[str, ...] = ()) -> dict:
    return {"reduced": [{"name": n, "running": 0, "replicas": 1} for n in reduced],
            "stranded": [{"name": n} for n in stranded]}


def matches(silence: dict, labels: dict) -> bool:
    """As Alertmanager matches: every matcher's regular expression in full against the label."""
    return all(re.fullmatch(value, labels.get(name, "")) for name, value in silence.items())


def silenced(silences: list[dict], labels: dict) -> bool:
    return any(matches(s, labels) for s in silences)


# The drain of worker2 on the lab: its replica, Sentinel and node-exporter are reduced.
WORKER2 = drained("swarmlab-monitoring_node-exporter", "swarmlab_redis-replica-2", "swarmlab_redis-sentinel-3")


def test_the_lab_drain_of_worker2():
    assert drain_silences(WORKER2, "worker2", "swarmlab") == [
        {"alertname": "NodeDown", "node": "worker2"},
        {"alertname": "RedisInstanceDown|RedisReplicaLinkDown", "instance": r"redis\-replica\-2|redis\-sentinel\-3"},
        {"alertname": "RedisReplicaDown"},
    ]


@pytest.mark.parametrize("labels, held", [
    ({"alertname": "RedisInstanceDown", "instance": "redis-replica-2"}, True),
    ({"alertname": "RedisReplicaLinkDown", "instance": "redis-replica-2"}, True),
    ({"alertname": "RedisInstanceDown", "instance": "redis-sentinel-3"}, True),
    ({"alertname": "RedisReplicaDown", "instance": "redis-master"}, True),
    ({"alertname": "NodeDown", "node": "worker2", "instance": "worker2"}, True),
    # What still notifies: other instances and nodes, and every other alert.
    ({"alertname": "RedisInstanceDown", "instance": "redis-replica-1"}, False),
    ({"alertname": "RedisInstanceDown", "instance": "redis-replica-22"}, False),
    ({"alertname": "RedisInstanceDown", "instance": "redis-master"}, False),
    ({"alertname": "NodeDown", "node": "worker1"}, False),
    ({"alertname": "NodeDown", "node": "worker22"}, False),
    ({"alertname": "RedisMasterMissing"}, False),
    ({"alertname": "SentinelQuorumLost"}, False),
    ({"alertname": "EdgeDown", "instance": "10.0.1.5:8405"}, False),
    ({"alertname": "WebReplicasBelowDesired"}, False),
    ({"alertname": "RedisReplicationLag", "instance": "redis-master"}, False),
])
def test_only_what_the_drain_stops_is_held_back(labels, held):
    assert silenced(drain_silences(WORKER2, "worker2", "swarmlab"), labels) is held


def test_a_sentinel_alone_does_not_silence_replica_down():
    silences = drain_silences(drained("swarmlab_redis-sentinel-1"), "manager2", "swarmlab")
    assert not silenced(silences, {"alertname": "RedisReplicaDown", "instance": "redis-master"})
    assert silenced(silences, {"alertname": "RedisInstanceDown", "instance": "redis-sentinel-1"})


def test_a_node_with_no_redis_silences_its_node_down_only():
    assert drain_silences(drained("swarmlab-monitoring_node-exporter"), "worker1", "swarmlab") == [
        {"alertname": "NodeDown", "node": "worker1"}]
    assert drain_silences({}, "worker1", "swarmlab") == [{"alertname": "NodeDown", "node": "worker1"}]


def test_stranded_count_and_other_stacks_do_not():
    silences = drain_silences(drained("other_redis-replica-1", stranded=("swarmlab_redis-master",)),
                              "worker1", "swarmlab")
    assert silenced(silences, {"alertname": "RedisInstanceDown", "instance": "redis-master"})
    assert not silenced(silences, {"alertname": "RedisInstanceDown", "instance": "redis-replica-1"})


def test_a_node_name_with_regex_characters_is_taken_literally():
    silences = drain_silences({}, "node.1", "swarmlab")
    assert silenced(silences, {"alertname": "NodeDown", "node": "node.1"})
    assert not silenced(silences, {"alertname": "NodeDown", "node": "nodex1"})


@pytest.mark.parametrize("drain, node, stack", [
    ([], "worker1", "swarmlab"), ({}, "", "swarmlab"), ({}, "worker1", None)])
def test_bad_input_fails_naming_it(drain, node, stack):
    with pytest.raises(AnsibleFilterError, match="drain_silences"):
        drain_silences(drain, node, stack)
