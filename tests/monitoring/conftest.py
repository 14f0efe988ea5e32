"""Fixtures of the monitoring tests (helpers in monitoringtest_support.py)."""
from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

import pytest

from monitoringtest_support import render_variants


@pytest.fixture(scope="session")
def variants(tmp_path_factory, worker_id) -> dict[str, Path]:
    """Variant name -> directory with what the role wrote for it (a copy of this session's own)."""
    own = tmp_path_factory.mktemp("monitoring")
    if worker_id == "master":
        return render_variants(own / "rendered")
    # Rendering takes about a minute of CPU (one ansible-playbook run, a local host per variant): under
    # pytest-xdist the first worker that needs it renders once, under a lock; every worker copies.
    shared = tmp_path_factory.getbasetemp().parent / "monitoring-rendered"
    with open(str(shared) + ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = shared / "variants.json"
        if not index.exists():
            shutil.rmtree(shared, ignore_errors=True)  # what a failed render left
            dirs = render_variants(shared / "tree")
            index.write_text(json.dumps({name: str(path.relative_to(shared / "tree")) for name, path in dirs.items()}))
        names = json.loads(index.read_text())
    shutil.copytree(shared / "tree", own / "rendered")
    return {name: own / "rendered" / rel for name, rel in names.items()}


@pytest.fixture(scope="session")
def rendered(variants) -> Path:
    """The files for BASE_VARS and the role's defaults."""
    return variants["base"]
