"""What the JPEG structure check costs next to the decode it guards (issue 67): `jpeg_corruption` (a marker walk and
a C-speed search through the compressed data, which refuses a body that is garbage after a valid header) and the
full decode, per generated camera-trap JPEG (benchmarks/images.py).

    python -m benchmarks.decode_checks [--count 32] [--size 1920x1080] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import print_table
from benchmarks.images import FULL_HD, ensure_images, load_bytes, parse_size
from model_store.core.imaging import decode_image, jpeg_corruption


def _ms_per_image(fn, images: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for data in images:
            fn(data)
        best = min(best, (time.perf_counter() - t0) / len(images))
    return best * 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=32)
    p.add_argument("--size", type=parse_size, default=FULL_HD)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    images = load_bytes(ensure_images(args.count, args.size))
    assert not any(jpeg_corruption(d) for d in images)
    check = _ms_per_image(jpeg_corruption, images, args.repeat)
    decode = _ms_per_image(decode_image, images, args.repeat)
    mb = sum(map(len, images)) / len(images) / 1e6
    print_table([{"size": "x".join(map(str, args.size)), "mean MB": round(mb, 2), "check ms": round(check, 3),
                  "decode ms": round(decode, 2), "check / decode": f"{check / decode:.1%}"}],
                ["size", "mean MB", "check ms", "decode ms", "check / decode"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
