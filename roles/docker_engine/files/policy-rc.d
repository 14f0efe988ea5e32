#!/bin/sh
# Written by the swarmlab.cluster docker_engine role for the length of one apt run on an active Swarm
# node, and removed after it: the engine's packages may not start, stop or restart the engine's
# services (101: action forbidden by policy); node maintenance restarts them drained. Any other
# service: allowed (0).
# Called as: policy-rc.d [options] <service> <action> [<runlevel>] (invoke-rc.d, deb-systemd-invoke).
while [ $# -gt 0 ]; do
    case "$1" in
        --*) shift ;;
        *) break ;;
    esac
done
case "$1" in
    docker | docker.service | docker.socket | containerd | containerd.service) exit 101 ;;
esac
exit 0
