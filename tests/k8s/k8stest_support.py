"""Helpers of the k8s_app tests: run the role through ansible-playbook, load what it rendered.

No Kubernetes API server can run on our machines: the role is exercised in its `rendered` state
(ansible.builtin.template to files) and against kubeconfigs that point nowhere."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook") if (VENV_BIN / "ansible-playbook").exists() \
    else "ansible-playbook"
PLAYBOOK = ROOT / "playbooks" / "k8s.yml"
RENDER_SCRIPT = ROOT / "scripts" / "render_k8s.sh"
CHECKED_IN = ROOT / "k8s" / "k8s-deployment.yaml"

# Obviously not secrets; distinctive enough to grep for in every encoding.
PLACEHOLDER_REDIS_PASSWORD = "placeholder-redis-pw-NOT-A-SECRET"
PLACEHOLDER_REGISTRY_PASSWORD = "placeholder-registry-pw-NOT-A-SECRET"

# Kubernetes versions whose OpenAPI schemas the manifests must meet (kubernetes-validate ships
# 1.25 to 1.37 with kubernetes-validate 1.37.0). k3s stable is in this range.
K8S_VERSIONS = ["1.29.0", "1.33.0", "1.37.0"]


@dataclass
class Run:
    rc: int
    output: str


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        # No ~/.kube/config or KUBECONFIG of the machine may answer for the tests.
        "KUBECONFIG": "/nonexistent/kubeconfig",
        "HOME": env.get("HOME", "/root"),
    })
    return env


def run_playbook(extra_vars: dict[str, Any], *args: str, playbook: Path = PLAYBOOK,
                 timeout: int = 120) -> Run:
    """ansible-playbook from the checkout's root (its ansible.cfg), inline inventory."""
    import json
    cmd = [ANSIBLE_PLAYBOOK, "-i", "localhost,", str(playbook), "-e", json.dumps(extra_vars), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=ansible_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    return Run(proc.returncode, proc.stdout + proc.stderr)


def load_docs(path: Path) -> list[dict[str, Any]]:
    """The objects of a manifest file, as kubectl reads them: every document, and the items of a
    v1 List (k8s-deployment.yaml is one List document) in their place."""
    with path.open(encoding="utf-8") as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc]
    objects = []
    for doc in docs:
        if doc.get("apiVersion") == "v1" and doc.get("kind") == "List":
            assert isinstance(doc.get("items"), list), f"{path}: a List without items"
            objects.extend(doc["items"])
        else:
            objects.append(doc)
    return objects


@dataclass
class Rendering:
    """What one run of the role in state `rendered` wrote."""
    directory: Path
    extra_vars: dict[str, Any]
    run: Run

    @property
    def deployment_file(self) -> Path:
        return self.directory / "k8s-deployment.yaml"

    @property
    def secrets_file(self) -> Path:
        return self.directory / "k8s-secrets.yaml"

    @property
    def docs(self) -> list[dict[str, Any]]:
        return load_docs(self.deployment_file)

    @property
    def secret_docs(self) -> list[dict[str, Any]]:
        return load_docs(self.secrets_file) if self.secrets_file.exists() else []

    def all_docs(self) -> list[dict[str, Any]]:
        return self.docs + self.secret_docs

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.all_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.all_docs() if d["kind"] == kind]


def render(directory: Path, extra_vars: dict[str, Any] | None = None) -> Rendering:
    variables = {"k8s_app_state": "rendered", "k8s_app_render_dir": str(directory),
                 **(extra_vars or {})}
    run = run_playbook(variables)
    assert run.rc == 0, run.output
    return Rendering(directory, variables, run)


def pod_templates(docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) of every Deployment and StatefulSet."""
    return [(d, d["spec"]["template"]) for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
