"""`qopemu demo`: the seed document's stories, played by two users against an embedded server.

1. Multiple QMs: alice and bob each open a QM on one OPX+, sharing an analog output both mark shareable;
   carol's config wants that port without sharing it and is refused; closing frees it.
2. The job queue: alice opens a QM, bob finds it with `list_open_qms()` + `get_qm`, both queue jobs at the end
   and the start, inspect them (1-based positions, who added each job, when), remove some, and the rest run.
"""

from __future__ import annotations

import logging
import os
import time
import warnings

READOUT = 200


def _config(analog_outputs: dict, element_port: int) -> dict:
    return {
        "controllers": {"con1": {"analog_outputs": analog_outputs,
                                 "analog_inputs": {1: {"offset": 0.0, "shareable": True}}}},
        "elements": {
            "qubit": {
                "singleInput": {"port": ("con1", element_port)},
                "intermediate_frequency": 50e6,
                "operations": {"x": "x_pulse", "readout": "readout_pulse"},
                "outputs": {"out1": ("con1", 1)},
                "time_of_flight": 24,
            }
        },
        "pulses": {
            "x_pulse": {"operation": "control", "length": 40, "waveforms": {"single": "x_wf"}},
            "readout_pulse": {"operation": "measurement", "length": READOUT, "waveforms": {"single": "x_wf"},
                              "integration_weights": {"cos": "cos_w", "sin": "sin_w"}},
        },
        "waveforms": {"x_wf": {"type": "constant", "sample": 0.2}},
        "integration_weights": {"cos_w": {"cosine": [(1.0, READOUT)], "sine": [(0.0, READOUT)]},
                                "sin_w": {"cosine": [(0.0, READOUT)], "sine": [(1.0, READOUT)]}},
    }


def _sweep_program(shots: int, hold: bool = False):
    """An averaged amplitude sweep of the readout, looped back into the input; with `hold`, it pauses first so the
    queue behind it can be inspected."""
    from qm.qua import (amp, declare, declare_stream, demod, fixed, for_, measure, pause, play, program, save,
                        stream_processing, wait)

    with program() as prog:
        n = declare(int)
        a = declare(fixed)
        i = declare(fixed)
        i_st = declare_stream()
        a_st = declare_stream()
        if hold:
            pause()
        with for_(n, 0, n < shots, n + 1):
            with for_(a, 0.1, a < 1.05, a + 0.1):
                play("x" * amp(a), "qubit")
                measure("readout" * amp(a), "qubit", None, demod.full("cos", i, "out1"))
                wait(250, "qubit")
                save(a, a_st)
                save(i, i_st)
        with stream_processing():
            a_st.buffer(10).average().save("amplitudes")
            i_st.buffer(10).average().save("I")
    return prog


def run_demo() -> None:
    os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
    from qm import QuantumMachinesManager
    from qm.exceptions import OpenQmException

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the client's config loader's, not ours

    from qopemu.server import Server
    from qopemu.settings import InputSettings, Settings

    logging.getLogger("qopemu").setLevel(logging.WARNING)
    # Analog output 2 (alice's qubit) is wired back into analog input 1, so measurements see what was played.
    wiring = InputSettings(noise_std=0.001, loopback=(("con1", 2, "con1", 1),))
    with Server(Settings(inputs=wiring)) as server:
        print(f"qopemu server on {server.host}:{server.port} emulating {server.qop.describe()}\n")

        def user(name: str) -> QuantumMachinesManager:
            # The demo prints what happens itself, so the client's own log stays quiet.
            return QuantumMachinesManager(server.host, server.port, connection_headers={"x-qop-user": name},
                                          log_level="CRITICAL")

        alice, bob, carol = user("alice"), user("bob"), user("carol")

        print("== Multiple QMs with shared ports ==")
        qm_a = alice.open_qm(_config({1: {"offset": 0.0, "shareable": True}, 2: {}}, 2), close_other_machines=False)
        print(f"alice opened {qm_a.id}: analog outputs 1 (shareable) and 2")
        qm_b = bob.open_qm(_config({1: {"offset": 0.0, "shareable": True}, 3: {}}, 3), close_other_machines=False)
        print(f"bob   opened {qm_b.id}: analog outputs 1 (shareable) and 3 -> port 1 is shared")
        try:
            carol.open_qm(_config({1: {"offset": 0.0}, 4: {}}, 4), close_other_machines=False)
        except OpenQmException as refused:
            reason = next(line for line in str(refused).splitlines() if "PHYSICAL" in line)
            print(f"carol's open is refused: {reason.strip()}")
        print(f"open QMs: {alice.list_open_qms()}")
        qm_b.close()
        print(f"bob closed {qm_b.id}; open QMs: {alice.list_open_qms()}\n")

        print("== Job queue shared by two users ==")
        qm = alice.open_qm(_config({1: {"offset": 0.0, "shareable": True}, 2: {}}, 2), close_other_machines=True)
        print(f"alice opened {qm.id}")
        with warnings.catch_warnings():  # the seed document's spelling, deprecated in qm-qua 1.2 for list_open_qms
            warnings.simplefilter("ignore")
            qm_list = bob.list_open_quantum_machines()
        qm_bob = bob.get_qm(qm_list[0])
        print(f"bob found it with list_open_quantum_machines() + get_qm: {qm_bob.id}")
        holder = qm.queue.add(_sweep_program(10, hold=True))
        running = holder.wait_for_execution()
        while not running.is_paused():  # as py-qua-tools' wait_until_job_is_paused does
            time.sleep(0.01)
        print(f"alice's job {running.id} is running and paused at its start, so the queue fills up behind it")
        a1 = qm.queue.add(_sweep_program(100))
        b1 = qm_bob.queue.add(_sweep_program(50))
        a2 = qm.queue.add(_sweep_program(20))
        b_urgent = qm_bob.queue.add_to_start(_sweep_program(5))
        print(f"queue.count = {qm.queue.count}")
        for position in range(1, len(qm.queue) + 1):
            job = qm.queue[position]
            print(f"  position {job.position_in_queue()}: {job.id} added by {job.user_added} "
                  f"at {job.time_added:%H:%M:%S.%f}")
        print(f"bob's pending jobs: {[j.id for j in qm.queue.get_by_user_id('bob')]}")
        print(f"alice removes position 3 ({qm.queue.get_at(3).id}): removed {qm.queue.remove_by_position(3)}")
        print(f"bob cancels {a2.id}: {qm_bob.queue.get(a2.id).cancel()}")
        print(f"pending now: {[j.id for j in qm.queue.pending_jobs]}")
        running.resume()
        print("alice resumes her job; the queue runs in turn")
        for pending in (b_urgent, a1):
            job = pending.wait_for_execution()
            job.result_handles.wait_for_all_values()
            amplitudes = job.result_handles.get("amplitudes").fetch_all()
            i_values = job.result_handles.get("I").fetch_all()
            print(f"  {job.id} ({pending.user_added}) {job.status}: amp sweep {amplitudes.round(1).tolist()}")
            print(f"      demodulated I x 1e3 (looped back, averaged) {(i_values * 1e3).round(2).tolist()}")
        try:
            b1.wait_for_execution(timeout=1)
        except Exception as exc:  # removed by position above
            print(f"  {b1.id} was removed: {type(exc).__name__}")
        alice.close_all_qms()
        print(f"\nclosed all QMs; open QMs: {alice.list_open_qms()}")
    print("demo done")

