"""Where things are: the checkout, its results directory, the collection's module_utils."""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

# ops/swarmlab_ops/checkout.py -> the checkout (the package is installed in editable mode).
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"


def results_dir(kind: str, name: str | None = None) -> Path:
    """results/<kind>/<name or a timestamp>/ (git-ignored), created."""
    path = RESULTS / kind / (name or dt.datetime.now().strftime("%Y%m%dT%H%M%S"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def collection_path() -> None:
    """Make ansible_collections.swarmlab.cluster importable from the checkout's collections/ link."""
    path = str(ROOT / "collections")
    if path not in sys.path:
        sys.path.insert(0, path)


collection_path()
# The cluster rules live in the collection, once (see docs/architecture.md).
from ansible_collections.swarmlab.cluster.plugins.module_utils import _swarm as rules  # noqa: E402  pylint: disable=wrong-import-position

__all__ = ["ROOT", "RESULTS", "results_dir", "rules"]
