"""A thin layer over fsspec for the two store roots we support: a local directory and s3://.

fsspec gives us one API for both; the only thing it cannot give is an atomic replace, which
differs by backend (os.replace locally, a single PUT on S3), so that one operation lives here.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ground import env
from ground.errors import StorageError

T = TypeVar("T")
_TRANSPORT_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "urllib3")


def _is_transport_error(exc: BaseException) -> bool:
    """Connection and service errors of the storage client, as opposed to "not found"/"denied"."""
    if isinstance(exc, FileNotFoundError | PermissionError | StorageError):
        return False
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _TRANSPORT_MODULES


def _reachable(method: Callable[..., T]) -> Callable[..., T]:
    """Turn an unreachable or failing store into one StorageError that names it (no traceback)."""

    @functools.wraps(method)
    def wrapper(self: Storage, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if _is_transport_error(exc):
                raise StorageError(f"cannot use the store {self.root_url}: {type(exc).__name__}: {exc}") from None
            raise

    return wrapper


def precondition_failed(exc: BaseException) -> bool:
    """Whether a conditional write was refused because its condition did not hold.

    s3fs turns a failed If-None-Match into FileExistsError and a failed If-Match into an
    OSError(EINVAL) carrying S3's "pre-conditions ... did not hold" message."""
    text = str(exc).lower()
    return isinstance(exc, FileExistsError) or (
        isinstance(exc, OSError) and (exc.errno == errno.EINVAL or "precondition" in text or "pre-condition" in text))


def conditional_conflict(exc: BaseException) -> bool:
    """S3's 409 ConditionalRequestConflict: another conditional write to the key was in flight; retry it."""
    text = str(exc)
    return "ConditionalRequestConflict" in text or ("409" in text and "onflict" in text)


def _private_copy(target: str, data: bytes) -> str:
    """`data` written whole and fsync'ed under a hidden name beside `target` (created with its directory), so that
    a rename or a link can put it in place at once; returns its path."""
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


class Storage:
    """A root URL plus its filesystem. Paths passed to methods are relative to the root."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        self.root_url = root
        opts = dict(storage_options or {})
        if root.startswith("s3://"):
            # Listings must be fresh: another process may have published or promoted meanwhile.
            opts.setdefault("use_listings_cache", False)
            opts.setdefault("skip_instance_cache", True)
            endpoint = env.S3_ENDPOINT_URL.get()
            if endpoint:
                opts.setdefault("client_kwargs", {}).setdefault("endpoint_url", endpoint)
        self.fs, self.root = fsspec.core.url_to_fs(root, **opts)
        self.root = self.root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def url(self, *parts: str) -> str:
        """A full URL (or local path) for display and for other fsspec users."""
        p = self.path(*parts)
        if self.is_local:
            return p
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{p}"

    @_reachable
    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    @_reachable
    def read_bytes(self, *parts: str) -> bytes:
        if self.is_local:
            self.local_path(*parts)
        return self.fs.cat_file(self.path(*parts))

    def local_path(self, *parts: str) -> str:
        """The real path of a local entry; refuses symlinks that lead outside the root."""
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(self.path(*parts))
        if os.path.commonpath([real_root, real]) != real_root:
            raise StorageError(f"{'/'.join(parts)} resolves to {real}, outside the store root {real_root}; refused")
        return real

    @_reachable
    def listdir(self, *parts: str) -> list[str]:
        """Names (not paths) of the entries directly under `parts`; [] if it does not exist."""
        p = self.path(*parts)
        try:
            entries = self.fs.ls(p, detail=False)
        except FileNotFoundError:
            return []
        return sorted({e.rstrip("/").rsplit("/", 1)[-1] for e in entries if e.rstrip("/") != p})

    @_reachable
    def put_file(self, local_path: str, *parts: str) -> None:
        self.fs.put_file(local_path, self.path(*parts))

    @_reachable
    def get_file(self, local_path: str, *parts: str) -> None:
        self.fs.get_file(self.path(*parts), local_path)

    @_reachable
    def write_atomic(self, data: bytes, *parts: str) -> None:
        """Replace a small file so that readers see the old or the new content, never a mix."""
        target = self.path(*parts)
        if self.is_local:
            os.replace(_private_copy(target, data), target)
        else:
            self.fs.pipe_file(target, data)  # one PUT: S3 objects are replaced atomically

    @contextlib.contextmanager
    def open_atomic(self, *parts: str) -> Iterator[BinaryIO]:
        """A file to write a large output into a piece at a time: readers see the old content or the whole new
        one, never a part; on an error nothing is put in place. Locally a hidden file beside the target, fsync'ed
        and renamed over it; on S3 a multipart upload, which becomes visible only when it completes (aborted on
        an error)."""
        target = self.path(*parts)
        if self.is_local:
            directory = os.path.dirname(target)
            os.makedirs(directory, exist_ok=True)
            tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
            try:
                with open(tmp, "wb") as f:
                    yield f
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return
        try:
            f = self.fs.open(target, "wb")
        except Exception as exc:
            if _is_transport_error(exc):
                raise StorageError(f"cannot use the store {self.root_url}: {type(exc).__name__}: {exc}") from None
            raise
        try:
            yield f
        except BaseException:
            f.discard()  # s3fs: abort the multipart upload; nothing appears
            f.closed = True  # so that neither close() nor the collector tries to complete it
            raise
        f.close()

    @_reachable
    def create_exclusive(self, data: bytes, *parts: str) -> bool:
        """Write a small file only if nothing is there yet; False if something is (never overwritten).

        Locally the file is written whole under a private name and hard-linked into place (link()
        fails if the target exists, and no reader sees a half-written file); on S3 a PUT with
        `If-None-Match: *`, which S3 and S3-compatible servers refuse with 412 when the key exists.
        """
        target = self.path(*parts)
        if self.is_local:
            tmp = _private_copy(target, data)
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
            return True
        try:
            self.fs.pipe_file(target, data, mode="create")
        except (FileExistsError, OSError) as exc:
            if precondition_failed(exc):
                return False
            raise
        return True

    @_reachable
    def delete(self, *parts: str) -> None:
        """Remove one file; a file already gone is not an error."""
        try:
            self.fs.rm_file(self.path(*parts))
        except FileNotFoundError:
            pass

    @_reachable
    def delete_many(self, entries: list[tuple[str, ...]]) -> None:
        """Remove files (each given as its parts); ones already gone are not an error. On S3 one request per
        thousand keys."""
        paths = [self.path(*parts) for parts in entries]
        if not paths:
            return
        if self.is_local:
            for p in paths:
                try:
                    os.remove(p)
                except FileNotFoundError:
                    pass
            return
        try:
            self.fs.rm(paths)
        except FileNotFoundError:
            pass

    @_reachable
    def remove_tree(self, *parts: str) -> None:
        p = self.path(*parts)
        if self.fs.exists(p):
            self.fs.rm(p, recursive=True)

    @_reachable
    def remove_empty_dir(self, *parts: str) -> None:
        """Remove a directory that holds nothing: locally an rmdir (which leaves one that holds anything, a file
        written meanwhile too); on S3, where a prefix goes with its last key, the zero-byte marker key some tools
        leave for it."""
        p = self.path(*parts)
        if self.is_local:
            with contextlib.suppress(OSError):
                os.rmdir(p)
            return
        if not self.listdir(*parts):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(p + "/")

    def makedirs(self, *parts: str) -> None:
        if self.is_local:
            self.fs.makedirs(self.path(*parts), exist_ok=True)
