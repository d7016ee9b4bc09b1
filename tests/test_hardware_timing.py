"""When things happen on the hardware, through the real client: the program's lead-in, a paused simulation, the
time statements take, and loopback in time order (issue 10, items 4, 5, 10 and 12)."""

from __future__ import annotations

import numpy as np
import pytest
from qm import SimulationConfig
from qm import LoopbackInterface, QuantumMachinesManager
from qm.qua import (align, assign, declare, declare_stream, fixed, for_, if_, infinite_loop_, integration, measure,
                    pause, play, program, save, stream_processing, wait, wait_for_trigger)

import qopemu
from qopemu.settings import InputSettings, Settings

LEAD_IN = 208  # ns: where QM's simulated samples show a program's first pulse

CONFIG = {
    "controllers": {"con1": {"analog_outputs": {i: {"offset": 0.0} for i in range(1, 4)},
                             "analog_inputs": {1: {"offset": 0.0}}}},
    "elements": {
        "a": {"singleInput": {"port": ("con1", 1)}, "intermediate_frequency": 0,
              "operations": {"const": "const_pulse"}},
        "b": {"singleInput": {"port": ("con1", 2)}, "intermediate_frequency": 0,
              "operations": {"const": "const_pulse"}},
        "dc": {"singleInput": {"port": ("con1", 3)}, "intermediate_frequency": 0, "sticky": {"analog": True},
               "operations": {"const": "const_pulse"}},
        "ro": {"singleInput": {"port": ("con1", 2)}, "intermediate_frequency": 0,
               "operations": {"readout": "readout_pulse"}, "outputs": {"out1": ("con1", 1)},
               "time_of_flight": 24, "smearing": 0},
    },
    "pulses": {
        "const_pulse": {"operation": "control", "length": 100, "waveforms": {"single": "const_wf"}},
        "readout_pulse": {"operation": "measurement", "length": 400, "waveforms": {"single": "zero_wf"},
                          "integration_weights": {"ones": "ones_w"}},
    },
    "waveforms": {"const_wf": {"type": "constant", "sample": 0.25}, "zero_wf": {"type": "constant", "sample": 0.0}},
    "integration_weights": {"ones_w": {"cosine": [(1.0, 400)], "sine": [(0.0, 400)]}},
}


def _on(trace: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.abs(trace) > 1e-9)


def test_a_simulation_holds_at_pause_for_its_duration_with_the_results_saved_so_far(qmm):
    with program() as prog:
        n = declare(int)
        st = declare_stream()
        assign(n, 7)
        save(n, st)
        play("const", "a")
        play("const", "dc")
        pause()
        play("const", "b")
        assign(n, 8)
        save(n, st)
        with stream_processing():
            st.save_all("n")
    job = qmm.simulate(CONFIG, prog, SimulationConfig(duration=500))
    samples = job.get_simulated_samples().con1.analog
    a, b, dc = samples["1"], samples["2"], samples["3"]
    assert a.size == b.size == dc.size == 2000  # the whole duration
    assert _on(a).size == 100 and _on(b).size == 0  # nothing after the pause plays
    start = _on(a)[0]
    assert np.array_equal(_on(dc), np.arange(start, 2000))  # the sticky level holds to the end
    assert np.all(dc[start:] == np.float32(0.25))
    job.result_handles.wait_for_all_values()
    assert job.result_handles.get("n").fetch_all()["value"].tolist() == [7]


def _first_pulse_program():
    with program() as prog:
        n = declare(int, value=3)
        ts = declare_stream()
        st = declare_stream()
        wait(10, "a")
        play("const", "a", timestamp_stream=ts)
        save(n, st)
        with stream_processing():
            ts.save_all("ts")
            st.with_timestamps().save_all("st")
    return prog


def test_the_program_starts_after_the_platform_lead_in_and_every_time_counts_from_one_origin(qmm):
    job = qmm.simulate(CONFIG, _first_pulse_program(), SimulationConfig(duration=200, include_analog_waveforms=True))
    a = job.get_simulated_samples().con1.analog["1"]
    assert _on(a)[0] == LEAD_IN + 40 and _on(a).size == 100  # the wait stays exact to the sample
    report = job.get_simulated_waveform_report()
    assert [(w.timestamp, w.length) for w in report.analog_waveforms] == [(LEAD_IN + 40, 100)]
    job.result_handles.wait_for_all_values()
    assert job.result_handles.get("ts").fetch_all()["value"].tolist() == [(LEAD_IN + 40) // 4]  # clock cycles
    saved = job.result_handles.get("st").fetch_all()
    assert saved["value"] == 3 and saved["timestamp"] == LEAD_IN + 140  # ns


def test_an_executed_job_shares_the_lead_in(qmm):
    qm = qmm.open_qm(CONFIG)
    job = qm.execute(_first_pulse_program())
    job.result_handles.wait_for_all_values()
    assert job.result_handles.get("ts").fetch_all()["value"].tolist() == [(LEAD_IN + 40) // 4]
    assert job.result_handles.get("st").fetch_all()["timestamp"] == LEAD_IN + 140



def test_save_timestamps_advance_in_a_loop_that_plays_nothing(qmm):
    with program() as prog:
        n = declare(int)
        st = declare_stream()
        with for_(n, 0, n < 3, n + 1):
            save(n, st)
        with stream_processing():
            st.with_timestamps().save_all("n")
    job = qmm.simulate(CONFIG, prog, SimulationConfig(duration=200))
    job.result_handles.wait_for_all_values()
    saved = job.result_handles.get("n").fetch_all()
    assert saved["value"].tolist() == [0, 1, 2]
    assert saved["timestamp"].tolist() == [LEAD_IN + 84, LEAD_IN + 168, LEAD_IN + 252]  # 84 ns an iteration


def test_a_simulated_loop_that_only_computes_ends_with_the_duration(qmm):
    with program() as prog:
        n = declare(int)
        st = declare_stream()
        with infinite_loop_():
            assign(n, n + 1)
            save(n, st)
        with stream_processing():
            st.with_timestamps().save_all("n")
    job = qmm.simulate(CONFIG, prog, SimulationConfig(duration=100))  # 400 ns
    job.result_handles.wait_for_all_values()
    saved = job.result_handles.get("n").fetch_all()
    assert saved["value"].tolist() == [1, 2] and saved["timestamp"].tolist() == [LEAD_IN + 84, LEAD_IN + 168]


def test_save_timestamps_follow_the_pulses_when_they_take_longer_than_the_computation(qmm):
    with program() as prog:
        n = declare(int)
        st = declare_stream()
        with for_(n, 0, n < 3, n + 1):
            play("const", "a")
            save(n, st)
        with stream_processing():
            st.with_timestamps().save_all("n")
    job = qmm.simulate(CONFIG, prog, SimulationConfig(duration=300))
    job.result_handles.wait_for_all_values()
    assert job.result_handles.get("n").fetch_all()["timestamp"].tolist() == [LEAD_IN + 100, LEAD_IN + 200,
                                                                             LEAD_IN + 300]


def test_an_align_after_a_branch_on_a_runtime_value_leaves_the_handoff_gap(qmm):
    def two_pulses(branch: bool):
        with program() as prog:
            x = declare(int, value=1)
            if branch:
                with if_(x > 0):
                    play("const", "a")
            else:
                play("const", "a")
            align("a", "b")
            play("const", "b")
        samples = qmm.simulate(CONFIG, prog, SimulationConfig(duration=200)).get_simulated_samples().con1.analog
        return _on(samples["1"]), _on(samples["2"])

    a, b = two_pulses(branch=False)
    assert b[0] == a[-1] + 1  # deterministic: the align is a wait of known length
    a, b = two_pulses(branch=True)
    assert a[0] == LEAD_IN and b[0] == a[-1] + 1 + 20  # the cores pass the word in 20 ns


def test_wait_for_trigger_in_an_executed_job_waits_for_the_settings_trigger():
    settings = Settings(inputs=InputSettings(trigger_period_ns=2000))
    with program() as prog:
        tag = declare(int)
        ts = declare_stream()
        tags = declare_stream()
        wait_for_trigger("a", time_tag_target=tag)
        play("const", "a", timestamp_stream=ts)
        save(tag, tags)
        with stream_processing():
            ts.save_all("ts")
            tags.save_all("tag")
    with qopemu.Server(settings) as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        try:
            job = qmm.open_qm(CONFIG).execute(prog)
            job.result_handles.wait_for_all_values()
            # the wait starts with the program; the trigger's edge comes at 2000 ns; the element resumes 300 ns later
            assert job.result_handles.get("tag").fetch_all()["value"].tolist() == [2000 - LEAD_IN]
            assert job.result_handles.get("ts").fetch_all()["value"].tolist() == [(2000 + 300) // 4]
        finally:
            qmm.close_all_qms()
            qmm.close()


def _measure_then_play(save_first: bool = False):
    """The readout window opens 24 ns (time of flight) after the measure starts and lasts 400 ns; the pulse on `a`,
    which comes later in the program, plays at the same time as the readout and reaches the input 24 ns (the loopback
    latency) after it leaves: all of it falls in the window."""
    with program() as prog:
        value = declare(fixed)
        st = declare_stream()
        measure("readout", "ro", None, integration.full("ones", value, "out1"))
        if save_first:  # saving the result does not wait for the other element either
            save(value, st)
        play("const", "a")
        if not save_first:
            save(value, st)
        with stream_processing():
            st.with_timestamps().save_all("v")
    return prog


WHOLE_PULSE = 100 * 0.25 / 4096  # 2**-12 * (100 samples of 0.25 V) with weight 1


@pytest.mark.parametrize("save_first", [False, True])
def test_a_simulation_loopback_sees_a_pulse_that_comes_later_in_the_program_but_plays_during_the_window(
        qmm, save_first):
    job = qmm.simulate(CONFIG, _measure_then_play(save_first), SimulationConfig(
        duration=300, simulation_interface=LoopbackInterface([("con1", 1, "con1", 1)], latency=24)))
    job.result_handles.wait_for_all_values()
    saved = job.result_handles.get("v").fetch_all()
    assert saved["value"] == WHOLE_PULSE and saved["timestamp"] == LEAD_IN + 400  # stamped where the core saves


def test_a_result_saved_before_a_loop_that_outlasts_the_simulation_is_there(qmm):
    with program() as prog:
        value = declare(fixed)
        st = declare_stream()
        measure("readout", "ro", None, integration.full("ones", value, "out1"))
        play("const", "a")
        save(value, st)
        with infinite_loop_():
            play("const", "b")
        with stream_processing():
            st.save_all("v")
    job = qmm.simulate(CONFIG, prog, SimulationConfig(
        duration=300, simulation_interface=LoopbackInterface([("con1", 1, "con1", 1)], latency=24)))
    job.result_handles.wait_for_all_values()
    assert job.result_handles.get("v").fetch_all()["value"].tolist() == [WHOLE_PULSE]


def test_the_settings_loopback_of_executed_jobs_sees_it_too():
    settings = Settings(inputs=InputSettings(loopback=(("con1", 1, "con1", 1),), latency_ns=24))
    with qopemu.Server(settings) as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        try:
            job = qmm.open_qm(CONFIG).execute(_measure_then_play())
            job.result_handles.wait_for_all_values()
            assert job.result_handles.get("v").fetch_all()["value"] == WHOLE_PULSE
        finally:
            qmm.close_all_qms()
            qmm.close()
