"""app/requirements.txt is a complete lock with hashes, at the controller venv's versions."""
from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from apptest_support import APP_DIR, REPO

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _requirements(path: Path) -> list[str]:
    """Logical lines (continuations joined), comments and blank lines left out."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [line.split(" #")[0].strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in _requirements(path):
        match = PIN.match(line)
        if match:
            pins[_name(match[1])] = match[2]
    return pins


def test_every_line_is_pinned_with_hashes() -> None:
    lines = _requirements(APP_DIR / "requirements.txt")
    assert lines
    for line in lines:
        assert PIN.match(line), f"not pinned with ==: {line}"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]+)", line)
        assert hashes and all(len(h) == 64 for h in hashes), f"no sha256 hash: {line}"


def test_lock_holds_every_dependency_of_what_it_pins() -> None:
    """Each locked package's own requirements (for Python 3.11 on Linux) are locked too, so
    `pip install --require-hashes` needs nothing else. Read from the installed metadata."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    locked = _pins(APP_DIR / "requirements.txt")
    # Debian bookworm's python3 is 3.11.2: redis needs async-timeout below 3.11.3.
    env = {**default_environment(), "python_full_version": "3.11.2", "python_version": "3.11"}
    for name in locked:
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue  # not in the controller venv (async-timeout on Python >= 3.11.3)
        for raw in requires:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                assert _name(req.name) in locked, f"{name} needs {req.name}, not in the lock"


def test_direct_requirements_match_the_input_and_the_controller_venv() -> None:
    locked = _pins(APP_DIR / "requirements.txt")
    direct = _pins(APP_DIR / "requirements.in")
    controller = _pins(REPO / "requirements.txt")
    assert set(direct) == {"flask", "gunicorn", "redis", "prometheus-client"}
    for name, version in direct.items():
        assert locked[name] == version, name
        assert controller[name] == version, f"{name}: controller venv pins {controller[name]}"
