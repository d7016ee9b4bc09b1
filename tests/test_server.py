"""The server process: `qopemu serve`, its settings, clean shutdown, caller identity."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import numpy as np
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


def test_tokens_decide_who_added_a_job_and_the_header_cannot_impersonate():
    import qopemu
    from configs import config
    from programs import paused, held

    with qopemu.Server(settings.Settings(users={"token-a": "alice"})) as server:
        alice = QuantumMachinesManager(server.host, server.port,
                                       connection_headers={"authorization": "Bearer token-a"})
        mallory = QuantumMachinesManager(server.host, server.port, connection_headers={"x-qop-user": "alice"})
        qm = alice.open_qm(config(), close_other_machines=False)
        holder = paused(qm.queue.add(held()))
        mine = qm.queue.add(held())
        theirs = mallory.get_qm(qm.id).queue.add(held())
        assert (mine.user_added, theirs.user_added) == ("alice", "anonymous")
        assert [j.id for j in qm.queue.get_by_user_id("alice")] == [mine.id]
        holder.halt()
        alice.close_all_qms()


def test_server_wide_loopback_reaches_executed_jobs():
    import qopemu
    from configs import config
    from qm.qua import declare, declare_stream, demod, fixed, measure, program, save, stream_processing

    wiring = settings.InputSettings(loopback=(("con1", 3, "con1", 1),))  # the resonator's output into input 1
    with qopemu.Server(settings.Settings(inputs=wiring)) as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        qm = qmm.open_qm(config(), close_other_machines=False)
        with program() as prog:
            i = declare(fixed)
            st = declare_stream()
            measure("readout", "resonator", None, demod.full("cos", i, "out1"))
            save(i, st)
            with stream_processing():
                st.save("I")
        job = qm.queue.add(prog).wait_for_execution()
        assert job.result_handles.wait_for_all_values(timeout=30)
        measured = job.result_handles.get("I").fetch_all()
        # 0.2 V at 100 MHz for 1000 ns comes back 24 ns late, demodulated against the element's oscillator:
        # I = 2^-12 * sum(0.2 cos(w(t - 24 ns)) cos(wt)) = 0.2 * 1000/2 / 4096 * cos(w * 24 ns)
        expected = 0.2 * 1000 / 2 / 4096 * np.cos(2 * np.pi * 100e6 * 24e-9)
        assert measured == pytest.approx(expected, rel=1e-3)
        qmm.close_all_qms()


def test_realtime_setting_paces_jobs_to_hardware_time():
    import qopemu
    from configs import config
    from qm.qua import declare, declare_stream, program, save, stream_processing, wait

    with program() as prog:
        n = declare(int, value=1)
        st = declare_stream()
        wait(50_000_000, "qubit")  # 200 ms of hardware time
        save(n, st)
        with stream_processing():
            st.save("n")
    durations, waited = {}, {}
    for realtime in (False, True):
        with qopemu.Server(settings.Settings(realtime=realtime)) as server:
            qmm = QuantumMachinesManager(server.host, server.port)
            qm = qmm.open_qm(config(), close_other_machines=False)
            added = time.monotonic()
            job = qm.queue.add(prog).wait_for_execution()
            assert job.result_handles.wait_for_all_values(timeout=30)
            waited[realtime] = time.monotonic() - added
            record = server.qop.jobs.get(job.id)
            durations[realtime] = (record.time_ended - record.time_started).total_seconds()
            qmm.close_all_qms()
    # Unpaced, the 200 ms wait takes no time. Paced, the value cannot come before 200 ms after the job was added
    # (the server's own start and end stamps can lag the worker's clock when the machine is loaded).
    assert durations[False] < 0.15
    assert waited[True] >= 0.2 and durations[True] >= 0.15


def test_realtime_paces_the_whole_timeline_pauses_and_input_streams_included_and_halts_at_once():
    """With realtime, a job is running for as long as its hardware time, saves or not: a wait of 1 s keeps it
    running 1 s, a pause comes at its hardware time and the time paused (or waiting for input stream data) does not
    count. Halting still kills the program at once."""
    import qopemu
    from configs import config
    from qm.qua import advance_input_stream, declare_input_stream, fixed, pause, play, program, wait

    second = 250_000_000  # clock cycles
    with program() as waits:
        play("cw", "qubit")
        wait(second, "qubit")
    with program() as pauses:
        play("cw", "qubit")
        wait(int(0.4 * second), "qubit")
        pause()
        wait(int(0.4 * second), "qubit")
    with program() as reads:
        x = declare_input_stream(fixed, name="x")
        advance_input_stream(x)
        play("cw", "qubit")
        wait(int(0.4 * second), "qubit")

    def until(predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline
            time.sleep(0.005)
        return time.monotonic()

    with qopemu.Server(settings.Settings(realtime=True)) as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        qm = qmm.open_qm(config(), close_other_machines=False)
        job = qm.execute(waits)
        started = time.monotonic()
        time.sleep(0.7)
        assert job.status == "running"  # no save ever comes to pace it: the end is paced
        ended = until(lambda: job.status == "completed")
        assert 0.9 <= ended - started < 2  # (execute() returns a little after the program started)

        job = qm.execute(pauses)
        started = time.monotonic()
        paused = until(job.is_paused)
        assert 0.3 <= paused - started < 1.2  # the pause comes after the 0.4 s before it
        time.sleep(0.3)  # paused: no hardware time passes
        assert job.is_paused() and job.status == "running"
        resumed = time.monotonic()
        job.resume()
        ended = until(lambda: job.status == "completed")
        assert 0.3 <= ended - resumed < 1.2  # then the 0.4 s after it

        job = qm.execute(reads)
        time.sleep(0.3)  # the program waits for its input
        pushed = time.monotonic()
        job.push_to_input_stream("x", [0.5])
        ended = until(lambda: job.status == "completed")
        assert 0.35 <= ended - pushed < 1.2  # the 0.4 s after the read count from the data's arrival

        job = qm.execute(waits)
        time.sleep(0.2)
        halting = time.perf_counter()
        assert job.halt() is True
        assert time.perf_counter() - halting < 0.1
        assert job.status == "canceled"
        qmm.close_all_qms()


def test_status_command_lists_qms_and_queues(server, connect, capsys):
    from configs import config
    from programs import held, paused
    from qopemu.cli import main

    qm = connect("alice").open_qm(config(), close_other_machines=False)
    running = paused(qm.queue.add(held()))
    qm.queue.add(held())
    assert main(["status", "--host", server.host, "--port", str(server.port)]) == 0
    out = capsys.readouterr().out
    assert f"{qm.id}: 1 pending, running: {running.id}" in out
    running.halt()


def test_a_second_server_on_a_used_port_fails_loudly(server):
    import qopemu

    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        qopemu.Server(port=server.port).start()


@pytest.mark.parametrize("bad, named", [
    ({"port": "9510"}, "port must be int"),
    ({"workers": 0}, "workers must be between 1 and 64"),
    ({"realtime": 1}, "realtime must be bool"),
    ({"controllers": [{"name": "con1", "cores": "18"}]}, "controllers[0].cores must be int"),
    ({"controllers": [{"name": "con1", "ports": 3}]}, "unknown key(s) in controllers[0]: ports"),
    ({"inputs": {"loopback": [["con1", 1, "con1"]]}}, "inputs.loopback entries"),
    ({"users": {"token": 7}}, "users must map"),
])
def test_every_bad_setting_is_named(bad, named):
    with pytest.raises(settings.SettingsError) as refused:
        settings.from_dict(bad)
    assert named in str(refused.value)
