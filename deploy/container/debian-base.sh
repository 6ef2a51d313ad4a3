#!/usr/bin/env bash
# Build a local stand-in for the public Python base image from Debian's own packages, for machines that reach
# Debian's mirror and the package index but no container registry (where trapline's container test runs), and
# make podman/buildah usable in such a sandbox.
#
#   deploy/container/debian-base.sh [IMAGE]      default IMAGE: localhost/debian-python:bookworm-slim
#
# The image is Debian bookworm (minbase) with python3, python3-venv, pip and CA certificates: a Dockerfile
# that builds `FROM ${BASE}` with `python3 -m venv` works on it and on the public python:3.11-slim-bookworm alike.
# Build with: podman build --pull=never --build-arg BASE=IMAGE ...   (buildah's chroot isolation is used here,
# so no daemon and no cgroups are needed). Run with: podman run --runtime runc ...
# Idempotent: an existing IMAGE is kept. Needs root (as every machine here is). About 1 minute the first time.
set -euo pipefail
IMAGE=${1:-localhost/debian-python:bookworm-slim}
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null || ! command -v runc >/dev/null \
   || ! command -v podman-compose >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc debootstrap fuse-overlayfs podman-compose >/dev/null
fi
# This sandbox cannot set rlimits or use cgroups the way podman's defaults want: no default ulimits, runc,
# chroot isolation for builds, cgroups off for builds.
mkdir -p /etc/containers
if ! grep -q 'default_ulimits = \[\]' /etc/containers/containers.conf 2>/dev/null; then
  cat >/etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
CONF
fi
export BUILDAH_ISOLATION=chroot
if podman image exists "$IMAGE"; then echo "$IMAGE already present"; exit 0; fi
mirror=$(cat /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
         | grep -E '^(URIs:|deb )' | grep -i debian | grep -v security | head -1 | awk '{print $2}' || true)
[ -n "$mirror" ] || { echo "no Debian mirror in apt's sources: run on a machine with Debian's packages"; exit 1; }
root=$(mktemp -d)
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$root" "$mirror" >/dev/null
# What python:3.11-slim-bookworm (on debian:bookworm-slim) leaves out too: the downloaded packages, apt's lists and
# caches (`apt-get update` fetches them again), documentation, manuals and translations. With them the stand-in
# weighed 0.30 GB, against about 0.13 GB for the public image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
# the machine's own CA bundle, so pip inside a build reaches the package index as it does here
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
tar -C "$root" -c . | podman import --change 'CMD ["python3"]' - "$IMAGE" >/dev/null
rm -rf "$root"
echo "$IMAGE built from Debian bookworm (python3 $(podman run --rm "$IMAGE" python3 -c 'import sys; print(sys.version.split()[0])'))"
