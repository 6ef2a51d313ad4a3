# trapline developer commands. Quick start: `make demo`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build here (taken from the machine's local wheel); on a GPU box the same pin pulls the CUDA
# build. Override with e.g. `make setup TORCH_SPEC="torch==2.13.0 --index-url ..."`.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.trapline-setup

.PHONY: setup lint docs test test-fast test-room yolox demo bench models report-screenshot screenshots browser promtool image clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt constraints-runtime.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,train]"
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	PYTHONPATH=. $(BIN)/lint-imports --no-cache  # benchmarks/ is not installed: found from the repository root

# The docs site (mkdocs-material) into site/; --strict: a broken link, or a page left out of the nav, fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The unit tests (no Ray) run on up to UNIT_WORKERS processes (pytest-xdist; `auto`: one per core); the Ray, Serve,
# container and Antenna tests share one Ray per session, so they run in one process after them.
UNIT_WORKERS ?= auto
UNIT_TESTS = $(BIN)/python -m pytest tests/unit -n $(UNIT_WORKERS) --maxprocesses 4
test: setup lint docs yolox
	$(UNIT_TESTS) --durations=10
	$(BIN)/python -m pytest tests/integration tests/e2e --durations=30

test-fast: setup
	$(UNIT_TESTS) -q

# Only the tests of one room (serve, batch, model_store, trapline, benchmarks), or of a changed file's:
# `make test-room ROOM=serve`, `make test-room ROOM=batch/jobs/control.py` (tests/rooms.py says which files).
test-room: setup
	@test -n "$(ROOM)" || { echo "error: say the room: make test-room ROOM=serve (or a file under one)"; exit 2; }
	$(BIN)/python -m tests.rooms "$(ROOM)" --workers $(UNIT_WORKERS) -q

# The YOLOX package converts zamba's MegadetectorLite for the demo (and its test); without it the demo says so and
# goes on, and that test is skipped.
yolox: setup
	-$(BIN)/python -m pip install -q --no-deps -r model_store/demo/megadetector-requirements.txt

demo: setup yolox
	$(BIN)/python -m trapline.demo

models: setup
	$(BIN)/python -m model_store.demo.publish --store ./models

# docs/report.png for the README, from the demo's tables (run `make demo` first).
report-screenshot: setup
	$(BIN)/python docs/report_screenshot.py

# The console's pictures in docs/ (the README and the docs show them), from the browser tests; a plain test run
# saves them to a temp dir and leaves the repository as it was.
screenshots: setup browser
	TRAPLINE_SCREENSHOTS=docs $(BIN)/python -m pytest -q tests/integration/test_console_pictures.py \
	  "tests/integration/test_jobs_http.py::test_console_starts_a_reprocess_follows_it_and_runs_a_postprocess_from_the_generated_form"

# Debian's Chromium for the report's browser test (skipped, with the reason, where there is none).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) || \
	  echo "chromium could not be installed: the browser test will be skipped"

# Debian's Prometheus for promtool: `make test` runs `promtool test rules` on deploy/prometheus/ (tests/unit/
# test_prometheus_rules.py; skipped, with the reason, where it cannot be installed).
promtool:
	command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq prometheus) || \
	  echo "prometheus (promtool) could not be installed: the alert rules' tests will be skipped"

# The container image (Dockerfile) with podman or docker, whichever is here; `docker compose up` runs it.
# e.g. make image FLAVOUR=gpu BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu22.04 (docs/guide/container.md)
VERSION   := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
FLAVOUR   ?= cpu
IMAGE     ?= localhost/trapline
BASE      ?=
CONTAINER ?= $(shell command -v podman >/dev/null && echo podman || echo docker)
image:
	$(CONTAINER) build $(if $(filter podman,$(CONTAINER)),--format docker) \
	  --build-arg VERSION=$(VERSION) --build-arg FLAVOUR=$(FLAVOUR) $(if $(BASE),--build-arg BASE=$(BASE)) \
	  -t $(IMAGE):$(VERSION)$(if $(filter gpu,$(FLAVOUR)),-gpu) -t $(IMAGE):latest$(if $(filter gpu,$(FLAVOUR)),-gpu) .

bench: setup
	$(BIN)/python -m benchmarks.report --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info site
