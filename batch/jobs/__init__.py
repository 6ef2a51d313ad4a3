"""The control plane: the archive door's jobs over HTTP, run by the cluster's own job manager (Ray Jobs).

    kinds.py        the job kinds, one per command of the registry (batch/commands.py): argv from options, recognition
    paths.py        which locations a job may name: local roots and s3:// buckets
    control.py      submit / list / show / logs / stop through Ray's Job Submission API; progress from run manifests
    backfill.py     the backfill on promote: one job per promoted version, deduplicated by its submission id
    routes.py       the jobs, filters and preview routes, attached in one line (`attach_jobs`)
    deps.py         the control plane on the app's state (`control_of`)
    report_links.py the signed links to finished report jobs' pages, added to the jobs' listings
    launch.py       what the console's job forms are built from (job kinds, locations); launch_protocol.py its bodies
    locations.py    the archives and tables under the allowed roots, for those forms to pick from
    cli.py          `trapline jobs submit|list|show|logs|stop`, a client of those routes

What people look at and decide on in the tables the jobs write (the views, and the console itself) is batch/views/,
which reads through this control plane's path policy. Only these two sub-packages of batch/ are HTTP routes: serve/
knows neither (trapline/service.py attaches both to the ingress).
"""
