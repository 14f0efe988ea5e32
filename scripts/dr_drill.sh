#!/usr/bin/env bash
# Disaster-recovery drill on the lab (issue 20; docs/operations.md): the counter at a known value,
# playbooks/backup.yml, the whole lab destroyed and created again (new node containers, new
# volumes), playbooks/restore.yml, then: web 4/4, the same counter value, every image of the
# registry's catalog pullable on every node, Redis replication healthy, the registry's and the
# stack's CA the same as before (nothing generated anew). Prints the time of each step.
#
# Needs the lab with site.yml on it (one lab at a time on a 2-core machine):
#   export SWARMLAB_LAB_NAME=dr
#   ansible-playbook playbooks/lab.yml && ansible-playbook site.yml
#   bash scripts/dr_drill.sh
# DR_BACKUP_DIR: where the backups go (default a new directory under /tmp, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
LAB=${SWARMLAB_LAB_NAME:-swarmlab}
M="$LAB-manager1"
STACK=swarmlab
COUNT=${DR_COUNT:-37}
own_backups=false
if [ -z "${DR_BACKUP_DIR:-}" ]; then
    DR_BACKUP_DIR=$(mktemp -d /tmp/dr-backups.XXXXXX)
    own_backups=true
fi
PLAYBOOK=ansible-playbook
[ -x .venv/bin/ansible-playbook ] && PLAYBOOK=.venv/bin/ansible-playbook

say() { printf '[dr %s] %s\n' "$(date +%T)" "$*"; }
fail() { say "FAIL: $*"; exit 1; }
step() { # name, command...: run it, print its time
    local name=$1 start rc=0
    shift
    start=$(date +%s)
    "$@" > "$DR_BACKUP_DIR/$name.log" 2>&1 || rc=$?
    say "$name: $(( $(date +%s) - start )) s (rc $rc)"
    [ $rc = 0 ] || { tail -40 "$DR_BACKUP_DIR/$name.log"; fail "$name"; }
}
# The edge publishes on the manager's own address only (not loopback); a lab made anew may get
# another subnet: read once, and again after the lab is made anew (edge_ip='').
edge_ip=''
api() {
    [ -n "$edge_ip" ] ||
        edge_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$M" | awk '{print $1}')
    docker exec "$M" curl -sS -f -m 5 -X "$1" "http://$edge_ip:8080$2"
}
value() { api GET /api/counter | python3 -c 'import json, sys; print(json.load(sys.stdin)["value"])'; }
wait_value() { # the reads may go to a replica: give replication a moment
    local v=''
    for _ in $(seq 1 30); do
        v=$(value 2> /dev/null || true)
        [ "$v" = "$1" ] && return 0
        sleep 2
    done
    fail "counter is '$v', expected $1"
}
sentinel_logs() { # since (RFC 3339): what the stack's Sentinels logged
    docker exec "$M" sh -c 'for s in $(docker service ls -q --filter "name=$1_redis-sentinel-"); do
        timeout 30 docker service logs --raw --since "$2" "$s" 2>&1; done' sh "$STACK" "$1"
}
nodes() { docker ps --filter "label=org.swarmlab.lab=$LAB" --format '{{.Names}}' | sort; }
registry() { docker exec "$M" ls /etc/docker/certs.d | head -n 1; }
catalog() { # repo:tag lines (without the registry's address: a lab made anew may get another
    # subnet); the lab's credentials go to curl on its standard input, not its argv
    local reg
    reg=$(registry)
    printf 'user = "moby:gordon"\n' | docker exec -i "$M" curl -sS -f -K - --cacert "/etc/docker/certs.d/$reg/ca.crt" \
        "https://$reg/v2/_catalog" | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["repositories"]))' |
        while read -r repo; do
            printf 'user = "moby:gordon"\n' | docker exec -i "$M" curl -sS -f -K - --cacert "/etc/docker/certs.d/$reg/ca.crt" \
                "https://$reg/v2/$repo/tags/list" | python3 -c 'import json, sys; d = json.load(sys.stdin); print("\n".join("%s:%s" % (d["name"], t) for t in d["tags"] or []))'
        done
}
cas() { docker exec "$M" sha256sum "/etc/docker/certs.d/$(registry)/ca.crt" /opt/swarmlab/stack/tls/ca/ca.crt | cut -d' ' -f1; }

say "lab $LAB, backups in $DR_BACKUP_DIR"
# DR_FROM=restore: only the restore and the checks, onto a lab made anew after an earlier run's
# backup (its catalog.before and ca.before in DR_BACKUP_DIR); DR_FROM=check: only the checks.
if [ -z "${DR_FROM:-}" ]; then
    api POST /api/counter/reset > /dev/null
    for _ in $(seq 1 "$COUNT"); do api POST /api/counter/increment > /dev/null; done
    wait_value "$COUNT"
    say "counter at $COUNT"
    catalog > "$DR_BACKUP_DIR/catalog.before"
    cas > "$DR_BACKUP_DIR/ca.before"
    say "catalog: $(tr '\n' ' ' < "$DR_BACKUP_DIR/catalog.before")"

    since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    step backup "$PLAYBOOK" playbooks/backup.yml -e "backup_dir=$DR_BACKUP_DIR"
    wait_value "$COUNT"
    # The backup stops the manager's engine; the Redis master must have been handed over before,
    # not found down by the Sentinels (a failover of their own loses unreplicated writes).
    odown=$(sentinel_logs "$since" | grep -c '+odown master' || true)
    [ "$odown" = 0 ] || fail "the Sentinels found the Redis master down during the backup and failed over on their own"
    say "no failover of the Sentinels' own during the backup"
    # With a single manager the backup drops its gossip (port 7946) while its engine stops; left
    # in place, the rule would cut it off the overlay for good.
    ! docker exec "$M" iptables -S OUTPUT | grep -q -- '--dport 7946' || fail "the backup left the manager's gossip blocked"
    say "the manager's gossip flows again"
    step destroy "$PLAYBOOK" playbooks/lab.yml -e lab_state=down
    [ -z "$(nodes)" ] || fail "lab nodes still there: $(nodes)"
    step create "$PLAYBOOK" playbooks/lab.yml
    edge_ip=''
fi
[ "${DR_FROM:-}" = check ] || step restore "$PLAYBOOK" playbooks/restore.yml -e "backup_dir=$DR_BACKUP_DIR"

replicas=$(docker exec "$M" docker service ls --filter "name=${STACK}_web" --format '{{.Replicas}}')
[ "$replicas" = 4/4 ] || fail "web $replicas"
say "web $replicas"
wait_value "$COUNT"
say "counter $COUNT after the restore"
cas > "$DR_BACKUP_DIR/ca.after"
cmp -s "$DR_BACKUP_DIR/ca.before" "$DR_BACKUP_DIR/ca.after" || fail "a CA was generated anew"
say "registry and stack CA unchanged"
catalog > "$DR_BACKUP_DIR/catalog.after"
missing=$(comm -23 <(sort "$DR_BACKUP_DIR/catalog.before") <(sort "$DR_BACKUP_DIR/catalog.after"))
[ -z "$missing" ] || fail "tags missing from the catalog: $missing"
# Workers hold no registry credentials (issue 15): every node pulls with a throwaway Docker config
# logged in for the pull only (the lab's password on docker login's standard input).
pull_on() { # node, repo:tag
    printf 'gordon\n' | docker exec -i "$1" sh -c 'd=$(mktemp -d) || exit 1
        docker --config "$d" login -u moby --password-stdin "$1" > /dev/null 2>&1 &&
            docker --config "$d" pull -q "$1/$2" > /dev/null
        rc=$?; rm -rf "$d"; exit $rc' sh "$(registry)" "$2"
}
for node in $(nodes); do
    while read -r image; do
        pull_on "$node" "$image" || fail "$node cannot pull $(registry)/$image"
    done < "$DR_BACKUP_DIR/catalog.before"
done
say "every image of the catalog pulls on $(nodes | wc -l) nodes"
master=$(docker exec "$M" docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_redis-master")
repl=$(docker exec "$M" docker exec "$master" sh /usr/local/lib/swarmlab/redis-boot.sh cli server INFO replication)
echo "$repl" | grep -q '^role:master' || fail "redis-master is not the master: $repl"
[ "$(echo "$repl" | grep -c '^slave[0-9]*:.*state=online')" = 2 ] || fail "replicas not online: $repl"
say "Redis: master with 2 replicas online"
$own_backups && rm -rf "$DR_BACKUP_DIR"
say "PASS"
