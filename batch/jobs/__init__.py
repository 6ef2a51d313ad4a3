"""The control plane: the archive door's jobs over HTTP, run by the cluster's own job manager (Ray Jobs).

The jobs:
    kinds.py       the job kinds, one per command of the registry (batch/commands.py): argv from options, recognition
    paths.py       which locations a job may name: local roots and s3:// buckets
    control.py     submit / list / show / logs / stop through Ray's Job Submission API; progress from run manifests
    backfill.py    the backfill on promote: one job per promoted version, deduplicated by its submission id
    routes.py      the jobs, filters and preview routes and the console's files, attached in one line (`attach_jobs`)
    deps.py        the control plane on the app's state, and what the routes over one set of tables share
    launch.py      what the console's job forms are built from (job kinds, locations); launch_protocol.py its bodies
    locations.py   the archives and tables under the allowed roots, for those forms to pick from
    cli.py         `trapline jobs submit|list|show|logs|stop`, a client of those routes
The console's read views (each a router with its protocol module of bodies):
    pictures.py    sources, cameras, captures; pictures_protocol.py, picture_queries.py (which tables), and
    picture_files.py  the archive images, snips and thumbnails themselves
    occurrences.py the occurrences: list, show, identify, classify; occurrences_protocol.py
    individuals.py the individuals: list, show, snips, people's decisions; individuals_protocol.py
    catalog.py     the models page: every stored version, and two versions compared in a set of tables
    reports.py     the review reports of finished `report` jobs, opened by a signed link
    deployments.py the deployments table, clock decisions, clock problems, effort and detection histories
    console/       the static pages over these routes

Only this sub-package of serve/ imports batch/ (the options models and the tables' manifests): the detection
router knows nothing of it but the one `attach_jobs` call.
"""
