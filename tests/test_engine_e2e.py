"""update_correction, the end of sticky elements, wait_for_trigger's pulse and the measure forms, end to end:
the real client simulates against the embedded server, with exact sample values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from qm import LoopbackInterface, SimulationConfig
from qm.exceptions import FailedToExecuteJobException
from qm.qua import (counting, declare, demod, fixed, measure, play, program, save, update_correction, wait,
                    wait_for_trigger)

warnings.filterwarnings("ignore", category=DeprecationWarning)

IF = 25e6
CONFIG = {
    "controllers": {"con1": {"analog_outputs": {i: {"offset": 0.0} for i in range(1, 5)},
                             "analog_inputs": {1: {"offset": 0.0}}}},
    "elements": {
        "iq": {"mixInputs": {"I": ("con1", 1), "Q": ("con1", 2), "lo_frequency": 5e9, "mixer": "mx"},
               "intermediate_frequency": IF, "operations": {"cw": "iq_pulse"}},
        "gate": {"singleInput": {"port": ("con1", 3)}, "sticky": {"analog": True, "duration": 40},
                 "operations": {"step": "step_pulse"}},
        "ro": {"singleInput": {"port": ("con1", 4)}, "intermediate_frequency": 0,
               "operations": {"readout": "readout_pulse"}, "outputs": {"out1": ("con1", 1)},
               "time_of_flight": 24, "smearing": 0},
    },
    "pulses": {
        "iq_pulse": {"operation": "control", "length": 100, "waveforms": {"I": "const_wf", "Q": "zero_wf"}},
        "step_pulse": {"operation": "control", "length": 20, "waveforms": {"single": "const_wf"}},
        "readout_pulse": {"operation": "measurement", "length": 200, "waveforms": {"single": "const_wf"},
                          "integration_weights": {"cos": "cos_w"}},
    },
    "waveforms": {"const_wf": {"type": "constant", "sample": 0.2}, "zero_wf": {"type": "constant", "sample": 0.0}},
    "integration_weights": {"cos_w": {"cosine": [(1.0, 200)], "sine": [(0.0, 200)]}},
    "mixers": {"mx": [{"intermediate_frequency": IF, "lo_frequency": 5e9, "correction": (1.0, 0.0, 0.0, 1.0)}]},
}


def _on(trace: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.abs(trace) > 1e-9)


def test_update_correction_changes_the_iq_outputs_and_the_report(qmm):
    with program() as prog:
        c = declare(fixed, value=0.75)
        play("cw", "iq")
        update_correction("iq", c, 0.5, -0.5, 1.25)
        play("cw", "iq")
    job = qmm.simulate(CONFIG, prog, SimulationConfig(duration=200, include_analog_waveforms=True))
    samples = job.get_simulated_samples().con1.analog
    on = _on(samples["1"])
    start = on[0]
    t = np.arange(200)
    i, q = 0.2 * np.cos(2 * np.pi * IF * 1e-9 * t), 0.2 * np.sin(2 * np.pi * IF * 1e-9 * t)
    out_i, out_q = samples["1"][start:start + 200], samples["2"][start:start + 200]
    assert np.allclose(out_i[:100], i[:100]) and np.allclose(out_q[:100], q[:100])  # the config's identity
    assert np.allclose(out_i[100:], (0.75 * i + 0.5 * q)[100:])
    assert np.allclose(out_q[100:], (-0.5 * i + 1.25 * q)[100:])
    report = job.get_simulated_waveform_report()
    corrections = sorted((w.timestamp, tuple(w.current_correction_elements)) for w in report.analog_waveforms)
    assert corrections == [(start, (1.0, 0.0, 0.0, 1.0))] * 2 + [(start + 100, (0.75, 0.5, -0.5, 1.25))] * 2


def test_a_sticky_level_holds_through_trailing_waits_then_ramps_back(qmm):
    with program() as prog:
        play("step", "gate")
        wait(50, "gate")  # 200 ns more at the sticky level
    trace = qmm.simulate(CONFIG, prog, SimulationConfig(duration=200)).get_simulated_samples().con1.analog["3"]
    on = _on(trace)
    start = on[0]
    assert np.allclose(trace[start:start + 220], 0.2)
    assert np.allclose(trace[start + 220:start + 260], 0.2 * (1 - np.arange(1, 41) / 40))
    assert on[-1] == start + 258 and not trace[start + 260:].any()


def test_wait_for_trigger_in_a_simulation_waits_past_its_duration_playing_its_pulse(qmm):
    with program() as waiting:
        wait_for_trigger("gate", pulse_to_play="step")
        play("step", "gate")
        play("cw", "iq")
    with program() as plain:
        play("cw", "iq")
    jobs = [qmm.simulate(CONFIG, prog, SimulationConfig(duration=100)) for prog in (waiting, plain)]
    traces = [job.get_simulated_samples().con1.analog for job in jobs]
    assert np.array_equal(traces[0]["1"], traces[1]["1"])  # another element does not wait
    gate = traces[0]["3"]
    start = _on(traces[1]["1"])[0]
    assert np.array_equal(_on(gate), np.arange(start, 400))  # no trigger comes in a simulation
    report = jobs[0].get_simulated_waveform_report()
    assert [(w.timestamp, w.length) for w in report.analog_waveforms if w.element == "gate"] == [(start, 400 - start)]


def test_measure_tuple_outputs_give_the_demod_full_result(qmm):
    with program() as prog:
        a = declare(fixed)
        b = declare(fixed)
        measure("readout", "ro", None, ("cos", a))
        save(a, "tuple_form")
        wait(100, "ro")
        measure("readout", "ro", demod.full("cos", b, "out1"))
        save(b, "demod_full")
    loopback = LoopbackInterface([("con1", 4, "con1", 1)], latency=24)
    job = qmm.simulate(CONFIG, prog, SimulationConfig(duration=1000, simulation_interface=loopback))
    job.result_handles.wait_for_all_values()
    tuple_form = float(job.result_handles.get("tuple_form").fetch_all()["value"])
    demod_full = float(job.result_handles.get("demod_full").fetch_all()["value"])
    assert tuple_form == demod_full == pytest.approx(0.2 * 200 / 4096, rel=1e-3)


def test_digital_measure_processes_on_an_element_without_digital_outputs_are_refused(qmm, caplog):
    with program() as prog:
        n = declare(int)
        measure("readout", "ro", counting.digital(n, 100, "out1"))
    with pytest.raises(FailedToExecuteJobException):
        qmm.simulate(CONFIG, prog, SimulationConfig(duration=100))
    assert any("has no digital output 'out1'" in r.getMessage() for r in caplog.records)
