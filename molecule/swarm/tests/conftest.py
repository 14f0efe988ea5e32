"""Fixtures of the swarm scenario's registry tests (test_05 to test_08)."""

from __future__ import annotations

import os
import re

import pytest

from lab_checks import lab_node

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-swarm")


@pytest.fixture(scope="module")
def manager():
    return lab_node(LAB, "manager1")


@pytest.fixture(scope="module")
def address(manager) -> str:
    """<manager's IPv4 on its default route>:5000, as the role computes registry_address."""
    route = manager.check_output("ip -4 -o route get 1.1.1.1")
    return re.search(r"\bsrc (\S+)", route).group(1) + ":5000"
