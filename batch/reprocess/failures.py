"""What a failed run says: one line naming the error behind Ray's wrappers and the stage it came from."""

from __future__ import annotations

import re

from ground.errors import TraplineError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit)): (.+)$")
_WRAPPERS = ("RayTaskError", "UserCodeException")


def _is_wrapper(exc: BaseException) -> bool:
    return type(exc).__name__.startswith(_WRAPPERS)


def describe_error(exc: BaseException) -> str:
    """One line for a failed run: the error behind Ray's task / user-code wrappers, and the stage it came from.

    Ray Data raises `RayTaskError(UserCodeException)` whose text is a remote traceback; the run's
    report and manifest get `"<stage>: <Type>: <message>"` instead (e.g. an S3 write that failed
    after its retries), never the traceback.
    """
    if isinstance(getattr(exc, "stage", None), str) and isinstance(getattr(exc, "cause", None), BaseException):
        # a stage the driver drives itself (writer.PartWriteError, with Ray's wrapper as its cause): its name, and
        # the first error of the remote traceback (the root of the chain: botocore's ClientError naming the S3
        # code, where s3fs re-raised it as an OSError that does not)
        cause = exc.cause
        root = _first_error_line(_ANSI.sub("", str(cause))) if _is_wrapper(cause) else None
        return f"{exc.stage}: {(root or describe_error(cause))[:1000]}"
    outer, stage = exc, None
    for _ in range(8):  # unwrap RayTaskError -> UserCodeException -> the original error, where Ray kept it
        if not _is_wrapper(exc):
            break
        stage = stage or getattr(exc, "function_name", None)
        inner = getattr(exc, "cause", None) or exc.__cause__
        if inner is None or inner is exc:
            break
        exc = inner
    text = _ANSI.sub("", str(outer))
    # a task's stage, ray::MapBatches(write_results)(); an actor's, ray::MapWorker(MapBatches(DetectorActor)).submit()
    where = re.search(r"ray::(?:\w+\()?(\w+\([\w.]+\))", text)
    stage = where.group(1) if where else stage
    if _is_wrapper(exc):  # the cause did not survive the trip back: read it off the remote traceback
        message = _first_error_line(text) or f"{type(exc).__name__}: {str(exc).strip()}"
    else:
        lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
        # trapline's own errors say their stable code (ground/errors.py); anything else its type
        kind = exc.code if isinstance(exc, TraplineError) else type(exc).__name__
        message = f"{kind}: {lines[0] if lines else ''}"
    message = message[:1000]
    return f"{stage}: {message}" if stage and stage not in message else message


def _first_error_line(text: str) -> str | None:
    """`Type: message` of the first error a remote traceback shows (Python prints a chain's root first)."""
    for line in text.splitlines():
        m = _ERROR_LINE.match(line)
        if m and not m.group(1).rsplit(".", 1)[-1].startswith(_WRAPPERS):
            return f"{m.group(1).rsplit('.', 1)[-1]}: {m.group(2).strip()}"
    return None
