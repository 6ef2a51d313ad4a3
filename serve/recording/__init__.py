"""Keep what the online door sees: `POST /v1/images` stores each upload in an archive and records its rows in
the same tables an archive run writes, exactly once; `GET /v1/images/{id}`, `/v1/cameras` read them back.

    uploads.py    where an upload's bytes go (archive path from camera, capture date, content hash) and what
                  is remembered of it (its capture time, the upload record, Idempotency-Keys)
    recorder.py   the recorder of one replica: run the served pipeline, journal the rows, commit them in parts
    queries.py    the read side, from the tables (never from a replica's memory)
    routes.py     the HTTP routes, attached to the ingress's FastAPI app when recording is configured
    identify.py   re-identification online: each kept detection an identifier covers, matched against the gallery

The rows go through model_store/tables (the tables' contract: codec, journal, fenced commit), the one place both
doors write through.
"""
