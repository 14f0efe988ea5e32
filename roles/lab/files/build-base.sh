#!/bin/sh
# Build the lab's Debian base image from Debian's archive: no container registry is needed.
# Usage: build-base.sh SUITE MIRROR IMAGE LABEL_HASH CA_BUNDLE WORKDIR
# Progress goes to stdout; the role tails it while this runs.
set -eu
suite=$1 mirror=$2 image=$3 hash=$4 ca_bundle=$5 work=$6

rootfs="$work/rootfs-$suite"
rm -rf "$rootfs"
mkdir -p "$rootfs"
echo "debootstrap $suite from $mirror into $rootfs"
debootstrap --variant=minbase --include=ca-certificates "$suite" "$rootfs" "$mirror"

# The machine may reach the internet through an intercepting proxy whose CA only the host trusts:
# carry the host's bundle so TLS (pip, curl) works inside the images as on the host.
if [ -n "$ca_bundle" ] && [ -s "$ca_bundle" ]; then
    cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
fi
# Keep images small: no docs, no apt lists.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/*
echo "docker import $image"
tar -C "$rootfs" -c . | docker import \
    -c "LABEL org.swarmlab.lab.hash=$hash" \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["/bin/bash"]' \
    - "$image"
rm -rf "$rootfs"
echo "built $image"
