"""The ground floor: what every room stands on and that imports nothing above it (no door, no store, no CLI).

    errors.py          the typed errors, each knowing its HTTP status and exit code
    problems.py        a validation error turned into one line a person can act on (flag names, field paths)
    env.py             every environment variable trapline reads, declared once
    storage.py         local paths and s3:// alike (fsspec): atomic writes, listings
    ray_runtime.py     starting or joining Ray, quietly
    ray_output.py      Ray's own output kept off the user's terminal
    ray_leftovers.py   what a local Ray leaves behind when it stops, found and ended
    entry.py           how every entry point runs a command (exit codes, Ctrl-C)
    stops.py           SIGTERM and Ctrl-C from main's first line to its last: held, raised once, kept through ray.init
    every.py           a job run at most every N seconds, and at its first chance even just after boot
    printed.py         a command's result: its text for people, its data for --json
    service_records.py running `trapline serve` services on record, so later commands find them
    fetch_guard.py     where a fetch made on someone's behalf may go (SSRF: hosts, every resolved address)
    guarded_http.py    httpx clients whose every connection passes that guard, to the address it checked

Its own package, below the composition root `trapline/` (cli.py, demo.py, service.py), which imports everything;
nothing here imports `trapline` or a room (`make lint`'s import contracts), and no room imports `trapline` but
`python -m batch.reprocess`, a name for the CLI.
"""
