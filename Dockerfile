# trapline as one image: the service, the CLI and Ray, without torch, compilers, tests or docs.
#
#   make image                                   # or: docker build -t trapline:0.1.0 .
#   docker compose up                            # the service on :8000 with ./models mounted (compose.yaml)
#   docker run --rm -p 8000:8000 -v ./models:/models trapline:0.1.0
#
# Build arguments:
#   BASE     the Python base image (default the public python:3.11-slim-bookworm). Any Debian/Ubuntu image with
#            python3 >= 3.10 works; one without python3 or its venv module gets them from apt (a CUDA base).
#   FLAVOUR  cpu (default): plain onnxruntime, the CPU image. gpu: onnxruntime-gpu, for a CUDA 13 + cuDNN 9 base,
#            e.g. --build-arg FLAVOUR=gpu --build-arg BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu22.04
#            (written and documented, not built where trapline is tested: no CUDA base image can be fetched there).
#   VERSION  the version the OCI labels carry (`make image` passes pyproject.toml's).
# What the image holds and leaves out, and why: docs/guide/container.md.
ARG BASE=python:3.11-slim-bookworm

# Stage 1: the dependencies, in a venv of their own. They are pyproject.toml's runtime dependencies (no extras: no
# torch, no test or dev tools), pinned by constraints-runtime.txt; the cpu flavour takes onnxruntime where
# pyproject.toml takes onnxruntime-gpu on x86-64 Linux (the GPU build is several times the size). Only the list of
# requirements (stage `requirements`) and the runtime pins reach the install, so a change to trapline's code, to
# pyproject.toml's other tables (lint settings, import contracts) or to a test or dev pin (constraints.txt) leaves it
# (and its copy below) cached.
FROM ${BASE} AS python
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore DEBIAN_FRONTEND=noninteractive
COPY deploy/container/ensure-python.sh /usr/local/bin/ensure-python.sh
RUN sh /usr/local/bin/ensure-python.sh && python3 -m venv /opt/trapline
WORKDIR /src

FROM python AS requirements
ARG FLAVOUR=cpu
COPY pyproject.toml deploy/container/requirements.py ./
RUN python3 requirements.py --flavour "${FLAVOUR}" > requirements.txt

FROM python AS deps
COPY constraints-runtime.txt ./
COPY --from=requirements /src/requirements.txt ./
RUN --mount=type=cache,target=/root/.cache/pip /opt/trapline/bin/pip install -c constraints-runtime.txt -r requirements.txt
# What the runtime never loads, out of the final image: the dependencies' test suites, Ray's Java jars, RLlib and
# dashboard UI, pyarrow's Flight, botocore's models of services other than S3 and the credential chain's, ONNX
# Runtime's C API library, headers and stubs, and the symbol tables (binutils' strip, here only).
# A step of its own after pip: changing it leaves the install above cached.
COPY deploy/container/slim-venv.sh deploy/container/check-loads.py deploy/container/compile-runtime.py ./
RUN command -v strip >/dev/null || { apt-get update -qq \
        && apt-get install -y -qq --no-install-recommends binutils >/dev/null; } \
    && sh slim-venv.sh /opt/trapline

# Stage 2: trapline's own wheel (pip wheel: setuptools in an isolated build environment, left behind here), installed
# under /staging as it will lie in the image's venv, so the last stage needs no pip to put it there.
FROM deps AS wheel
COPY pyproject.toml README.md ./
COPY trapline ./trapline
COPY model_store ./model_store
COPY serve ./serve
COPY batch ./batch
COPY ground ./ground
RUN --mount=type=cache,target=/root/.cache/pip /opt/trapline/bin/pip wheel --no-deps -w /wheels . \
    && /opt/trapline/bin/pip install --no-deps --root /staging /wheels/trapline-*.whl

# The venv as the image holds it: no pip, setuptools or wheel (nothing in the image installs packages: a derived
# image that wants to gets pip back with `python -m ensurepip`), and .pyc files only for what the runtime imports
# (compile-runtime.py says why).
FROM deps AS venv
RUN /opt/trapline/bin/python -m pip uninstall -y -q pip setuptools \
    && /opt/trapline/bin/python compile-runtime.py --fresh

# Stage 3: the image: the base, a user, the venv and the wheel; no compiler, no pip cache, no source tree.
FROM ${BASE}
ARG FLAVOUR=cpu
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="trapline" \
      org.opencontainers.image.description="Versioned object detectors for camera-trap images: online (Ray Serve) and archive (Ray Data)." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/SET-YOUR-ORG/trapline" \
      io.trapline.flavour="${FLAVOUR}"
ENV DEBIAN_FRONTEND=noninteractive
COPY deploy/container/ensure-python.sh /usr/local/bin/ensure-python.sh
# A fixed uid (1000) so a host directory mounted at /models can be made the container's (`chown 1000 models`);
# the volumes' directories are its own, so fresh named volumes start writable. wget: KubeRay's pod probes run it.
RUN sh /usr/local/bin/ensure-python.sh wget && rm -rf /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
    && useradd --uid 1000 --create-home --shell /bin/sh trapline \
    && mkdir -p /models /archive /tables \
    && chown trapline:trapline /models /archive /tables
COPY --from=venv /opt/trapline /opt/trapline
COPY --from=wheel /staging/opt/trapline /opt/trapline
COPY deploy/container/serve.yaml /etc/trapline/serve.yaml
# The .pyc files of what trapline's own modules import beyond compile-runtime.py's list (a few, in this layer).
RUN --mount=type=bind,source=deploy/container/compile-runtime.py,target=/tmp/compile-runtime.py \
    /opt/trapline/bin/python /tmp/compile-runtime.py --packages model_store serve batch trapline ground 2>/dev/null \
    && /opt/trapline/bin/trapline --help >/dev/null
ENV PATH=/opt/trapline/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    TRAPLINE_MODEL_STORE=/models
USER trapline
WORKDIR /home/trapline
VOLUME ["/models", "/archive", "/tables"]
EXPOSE 8000
# Ready means every served model answers its default alias (GET /readyz); while the store is empty the service
# waits for a model (it says how to publish one) and stays unhealthy, without exiting.
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"]
ENTRYPOINT ["trapline"]
# The service over the volumes (deploy/container/serve.yaml): every model with a production alias in /models.
CMD ["serve", "--config", "/etc/trapline/serve.yaml", "--wait-for-models"]
