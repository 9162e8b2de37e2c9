"""moto's server on loopback, for the AWS APIs that have no local server of their own: one per test process,
started on first use and emptied (moto's reset) for each test that uses it. Starting and stopping a server
per test cost half a second each time, the most of it waiting for the server's shutdown."""

from __future__ import annotations

import atexit
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest
from moto.server import ThreadedMotoServer

from grantwatch.local import free_port


@cache
def _endpoint() -> str:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    atexit.register(server.stop)
    return f"http://127.0.0.1:{port}"


@contextmanager
def moto_server(monkeypatch: pytest.MonkeyPatch | None = None, *services: str) -> Iterator[str]:
    """The process's moto server, emptied of what any earlier test made, its endpoint yielded; the SDK's
    endpoint for each of `services` (KMS, LAMBDA, ...) points at it for the test."""
    endpoint = _endpoint()
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))  # noqa: S310
    for service in services:
        assert monkeypatch is not None, "a monkeypatch is needed to point the SDK at the server"
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", endpoint)
    yield endpoint
