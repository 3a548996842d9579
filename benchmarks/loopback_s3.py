"""A real S3-compatible server on 127.0.0.1 for the benchmarks and the tests (tests/conftest.py):
moto's server mode in a subprocess, and the AWS variables that point clients (and Dask workers)
at it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator


@contextlib.contextmanager
def loopback_s3(bucket: str) -> Iterator[dict[str, str]]:
    """Start ``moto.server`` on a free loopback port, create ``bucket``, set the AWS variables in
    this process (children inherit them, and they are restored at the end) and yield them; stop
    the server at the end."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        from s3fs import S3FileSystem

        S3FileSystem.clear_instance_cache()  # filesystems made for an earlier server
        S3FileSystem().mkdir(bucket)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=60)
        S3FileSystem.clear_instance_cache()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
