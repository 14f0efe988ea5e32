#!/usr/bin/env bash
# Regenerate k8s/ from the swarmlab.cluster.k8s_app role's defaults, or check it is up to date.
#   scripts/render_k8s.sh           # rewrite k8s/k8s-deployment.yaml
#   scripts/render_k8s.sh --check   # exit 1 with a diff when k8s/ differs from the role's output (CI)
# The role renders through a throwaway playbook with an inline inventory, so no group_vars or
# host_vars of the checkout leak into the "defaults" manifests. No password is passed: the Secrets
# file is not rendered, and k8s/ holds no Secret at all.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# RENDER_K8S_DIR: compare with / write to another directory (the tests use a copy).
out="${RENDER_K8S_DIR:-$root/k8s}"
check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

ansible_playbook="${ANSIBLE_PLAYBOOK:-}"
if [ -z "$ansible_playbook" ]; then
  if [ -x "$root/.venv/bin/ansible-playbook" ]; then
    ansible_playbook="$root/.venv/bin/ansible-playbook"
  else
    ansible_playbook="$(command -v ansible-playbook)"
  fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/rendered"
cat >"$tmp/render.yml" <<'PLAY'
---
- name: Render the k8s_app manifests of the default values
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  roles:
    - role: swarmlab.cluster.k8s_app
      vars:
        k8s_app_state: rendered
PLAY

# ansible.cfg of the checkout (collections_path) applies because we run from its root.
if ! (cd "$root" && "$ansible_playbook" -i localhost, "$tmp/render.yml" \
      -e "k8s_app_render_dir=$tmp/rendered" >"$tmp/ansible.log" 2>&1); then
  cat "$tmp/ansible.log" >&2
  echo "render_k8s: ansible-playbook failed" >&2
  exit 2
fi

if $check; then
  status=0
  for f in "$tmp"/rendered/*.yaml; do
    name="$(basename "$f")"
    if ! diff -u --label "k8s/$name (checked in)" --label "k8s/$name (role output)" \
         "$out/$name" "$f"; then
      status=1
    fi
  done
  for f in "$out"/*.yaml; do
    [ -e "$f" ] || continue
    if [ ! -e "$tmp/rendered/$(basename "$f")" ]; then
      echo "k8s/$(basename "$f") is not produced by the role" >&2
      status=1
    fi
  done
  if [ "$status" -ne 0 ]; then
    echo "render_k8s: k8s/ differs from the role's output; run scripts/render_k8s.sh and commit k8s/" >&2
  else
    echo "render_k8s: k8s/ matches the role's output"
  fi
  exit "$status"
fi

mkdir -p "$out"
for f in "$tmp"/rendered/*.yaml; do
  install -m 0644 "$f" "$out/$(basename "$f")"
  echo "wrote k8s/$(basename "$f")"
done
