#!/usr/bin/env bash
# Set-up of a fresh Debian 12 machine for this collection: system packages, a running dockerd and
# the controller's virtual environment (.venv) with the pinned requirements. Safe to run again.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '\n== %s\n' "$*"; }

apt_packages=(
    docker.io debootstrap           # the lab: an engine on the machine, images from Debian's archive
    redis-server redis-sentinel     # real Redis for the app's and the modules' tests
    haproxy wrk apache2-utils       # edge tests, benchmarks, htpasswd
    prometheus prometheus-alertmanager prometheus-redis-exporter  # promtool, amtool, redis_exporter
    chromium chromium-driver        # the browser test of the web page
    shellcheck                      # ansible-test sanity's shellcheck test
    python3-venv git rsync curl
)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl for the manifests' dry run; another package may already provide it.
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The tests start the servers they need themselves (redis-server, haproxy, redis_exporter) and
    # only use Prometheus's tools: no package may start its server on install. policy-rc.d (101:
    # action forbidden) is what invoke-rc.d and deb-systemd-invoke ask; a machine's own is kept.
    policy=/usr/sbin/policy-rc.d own_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own_policy=1
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$own_policy" ]; then rm -f "$policy"; trap - EXIT; fi
    # On a systemd machine the packages also enabled their units for the next boot.
    if [ -d /run/systemd/system ]; then
        for p in "${missing[@]}"; do
            case $p in prometheus | prometheus-alertmanager | prometheus-redis-exporter)
                systemctl disable --now "$p" >/dev/null 2>&1 || true ;;
            esac
        done
    fi
fi

if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    if [ -d /run/systemd/system ]; then
        systemctl start docker
    else
        # No systemd as PID 1 on our machines: run the daemon in the background.
        nohup dockerd >/var/log/swarmlab-dockerd.log 2>&1 &
    fi
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/swarmlab-dockerd.log" >&2; exit 1; }
fi

venv="$here/.venv"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "creating $venv with the pinned requirements"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r "$here/requirements.txt"
    echo "$want" >"$stamp"
fi
# The ops tooling (swarmlab-ops), editable: a checkout's edits apply without reinstalling. Its
# dependencies are the pinned requirements above.
if ! "$venv/bin/python" -c "import swarmlab_ops, sys; sys.exit(not swarmlab_ops.__file__.startswith('$here/'))" 2>/dev/null; then
    log "installing the ops tooling (ops/) into $venv, editable"
    "$venv/bin/pip" install -q --no-deps -e "$here/ops"
fi
log "set-up done: $(docker version --format 'docker {{.Server.Version}}'), $("$venv/bin/ansible" --version | sed -n 1p)"
