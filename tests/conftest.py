"""Shared fixtures: an embedded qopemu server and real qm-qua clients connected to it, as users would."""

from __future__ import annotations

import logging
import os

import pytest

# The client's HTTP/2 probe and grpc obey proxy variables; tests only ever talk to loopback.
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
for _name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(_name, None)

from qm import QuantumMachinesManager  # noqa: E402

import qopemu  # noqa: E402

logging.getLogger("qm").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def server():
    with qopemu.Server() as running:
        yield running


@pytest.fixture
def connect(server):
    """connect(user=None) -> a QuantumMachinesManager for that user; every QM is closed after the test."""
    managers = []

    def make(user: str | None = None, **kwargs):
        headers = {"x-qop-user": user} if user else None
        qmm = QuantumMachinesManager(server.host, server.port, connection_headers=headers, **kwargs)
        managers.append(qmm)
        return qmm

    yield make
    if managers:
        managers[0].close_all_qms()
    for qmm in managers:
        qmm.close()


@pytest.fixture
def qmm(connect):
    return connect("alice")
