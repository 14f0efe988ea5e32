#!/usr/bin/env bash
# Benchmark (not a test): site.yml on bare lab nodes (lab images cached), then the idempotent re-run.
# Prints both wall times and the re-run's changed count. Uses its own lab (bench-site) and removes it.
# Usage: bash scripts/bench_site.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck disable=SC1091
. .venv/bin/activate
export SWARMLAB_LAB_NAME=bench-site
trap 'ansible-playbook playbooks/lab.yml -e lab_state=down >/dev/null 2>&1 || true' EXIT
ansible-playbook playbooks/lab.yml -e lab_state=down >/dev/null
ansible-playbook playbooks/lab.yml >/dev/null
t0=$(date +%s)
ansible-playbook site.yml >/tmp/bench-site-1.log
t1=$(date +%s)
ansible-playbook site.yml >/tmp/bench-site-2.log
t2=$(date +%s)
# Sum of changed= over the recap lines of the re-run.
changed=$( (grep -oE 'changed=[0-9]+' /tmp/bench-site-2.log || true) | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }')
echo "site.yml on bare nodes: $((t1 - t0)) s"
echo "site.yml re-run:        $((t2 - t1)) s (changed=$changed)"
