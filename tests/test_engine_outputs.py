"""Engine: statements that change what an element plays next (update_correction, the end of a sticky element,
wait_for_trigger's pulse) and the measure forms the compiler accepts or refuses, compiled and run in-process."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from qm.grpc.qm.pb import inc_qua_pb2
from qm.qua import (
    assign, counting, declare, fixed, for_, frame_rotation_2pi, infinite_loop_, measure, play, program, ramp_to_zero,
    update_correction, update_frequency, wait, wait_for_trigger,
)

from qopemu.engine import events as ev
from qopemu.engine.compiler import CompileError, compile_program
from qopemu.engine.runtime import run
from qopemu.engine.waveform_report import build
from qopemu.engine.waveforms import render
from qopemu.engine.timing import PROGRAM_START_NS, TRIGGER_RESPONSE_NS
from engine_support import IF_QUBIT, RecordingHost, SilentInputs, compile_qua, from_program_start, make_config

warnings.filterwarnings("ignore", category=DeprecationWarning)


def events_of(prog, **kw) -> list:
    return from_program_start(run(compile_qua(prog), RecordingHost(), SilentInputs(), record_events=True, **kw).events)


def plays(events: list, element: str) -> list[ev.PlayEvent]:
    return [e for e in events if isinstance(e, ev.PlayEvent) and e.element == element]


# ------------------------------------------------------------------------------------------- update_correction


def test_update_correction_applies_to_the_pulses_that_follow():
    with program() as prog:
        c = declare(fixed, value=0.25)
        play("cw", "qubit")
        update_correction("qubit", 1.0, c, 0.1, -2.0)
        play("cw", "qubit")
        assign(c, -0.5)
        play("cw", "qubit")  # the correction was taken when update_correction ran, not when c changes
        update_correction("qubit", 1.0, c, 0.0, 1.0)
        play("cw", "qubit")
    corrections = [e.correction for e in plays(events_of(prog), "qubit")]
    # 0.1 is held in 2**-16 steps: 6553.6 steps round to 6554
    assert corrections == [None, (1.0, 0.25, 6554 / 65536, -2.0), (1.0, 0.25, 6554 / 65536, -2.0),
                           (1.0, -0.5, 0.0, 1.0)]


def test_a_runtime_correction_is_rounded_to_its_step_and_saturated():
    with program() as prog:
        x = declare(fixed)
        with for_(x, -3.0, x < 3.0, x + 1.75):  # -3.0, -1.25, 0.5, 2.25
            update_correction("qubit", x, x / 3, 0.0, 1.0)
            play("cw", "qubit")
    corrections = [e.correction[:2] for e in plays(events_of(prog), "qubit")]
    third = [round(v / 3 * 65536) / 65536 for v in (-1.25, 0.5)]
    assert corrections == [(-2.0, -1.0), (-1.25, third[0]), (0.5, third[1]), (2.0 - 2**-16, 0.75)]


def test_update_correction_resets_the_frame_and_update_frequency_the_correction():
    with program() as prog:
        frame_rotation_2pi(0.25, "qubit")
        update_correction("qubit", 1.0, 0.5, 0.5, 1.0)  # QOP < 3.3: also resets the frame
        play("cw", "qubit")
        update_frequency("qubit", int(IF_QUBIT))
        play("cw", "qubit")
    first, second = plays(events_of(prog), "qubit")
    assert first.phase == 0.0 and first.correction == (1.0, 0.5, 0.5, 1.0)
    assert second.correction is None  # the config's matrix again


def test_update_correction_is_for_iq_elements_and_range_checked():
    with program() as prog:
        update_correction("flux", 1.0, 0.0, 0.0, 1.0)
        update_correction("qubit", 1.0, 2.0, 0.0, 1.0)
    with pytest.raises(CompileError) as error:
        compile_qua(prog)
    text = str(error.value)
    assert "update_correction on element 'flux', which has no mixInputs" in text
    assert "correction value 2.0 is outside the range [-2, 2)" in text


def test_corrected_pulse_samples_and_report():
    config = make_config()
    with program() as prog:
        update_correction("qubit", 0.5, 0.25, -0.25, 1.5)
        play("cw", "qubit")
    events = events_of(prog)
    out = render(events, config, 100).analog
    t = np.arange(100)
    i, q = 0.1 * np.cos(2 * np.pi * IF_QUBIT * 1e-9 * t), 0.1 * np.sin(2 * np.pi * IF_QUBIT * 1e-9 * t)
    assert np.allclose(out[("con1", 1)], 0.5 * i + 0.25 * q)
    assert np.allclose(out[("con1", 2)], -0.25 * i + 1.5 * q)
    groups = build(events, config).report["analogWaveforms"].groups
    assert [g.entry["currentCorrectionElements"] for g in groups] == [[0.5, 0.25, -0.25, 1.5]] * 2


# ------------------------------------------------------------------------------------ sticky: end of the program


def test_a_sticky_element_ramps_back_where_its_last_instruction_ends():
    with program() as prog:
        play("const", "flux")  # 16 ns
        wait(25, "flux")  # a trailing wait keeps the level for 100 ns more
        play("cw", "qubit")
    ramps = [e for e in events_of(prog) if isinstance(e, ev.RampToZeroEvent)]
    assert ramps == [ev.RampToZeroEvent("flux", 116, 20)]
    out = render(events_of(prog), make_config(), 200).analog[("con1", 5)]
    assert np.allclose(out[:116], 0.1)
    assert np.allclose(out[116:136], 0.1 * (1 - np.arange(1, 21) / 20)) and not out[136:].any()


def test_a_sticky_element_keeps_its_level_when_the_simulation_stops_first():
    with program() as prog:
        n = declare(int)
        with for_(n, 0, n < 1000, n + 1):
            play("const", "flux")
            ramp_to_zero("flux")
    ramps = [e.start for e in events_of(prog, max_time_ns=PROGRAM_START_NS + 100) if isinstance(e, ev.RampToZeroEvent)]
    assert ramps == [16, 52, 88]  # the program's own ramps, and no final one: it has not ended
    with program() as holding:
        play("const", "flux")
        with infinite_loop_():
            play("cw", "qubit")
    events = events_of(holding, max_time_ns=1000)
    assert not [e for e in events if isinstance(e, ev.RampToZeroEvent)]
    assert np.allclose(render(events, make_config(), 1000).analog[("con1", 5)], 0.1)


# -------------------------------------------------------------------------------------------- wait_for_trigger


def test_wait_for_trigger_plays_its_constant_pulse_until_the_element_resumes_after_the_trigger():
    with program() as prog:
        wait_for_trigger("qubit", pulse_to_play="cw")
        play("pi", "qubit")
    events = events_of(prog, trigger_period_ns=1000)
    # the wait starts with the program; the trigger's edge comes at 1000 ns from the job's start, the element
    # resumes TRIGGER_RESPONSE_NS later
    resume = 1000 + TRIGGER_RESPONSE_NS - PROGRAM_START_NS
    assert [(e.operation, e.start, e.length) for e in plays(events, "qubit")] == [("cw", 0, resume), ("pi", resume, 40)]


def test_wait_for_trigger_refuses_a_pulse_that_is_not_constant_or_not_defined():
    with program() as prog:
        wait_for_trigger("qubit", pulse_to_play="arb")
        wait_for_trigger("qubit", pulse_to_play="nothing")
    with pytest.raises(CompileError) as error:
        compile_qua(prog)
    text = str(error.value)
    assert ("wait_for_trigger plays operation 'arb' of element 'qubit' while waiting, which needs a constant pulse, "
            "but pulse 'arb_pulse' has the arbitrary waveform 'arb_wf'") in text
    assert "operation 'nothing' is not defined for element 'qubit'" in text


# ------------------------------------------------------------------------------------------------ measure forms


def test_the_tuple_form_of_measure_outputs_is_demod_full():
    with program() as tuple_form:
        i = declare(fixed)
        measure("readout", "resonator", None, ("cos", i), ("sin", "out2", i))
    processes = tuple_form.qua_program.script.body.statements[0].measure.measureProcesses
    assert [p.analog.WhichOneof("process") for p in processes] == ["demodIntegration"] * 2
    assert [p.analog.demodIntegration.elementOutput for p in processes] == ["", "out2"]
    compile_qua(tuple_form)


def test_the_legacy_outputs_field_and_digital_processes_without_digital_outputs_are_refused_with_their_reason():
    with program() as prog:
        n = declare(int)
        measure("readout", "resonator", counting.digital(n, 100, "out1"))
    legacy = inc_qua_pb2.QuaProgram()
    legacy.CopyFrom(prog.qua_program)
    statement = legacy.script.body.statements[0].measure
    del statement.measureProcesses[:]
    statement.outputs.add(output="out1")
    with pytest.raises(CompileError) as digital:
        compile_qua(prog)
    assert "element 'resonator' has no digital output 'out1' (its digitalOutputs: none)" in str(digital.value)
    with pytest.raises(CompileError, match="the legacy MeasureStatement 'outputs' field"):
        compile_program(legacy, make_config())
