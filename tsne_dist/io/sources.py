"""Opening paths and fsspec URLs, and describing them for fingerprints."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fsspec
import numpy as np
import pandas as pd

from ..errors import InputError, UserError
from ..storage import storage_errors


def open_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of a local path or fsspec URL (s3://, gs://, memory://...).

    Raises
    ------
    InputError
        When the URL's protocol needs a package that is not installed.
    """
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        raise InputError(
            f"cannot open {url}: {str(exc).splitlines()[0]}",
            f"install the fsspec package for {protocol}:// (e.g. s3fs, gcsfs)",
        ) from None
    return fs, path


Source = str | np.ndarray | pd.DataFrame


def is_in_memory(source: object) -> bool:
    """True for arrays, tables and sequences passed through the Python API."""
    return isinstance(source, (np.ndarray, pd.DataFrame, pd.Series, list, tuple))


def source_name(source: object) -> str:
    """How messages name a source: its URL, or 'the in-memory array (shape)'."""
    if isinstance(source, np.ndarray):
        return f"the in-memory array {tuple(source.shape)}"
    if isinstance(source, pd.DataFrame):
        return f"the in-memory table {tuple(source.shape)}"
    return str(source)


def require_exists(url: Source, what: str) -> None:
    """Raise :class:`InputError` when ``url`` does not exist (in-memory data always does)."""
    if is_in_memory(url):
        return
    fs, path = open_fs(url)
    with storage_errors(url, f"read {what}", InputError):
        found = fs.exists(path)
    if not found:
        raise InputError(f"{what} {url} does not exist", "check the path")


def describe_source(url: Source) -> dict[str, Any]:
    """Identity and version of a file or folder: URL, size, modification stamp.

    In-memory data is described by a hash of its content. Used in stage
    fingerprints: a changed input recomputes the stages that read it.
    """
    if is_in_memory(url):
        return {"url": "in-memory", "content": content_hash(url if isinstance(url, pd.DataFrame) else np.asarray(url))}
    fs, path = open_fs(url)
    with storage_errors(url, "read input", InputError):
        info = fs.info(path)
        entries = fs.find(path, detail=True) if info.get("type") == "directory" else {}
    stamp = _stamp_of(info)
    size = info.get("size")
    if info.get("type") == "directory":
        size = sum(entry.get("size") or 0 for entry in entries.values())
        stamps = [str(_stamp_of(entry)) for entry in entries.values()]
        stamp = max(stamps) if stamps else stamp
    return {"url": url, "size": size, "stamp": str(stamp)}


def _stamp_of(info: dict[str, Any]) -> Any:
    """A file's modification stamp under the name its filesystem uses."""
    return next((info[key] for key in ("mtime", "LastModified", "updated", "ETag", "created") if key in info), None)


def suffix_of(url: str) -> str:
    """Lower-case file suffix without compression-free ambiguity, e.g. '.parquet'."""
    name = url.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in (".npy", ".parquet", ".pq", ".zarr", ".csv", ".tsv", ".txt"):
        if name.endswith(suffix):
            return ".parquet" if suffix == ".pq" else suffix
    return ""


def content_hash(data: np.ndarray | pd.DataFrame) -> str:
    """BLAKE2b of an in-memory array's or table's content (a table's list values by their text)."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(data, pd.DataFrame):
        for _, column in data.items():
            try:
                hashed = pd.util.hash_pandas_object(column, index=False)
            except TypeError:  # unhashable values such as lists
                hashed = pd.util.hash_pandas_object(column.map(repr), index=False)
            digest.update(hashed.to_numpy().tobytes())
        digest.update(str(list(data.columns)).encode())
    else:
        array = np.ascontiguousarray(data)
        digest.update(str((array.shape, array.dtype.str)).encode())
        if array.dtype.kind == "O":
            digest.update(pd.util.hash_array(array.ravel().astype(str)).tobytes())
        else:
            digest.update(array.view(np.uint8).ravel().data if array.size else b"")
    return digest.hexdigest()


@contextmanager
def reading(url: object, what: str) -> Iterator[None]:
    """Turn a reader's failure on a malformed or unreadable file into one :class:`InputError`."""
    try:
        yield
    except UserError:
        raise
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"cannot read {what} {source_name(url)}: {first_line}",
                         "check that the file is complete and in the format its name says") from None
