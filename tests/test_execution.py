"""Running jobs through the real client: control, errors, workers (issue: QUA engine)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from qm.exceptions import ErrorJobStateError
from qm.qua import (IO1, IO2, advance_input_stream, assign, declare, declare_input_stream, declare_stream, fixed,
                    amp, for_, for_each_, infinite_loop_, measure, pause, play, program, save, stream_processing)

from configs import config
from programs import paused, tagged


@pytest.fixture
def qm(connect):
    return connect("alice").open_qm(config(), close_other_machines=False)


def test_halt_stops_an_infinite_loop_within_100_ms(qm, server):
    with program() as prog:
        n = declare(int)
        with infinite_loop_():
            assign(n, n + 1)
    job = qm.queue.add(prog).wait_for_execution()
    time.sleep(0.2)
    assert job.status == "running"
    start = time.perf_counter()
    assert job.halt() is True
    elapsed = time.perf_counter() - start
    assert job.status == "canceled"
    assert elapsed < 0.1, f"halt took {elapsed * 1e3:.0f} ms"
    # the QM goes on with the next job on a fresh worker
    follow = qm.queue.add(tagged(3)).wait_for_execution(timeout=30)
    assert follow.result_handles.wait_for_all_values(timeout=30)


def test_runtime_error_fails_the_job_with_a_report_and_the_server_lives_on(qm):
    with program() as prog:
        i = declare(int, value=0)
        x = declare(int)
        assign(x, 7 / i)
    job = qm.queue.add(prog)
    deadline = time.time() + 30
    while (status := job.status) != "error":
        assert time.time() < deadline and status in ("pending", "loading", "running")
        time.sleep(0.01)
    with pytest.raises(ErrorJobStateError, match="division by zero"):
        job.wait_for_execution()
    follow = qm.queue.add(tagged(4)).wait_for_execution(timeout=30)
    follow.result_handles.wait_for_all_values(timeout=30)
    assert follow.result_handles.get("tag").fetch_all()["value"].tolist() == [4]


def test_execution_report_of_a_job_that_failed_while_running(qm):
    with program() as prog:
        n = declare(int)
        d = declare(int, value=0)
        st = declare_stream()
        pause()
        assign(n, 10 / d)
        save(n, st)
        with stream_processing():
            st.save_all("n")
    job = paused(qm.queue.add(prog))
    job.resume()
    assert job.result_handles.wait_for_all_values(timeout=30) is False
    report = job.execution_report()
    assert report.has_errors()
    assert "zero" in str(report).lower()


def test_a_worker_that_dies_fails_its_job_and_is_replaced(qm, server):
    job = paused(qm.queue.add(_pausing()))
    record = server.qop.jobs.get(job.id)
    os.kill(record.execution._worker.process.pid, signal.SIGKILL)
    record.wait_final(10)
    assert job.status == "error"
    assert "worker process" in " ".join(record.error_messages)
    follow = qm.queue.add(tagged(5)).wait_for_execution(timeout=30)
    follow.result_handles.wait_for_all_values(timeout=30)
    assert follow.result_handles.get("tag").fetch_all()["value"].tolist() == [5]


def _pausing():
    with program() as prog:
        pause()
    return prog


def test_pause_resume_and_values_visible_while_paused(qm):
    with program() as prog:
        n = declare(int)
        st = declare_stream()
        with for_(n, 0, n < 3, n + 1):
            save(n, st)
            pause()
        with stream_processing():
            st.save_all("n")
    job = paused(qm.queue.add(prog))
    handle = job.result_handles.get("n")
    for expected in ([0], [0, 1], [0, 1, 2]):
        deadline = time.time() + 10
        while job.is_paused() is False or handle.count_so_far() < len(expected):
            assert time.time() < deadline
            time.sleep(0.01)
        assert handle.fetch_all()["value"].tolist() == expected
        assert job.result_handles.is_processing()
        job.resume()
    assert job.result_handles.wait_for_all_values(timeout=10)
    assert not job.result_handles.is_processing()


def test_input_streams(qm):
    with program() as prog:
        values = declare_input_stream(fixed, "gains", size=3)
        total = declare(fixed)
        i = declare(int)
        st = declare_stream()
        with for_(i, 0, i < 2, i + 1):
            advance_input_stream(values)
            assign(total, values[0] + values[1] + values[2])
            save(total, st)
        with stream_processing():
            st.save_all("totals")
    job = qm.queue.add(prog).wait_for_execution()
    job.push_to_input_stream("gains", [0.1, 0.2, 0.3])
    job.push_to_input_stream("gains", [1.0, 1.0, -0.5])
    assert job.result_handles.wait_for_all_values(timeout=10)
    totals = job.result_handles.get("totals").fetch_all()["value"]
    assert totals == pytest.approx([0.6, 1.5], abs=1e-6)


def test_io_variables(qm):
    qm.set_io1_value(5)
    qm.set_io2_value(0.25)
    with program() as prog:
        a = declare(int)
        b = declare(fixed)
        st_a = declare_stream()
        st_b = declare_stream()
        assign(a, IO1)
        assign(b, IO2)
        save(a, st_a)
        save(b, st_b)
        assign(IO1, a * 3)
        with stream_processing():
            st_a.save("a")
            st_b.save("b")
    job = qm.queue.add(prog).wait_for_execution()
    assert job.result_handles.wait_for_all_values(timeout=10)
    assert job.result_handles.get("a").fetch_all() == 5
    assert job.result_handles.get("b").fetch_all() == pytest.approx(0.25)
    assert qm.get_io1_value()["int_value"] == 15


def test_many_halts_leak_no_descriptors_or_processes(qm):
    with program() as prog:
        n = declare(int)
        with infinite_loop_():
            assign(n, n + 1)

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    def children() -> int:
        me = str(os.getpid())
        count = 0
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        count += stat.read().split(")")[-1].split()[1] == me
                except OSError:
                    pass
        return count

    qm.execute(tagged(0)).result_handles.wait_for_all_values(timeout=30)
    time.sleep(1)
    before = descriptors(), children()
    for _ in range(15):
        qm.execute(prog).halt()
    time.sleep(2)  # replacement workers start in the background
    after = descriptors(), children()
    assert after[0] - before[0] <= 4, (before, after)
    assert after[1] - before[1] <= 2, (before, after)


def test_pushing_to_an_undeclared_input_stream_names_it(qm):
    with program() as prog:
        values = declare_input_stream(fixed, "gains", size=1)
        advance_input_stream(values)
    job = qm.queue.add(prog).wait_for_execution()
    with pytest.raises(Exception) as refused:
        job.push_to_input_stream("gain", [0.5])
    assert type(refused.value).__name__ == "UnknownInputStreamError"
    job.push_to_input_stream("gains", [0.5])
    assert job.result_handles.wait_for_all_values(timeout=10) is True


def test_element_corrections_of_a_running_job(qm):
    job = paused(qm.queue.add(_pausing()))
    assert job.get_element_correction("qubit") == (1.0, 0.0, 0.0, 1.0)  # the mixer's, for the qubit's IF and LO
    applied = job.set_element_correction("qubit", (1.0, 0.1, -0.2, 0.9))
    assert applied == pytest.approx((1.0, 0.1, -0.2, 0.9), abs=2**-17)
    assert all(v * 65536 == round(v * 65536) for v in applied)  # the platform's 2^-16 resolution
    assert job.get_element_correction("qubit") == applied
    with pytest.raises(Exception) as single:
        job.set_element_correction("resonator", (1.0, 0.0, 0.0, 1.0))
    assert type(single.value).__name__ == "ElementWithSingleInputError"
    with pytest.raises(Exception) as bad:
        job.set_element_correction("qubit", (2.5, 0.0, 0.0, 1.0))
    assert "outside the range" in str(bad.value)
    job.halt()


def test_a_correction_of_minus_two_is_held_at_qm_and_job_level_and_two_is_not(connect):
    # The platform holds corrections from -2 to 2 - 2^-16 (client docstring of set_element_correction), so -2.0 is
    # accepted in the QM's config as on the running job, and 2.0 is refused by both.
    c = config()
    c["mixers"]["mixer_qubit"][0]["correction"] = (-2.0, 0.0, 0.0, 1.0)
    qm = connect("alice").open_qm(c, close_other_machines=False)
    job = paused(qm.queue.add(_pausing()))
    assert job.get_element_correction("qubit") == (-2.0, 0.0, 0.0, 1.0)
    assert job.set_element_correction("qubit", (1.0, 0.0, 0.0, -2.0)) == (1.0, 0.0, 0.0, -2.0)
    with pytest.raises(Exception) as bad:
        job.set_element_correction("qubit", (2.0, 0.0, 0.0, 1.0))
    assert "outside the range [-2, 2)" in str(bad.value)
    job.halt()
    c["mixers"]["mixer_qubit"][0]["correction"] = (1.0, 0.0, 0.0, 2.0)
    with pytest.raises(Exception) as refused:
        connect("alice").open_qm(c, close_other_machines=False)
    assert "outside the range [-2, 2)" in str(refused.value)


def _qubit_at_if_zero() -> dict:
    """The test config with the qubit unmodulated and an identity mixer, so its I input plays the pulse as it is."""
    cfg = config()
    cfg["elements"]["qubit"]["intermediate_frequency"] = 0
    cfg["mixers"]["mixer_qubit"] = [{"intermediate_frequency": 0, "lo_frequency": 5e9, "correction": (1, 0, 0, 1)}]
    return cfg


def test_an_element_correction_changes_what_the_outputs_play():
    import qopemu
    from qm import QuantumMachinesManager
    from qm.qua import align, integration, measure, play
    from qopemu.settings import InputSettings, Settings

    cfg = _qubit_at_if_zero()
    with program() as prog:
        x = declare(fixed)
        st = declare_stream()
        pause()
        align()
        play("cw", "qubit")  # 0.2 V on I for 100 ns, looped back into analog input 1
        measure("readout", "resonator", None, integration.full("cos", x, "out1"))
        save(x, st)
        with stream_processing():
            st.save("x")
    wiring = InputSettings(loopback=(("con1", 1, "con1", 1),))
    with qopemu.Server(Settings(inputs=wiring)) as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        qm = qmm.open_qm(cfg, close_other_machines=False)
        measured = []
        for correction in (None, (0.5, 0.0, 0.0, 1.0)):
            job = paused(qm.queue.add(prog))
            if correction:
                job.set_element_correction("qubit", correction)
            job.resume()
            assert job.result_handles.wait_for_all_values(timeout=30)
            measured.append(job.result_handles.get("x").fetch_all())
        qmm.close_all_qms()
    assert measured[0] == pytest.approx(0.2 * 100 / 4096, rel=1e-3)
    assert measured[1] == pytest.approx(measured[0] / 2, rel=3e-3)  # up to the 12-bit ADC step


def test_a_server_wire_from_an_output_the_qm_does_not_declare_carries_nothing():
    """The settings' wiring is the lab's cabling, shared by every QM: output 9 is wired to input 1, but this QM does
    not declare output 9, so it adds 0 V to what input 1 sees (it used to fail the job with a bare PortRef)."""
    import qopemu
    from qm import QuantumMachinesManager
    from qm.qua import integration, measure, play
    from qopemu.settings import InputSettings, Settings

    cfg = _qubit_at_if_zero()
    with program() as prog:
        x = declare(fixed)
        st = declare_stream()
        play("cw", "qubit")  # 0.2 V on I (output 1) for 100 ns
        measure("readout", "resonator", None, integration.full("cos", x, "out1"))
        save(x, st)
        with stream_processing():
            st.save("x")
    wiring = InputSettings(loopback=(("con1", 1, "con1", 1), ("con1", 9, "con1", 1)))
    with qopemu.Server(Settings(inputs=wiring)) as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        job = qmm.open_qm(cfg, close_other_machines=False).execute(prog)
        assert job.result_handles.wait_for_all_values(timeout=30)
        assert job.status == "completed", job.execution_report()
        assert job.result_handles.get("x").fetch_all() == pytest.approx(0.2 * 100 / 4096, rel=1e-3)
        qmm.close_all_qms()


def test_an_array_read_out_of_range_goes_on_and_the_report_names_its_line(qm):
    """The platform does not stop a job on an out-of-range array access (QM docs, Guides/error.md); qopemu goes on
    too: the read gives 0, the write is dropped, and the execution report names each statement once."""
    import sys

    with program() as prog:
        a = declare(int, value=[1, 2, 3])
        i = declare(int)
        x = declare(int)
        st = declare_stream()
        with for_(i, 1, i < 5, i + 1):
            read_line = sys._getframe().f_lineno + 1
            assign(x, a[i])
            save(x, st)
            write_line = sys._getframe().f_lineno + 1
            assign(a[i + 1], 9)
        save(a[2], st)
        with stream_processing():
            st.save_all("x")
    job = qm.queue.add(prog).wait_for_execution(timeout=30)
    assert job.result_handles.wait_for_all_values(timeout=30)
    assert job.status == "completed"
    # a[1] = 2; a[2] = 9 (written by i = 1); then reads of a[3], a[4] give 0; writes to a[3..5] are dropped
    assert job.result_handles.get("x").fetch_all(check_for_errors=False)["value"].tolist() == [2, 9, 0, 0, 9]
    errors = job.execution_report().errors()
    here = __file__
    assert [(e.error_code, e.message) for e in errors] == [
        (2001, f'File "{here}", line {write_line}: assign(a[i + 1], 9) : index 3 is out of range for array '
               "'a1' of size 3; the value is not written (reported once per statement)"),
        (2001, f'File "{here}", line {read_line}: assign(x, a[i]) : index 3 is out of range for array '
               "'a1' of size 3; the read gives 0 (reported once per statement)"),
    ]


def test_a_job_that_pauses_at_once_is_paused_when_execute_returns(qm):
    """On the hardware a program that plays 1 us and pauses sits in pause() 1 us after it starts, so a script that
    loops `while not job.is_paused()` right after execute() sees it at once; qopemu must too, every time."""
    with program() as prog:
        a = declare(fixed)
        play("cw", "qubit", duration=250)  # 1 us
        pause()
        for i in range(400):  # what follows the pause is still to load when the job starts
            assign(a, a + 0.001 * i)
            play("cw" * amp(a), "qubit")
    not_yet = []  # per execute(): how many is_paused() calls answered False first
    for _ in range(50):
        job = qm.execute(prog)
        returned = time.perf_counter()
        answers = 0
        while not job.is_paused():
            answers += 1
            assert time.perf_counter() - returned < 5, "the job never reported its pause"
        not_yet.append(answers)
        job.resume()
        deadline = time.time() + 10
        while job.status != "completed":  # the next execute would cancel a job still ending
            assert time.time() < deadline
            time.sleep(0.001)
    assert not_yet == [0] * 50


def test_a_resume_right_after_execute_is_not_lost(connect):
    """QM's scripts that step an external instrument between runs (qua-libs Single-Fixed-Transmon
    06b_qubit_spectroscopy_wide_range_outer_loop.py) execute a program that pauses first and call job.resume() at
    once: the resume must reach the paused program, or the script waits forever for its first values."""
    with program() as prog:
        a = declare(fixed)
        pause()
        for i in range(400):  # what follows the pause is still to load when the job starts
            assign(a, a + 0.001 * i)
            play("cw" * amp(a), "qubit")
    qm = connect("alice").open_qm(config(), close_other_machines=False)  # on fresh workers, as a script starts
    for _ in range(10):
        job = qm.execute(prog)
        job.resume()
        deadline = time.time() + 5
        while job.status != "completed":
            assert time.time() < deadline, "the resume was lost: the job still sits in its pause"
            time.sleep(0.001)


def test_a_raw_adc_result_has_its_trace_dtype_before_the_first_trace(qm):
    # the compiler knows the readout window (the 1000 ns readout pulse, no smearing), so the result's schema gives
    # int16 traces of 1000 samples from the start, as the platform's compiled program does
    with program() as prog:
        adc = declare_stream(adc_trace=True)
        pause()
        measure("readout", "resonator", adc_stream=adc)
        with stream_processing():
            adc.input1().save_all("raw")
    job = paused(qm.queue.add(prog))
    raw = job.result_handles.get("raw")
    assert raw.fetch_all().dtype == [("value", "<i2", (1000,))]
    job.resume()
    assert job.result_handles.wait_for_all_values(timeout=10) is True
    assert raw.fetch_all().dtype == [("value", "<i2", (1000,))] and raw.fetch_all().shape == (1,)


def test_auto_reshape_gives_the_shape_of_the_loops_around_the_saves(qm):
    # the example of qm-qua's auto_reshape() docstring: "the result "reshaped" will have shape of (30,10)"; a fixed
    # loop and a for_each_ count too
    with program() as prog:
        i, j, a, b = declare(int), declare(int), declare(fixed), declare(int)
        stream, swept, listed = declare_stream(), declare_stream(), declare_stream()
        with for_(i, 0, i < 30, i + 1):
            with for_(j, 0, j < 10, j + 1):
                save(i, stream)
        with for_(a, 0.1, a < 0.45, a + 0.1):
            with for_each_(b, [3, 1, 2]):
                save(b, listed)
            save(a, swept)
        with stream_processing():
            stream.auto_reshape().save_all("reshaped")
            swept.auto_reshape().save("swept")
            listed.auto_reshape().save("listed")
    job = qm.execute(prog)
    assert job.result_handles.wait_for_all_values(timeout=10) is True
    reshaped = job.result_handles.get("reshaped").fetch_all(flat_struct=True)
    assert reshaped.shape == (30, 10) and (reshaped == np.arange(30)[:, None]).all()
    assert job.result_handles.get("swept").fetch_all() == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=1e-8)
    assert job.result_handles.get("listed").fetch_all().tolist() == [[3, 1, 2]] * 4
