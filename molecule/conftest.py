"""pytest reads this before the testinfra tests of every scenario (molecule/<scenario>/tests: the
checkout's pytest.ini makes the checkout pytest's rootdir). It puts molecule/resources on the path,
where the helpers the scenarios' tests share are (lab_checks.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "resources"))
