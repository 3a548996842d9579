"""`tsne-dist view OUT`: serve ``OUT/viewer/`` on 127.0.0.1 with gzip responses.

Only the loopback interface is bound: the map may hold private metadata. Text
responses (HTML, JS, CSS, JSON) are gzip-compressed when the browser accepts it;
data files are already stored compressed where that pays (see
:mod:`tsne_dist.viz.export`), so they are sent as they are.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import tempfile
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from ..errors import StoreError
from ..storage import Location
from .export import DATA_DIR, MANIFEST, VIEWER_DIR

logger = logging.getLogger("tsne_dist")

HOST = "127.0.0.1"
COMPRESSIBLE = {".html", ".js", ".css", ".json", ".txt", ".svg", ".map"}


class _Handler(SimpleHTTPRequestHandler):
    """Static files from the viewer folder; gzip for text types; no directory listings."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".json": "application/json", ".gz": "application/octet-stream", "": "application/octet-stream"}
    _cache: dict[tuple[str, float, int], bytes] = {}
    _lock = threading.Lock()

    def list_directory(self, path):  # noqa: D102 - no listings
        self.send_error(HTTPStatus.NOT_FOUND, "not found")
        return None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        extension = os.path.splitext(path)[1].lower()
        accepts_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
        if extension not in COMPRESSIBLE or not accepts_gzip or not os.path.isfile(path):
            return super().send_head()
        body = self._compressed(path)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        from io import BytesIO

        return BytesIO(body)

    def _compressed(self, path: str) -> bytes:
        stat = os.stat(path)
        key = (path, stat.st_mtime, stat.st_size)
        with self._lock:
            if key not in self._cache:
                with open(path, "rb") as handle:
                    self._cache[key] = gzip.compress(handle.read(), compresslevel=6, mtime=0)
            return self._cache[key]

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        logger.debug("view: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    downloaded: str | None = None  # a temporary copy of a viewer on object storage

    def handle_error(self, request, client_address) -> None:
        """A browser that closes a connection mid-transfer is routine, not an error worth a traceback."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            logger.debug("view: %s closed the connection early", client_address[0])
        else:
            super().handle_error(request, client_address)


def viewer_folder(out: str, storage_options: dict | None = None) -> tuple[str, str | None]:
    """``OUT/viewer`` as a local folder, after checking it holds an exported viewer.

    A viewer on object storage (``s3://...``) is downloaded to a temporary folder.

    Returns
    -------
    folder : str
        The local viewer folder.
    downloaded : str or None
        The temporary folder to delete when done (None for a local viewer).

    Raises
    ------
    StoreError
        When there is none.
    """
    location = Location(out, storage_options)
    if not location.exists(VIEWER_DIR, DATA_DIR, MANIFEST):
        raise StoreError(f"{out} holds no viewer (no {VIEWER_DIR}/{DATA_DIR}/{MANIFEST})",
                         f"run tsne-dist export {out} first")
    if location.is_local:
        return location.join(VIEWER_DIR), None
    downloaded = tempfile.mkdtemp(prefix="tsne-dist-view-")
    logger.info("view: downloading %s to %s", location.join(VIEWER_DIR), downloaded)
    return location.get_folder(VIEWER_DIR, downloaded), downloaded


def make_server(out: str, port: int = 0, storage_options: dict | None = None) -> ThreadingHTTPServer:
    """An HTTP server for ``OUT/viewer`` bound to 127.0.0.1 (``port`` 0: a free port).

    Parameters
    ----------
    out : str
        A run's output location (local folder or URL) holding an exported viewer.
    port : int
        TCP port; 0 picks a free one.
    storage_options : dict, optional
        fsspec options for a URL.

    Returns
    -------
    ThreadingHTTPServer
        Not yet serving: call ``serve_forever()`` (``server.server_address`` has the port);
        :func:`serve_until_interrupted` deletes a downloaded copy when it stops.
    """
    folder, downloaded = viewer_folder(out, storage_options)
    try:
        server = _Server((HOST, port), partial(_Handler, directory=folder))
    except OSError as exc:
        if downloaded:
            shutil.rmtree(downloaded)
        raise StoreError(f"cannot listen on {HOST}:{port} ({exc.strerror or exc})",
                         "pass another --port, or leave it out for a free one") from None
    server.downloaded = downloaded
    return server


def server_url(server: ThreadingHTTPServer) -> str:
    """The URL of the viewer page served by ``server``."""
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def serve_until_interrupted(server: ThreadingHTTPServer) -> None:
    """Serve until Ctrl+C, then close the socket."""
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if getattr(server, "downloaded", None):
            shutil.rmtree(server.downloaded, ignore_errors=True)
