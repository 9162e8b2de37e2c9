"""moto's server on loopback, for the AWS APIs that have no local server of their own."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from moto.server import ThreadedMotoServer

from grantwatch.local import free_port


@contextmanager
def moto_server(monkeypatch: pytest.MonkeyPatch | None = None, *services: str) -> Iterator[str]:
    """A fresh moto server on a free port, its endpoint yielded, stopped afterwards; the SDK's endpoint for
    each of `services` (KMS, LAMBDA, ...) points at it for the test."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))  # noqa: S310
        for service in services:
            assert monkeypatch is not None, "a monkeypatch is needed to point the SDK at the server"
            monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", endpoint)
        yield endpoint
    finally:
        server.stop()
