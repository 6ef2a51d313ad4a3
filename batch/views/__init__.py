"""The views: what people look at and decide on in the tables the jobs write, over HTTP, and the console that shows
them. Each view is a router module with its bodies in a protocol module beside it; every module here that defines a
`router` is attached by `attach_views` (routes.py), so a new view is its own files and nothing else on this side.

    pictures.py     sources, cameras, captures; pictures_protocol.py its bodies, picture_queries.py (which tables)
    picture_files.py  the archive images, snips, thumbnails and clip frames themselves (no router: used by pictures.py)
    found_tables.py   tables under the jobs' roots shown unconfigured, with the archive their runs record
    occurrences.py  the occurrences: list, show, identify, classify; occurrences_protocol.py
    individuals.py  the individuals: list, show, snips, weekly, people's decisions; individuals_protocol.py
    deployments.py  the deployments, clock decisions and problems, effort, histories; deployments_protocol.py
    catalog.py      the models page: every stored version, and two versions compared in a set of tables
    reports.py      the pages of finished `report` jobs, opened by the signed link the jobs' listing carries
    pages.py        the console's own files: `/console` and `/console/NAME`
    console/        the console: static HTML, JS and CSS over these routes and the jobs'
    deps.py         what the views over a set of tables share: which tables (confined to the jobs' roots), times
    routes.py       `attach_views`: every module's `router` onto the app

Why a room of its own: the jobs (batch/jobs/) are what runs; these are what is read and decided afterwards. The
views import the control plane (its path policy, a finished job's output) and never the other way round.
"""
