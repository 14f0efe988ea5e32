#!/usr/bin/env bash
# The main job on the lab, from a fresh machine: set-up, the lab's hosts, then site.yml on them.
# Extra arguments go to ansible-playbook (e.g. -v, --check).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
ansible-playbook playbooks/lab.yml
ansible-playbook -i inventories/lab site.yml "$@"
