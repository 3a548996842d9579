"""Where a run's files live: a local folder or an fsspec URL (``s3://``, ``gs://``, ``memory://``).

:class:`Location` is the one place that writes our files to an output location.
Each file appears only complete: on a local disk it is written to a temporary file
and renamed (with the mode the umask gives); on an object store it is written to a
local temporary file first and uploaded to its final key once, whole. A folder
(``viewer/``) is uploaded file by file with the file that marks it complete last.

Credentials and endpoints come the way fsspec's implementation reads them (for
s3fs: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ...)
or from ``storage_options`` (passed to :func:`fsspec.core.url_to_fs`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import fsspec
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem

from .errors import StoreError, UserError

logger = logging.getLogger("tsne_dist")

SECRET_WORDS = ("key", "secret", "token", "password", "credential", "session")
# Protocols whose writes appear whole (a key is written once): no temporary name and rename there
OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}


def is_url(location: str) -> bool:
    """True when ``location`` is an fsspec URL rather than a local path."""
    return "://" in location


def normalise_location(location: str) -> str:
    """A local path made absolute (``file://`` stripped); a URL without its trailing slash.

    Raises
    ------
    StoreError
        For a URL that names no bucket or folder (``s3://``).
    """
    if not is_url(location):
        return os.path.abspath(location)
    protocol, path = location.split("://", 1)
    if not path.strip("/"):
        raise StoreError(f"{location} names no bucket or folder", "add one, e.g. s3://bucket/maps/a")
    if protocol == "file":
        return os.path.abspath(path)
    return f"{protocol}://{path.rstrip('/')}"


def redact(value: Any) -> Any:
    """``storage_options`` (or any value in them) with credentials hidden, for logs and the
    store's attrs: values of keys naming a secret, and the ``user:password@`` of URLs."""
    if isinstance(value, dict):
        return {key: "***" if any(word in str(key).lower() for word in SECRET_WORDS) else redact(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str) and "://" in value and "@" in value.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = value.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return value


class Location:
    """A run's output folder: a local path or an fsspec URL.

    Parameters
    ----------
    location : str
        Local path, ``file://`` URL or any URL an installed fsspec implementation
        serves (``s3://bucket/maps/a`` needs s3fs, ``gs://`` gcsfs).
    storage_options : dict, optional
        fsspec options for a URL (``endpoint_url``, ``key``, ``secret``, ...).

    Raises
    ------
    StoreError
        When no installed fsspec implementation serves the URL's scheme.
    """

    def __init__(self, location: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = normalise_location(location)
        self.storage_options = dict(storage_options or {})
        self.is_local = not is_url(self.url)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **(self.storage_options if not self.is_local else {}))
        except (ImportError, ValueError) as exc:
            protocol = self.url.split("://", 1)[0]
            raise StoreError(f"cannot write to {location}: {str(exc).splitlines()[0]}",
                             f"install the fsspec package for {protocol}:// (pip install \"tsne-dist[s3]\" for "
                             "s3://, \"tsne-dist[gcs]\" for gs://) or pass a local folder as `out`") from None

    def __repr__(self) -> str:
        return f"Location({self.url!r})"

    def join(self, *names: str) -> str:
        """The URL (or local path) of ``names`` inside this location."""
        return "/".join([self.url, *names]) if not self.is_local else os.path.join(self.url, *names)

    def fs_path(self, *names: str) -> str:
        """The path of ``names`` inside this location as its fsspec file system spells it."""
        return "/".join([self.root.rstrip("/"), *names])

    def exists(self, *names: str) -> bool:
        """True when ``names`` (a file or folder) exists here.

        Raises
        ------
        StoreError
            When the storage cannot be reached (endpoint, credentials).
        """
        with storage_errors(self):
            self.fs.invalidate_cache()
            return self.fs.exists(self.fs_path(*names))

    def read_bytes(self, name: str) -> bytes:
        """The content of the file ``name`` here."""
        with storage_errors(self):
            return self.fs.cat_file(self.fs_path(name))

    def check_writable(self) -> None:
        """Create the folder if needed and prove that it can be written (a probe file, removed).

        Raises
        ------
        StoreError
            One line naming the location and the fix: not a folder, no permission,
            a bucket that does not exist, missing credentials, an unreachable endpoint.
        """
        if self.is_local and os.path.exists(self.url) and not os.path.isdir(self.url):
            raise StoreError(f"output path {self.url} exists and is not a folder", "set `out` to a folder path")
        probe = self.fs_path(f".write-check-{uuid.uuid4().hex}")
        with storage_errors(self, "write to output folder" if self.is_local else "write to output location"):
            if self.is_local:  # object stores have no folders (and s3fs's makedirs would create a bucket)
                os.makedirs(self.url, exist_ok=True)
            with self.fs.open(probe, "wb") as handle:
                handle.write(b"tsne_dist")
            self.fs.rm(probe)

    def write_file(self, name: str, write: Callable[[str], None]) -> str:
        """Call ``write(local_tmp_path)`` and put the result at ``name``, whole or not at all.

        Returns
        -------
        str
            The file's URL (or local path).
        """
        if self.is_local:
            path = os.path.join(self.url, name)
            write_atomically(path, write)
            return path
        with tempfile.TemporaryDirectory(prefix="tsne-dist-") as folder:
            local = os.path.join(folder, name)
            write(local)
            with storage_errors(self, "write to output location"):
                self._upload(local, self.fs_path(name))
        return self.join(name)

    @property
    def is_object_store(self) -> bool:
        """True for S3, GCS, Azure, memory, ...: keys, no folders, no rename."""
        return bool(set(self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
                    & OBJECT_STORES)

    def _upload(self, local: str, target: str) -> None:
        """Put a local file at ``target`` whole: an object store's key is written once; on other
        file systems (sftp, hdfs, ...) the file is uploaded beside it and moved into place."""
        if self.is_object_store:
            self.fs.put_file(local, target)
            return
        partial = f"{target}.tmp-{uuid.uuid4().hex}"
        self.fs.put_file(local, partial)
        self.fs.mv(partial, target)

    def put_folder(self, local_folder: str, name: str, last: str) -> str:
        """Upload ``local_folder`` to ``name``, ``last`` (a relative path inside it, the file that
        says the folder is complete) uploaded last. What was at ``name`` is deleted first; the
        caller checks that it was ours."""
        target = self.fs_path(name)
        files = sorted(os.path.relpath(os.path.join(folder, file), local_folder)
                       for folder, _, names in os.walk(local_folder) for file in names)
        with storage_errors(self, "write to output location"):
            if self.fs.exists(target):
                self.fs.rm(target, recursive=True)
            for relative in [file for file in files if file != last] + [last]:
                self._upload(os.path.join(local_folder, relative), f"{target}/{relative.replace(os.sep, '/')}")
        return self.join(name)

    def get_folder(self, name: str, local_folder: str) -> str:
        """Download the folder ``name`` into ``local_folder``; return the local copy's path."""
        target = os.path.join(local_folder, os.path.basename(name))
        with storage_errors(self):
            self.fs.get(self.fs_path(name) + "/", target + "/", recursive=True)
        return target

    def open(self, name: str, mode: str = "rb"):
        """A file object for ``name`` here."""
        return self.fs.open(self.fs_path(name), mode)

    def remove(self, name: str) -> None:
        """Delete the file or folder ``name`` if it exists."""
        if self.exists(name):
            with storage_errors(self, "delete from output location"):
                self.fs.rm(self.fs_path(name), recursive=True)

    def scratch(self, name: str) -> DirFileSystem:
        """A filesystem rooted at the folder ``name`` here, for scratch files that Dask workers
        write and read (it pickles with its storage options, so workers need only those)."""
        return DirFileSystem(self.fs_path(name), fs=self.fs)


def current_umask() -> int:
    """The process's umask, read from /proc where it can be (setting it to read it would
    change it for every thread for a moment)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str, directory: bool = False) -> None:
    """Give ``path`` the mode a newly created file (or folder) would get under the umask.

    Temporary files and folders are private (0600 / 0700); outputs renamed from
    them must be readable like any other file the user creates.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename into ``path``, so no half file is ever seen.

    The file gets the mode the umask gives new files.
    """
    folder, name = os.path.split(path)
    handle, tmp_path = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=f".tmp{os.path.splitext(name)[1]}")
    os.close(handle)
    try:
        write(tmp_path)
        follow_umask(tmp_path)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


@contextmanager
def storage_errors(location: Location | str, action: str = "read",
                   error: type[UserError] = StoreError) -> Iterator[None]:
    """Turn a storage library's failure to reach or write ``location`` (a :class:`Location` or a URL)
    into one ``error`` naming it and the fix: credentials, endpoint, bucket, permission. Errors
    about the content, and a missing file when reading (not a missing bucket), pass unchanged."""
    url = location.url if isinstance(location, Location) else location
    try:
        yield
    except (UserError, KeyError, ValueError, TypeError):  # ours, or about the content, not the storage
        raise
    except Exception as exc:  # noqa: BLE001 - each storage library raises its own kinds
        if isinstance(exc, FileNotFoundError) and action.startswith("read") and "bucket" not in str(exc).lower():
            raise
        raise error(f"cannot {action} {url} ({_describe_failure(exc)})", _fix_for(exc, not is_url(url))) from None


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:200]


def _fix_for(exc: BaseException, is_local: bool) -> str:
    """What to do about a failed write, from the kind of failure."""
    name = type(exc).__name__
    text = str(exc).lower()
    if is_local:
        return "set `out` to a folder you can write to"
    if "credential" in name.lower() or "credential" in text:
        return "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or `storage_options` key and secret in the config file)"
    if "bucket does not exist" in text or "nosuchbucket" in text:
        return "create the bucket first, or fix its name in `out`"
    if "connect" in name.lower() or "connect" in text or "endpoint" in text:
        return "check the endpoint (AWS_ENDPOINT_URL or `storage_options` endpoint_url) and that it is reachable"
    if isinstance(exc, PermissionError) or "denied" in text or "forbidden" in text:
        return "use credentials allowed to write there, or another `out`"
    return "check the URL, the credentials and the endpoint"



def empty_folder(folder: fsspec.AbstractFileSystem) -> None:
    """Make the scratch folder ``folder`` (a filesystem rooted there) hold nothing (and exist, on a
    local disk; object stores have no folders, and s3fs's makedirs would create a bucket)."""
    remove_folder(folder)
    if isinstance(getattr(folder, "fs", folder), LocalFileSystem):
        folder.makedirs("", exist_ok=True)


def remove_folder(folder: fsspec.AbstractFileSystem) -> None:
    """Delete the scratch folder ``folder`` (a filesystem rooted there) if it exists."""
    folder.invalidate_cache()
    if folder.exists(""):
        folder.rm("", recursive=True)


@contextmanager
def storage_options_applied(storage_options: dict[str, Any] | None, urls: list[str]) -> Iterator[None]:
    """Make ``storage_options`` the defaults of fsspec protocols while the block runs.

    Options given per protocol (``{"s3": {...}, "gs": {...}}``) go to those protocols;
    a flat mapping goes to the protocol of the first URL in ``urls`` (the output's,
    when it is a URL), and so to every URL of that protocol, never to another one
    (an S3 endpoint is not an HTTP or GCS option). This is fsspec's own mechanism for
    per-protocol defaults (``fsspec.config.conf``, also filled from
    ``FSSPEC_<PROTOCOL>_<OPTION>`` environment variables): every filesystem made for
    those protocols in the block gets the options, and keeps them when it is pickled
    to a Dask worker.
    """
    protocols = [url.split("://", 1)[0] for url in urls if is_url(url) and not url.startswith("file://")]
    if not storage_options or not protocols:
        yield
        return
    per_protocol = per_protocol_options(storage_options, protocols[0])
    saved = {protocol: fsspec.config.conf.get(protocol) for protocol in per_protocol}
    for protocol, options in per_protocol.items():
        fsspec.config.conf[protocol] = {**(saved[protocol] or {}), **options}
    try:
        yield
    finally:
        for protocol, before in saved.items():
            if before is None:
                fsspec.config.conf.pop(protocol, None)
            else:
                fsspec.config.conf[protocol] = before


def per_protocol_options(storage_options: dict[str, Any], default_protocol: str) -> dict[str, dict[str, Any]]:
    """``{protocol: options}`` from ``storage_options`` given per protocol (every value a mapping
    and every key a known fsspec protocol), else ``{default_protocol: storage_options}``."""
    known = set(fsspec.available_protocols())
    if all(isinstance(value, dict) for value in storage_options.values()) and set(storage_options) <= known:
        return {protocol: dict(options) for protocol, options in storage_options.items()}
    return {default_protocol: dict(storage_options)}
