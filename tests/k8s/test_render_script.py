"""scripts/render_k8s.sh: --check passes on the checked-in k8s/ and fails, with a diff, on a
copy that drifted; without --check it rewrites the directory (here a copy, never k8s/ itself)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from k8stest_support import CHECKED_IN, RENDER_SCRIPT, ROOT, ansible_env


def _script(*args: str, out: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = ansible_env()
    if out is not None:
        env["RENDER_K8S_DIR"] = str(out)
    return subprocess.run([str(RENDER_SCRIPT), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False, timeout=120)


def test_check_passes_on_the_checked_in_manifests() -> None:
    proc = _script("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "matches" in proc.stdout


def test_check_fails_on_drift_and_rendering_repairs_it(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    copy.mkdir()
    drifted = CHECKED_IN.read_text(encoding="utf-8").replace("replicas: 4", "replicas: 3")
    assert drifted != CHECKED_IN.read_text(encoding="utf-8")
    (copy / CHECKED_IN.name).write_text(drifted, encoding="utf-8")
    (copy / "stray.yaml").write_text("kind: ConfigMap\n", encoding="utf-8")

    proc = _script("--check", out=copy)
    assert proc.returncode == 1
    # The web Deployment's spec.replicas, indented as an item of the List document.
    assert "-      replicas: 3" in proc.stdout and "+      replicas: 4" in proc.stdout
    assert "k8s/stray.yaml is not produced by the role" in proc.stderr

    os.remove(copy / "stray.yaml")
    proc = _script(out=copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (copy / CHECKED_IN.name).read_text(encoding="utf-8") == \
        CHECKED_IN.read_text(encoding="utf-8")
    assert sorted(p.name for p in copy.iterdir()) == [CHECKED_IN.name]


def test_a_failing_render_is_an_error_not_a_verdict(tmp_path: Path) -> None:
    """A broken ansible-playbook is an error (2), not a false "matches" nor a false drift."""
    fake = tmp_path / "ansible-playbook"
    fake.write_text("#!/bin/sh\necho boom >&2\nexit 4\n", encoding="utf-8")
    fake.chmod(0o755)
    env = ansible_env()
    env["ANSIBLE_PLAYBOOK"] = str(fake)
    proc = subprocess.run([str(RENDER_SCRIPT), "--check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 2
    assert "boom" in proc.stderr
