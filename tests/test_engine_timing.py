"""Engine: timelines, alignment (explicit and implicit), save timestamps and the events' fields."""

from __future__ import annotations

import warnings

import pytest
from qm.qua import (
    align, amp, declare, declare_stream, fixed, for_, frame_rotation_2pi, if_, measure, play, program,
    ramp, ramp_to_zero, reset_frame, reset_if_phase, save, set_dc_offset, update_frequency, wait, dual_demod,
)

from qopemu.engine.events import AcquisitionEvent, DcOffsetEvent, PhaseResetEvent, PlayEvent, RampToZeroEvent
from qopemu.engine.runtime import run
from qopemu.engine.timing import PROGRAM_START_NS
from engine_support import IF_QUBIT, IF_RES, READOUT_LEN, RecordingHost, SilentInputs, compile_qua, from_program_start

warnings.filterwarnings("ignore", category=DeprecationWarning)


def execute(prog, **kw):
    host = RecordingHost()
    summary = run(compile_qua(prog), host, SilentInputs(), record_events=True, **kw)
    from_program_start(summary.events, host)
    return host, summary


def plays(summary, element=None):
    return [e for e in summary.events if isinstance(e, PlayEvent) and (element is None or e.element == element)]


def test_play_wait_align_and_save_timestamps():
    with program() as prog:
        x = declare(int, value=1)
        play("pi", "qubit")  # 0..40
        wait(25, "qubit")  # ..140
        save(x, "a")  # program time = latest timeline = 140
        play("cw", "resonator")  # independent element: starts at 0
        align("qubit", "resonator")  # both at 140
        play("cw", "resonator")  # 140..240
        save(x, "b")
        wait(4)  # every element: qubit 156, resonator 256
        play("pi", "qubit", duration=10)  # 156..196
        play("pi", "qubit", truncate=5)  # 196..216
        save(x, "c")
    host, summary = execute(prog)
    assert host.times["r1"] == [140] and host.times["r2"] == [240] and host.times["r3"] == [256]
    q = plays(summary, "qubit")
    r = plays(summary, "resonator")
    assert [(e.start, e.length) for e in q] == [(0, 40), (156, 40), (196, 20)]
    assert [(e.start, e.length) for e in r] == [(0, 100), (140, 100)]
    assert summary.duration_ns == PROGRAM_START_NS + 256


def test_implicit_align_in_loops_and_branches():
    with program() as prog:
        n = declare(int)
        play("cw", "resonator")  # resonator busy until 100
        with for_(n, 0, n < 3, n + 1):  # aligned before the loop and at each iteration
            play("pi", "qubit")  # 40 ns
            play("flux" if False else "cw", "resonator")  # 100 ns
        with if_(n > 0):
            play("pi", "qubit")
    _, summary = execute(prog)
    starts = [e.start for e in plays(summary, "qubit")]
    assert starts == [100, 200, 300, 340]  # the if_ holds only the qubit: nothing to align with
    assert [e.start for e in plays(summary, "resonator")] == [0, 100, 200, 300]


def test_phase_frequency_and_frame_rules():
    with program() as prog:
        play("pi", "qubit")  # t=0: phase 0
        frame_rotation_2pi(0.25, "qubit")
        play("pi", "qubit")  # t=40: 100 MHz * 40 ns = 4 cycles -> 0 + 0.25
        update_frequency("qubit", 25_000_000)  # coherent: phase = 25 MHz * t + frame
        wait(5, "qubit")  # t=100
        play("pi", "qubit")  # 25e6 * 100e-9 = 2.5 cycles -> 0.5 + 0.25
        reset_frame("qubit")
        update_frequency("qubit", 10_000_000, keep_phase=True)  # continuous from t=140
        play("pi", "qubit")  # t=140: 25e6*140e-9 = 3.5 -> 0.5
        reset_if_phase("qubit")  # t=180 becomes phase zero
        wait(5, "qubit")  # t=200
        play("pi", "qubit")  # 10e6 * 20e-9 = 0.2
    _, summary = execute(prog)
    q = plays(summary, "qubit")
    assert [e.start for e in q] == [0, 40, 100, 140, 200]
    assert [e.frequency for e in q] == [IF_QUBIT, IF_QUBIT, 25e6, 10e6, 10e6]
    assert [round(e.phase, 9) for e in q] == [0.0, 0.25, 0.75, 0.5, 0.2]
    assert any(isinstance(e, PhaseResetEvent) and e.start == 180 for e in summary.events)


def test_amp_matrix_dc_offset_ramp_and_measure_events():
    with program() as prog:
        a = declare(fixed, value=0.5)
        I = declare(fixed)
        play("pi" * amp(a), "qubit")
        play("pi" * amp(a, 0.1, -0.1, a), "qubit")
        set_dc_offset("flux", "single", 0.2)
        play("const", "flux")
        ramp_to_zero("flux", 5)
        play(ramp(0.001), "flux", duration=10)
        measure("readout" * amp(0.5), "resonator", dual_demod.full("cos", "sin", I))
    _, summary = execute(prog)
    q = plays(summary, "qubit")
    assert q[0].amp == (0.5, 0.0, 0.0, 0.5)
    assert q[1].amp == pytest.approx((0.5, 0.1, -0.1, 0.5), abs=1e-8)
    assert DcOffsetEvent("flux", "single", 0, pytest.approx(0.2)) in summary.events
    assert RampToZeroEvent("flux", 16, 20) in summary.events
    ramp_event = plays(summary, "flux")[1]
    assert (ramp_event.start, ramp_event.length, ramp_event.pulse) == (36, 40, "")
    assert ramp_event.ramp_slope == pytest.approx(0.001, abs=1e-8)
    m = plays(summary, "resonator")[0]
    assert m.is_measure and m.length == READOUT_LEN and m.amp == (0.5, 0.0, 0.0, 0.5)
    assert m.frequency == IF_RES
    acq = [e for e in summary.events if isinstance(e, AcquisitionEvent)][0]
    assert (acq.start, acq.length) == (24, READOUT_LEN)


def test_conditional_play_takes_its_time():
    with program() as prog:
        n = declare(int)
        with for_(n, 0, n < 4, n + 1):
            play("pi", "qubit", condition=n > 1)
    _, summary = execute(prog)
    assert [e.start for e in plays(summary)] == [80, 120]
    assert summary.duration_ns == PROGRAM_START_NS + 160


def test_timestamp_stream_in_clock_cycles():
    with program() as prog:
        ts = declare_stream()
        play("pi", "qubit")
        play("pi", "qubit", timestamp_stream=ts)
    host, _ = execute(prog)
    # in cycles from the one origin of every time: the job's start
    assert host.saved["r1"] == [(PROGRAM_START_NS + 40) // 4] and host.times["r1"] == [40]
