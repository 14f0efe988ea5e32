"""The rendered manifests against the Kubernetes OpenAPI schemas, offline, strict (unknown
fields fail), for several Kubernetes versions (kubernetes-validate ships the schemas)."""
from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from k8stest_support import CHECKED_IN, K8S_VERSIONS, Rendering, load_docs


def test_the_installed_kubernetes_validate_ships_our_versions() -> None:
    shipped = kubernetes_validate.utils.all_versions()
    for version in K8S_VERSIONS:
        assert version in shipped, f"kubernetes-validate {kubernetes_validate.__version__} " \
                                   f"ships {shipped[0]}..{shipped[-1]}, not {version}"


def _validate_all(docs: list[dict], version: str) -> list[str]:
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(exc.message)
    return errors


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("which", ["default", "stack"])
def test_rendered_objects_meet_the_schemas(renderings: dict[str, Rendering], which: str,
                                           version: str) -> None:
    docs = renderings[which].all_docs()
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "Service", "StatefulSet", "Secret", "ConfigMap",
            "PodDisruptionBudget"} <= kinds
    assert _validate_all(docs, version) == []


def test_checked_in_manifests_are_one_list_document() -> None:
    """ansible-test sanity (yamllint) wants one document per YAML file: the objects are the items
    of a single v1 List, which kubectl applies like separate documents."""
    docs = [doc for doc in yaml.safe_load_all(CHECKED_IN.read_text(encoding="utf-8"))
            if doc is not None]
    assert len(docs) == 1
    assert (docs[0]["apiVersion"], docs[0]["kind"]) == ("v1", "List")
    assert len(docs[0]["items"]) == len(load_docs(CHECKED_IN)) > 0


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_checked_in_manifests_meet_the_schemas(version: str) -> None:
    assert _validate_all(load_docs(CHECKED_IN), version) == []


def test_strict_validation_rejects_an_unknown_field(default_rendering: Rendering) -> None:
    deployment = copy.deepcopy(default_rendering.get("Deployment", "web"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/x"
    assert _validate_all([deployment], K8S_VERSIONS[0]) != []


def test_validation_rejects_a_wrong_type(default_rendering: Rendering) -> None:
    deployment = copy.deepcopy(default_rendering.get("Deployment", "web"))
    deployment["spec"]["replicas"] = "4"
    assert _validate_all([deployment], K8S_VERSIONS[-1]) != []


def test_validation_works_without_a_network(default_rendering: Rendering,
                                            tmp_path: Path) -> None:
    """The CLI in a fresh network namespace (no interface but loopback, down): the schemas and
    their $refs resolve from the package alone."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], check=False,
                                         capture_output=True).returncode != 0:
        pytest.skip("unshare -n is not permitted here (needs root or user namespaces)")
    # The CLI has no schema for a v1 List (it would only warn and skip k8s-deployment.yaml's
    # objects): it gets the rendered objects one document each.
    objects = tmp_path / "objects.yaml"
    objects.write_text(yaml.safe_dump_all(default_rendering.all_docs()), encoding="utf-8")
    cli = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet"]
    for version in K8S_VERSIONS:
        proc = subprocess.run([unshare, "-n", *cli, "-k", version, str(objects)],
                              capture_output=True, text=True, check=False, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "WARN" not in proc.stdout, proc.stdout  # no object skipped for want of a schema
