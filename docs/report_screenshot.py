"""Make docs/report.png, the README's picture of `trapline report`, from the demo's tables.

Run `make report-screenshot` (after `make demo`, which writes ./out/detections with demo-detector:2):
it adds demo-detector:1 over the same samples (embedded local Ray) if the tables lack it, builds the
report comparing 2 with 1 into ./out/report, and photographs it in headless Chromium.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

from PIL import Image

from batch.review import ReportOptions, build_report
from batch.review.browser import visit
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default="out/detections")
    parser.add_argument("--samples", default="samples")
    parser.add_argument("--store", default="models")
    parser.add_argument("--report", default="out/report")
    parser.add_argument("--png", default="docs/report.png")
    parser.add_argument("--height", type=int, default=2000, help="how much of the page to keep, in pixels")
    args = parser.parse_args(argv)
    tables = Tables(open_location(args.tables))
    if not tables.partitions(IMAGES):
        print(f"no tables under {args.tables}: run `make demo` first", file=sys.stderr)
        return 2
    if ("demo-detector", "1") not in tables.partitions(IMAGES):
        subprocess.run([str(Path(sys.executable).parent / "trapline"), "reprocess", "--archive", args.samples,
                        "--out", args.tables, "--model", "demo-detector:1", "--store", args.store], check=True)
    result = build_report(ReportOptions(args.tables, args.report, model="demo-detector:2", compare="demo-detector:1",
                                        store=args.store, per_band=6), log=print)
    page = visit(result.index, max_height=args.height)
    if page.console_errors:
        print("the page logged errors:\n  " + "\n  ".join(page.console_errors), file=sys.stderr)
        return 1
    image = Image.open(io.BytesIO(page.screenshot)).convert("RGB")
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)  # a README picture: keep it small
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.png, optimize=True)
    print(f"wrote {args.png} ({Path(args.png).stat().st_size // 1024} KiB) from {result.index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
