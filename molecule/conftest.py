"""pytest reads this before the testinfra tests of every scenario (molecule/<scenario>/tests: the
checkout's pytest.ini makes the checkout pytest's rootdir). It puts molecule/resources on the path,
where the helpers the scenarios' tests share are (lab_checks.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "resources"))


def pytest_sessionstart(session):  # pylint: disable=unused-argument
    """scripts/test.sh runs a scenario (ha) beside default's create, check, converge and idempotence,
    and names in SWARMLAB_VERIFY_AFTER the file it writes that scenario's exit status to when it
    ends: default's verify, whose drills count failed requests under load, starts only then, and
    not at all if that scenario failed. Not set (a scenario run on its own): no wait."""
    marker = os.environ.get("SWARMLAB_VERIFY_AFTER", "")
    if not marker:
        return
    started, limit = time.monotonic(), float(os.environ.get("SWARMLAB_VERIFY_AFTER_TIMEOUT", "2400"))
    while not Path(marker).exists():
        if time.monotonic() - started > limit:
            pytest.exit("the scenarios run beside this one did not end within %.0f s (%s)" % (limit, marker), returncode=1)
        time.sleep(2)
    status = Path(marker).read_text(encoding="utf-8").strip()
    print("waited %.0f s for the scenarios run beside this one (exit status %s)" % (time.monotonic() - started, status))
    if status != "0":
        pytest.exit("the scenarios run beside this one failed (exit status %s): see results/test/later.log" % status,
                    returncode=1)
