"""Short fault drills and the disaster-recovery drill against a running lab (swarmlab-ops drills,
scripts/dr_drill.sh)."""
from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "lab: needs a lab with the stack deployed, named by SWARMLAB_DRILLS_LAB (skipped otherwise)",
    )


def pytest_collection_modifyitems(session, config, items):
    """The disaster-recovery drill destroys the lab and makes it again: it runs after every other test
    of the session (Molecule's verifier collects these drills before the scenario's own tests)."""
    items.sort(key=lambda item: item.path.name == "test_recovery.py")
