"""trapline's `tiling: megadetector` against MegaDetector's own `run_tiled_inference`, per image (issue 70).

Reads tests/fixtures/reference/megadetector_tiled_expected.json (regenerate it with
tests/fixtures/reference/build_megadetector_tiled.py in the peer venv) and runs trapline on the same ONNX export,
images and settings. Per image: the reference boxes (score >= 0.3, with area), how many trapline matches (same class,
IoU >= 0.9 or corners within 1.5 px, |score difference| <= 0.01), equal-score pairs (a miss and an extra NMS weighed as
equal scores), what is left unpaired, and whether the random model saturates there. Two runs: `lossless`
(MegaDetector's tiles written as PNG: the parity) and `as_shipped` (its JPEG tiles, quality 95: the deviation that
re-encoding alone makes).

    flock /tmp/trapline-bench.lock python -m benchmarks.md_tiling_parity [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import print_table, write_json
from model_store import ModelStore
from tests.fixtures.md_tiled import judge, reference
from tests.fixtures.parity import publish_reference


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(str(Path(tmp) / "store"), cache_dir=str(Path(tmp) / "cache"))
        detector = store.load_detector(publish_reference(store, "mdv5_style_dynamic"))
        rows = []
        for run, per_setting in reference()["runs"].items():
            for setting, per_image in per_setting.items():
                for image in per_image:
                    j = judge(detector, run, setting, image)
                    a = j.agreement
                    rows.append({"run": run, "setting": setting, "image": Path(image).name,
                                 "tiles": j.tiling["tiles"], "reference": a.reference, "matched": a.matched,
                                 "match_%": round(100 * a.match_rate, 2), "extra": len(a.extras),
                                 "equal_score_pairs": j.pairs, "unpaired_missed": len(j.left_missed),
                                 "unpaired_extra": len(j.left_extra), "saturated": j.saturated})
    print_table(rows, list(rows[0]))
    if args.out:
        write_json(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
