"""torch.export weights are untrusted: archives that would unpickle anything are refused."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model_store.core.backends import ModelLoadError  # noqa: E402
from model_store.core.backends.torch_export import TorchExportBackend, check_pt2_archive  # noqa: E402


@pytest.fixture(scope="module")
def pt2(tmp_path_factory) -> Path:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    x = torch.randn(2, 3, 16, 16)
    ep = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    torch.export.save(ep, str(path))
    return path


def _rewrite(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, edit(item.filename, data))
    return dst


def test_clean_archive_loads_and_runs(pt2):
    backend = TorchExportBackend(pt2, threads=1)
    assert backend.run(np.zeros((3, 3, 16, 16), np.float32)).shape == (3, 4, 14, 14)


def test_pickled_weights_refused(pt2, tmp_path):
    def edit(name, data):
        if name.endswith("model_weights_config.json"):
            cfg = json.loads(data)
            next(iter(cfg["config"].values()))["use_pickle"] = True
            return json.dumps(cfg).encode()
        return data

    bad = _rewrite(pt2, tmp_path / "bad.pt2", edit)
    with pytest.raises(ModelLoadError, match="pickle"):
        check_pt2_archive(bad)
    with pytest.raises(ModelLoadError):
        TorchExportBackend(bad)


def test_not_a_zip_refused(tmp_path):
    p = tmp_path / "x.pt2"
    p.write_bytes(b"\\x80\\x04 pickle bytes")
    with pytest.raises(ModelLoadError, match="not a torch.export archive"):
        TorchExportBackend(p)
