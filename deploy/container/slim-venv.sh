#!/bin/sh
# Take out of the image's venv what trapline's runtime never loads (run in the Dockerfile's deps stage):
# - the dependencies' own test suites (pandas, scipy, scikit-learn, numpy, pyarrow, matplotlib ...: ~190 MB);
# - Ray's Java jars (cross-language workers; trapline's Ray is Python only: ~33 MB);
# Not stripped: most wheels' shared libraries are stripped already (it saved 12 MB) and strip breaks those that
# auditwheel patched with patchelf (numpy's OpenBLAS: "ELF load command address/offset not page-aligned").
set -eu
venv=$1
site=$(echo "$venv"/lib/python3*/site-packages)
before=$(du -sm "$venv" | cut -f1)
find "$site" -depth -type d \( -name tests -o -name test \) -path '*/site-packages/*/*' -exec rm -rf {} +
rm -rf "$site/ray/jars"
echo "slim-venv: $venv from ${before} MB to $(du -sm "$venv" | cut -f1) MB"
