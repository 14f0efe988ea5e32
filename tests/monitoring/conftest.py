"""Fixtures of the monitoring tests (helpers in monitoringtest_support.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from monitoringtest_support import render_variants


@pytest.fixture(scope="session")
def variants(tmp_path_factory) -> dict[str, Path]:
    """Variant name -> directory with what the role wrote for it."""
    return render_variants(tmp_path_factory.mktemp("monitoring"))


@pytest.fixture(scope="session")
def rendered(variants) -> Path:
    """The files for BASE_VARS and the role's defaults."""
    return variants["base"]
