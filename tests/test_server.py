"""The server process: `qopemu serve`, its settings, clean shutdown, caller identity."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest
from qm import QuantumMachinesManager

from qopemu import settings
from qopemu.edge.identity import Identity


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_logs_where_it_listens_answers_clients_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    settings_file = tmp_path / "qopemu.toml"
    settings_file.write_text('[[controllers]]\nname = "con1"\n[[controllers]]\nname = "con2"\ncores = 10\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "qopemu.cli", "--log-level", "DEBUG", "serve", "--port", str(port),
         "--config", str(settings_file)],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                qmm = QuantumMachinesManager("127.0.0.1", port)
                break
            except Exception:
                if time.time() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        assert sorted(c.name for c in qmm.get_controllers()) == ["con1", "con2"]
        qmm.close()
    finally:
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"listening on 127.0.0.1:{port}" in log
    assert "con2 (OPX+: 10 AO, 2 AI, 10 DO, 10 DI, 10 cores)" in log
    assert "request /qm.grpc.frontend.Frontend/GetControllers" in log
    assert "stopped" in log


def test_bad_settings_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("prot = 1\n")
    with pytest.raises(settings.SettingsError, match="prot"):
        settings.load(bad)
    out = subprocess.run([sys.executable, "-m", "qopemu.cli", "serve", "--config", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "prot" in out.stderr


class _Context:
    def __init__(self, **metadata):
        self._metadata = tuple(metadata.items())

    def invocation_metadata(self):
        return self._metadata


def test_identity_header_token_and_anonymous():
    open_identity = Identity({})
    assert open_identity.caller(_Context(**{"x-qop-user": "alice"})) == "alice"
    assert open_identity.caller(_Context()) == "anonymous"
    guarded = Identity({"secret-a": "alice"})
    assert guarded.caller(_Context(authorization="Bearer secret-a")) == "alice"
    # with tokens configured, the header cannot impersonate anyone
    assert guarded.caller(_Context(**{"x-qop-user": "alice"})) == "anonymous"
    assert guarded.caller(_Context(authorization="Bearer wrong", **{"x-qop-user": "alice"})) == "anonymous"
