"""Short fault drills against a running lab (swarmlab-ops drills)."""
from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "lab: needs a lab with the stack deployed, named by SWARMLAB_DRILLS_LAB (skipped otherwise)",
    )
