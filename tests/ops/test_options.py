"""The comma-separated options of swarmlab-ops, through its real command line: a bad item is a
usage error (exit 2, what is known said) before any lab is touched."""
from __future__ import annotations

import pytest

from swarmlab_ops import cli
from swarmlab_ops.drills import ALL as DRILLS
from swarmlab_ops.nemesis.schedule import REDIS_FAULTS


def parse(*argv):
    return cli.parser().parse_args(list(argv))


def test_defaults_are_parsed_too():
    assert parse("drills").drills == DRILLS
    assert parse("drills").worker == ["all"]
    assert parse("write-loss").kinds == list(REDIS_FAULTS)
    assert parse("loadtest").replicas == []


def test_items_are_trimmed_converted_and_blanks_dropped():
    assert parse("loadtest", "--replicas", " 1, 2,,4 ").replicas == [1, 2, 4]
    assert parse("drills", "--drills", "web-kill,,registry").drills == ["web-kill", "registry"]
    assert parse("drills", "--worker", "worker1, worker2").worker == ["worker1", "worker2"]


@pytest.mark.parametrize("argv, message", [
    (["drills", "--drills", "web-kill,fire"], "unknown 'fire' (known: " + ", ".join(DRILLS) + ")"),
    (["write-loss", "--kinds", "master-kill,reboot"], "unknown 'reboot'"),
    (["loadtest", "--replicas", "1,two"], "invalid int value: 'two'"),
])
def test_a_bad_item_is_a_usage_error(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
