"""The control plane: the archive door's jobs over HTTP, run by the cluster's own job manager (Ray Jobs).

    config.py   the `jobs:` block and a model's `on_promote:` policy of the serve config (no batch import)
    kinds.py    the job kinds: each one's options model (the CLI's), its fixed entry point, argv from options
    paths.py    which locations a job may name: local roots and s3:// buckets
    control.py  submit / list / show / logs / stop through Ray's Job Submission API; progress from run manifests
    backfill.py the backfill on promote: one job per promoted version, deduplicated by its submission id
    routes.py   the FastAPI routes, attached to the ingress's app in one line (`attach_jobs`)
    cli.py      `trapline jobs submit|list|show|logs|stop`, a client of those routes

Only this sub-package of serve/ imports batch/ (the options models and the tables' manifests): the detection
router knows nothing of it but the one `attach_jobs` call.
"""
