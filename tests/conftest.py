"""Shared by every test directory: the built-in models' folder, and a loopback S3 endpoint.

No S3 service can be reached from the machines this suite runs on, so the one fake
the storage tests admit to is moto's standalone server: a real HTTP S3 API on
127.0.0.1, spoken to through pyarrow's S3FileSystem exactly as a bucket would be.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Set before any test starts Ray, so every Ray worker inherits them. moto accepts any
# key; without them the AWS SDK would search for credentials (and an instance role).
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "forge-test", "AWS_SECRET_ACCESS_KEY": "forge-test",
                  "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
os.environ.update(S3_CREDENTIALS)


@pytest.fixture(scope="session")
def builtin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where in-process tests build the built-in tiny models: once per session, shared by every wing."""
    return tmp_path_factory.mktemp("builtin")


@pytest.fixture(scope="session")
def s3_endpoint():
    """host:port of a moto S3 server on loopback, for this test session."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the moto S3 server did not start")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def s3_location(s3_endpoint):
    """A function giving a fresh FORGE_STORAGE URI (s3://forge-tests/<prefix>?…) on the endpoint."""
    import pyarrow.fs as pafs

    bucket = "forge-tests"
    pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http", allow_bucket_creation=True).create_dir(bucket)
    return lambda prefix: f"s3://{bucket}/{prefix}?endpoint_override={s3_endpoint}&scheme=http"
