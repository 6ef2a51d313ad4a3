"""The root of every error trapline reports to a person, and its stable codes.

Every error a user can act on derives from `TraplineError`, is defined in this one file, and
carries a `code` that never changes (it is in HTTP bodies, run summaries and docs) and, when the
online door can meet it, its HTTP `status`. Each door reads those attributes: the CLI
(`trapline.cli.main`: message + exit status 2), the HTTP layer (status + `{"error": {"type",
"message", ...}}`; an error whose `status` is None is not the client's fault and becomes a logged
500), the batch run summary (failed rows keep the code as their reason). There is no second tree
of HTTP errors and no table between the two. Library modules import this leaf module, never the CLI.

The table of every code with its HTTP status is generated from these classes at every docs build
(docs/hooks/reference.py -> docs/reference/errors.md), so it cannot leave one out: give a new class a
docstring and a `code`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class TraplineError(Exception):
    """An error a user can act on; the message says what is wrong and what to do.

    `status`: the HTTP status when it reaches the online door (None: not the client's fault, a logged
    500). `http_type`: the body's `type` where it differs from `code`. Keyword arguments other than
    `headers` become fields of the HTTP error body; everything survives pickling (Ray task errors)."""

    code = "error"
    status: int | None = None
    http_type: str | None = None

    def __init__(self, message: str = "", *args: Any, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message, *args)
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    @property
    def type(self) -> str:
        return self.http_type or self.code

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        err = {"type": self.type, "message": self.message, **self.extra}
        if request_id:
            err["request_id"] = request_id
        return {"error": err}

    def __reduce__(self):  # keep the subclass and every field, whatever the subclass's __init__ takes
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[TraplineError], args: tuple, state: dict[str, Any]) -> TraplineError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class UserError(TraplineError):
    """An error caused by the user's input (a command line, an option); printed without a traceback."""

    code = "usage"


# -- the model store and the detector core ----------------------------------------------------------------

class StoreError(TraplineError, RuntimeError):
    """A store operation that cannot be done; the message says why and what to do."""

    code = "store_error"


class NotFoundError(StoreError, LookupError):
    """A model, version or alias that the store does not hold, or a model this service does not serve."""

    code, status = "not_found", 404


class ChecksumError(StoreError):
    """Weights whose sha256 does not match config.json; they are never loaded."""

    code = "checksum_mismatch"


class StorageError(StoreError):
    """The store root cannot be read or written safely (unreachable, refused path)."""

    code = "storage_error"


class QuantizeError(StoreError):
    """A version that cannot be quantized as asked (wrong backend, too few images, ORT failure)."""


class QuantizeRefusedError(QuantizeError):
    """The int8 version loses more than the gate allows, or there are too few boxes to judge; nothing published.

    `report` is the `model_store.store.quantize_report.QuantizeReport`: `report.verdict` says which; the
    message (`report.refusal()`) says what to do."""

    def __init__(self, report: Any) -> None:
        super().__init__(report.refusal())
        self.report = report


class ConfigError(TraplineError, ValueError):
    """config.json is missing, not JSON, or fails validation; the message names field and value."""

    code = "invalid_config"


class ServeConfigError(ConfigError):
    """A serve config that fails validation; the message names the field and quotes the value."""


class InvalidRefError(TraplineError, ValueError):
    """A model name, version or alias that is not a safe path segment."""

    code, status, http_type = "invalid_ref", 422, "invalid_parameter"


class FilterConfigError(TraplineError, ValueError):
    """A filter name or config that is not valid; the message quotes the bad value."""

    code, status = "invalid_filter", 422


class TilingConfigError(TraplineError, ValueError):
    """A tiling setting that cannot run (overlap of 1 or more, a tile larger than the model's input, an unknown
    merge rule, ...); the message names the field and quotes the value."""

    code, status = "invalid_tiling", 422


class ImageDecodeError(TraplineError, ValueError):
    """An input that is not a usable image; `reason` is a stable code, the message says why. An empty body
    is a malformed request (400); bytes that do not decode are unprocessable (422)."""

    code = "invalid_image"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason

    @property
    def status(self) -> int:  # type: ignore[override]
        return 400 if self.reason == "empty" else 422


class ImageFetchError(TraplineError, ValueError):
    """An image named by URL (an Antenna request or task) that could not be fetched: `reason` is refused (the fetch
    guard: nothing was sent), timeout, status, too_large or connection; the message names the URL. Answered per
    image, never for the whole request."""

    code, status = "image_fetch_failed", 502

    def __init__(self, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message, reason=reason, **extra)
        self.reason = reason


class FetchRefusedError(TraplineError, OSError):
    """A URL trapline was asked to fetch that its fetch guard refuses (scheme, host, or an address it resolves to):
    nothing was sent. An OSError too, so a reader that treats an unreadable file as gone treats it the same way."""

    code, status = "fetch_refused", 403

    def __init__(self, reason: str, message: str, **extra: object) -> None:
        super().__init__(message, reason=reason, **extra)
        self.reason = reason


class ImagesFailedError(TraplineError):
    """A push request to the Antenna door whose images could not be answered: none of them (or, with
    `antenna.push_failures: fail_request`, any of them) was fetched, decoded and detected. Answered as one error that
    names each image and its error: at Antenna's commit a 2xx answer's `errors` reach neither the job's log nor its
    failed count, an error answer reaches both (the request's images counted failed, its message logged)."""

    code, status = "images_failed", 422


class ModelLoadError(TraplineError, RuntimeError):
    """Weights that exist and match their checksum but cannot be loaded by the backend."""

    code = "model_load_failed"


class ModelRunError(TraplineError, RuntimeError):
    """A loaded model that failed on an input (not the client's fault); the message names the model, the input
    and what the graph expects."""

    code, status = "model_error", 500


class RunInterruptedError(TraplineError, RuntimeError):
    """A forward pass stopped because its `Interrupt` was requested; its inputs are intact, run them again."""

    code = "interrupted"


# -- batch jobs -----------------------------------------------------------------------------------------

class BatchError(UserError, ValueError):
    """A batch command cannot run as asked; the message says why and what to change."""

    code = "batch_error"


class OptionsError(BatchError):
    """Options that cannot run; the message names the option and quotes the bad value."""


class ArchiveError(BatchError):
    """The archive location or the way to read it (pattern, extensions) is not usable."""


class LeaseHeldError(BatchError):
    """Another run holds the lease; the message names it and says what to do."""


class LeaseLostError(BatchError):
    """This run stalled past the lease's ttl and another run took the lease over; this run stops."""


class StalledError(BatchError):
    """A run that committed no part for its stall timeout; it stops, and a rerun resumes."""

    code = "stalled"


class RunStoppedError(BatchError):
    """A run asked to stop (`POST /v1/jobs/{id}/stop`, `trapline jobs stop`): it ends at its next part, lease
    released and nothing half-written; a rerun resumes."""

    code = "stopped"


class ScopeError(BatchError):
    """A scope that cannot select anything (a bad time, --since after --until, an empty camera id)."""

    code = "usage"


class LabelNotCoveredError(UserError, ValueError):
    """An identifier applied to detections of a label its `applies_to` does not list (it would compare coats of
    a species it was never made for); the message names the label and what the identifier covers."""

    code, status = "label_not_covered", 422


# -- running the service ----------------------------------------------------------------------------------

class RayUnreachableError(TraplineError, ConnectionError):
    """A Ray cluster address was given but nothing answers there; the message says which."""

    code = "ray_unreachable"

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot reach the Ray cluster at {address}: {reason}")
        self.address = address


class ServeStartError(TraplineError):
    """The app could not be deployed or did not become ready; the message says why."""

    code = "serve_start_failed"


class ServiceRequestError(UserError):
    """A request to the service (`trapline jobs ...`) that it refused or could not take; the message is the
    service's own, with its status and type."""


class ModelUnavailableError(TraplineError):
    """No version of a served model could be loaded at start-up; the message names the model and why."""

    code = "model_unavailable"


# -- errors only the HTTP door raises (the request itself is refused) -------------------------------------

class HttpError(TraplineError):
    """An error of an HTTP request as such (auth, size, parameters, capacity): raised in serve/ only."""

    code, status = "internal_error", 500


class BadRequestError(HttpError):
    """A request the service cannot read as such: an empty or malformed body, a bad header."""

    code, status = "bad_request", 400


class UnauthorizedError(HttpError):
    """No token, or a wrong one, where the service requires its API or admin token (`WWW-Authenticate: Bearer`)."""

    code, status = "unauthorized", 401


class ForbiddenError(HttpError):
    """A valid token that may not do this: a route above its person's role (serve/roles.py), or an admin route while
    the service has neither an admin token nor anyone registered."""

    code, status = "forbidden", 403


class NotTheSignerError(HttpError):
    """A decision whose `who` names someone other than the person whose token sent it (only an admin may decide for
    someone else, and is then recorded beside them)."""

    code, status = "not_the_signer", 403


class PayloadTooLargeError(HttpError):
    """A body larger than the service's `http.max_body_bytes` (its `limit` is in the error body)."""

    code, status = "payload_too_large", 413


class InvalidParameterError(HttpError):
    """A query parameter or body field that fails validation; `field` names it."""

    code, status = "invalid_parameter", 422


class VersionRefusedError(HttpError):
    """A version that cannot be served (bad checksum, corrupt weights, invalid config)."""

    code, status = "version_refused", 422


class CropGeometryChangedError(HttpError):
    """The classifier version a replica serves cuts its crops differently than the crops it was sent
    (a hot swap changed `crop_padding` / `crop_square`); the ingress learns the new geometry and
    runs the request once more, so a client sees it only if that happens twice in a row."""

    code, status = "crop_geometry_changed", 503


class InvalidOptionsError(HttpError):
    """A job's options that fail the command's options model; the message names every bad field."""

    code, status = "invalid_options", 422


class PathNotAllowedError(HttpError):
    """A job option naming a local path outside the allowed roots, or a bucket the config does not name: refused at
    the door like any other bad option (422, `field` and `fields` name it)."""

    code, status = "path_not_allowed", 422


class JobNotFoundError(HttpError):
    """A job id that the cluster's job manager does not know."""

    code, status = "job_not_found", 404


class DuplicateJobError(HttpError):
    """A job identical to one still running (same kind and options), or a submission id already used."""

    code, status = "duplicate_job", 409


class JobFinishedError(HttpError):
    """A stop of a job that has already ended."""

    code, status = "job_finished", 409


class JobsUnavailableError(HttpError):
    """The cluster's job manager (Ray's job server, on the dashboard) does not answer."""

    code, status = "jobs_unavailable", 503


class OverloadedError(HttpError):
    """The model's queue is full: retry after the `Retry-After` seconds; nothing was done."""

    code, status = "overloaded", 503


class NotReadyError(HttpError):
    """The service is starting or none of a model's versions is loaded yet; retry shortly."""

    code, status = "not_ready", 503


class ConflictError(HttpError):
    """A request that contradicts one already accepted: an `Idempotency-Key` reused with other bytes."""

    code, status = "conflict", 409


class StorageUnavailableError(HttpError):
    """The archive or tables the service records into cannot be written now; nothing of the request was kept,
    so a retry is safe."""

    code, status = "storage_unavailable", 503


class DecisionError(UserError):
    """A person's decision (identification, merge, name...) that cannot be recorded, or a log entry that cannot be
    read: the message names the field or the file at fault. Nothing is written."""

    code, status = "bad_decision", 422


class DecisionConflictError(DecisionError):
    """A person's decision that contradicts one already in the log (a merge that would put a sighting back in an
    individual someone said it is not, a merge of what is one individual already). Nothing is written."""

    code, status = "decision_conflict", 409


@contextmanager
def invalid_parameter(field: str, prefix: str) -> Iterator[None]:
    """A user error without an HTTP status of its own (no rows there, no such version in the tables), raised
    inside, answered as a 422 naming `field`; errors that have a status (404, 403...) keep it."""
    try:
        yield
    except TraplineError as exc:
        if exc.status is None:
            raise InvalidParameterError(f"{prefix}: {exc}", field=field) from None
        raise
