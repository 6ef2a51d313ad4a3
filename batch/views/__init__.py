"""The views: what people look at and decide on in the tables the jobs write, over HTTP, and the console that shows
them. A view is its module here, which defines a `router` (its bodies in `NAME_protocol.py` beside it), and its page
module in console/. `attach_views` (routes.py) attaches every module with a `router`, and the console loads every page
module the service lists (pages.py), so a new view is its own files and nothing else names it, this map included:
tests/unit/test_package_maps.py reads the views from routes.py, and docs/architecture.md's table of them is generated.
The modules that are not views:

    routes.py         `attach_views`: every module's `router` onto the app
    deps.py           what the views over a set of tables share: which tables (confined to the jobs' roots), times
    pages.py          the console's own files: `/console`, `/console/NAME`, and the page modules the console loads
    console/          the console: static HTML, JS and CSS over these routes and the jobs'; state.js its shared state
    picture_queries.py  which tables the pictures view reads (`?tables=`, or a known source), with their archive
    picture_files.py  the archive images, snips, thumbnails and clip frames themselves (no router)
    found_tables.py   tables under the jobs' roots shown unconfigured, with the archive their runs record
    season_metrics.py the season's signals as Prometheus metrics (GET /metrics), rendered, never read per scrape
    promote_gate.py   the gate before the admin promote route (serve/routes.py calls it; batch/review/promote_gate.py)

Why a room of its own: the jobs (batch/jobs/) are what runs; these are what is read and decided afterwards. The
views import the control plane (its path policy, a finished job's output) and never the other way round.
"""
