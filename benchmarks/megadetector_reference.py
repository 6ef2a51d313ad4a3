"""zamba's own MegadetectorLite inference on the demo photos (the reference side of megadetector_parity).

Runs in the reference virtualenv (torch, pixeltable-yolox, pydantic<2, pandas), not in trapline's, with the
unpacked zamba wheel on the path; trapline is not imported::

    PYTHONPATH=<unpacked zamba wheel> /work/refenv/bin/python benchmarks/megadetector_reference.py OUT.json IMAGE...

Each photo goes through `MegadetectorLiteYoloX.detect_image` on its RGB array (as zamba's image path loads it:
PIL, converted to RGB), with zamba's default config on CPU (confidence 0.25, NMS 0.45, 640 x 640). zamba
returns boxes as fractions of the image; they are written in pixels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from zamba.object_detection.yolox.megadetector_lite_yolox import MegadetectorLiteYoloX


def main(argv: list[str]) -> int:
    out, images = Path(argv[0]), [Path(p) for p in argv[1:]]
    model = MegadetectorLiteYoloX(config={"device": "cpu"})
    result = {}
    for path in images:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        h, w = rgb.shape[:2]
        boxes, scores = model.detect_image(rgb)
        result[path.name] = [{"xyxy": [float(b[0] * w), float(b[1] * h), float(b[2] * w), float(b[3] * h)],
                              "score": float(s)} for b, s in zip(boxes, scores, strict=True)]
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
