#!/bin/sh
# The image's bases: python:3.11-slim has python3 and venv; a CUDA base (the gpu flavour) or a bare Debian gets them
# from apt. Arguments: more Debian packages the stage needs (the final stage: wget, which KubeRay's pod probes run).
# Run as root in the Dockerfile's stages.
set -eu
missing=""
python3 -c 'import venv, ensurepip' 2>/dev/null || missing="python3 python3-venv ca-certificates"
for tool in "$@"; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
[ -n "$missing" ] || exit 0
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
rm -rf /var/lib/apt/lists/*
