"""`python -m batch.reprocess ...`: `trapline reprocess ...` under the name `ray job submit` runs (and jobs already
submitted with it, docs/guide/archive.md's cron and RayJob specs): the registry's one command, its one parser."""

import sys

from trapline.cli import main

raise SystemExit(main(["reprocess", *sys.argv[1:]]))
