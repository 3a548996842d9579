"""Opening paths and fsspec URLs, and describing them for fingerprints."""

from __future__ import annotations

from typing import Any

import fsspec

from ..errors import InputError


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


def require_exists(url: str, what: str) -> None:
    """Raise :class:`InputError` when ``url`` does not exist."""
    fs, path = open_fs(url)
    if not fs.exists(path):
        raise InputError(f"{what} {url} does not exist", "check the path")


def describe_source(url: str) -> dict[str, Any]:
    """Identity and version of a file or folder: URL, size, modification stamp.

    Used in stage fingerprints: a changed file recomputes the stages that read it.
    """
    fs, path = open_fs(url)
    info = fs.info(path)
    stamp = next((info[key] for key in ("mtime", "LastModified", "updated", "ETag", "created") if key in info), None)
    size = info.get("size")
    if info.get("type") == "directory":
        entries = fs.find(path, detail=True)
        size = sum(entry.get("size") or 0 for entry in entries.values())
        stamps = [str(entry.get("mtime", entry.get("LastModified", ""))) for entry in entries.values()]
        stamp = max(stamps) if stamps else stamp
    return {"url": url, "size": size, "stamp": str(stamp)}


def suffix_of(url: str) -> str:
    """Lower-case file suffix without compression-free ambiguity, e.g. '.parquet'."""
    name = url.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in (".npy", ".parquet", ".pq", ".zarr", ".csv", ".tsv", ".txt"):
        if name.endswith(suffix):
            return ".parquet" if suffix == ".pq" else suffix
    return ""
