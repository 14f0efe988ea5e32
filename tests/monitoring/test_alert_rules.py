"""The alert rules, rendered by the monitoring role, under `promtool test rules` (Debian's
prometheus package): each alert fires in one case after its `for`, and stays quiet in a near miss."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoringtest_support import HERE, tool


def rules(directory: Path) -> dict[str, dict]:
    doc = yaml.safe_load((directory / "alerts.yml").read_text())
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}


def promtool_test(directory: Path, test_file: Path) -> subprocess.CompletedProcess:
    shutil.copy(test_file, directory / test_file.name)
    return subprocess.run([tool("promtool"), "test", "rules", test_file.name], cwd=directory,
                          capture_output=True, text=True, timeout=120, check=False)


def test_promtool_unit_tests_pass(rendered):
    proc = promtool_test(rendered, HERE / "alerts_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    """The test file covers every rule the role can render, both ways."""
    tests = yaml.safe_load((HERE / "alerts_test.yml").read_text())["tests"]
    fires, quiet = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    builtin = yaml.safe_load((HERE.parents[1] / "roles/monitoring/vars/main.yml").read_text())
    names = set(builtin["monitoring_alert_for_builtin"])
    assert names <= fires, names - fires
    assert names <= quiet, names - quiet


def test_the_rendered_rules_are_the_documented_set(rendered):
    builtin = yaml.safe_load((HERE.parents[1] / "roles/monitoring/vars/main.yml").read_text())
    got = rules(rendered)
    assert set(got) == set(builtin["monitoring_alert_for_builtin"])
    assert {name: rule["for"] for name, rule in got.items()} == builtin["monitoring_alert_for_builtin"]
    assert all(rule["labels"]["severity"] in ("warning", "critical") for rule in got.values())


def test_desired_counts_and_durations_come_from_the_parameters(variants):
    got = rules(variants["custom"])
    assert got["WebReplicasBelowDesired"]["expr"].endswith("< 6")
    assert got["RedisReplicaDown"]["expr"].endswith("< 3")
    assert got["RedisReplicaDown"]["for"] == "15s"
    assert got["NodeDown"]["for"] == "2m30s"
    assert got["RedisInstanceDown"]["for"] == "1m"
    assert got["RedisReplicationLag"]["expr"].endswith("> 30")
    assert "> 0.1" in got["ErrorRatioHigh"]["expr"]


def test_rules_follow_what_is_deployed(variants):
    """No edge, Sentinel, registry or dockerd metrics: no rule that could only be silent or always fire."""
    got = rules(variants["minimal"])
    assert not {"SentinelQuorumLost", "RegistryDown", "NodeDown", "EdgeDown", "EdgeNoHealthyBackend",
                "ErrorRatioHigh"} & set(got)
    assert {"RedisMasterMissing", "WebReplicasBelowDesired"} <= set(got)


INGRESS_TEST = """
rule_files: [alerts.yml]
evaluation_interval: 15s
tests:
  - name: without an edge, WebReplicasBelowDesired counts the web tasks whose metrics answer
    interval: 15s
    input_series:
      - series: 'up{job="web", instance="10.0.1.20:9102"}'
        values: '1x25'
      - series: 'up{job="web", instance="10.0.1.21:9102"}'
        values: '1x4 0x20'
      - series: 'up{job="web", instance="10.0.1.22:9102"}'
        values: '1x4 stale'
      - series: 'up{job="web", instance="10.0.1.23:9102"}'
        values: '1x25'
    alert_rule_test:
      - eval_time: 1m
        alertname: WebReplicasBelowDesired
        exp_alerts: []
      - eval_time: 2m30s
        alertname: WebReplicasBelowDesired
        exp_alerts:
          - exp_labels: {severity: warning}
            exp_annotations: {summary: "2 of 4 web replicas answer"}
  - name: and it fires when no web task runs at all
    interval: 15s
    input_series:
      - series: 'up{job="web", instance="10.0.1.20:9102"}'
        values: '1x4 stale'
    alert_rule_test:
      - eval_time: 2m30s
        alertname: WebReplicasBelowDesired
        exp_alerts:
          - exp_labels: {severity: warning}
            exp_annotations: {summary: "0 of 4 web replicas answer"}
"""


def test_without_an_edge_the_web_alert_reads_the_app(variants, tmp_path):
    directory = variants["minimal"]
    test_file = tmp_path / "ingress_test.yml"
    test_file.write_text(INGRESS_TEST)
    proc = promtool_test(directory, test_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("variant", ["base", "lab", "custom", "minimal"])
def test_promtool_checks_the_rules(variants, variant):
    proc = subprocess.run([tool("promtool"), "check", "rules", "alerts.yml"], cwd=variants[variant],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
