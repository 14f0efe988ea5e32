#!/usr/bin/env bash
# ansible-test sanity on this checkout. ansible-test needs the collection at
# ansible_collections/<namespace>/<name>, so the tracked files are copied to such a path first.
# Usage: scripts/sanity.sh [extra ansible-test sanity arguments, e.g. --test validate-modules]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
# shellcheck disable=SC1091
. "$venv/bin/activate"

# ansible-test bootstraps pip for its per-test virtual environments from a script it downloads; that
# host is not reachable here. It looks in its cache first: put a stand-in there that bootstraps pip
# with the standard library's ensurepip and then installs what it was asked for.
ver=$(grep -oE "pip=.[0-9]+\.[0-9]+" "$(python -c "import ansible_test, os; print(os.path.dirname(ansible_test.__file__))")/_internal/python_requirements.py" | head -1 | grep -oE "[0-9]+\.[0-9]+" | tr . _)
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
cat > "$cache/get_pip_$ver.py" <<'PY'
"""Stand-in for get-pip.py: ensurepip, then pip install the arguments (offline bootstrap)."""
import os
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
# ensurepip points PIP_CONFIG_FILE at /dev/null in its own process; drop it so pip keeps the
# machine's CA and index settings.
env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONFIG_FILE", "ENSUREPIP_OPTIONS")}
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args], env=env)
PY

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/swarmlab/cluster"
mkdir -p "$dest"
# Tracked and new files, minus the link that makes a checkout usable as a collection path.
(cd "$here" && git ls-files -co --exclude-standard | grep -v '^collections/' | tar -cf - -T -) | tar -C "$dest" -xf -
cd "$dest"
git init -q . && git add -A >/dev/null 2>&1
ansible-test sanity --requirements --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" "$@"
