"""kubectl --dry-run=client, offline.

What works offline and what does not (kubectl v1.32, checked here):
- `kubectl apply --dry-run=client` GETs the live object to compute the patch: it needs an API
  server, so it cannot run here.
- `--validate=true|strict` downloads the server's OpenAPI document: also needs an API server
  (schema validation is done offline by kubernetes-validate in test_schema.py instead).
- `kubectl create --dry-run=client --validate=false` needs only discovery (which resource and
  scope each kind maps to). Discovery is read from kubectl's disk cache when that is fresh, so the
  test writes a cache for a dummy server (https://127.0.0.1:1, nothing listens) - a test double
  of the discovery documents of an API server, listing the kinds the role uses with their real
  resource names and scopes. kubectl then decodes every object (typed metadata) and maps it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from k8stest_support import CHECKED_IN, Rendering

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")

SERVER = "https://127.0.0.1:1"
# (groupVersion, resource, kind, namespaced) as a real API server's discovery lists them.
RESOURCES = [
    ("v1", "namespaces", "Namespace", False),
    ("v1", "configmaps", "ConfigMap", True),
    ("v1", "secrets", "Secret", True),
    ("v1", "services", "Service", True),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
    ("apps/v1", "deployments", "Deployment", True),
    ("apps/v1", "statefulsets", "StatefulSet", True),
    ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
]


@pytest.fixture(scope="module")
def offline_kubectl(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    base = tmp_path_factory.mktemp("kubectl")
    kubeconfig = base / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "dummy",
        "clusters": [{"name": "dummy", "cluster": {"server": SERVER}}],
        "contexts": [{"name": "dummy", "context": {"cluster": "dummy", "user": "dummy"}}],
        "users": [{"name": "dummy", "user": {"token": "dummy"}}],
    }), encoding="utf-8")
    cache = base / "cache"
    discovery = cache / "discovery" / "127.0.0.1_1"
    group_versions = sorted({gv for gv, *_rest in RESOURCES})
    groups = []
    for gv in group_versions:
        group, _sep, version = gv.rpartition("/")
        entry = {"groupVersion": gv, "version": version}
        groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
        resources = [{"name": res, "singularName": kind.lower(), "namespaced": namespaced,
                      "kind": kind, "verbs": ["create", "delete", "get", "list", "patch",
                                              "update", "watch"]}
                     for g, res, kind, namespaced in RESOURCES if g == gv]
        (discovery / gv).mkdir(parents=True, exist_ok=True)
        (discovery / gv / "serverresources.json").write_text(json.dumps(
            {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
             "resources": resources}), encoding="utf-8")
    (discovery / "servergroups.json").write_text(json.dumps(
        {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}), encoding="utf-8")
    return [KUBECTL or "kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache),
            "--request-timeout", "5s"]


def _create_dry_run(kubectl: list[str], *files: Path) -> subprocess.CompletedProcess[str]:
    args = [arg for f in files for arg in ("-f", str(f))]
    return subprocess.run([*kubectl, "create", "--dry-run=client", "--validate=false",
                           "-o", "name", *args], capture_output=True, text=True, check=False,
                          timeout=60)


def test_kubectl_accepts_every_rendered_object(offline_kubectl: list[str],
                                               renderings: dict[str, Rendering]) -> None:
    for rendering in renderings.values():
        proc = _create_dry_run(offline_kubectl, rendering.deployment_file, rendering.secrets_file)
        assert proc.returncode == 0, proc.stderr
        # -o name prints kind.group/name (deployment.apps/web); compare kind/name.
        printed = [(kind.split(".")[0], name) for kind, name in
                   (line.split("/", 1) for line in proc.stdout.split())]
        expected = [(d["kind"].lower(), d["metadata"]["name"]) for d in rendering.all_docs()]
        assert sorted(printed) == sorted(expected)


def test_kubectl_accepts_the_checked_in_manifests(offline_kubectl: list[str]) -> None:
    proc = _create_dry_run(offline_kubectl, CHECKED_IN)
    assert proc.returncode == 0, proc.stderr
    assert "deployment.apps/web" in proc.stdout.split()


def test_kubectl_rejects_what_a_cluster_would_not_decode(offline_kubectl: list[str],
                                                         tmp_path: Path) -> None:
    """The check can fail: an unquoted `namespace: no` is a YAML boolean, not a name."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: no\n",
                   encoding="utf-8")
    proc = _create_dry_run(offline_kubectl, bad)
    assert proc.returncode != 0
    assert "namespace" in proc.stderr


def test_kubectl_apply_dry_run_needs_a_server(offline_kubectl: list[str]) -> None:
    """Documents the limit: apply --dry-run=client asks the server for the live object."""
    proc = subprocess.run([*offline_kubectl, "apply", "--dry-run=client", "--validate=false",
                           "-f", str(CHECKED_IN)], capture_output=True, text=True, check=False,
                          timeout=60)
    assert proc.returncode != 0
    assert "127.0.0.1:1" in proc.stderr
