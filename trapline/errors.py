"""The root of every error trapline reports to a person, and its stable codes.

Every error a user can act on derives from `TraplineError` and carries a `code` that never
changes (it is in HTTP bodies, run summaries and docs). Each door maps codes in one place:
the CLI (`trapline.cli.main`: message + exit status 2), the HTTP layer
(`serve.protocol.core_error`: status + type), the batch run summary (failed rows keep the code
as their reason). Library modules import this leaf module, never the CLI.

| code               | raised for                                                        |
|--------------------|-------------------------------------------------------------------|
| usage              | a command line or option that cannot work                        |
| not_found          | a model, version, alias or file that is not there                 |
| checksum_mismatch  | weights whose sha256 does not match config.json                   |
| storage_error      | a store or table location that cannot be used (unreachable, ...)  |
| store_error        | any other refused store operation (immutable version, ...)        |
| invalid_config     | config.json (or a serve config) that fails validation            |
| invalid_filter     | a post-processing filter config that fails validation            |
| invalid_ref        | a NAME[:VERSION|@ALIAS] that does not parse                       |
| invalid_image      | bytes that are not a usable image (`reason` says which way)       |
| model_load_failed  | weights that match their checksum but do not load                 |
| model_error        | a loaded model that fails on an input                             |
| batch_error        | a batch job that cannot start or go on (options, lease, cluster)  |
| ray_unreachable    | a Ray cluster address (--address, $RAY_ADDRESS) nothing answers at |
| serve_start_failed | a Serve app that could not be deployed or did not become ready    |
| model_unavailable  | a served model none of whose versions could be loaded at start-up |
"""

from __future__ import annotations


class TraplineError(Exception):
    """An error a user can act on; the message says what is wrong and what to do."""

    code = "error"


class UserError(TraplineError):
    """An error caused by the user's input (a command line, an option); printed without a traceback."""

    code = "usage"
