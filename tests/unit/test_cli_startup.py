"""`trapline` starts without the libraries only its commands' work needs: building the command line (every
command's flags, help and option checks, from the registries) imports no pandas, pyarrow.dataset, Ray, report
templates or ONNX Runtime. The work is named and loaded when a command runs; the names resolve."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

# matplotlib stays listed though the product never imports it (lint-imports forbids it): the contract sees only the
# product's own imports, this sees what a dependency pulls in too (it is installed here, for the benchmarks).
HEAVY = ("pandas", "pyarrow.dataset", "ray", "jinja2", "matplotlib", "onnxruntime", "fastapi", "sklearn", "av")


def test_the_command_line_is_built_without_the_heavy_libraries():
    # A fresh interpreter: the test process has imported everything already. Any command line builds the parser of
    # every command (`trapline --help` lists them); `export --help` also formats the export formats' help.
    code = ("import json, sys\nfrom trapline.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
            f"    pass\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code, "export", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = " ".join(proc.stdout.split())
    assert "usage: trapline export" in shown and "a Camtrap DP 1.0.2 package directory" in shown  # the registry's
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_every_late_name_resolves():
    """The registry's work (`_later`), the export formats' exporters and model_store's names all load."""
    import model_store
    from batch import commands
    from batch.export.base import Exporter
    from batch.export.registry import EXPORTERS

    targets = {fn.target for fn in vars(commands).values() if hasattr(fn, "target")}
    assert len(targets) == 21  # trapline health: its runner, table and JSON
    for target in sorted(targets):
        module, _, name = target.partition(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name)), target
    assert all(isinstance(f.exporter(), Exporter) for f in EXPORTERS.values())
    assert all(getattr(model_store, name) is not None for name in model_store.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        model_store.Nope  # noqa: B018 - the look-up is the test
