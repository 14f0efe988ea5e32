"""Make the checkout importable as ansible_collections.swarmlab.cluster (collections/ links to it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'collections'))
