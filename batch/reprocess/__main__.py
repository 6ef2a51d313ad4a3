"""`python -m batch.reprocess ...`: what `ray job submit` runs on a cluster (the flags of `trapline reprocess`)."""

from batch.reprocess.job import main

raise SystemExit(main())
