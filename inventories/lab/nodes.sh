#!/usr/bin/env bash
# The lab's hosts for the lab's size: an Ansible inventory script (script inventory plugin).
#
# SWARMLAB_LAB_MANAGERS and SWARMLAB_LAB_WORKERS give the size (default 1 and 2, the seed's layout;
# 3 and 2 is the high-availability lab), SWARMLAB_LAB_NAME the lab's name (default swarmlab). Hosts
# are manager1..N and worker1..M, reached as the containers <lab_name>-<host> with
# community.docker.docker, in the groups swarm, swarm_managers and swarm_workers. lab_managers and
# lab_workers go to every host and to the implicit localhost, so playbooks/lab.yml brings up the
# size this inventory lists.
#
# hosts.yml beside this script is the default layout (manager1, worker1, worker2) for the Molecule
# scenarios that link it alone; Ansible merges the two when it reads the directory, so the directory
# is exact for any size of at least 1 manager and 2 workers. For a smaller lab use this script
# alone: -i inventories/lab/nodes.sh (group_vars/ beside it still apply).
# Bash, not Python: Debian has no `python` command outside a virtualenv.
set -euo pipefail

managers=${SWARMLAB_LAB_MANAGERS:-1}
workers=${SWARMLAB_LAB_WORKERS:-2}
if ! [[ $managers =~ ^[1-7]$ ]] || ! [[ $workers =~ ^[0-9]$ ]]; then
    echo "SWARMLAB_LAB_MANAGERS=$managers / SWARMLAB_LAB_WORKERS=$workers: the lab takes 1 to 7 managers and 0 to 9 workers" >&2
    exit 1
fi

# JSON list of "<prefix>1".."<prefix>N"
names() {
    local prefix=$1 count=$2 i sep=""
    printf '['
    for ((i = 1; i <= count; i++)); do printf '%s"%s%d"' "$sep" "$prefix" "$i"; sep=", "; done
    printf ']'
}

# --host <name>: the same host vars as _meta (Ansible uses _meta and does not call this).
if [[ ${1:-} == --host ]]; then
    printf '{"ansible_host": "{{ lab_name }}-%s"}\n' "${2:-}"
    exit 0
fi

hostvars=""
sep=""
for ((i = 1; i <= managers; i++)); do hostvars+="$sep\"manager$i\": {\"ansible_host\": \"{{ lab_name }}-manager$i\"}"; sep=", "; done
for ((i = 1; i <= workers; i++)); do hostvars+="$sep\"worker$i\": {\"ansible_host\": \"{{ lab_name }}-worker$i\"}"; sep=", "; done

cat <<JSON
{
  "_meta": {"hostvars": {$hostvars}},
  "all": {
    "children": ["swarm"],
    "vars": {
      "lab_name": "{{ lookup('ansible.builtin.env', 'SWARMLAB_LAB_NAME') | default('swarmlab', true) }}",
      "lab_managers": $managers,
      "lab_workers": $workers
    }
  },
  "swarm": {
    "children": ["swarm_managers", "swarm_workers"],
    "vars": {
      "ansible_connection": "community.docker.docker",
      "ansible_user": "root",
      "ansible_python_interpreter": "/usr/bin/python3"
    }
  },
  "swarm_managers": {"hosts": $(names manager "$managers")},
  "swarm_workers": {"hosts": $(names worker "$workers")}
}
JSON
