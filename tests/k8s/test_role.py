"""The role itself, without a cluster: pre-flight failures are readable messages (check mode
included), bad input fails before any change, rendering is idempotent."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from k8stest_support import (PLACEHOLDER_REDIS_PASSWORD, PLACEHOLDER_REGISTRY_PASSWORD, Run,
                             run_playbook)

PASSWORDS = {"stack_redis_password": PLACEHOLDER_REDIS_PASSWORD,
             "k8s_app_registry_password": PLACEHOLDER_REGISTRY_PASSWORD}


def _assert_readable_failure(run: Run, *expected: str) -> None:
    assert run.rc != 0
    assert "Traceback" not in run.output
    for text in expected:
        assert text in run.output, run.output
    for secret in PASSWORDS.values():
        assert secret not in run.output


def _recap(run: Run) -> dict[str, int]:
    line = next(line for line in run.output.splitlines() if line.startswith("localhost ")
                and "ok=" in line)
    return {k: int(v) for k, v in (item.split("=") for item in line.split()[2:])}


@pytest.mark.parametrize("state", ["present", "absent"])
def test_check_mode_without_a_kubeconfig_says_so(state: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "k3s.yaml"
    run = run_playbook({**PASSWORDS, "k8s_app_state": state, "k8s_app_kubeconfig": str(missing)},
                       "--check")
    _assert_readable_failure(run, f"k8s_app_kubeconfig is {missing}, which does not exist")


def test_check_mode_with_no_kubeconfig_anywhere_says_so() -> None:
    """KUBECONFIG points nowhere (see ansible_env) and k8s_app_kubeconfig is empty."""
    run = run_playbook(PASSWORDS, "--check")
    _assert_readable_failure(run, "Cannot reach the Kubernetes API server",
                             "KUBECONFIG or ~/.kube/config", "k8s_app_state=rendered")


def test_check_mode_against_an_api_server_nobody_runs(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "k3s.yaml"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "k3s",
        "clusters": [{"name": "k3s", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "k3s", "context": {"cluster": "k3s", "user": "k3s"}}],
        "users": [{"name": "k3s", "user": {"token": "not-a-token"}}],
    }), encoding="utf-8")
    run = run_playbook({**PASSWORDS, "k8s_app_kubeconfig": str(kubeconfig),
                        "k8s_app_context": "k3s"}, "--check")
    _assert_readable_failure(run, "Cannot reach the Kubernetes API server",
                             f"kubeconfig: {kubeconfig}", "context: k3s", "Connection refused")
    assert "Apply the" not in run.output  # stopped before any apply task


def test_present_without_passwords_fails_before_the_cluster() -> None:
    run = run_playbook({}, "--check")
    _assert_readable_failure(run, "needs k8s_app_redis_password")
    assert "Ask the API server" not in run.output


@pytest.mark.parametrize("bad", [
    {"k8s_app_state": "installed"},
    {"stack_web_replicas": "four"},          # through the role's default, as the stack sets it
    {"k8s_app_web_service_type": "Ingress"},
])
def test_bad_input_fails_before_anything_changes(bad: dict[str, object], tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_playbook({"k8s_app_state": "rendered", "k8s_app_render_dir": str(out), **bad})
    _assert_readable_failure(run, "Validating arguments against arg spec")
    assert not out.exists()


def test_rendered_without_a_directory_is_refused() -> None:
    run = run_playbook({"k8s_app_state": "rendered"})
    _assert_readable_failure(run, "k8s_app_state=rendered needs k8s_app_render_dir")


def test_a_password_redis_conf_cannot_hold_is_refused(tmp_path: Path) -> None:
    run = run_playbook({"k8s_app_state": "rendered", "k8s_app_render_dir": str(tmp_path / "o"),
                        "stack_redis_password": 'quote"inside'})
    _assert_readable_failure(run, "must not contain a double quote")
    assert 'quote"inside' not in run.output


def test_rendering_changes_once_then_not(tmp_path: Path) -> None:
    variables = {**PASSWORDS, "k8s_app_state": "rendered", "k8s_app_render_dir": str(tmp_path)}
    first = run_playbook(variables)
    assert first.rc == 0, first.output
    assert _recap(first)["changed"] >= 2
    second = run_playbook(variables)
    assert second.rc == 0, second.output
    assert _recap(second)["changed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k8s-deployment.yaml",
                                                          "k8s-secrets.yaml"]


def test_rendering_without_passwords_writes_no_secrets_file(tmp_path: Path) -> None:
    run = run_playbook({"k8s_app_state": "rendered", "k8s_app_render_dir": str(tmp_path)})
    assert run.rc == 0, run.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k8s-deployment.yaml"]


def test_apply_tasks_send_the_rendered_objects(tmp_path: Path) -> None:
    """apply.yml templates each file on its own (kubernetes.core.k8s definition=); the result
    must be the same objects, in the same order, as the rendered files hold."""
    from k8stest_support import ROOT, load_docs
    out = tmp_path / "apply.json"
    templates = ROOT / "roles" / "k8s_app" / "templates"
    play = tmp_path / "play.yml"
    # A loop of lookups, one per template, exactly as apply.yml calls them.
    play.write_text(f"""
- name: Objects as the apply tasks build them
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
  roles:
    - role: swarmlab.cluster.k8s_app
  post_tasks:
    - name: Template each file as apply.yml does
      ansible.builtin.set_fact:
        _objects: >-
          {{{{ _objects | default([]) + (lookup('ansible.builtin.template', '{templates}/' ~ item)
               | ansible.builtin.from_yaml_all | select | list) }}}}
      loop: "{{{{ _k8s_app_templates + _k8s_app_secret_templates }}}}"
      no_log: true
    - name: Write them
      ansible.builtin.copy:
        dest: "{out}"
        mode: "0600"
        content: "{{{{ _objects | to_json }}}}"
      no_log: true
""", encoding="utf-8")
    # The role on its own reads only k8s_app_* variables (playbooks/k8s.yml maps the stack's).
    variables = {"k8s_app_redis_password": PLACEHOLDER_REDIS_PASSWORD,
                 "k8s_app_registry_password": PLACEHOLDER_REGISTRY_PASSWORD, "k8s_app_state": "rendered",
                 "k8s_app_render_dir": str(tmp_path / "rendered"), "k8s_app_sentinel_enabled": True}
    run = run_playbook(variables, playbook=play)
    assert run.rc == 0, run.output
    sent = json.loads(out.read_text(encoding="utf-8"))
    rendered = load_docs(tmp_path / "rendered" / "k8s-deployment.yaml") + \
        load_docs(tmp_path / "rendered" / "k8s-secrets.yaml")
    assert sent == rendered
    assert "StatefulSet" in {d["kind"] for d in sent}
