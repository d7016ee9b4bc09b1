"""qmm.simulate / qm.simulate through the real client: sample-level facts (issue: simulation)."""

from __future__ import annotations

import copy
import os
import time

import numpy as np
import pytest
from qm import LoopbackInterface, SimulationConfig
from qm.exceptions import FailedToExecuteJobException
from qopemu.engine.timing import PROGRAM_START_NS
from qm.qua import (align, amp, assign, declare, declare_stream, demod, fixed, frame_rotation_2pi, infinite_loop_, measure,
                    play, program,
                    reset_phase, save, stream_processing, wait)

CONFIG = {
    "controllers": {"con1": {"analog_outputs": {i: {"offset": 0.0} for i in range(1, 5)},
                             "analog_inputs": {1: {"offset": 0.0}}}},
    "elements": {
        "a": {"singleInput": {"port": ("con1", 1)}, "intermediate_frequency": 0,
              "operations": {"const": "const_pulse"}},
        "b": {"singleInput": {"port": ("con1", 2)}, "intermediate_frequency": 0,
              "operations": {"const": "const_pulse"}},
        "osc": {"singleInput": {"port": ("con1", 3)}, "intermediate_frequency": 25e6,
                "operations": {"const": "const_pulse"}},
        "ro": {"singleInput": {"port": ("con1", 4)}, "intermediate_frequency": 0,
               "operations": {"readout": "readout_pulse"}, "outputs": {"out1": ("con1", 1)},
               "time_of_flight": 24, "smearing": 0},
    },
    "pulses": {
        "const_pulse": {"operation": "control", "length": 100, "waveforms": {"single": "const_wf"}},
        "readout_pulse": {"operation": "measurement", "length": 200, "waveforms": {"single": "const_wf"},
                          "integration_weights": {"cos": "cos_w"}},
    },
    "waveforms": {"const_wf": {"type": "constant", "sample": 0.2}},
    "integration_weights": {"cos_w": {"cosine": [(1.0, 200)], "sine": [(0.0, 200)]}},
}


def _on(trace: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.abs(trace) > 1e-9)


def test_samples_have_the_requested_duration_and_pulses_start_together(qmm):
    with program() as prog:
        play("const", "a")
        play("const", "b")
    job = qmm.simulate(CONFIG, prog, SimulationConfig(duration=100))
    samples = job.get_simulated_samples()
    a, b = samples.con1.analog["1"], samples.con1.analog["2"]
    assert a.size == b.size == 400  # 100 clock cycles of 4 ns at 1 GS/s
    assert np.array_equal(_on(a), _on(b))
    assert _on(a).size == 100 and np.allclose(a[_on(a)], 0.2)


def test_align_serialises_two_elements(qmm):
    with program() as prog:
        play("const", "a")
        align("a", "b")
        play("const", "b")
    samples = qmm.simulate(CONFIG, prog, SimulationConfig(duration=200)).get_simulated_samples()
    a, b = _on(samples.con1.analog["1"]), _on(samples.con1.analog["2"])
    assert b[0] == a[-1] + 1 and b.size == 100


def test_wait_and_amplitude(qmm):
    with program() as prog:
        wait(25, "a")  # 100 ns
        play("const" * amp(0.5), "a")
    a = qmm.simulate(CONFIG, prog, SimulationConfig(duration=200)).get_simulated_samples().con1.analog["1"]
    on = _on(a)
    assert on[0] - _on(a)[0] == 0 and on.size == 100
    assert np.allclose(a[on], 0.1)
    first_start = on[0]
    with program() as prog:
        play("const", "a")
    reference = _on(qmm.simulate(CONFIG, prog, SimulationConfig(duration=100)).get_simulated_samples().con1.analog["1"])
    assert first_start - reference[0] == 100


def test_if_frequency_and_phase_rules(qmm):
    with program() as prog:
        play("const", "osc")
        reset_phase("osc")
        play("const", "osc")
        frame_rotation_2pi(0.25, "osc")
        play("const", "osc")
    trace = qmm.simulate(CONFIG, prog, SimulationConfig(duration=200)).get_simulated_samples().con1.analog["3"]
    on = _on(trace)
    t = np.arange(100)
    omega = 2 * np.pi * 25e6 * 1e-9
    first = trace[on[0]:on[0] + 100]
    # a 25 MHz cosine of some phase: fit the phase, then the whole pulse must match
    phase = np.angle(np.sum(first * np.exp(-1j * omega * t)))
    assert np.allclose(first, 0.2 * np.cos(omega * t + phase), atol=1e-3)
    second = trace[on[0] + 100:on[0] + 200]
    # after reset_phase the oscillator phase is zero at the start of the next pulse
    assert np.allclose(second, 0.2 * np.cos(2 * np.pi * 25e6 * t * 1e-9), atol=1e-6)
    third = trace[on[0] + 200:on[0] + 300]
    phase0 = 2 * np.pi * 25e6 * 100e-9  # the oscillator ran on for the 100 ns of the second pulse
    assert np.allclose(third, 0.2 * np.cos(2 * np.pi * 25e6 * t * 1e-9 + phase0 + np.pi / 2), atol=1e-6)


@pytest.mark.parametrize("delayed_outputs", [False, True])
def test_loopback_delay_and_measured_value(qmm, delayed_outputs):
    config = copy.deepcopy(CONFIG)
    if delayed_outputs:  # an output filter delays every output, and the time of flight with them
        config["controllers"]["con1"]["analog_outputs"][2]["filter"] = {"feedforward": [1.0], "feedback": []}
    with program() as prog:
        i = declare(fixed)
        st = declare_stream()
        measure("readout", "ro", None, demod.full("cos", i, "out1"))
        save(i, st)
        with stream_processing():
            st.save("I")
    job = qmm.simulate(config, prog, SimulationConfig(
        duration=200, simulation_interface=LoopbackInterface([("con1", 4, "con1", 1)], latency=24)))
    samples = job.get_simulated_samples()
    assert _on(samples.con1.analog["4"]).size == 200
    value = job.result_handles.get("I").fetch_all()
    # the looped-back 0.2 V for 200 ns, demodulated with unit weights and 2^-12 scaling
    assert value == pytest.approx(0.2 * 200 / 4096, rel=1e-3)


def test_simulation_of_an_open_qm_and_its_report(qmm):
    qm = qmm.open_qm(CONFIG, close_other_machines=False)
    with program() as prog:
        play("const", "osc")
    job = qm.simulate(prog, SimulationConfig(duration=100, include_analog_waveforms=True))
    report = job.get_simulated_waveform_report()
    (entry,) = report.analog_waveforms
    assert entry.element == "osc" and entry.length == 100 and entry.ports == ["3"]
    assert job.get_simulated_samples().con1.analog["3"].size == 400


def test_a_simulation_that_does_not_compile_is_refused(qmm, caplog):
    with program() as prog:
        play("const", "nowhere")
    with pytest.raises(FailedToExecuteJobException):
        qmm.simulate(CONFIG, prog, SimulationConfig(duration=100))
    assert any("nowhere" in r.getMessage() for r in caplog.records)


def test_a_loopback_from_an_undeclared_output_carries_nothing_and_a_missing_port_is_refused_naming_it(qmm, caplog):
    """QM's ESR examples loop back an output their config does not declare; it exists on the OPX+ and plays nothing.
    A port the OPX+ does not have, or a controller the config does not have, is refused naming it."""
    with program() as prog:
        play("const", "a")
        measure("readout", "ro", None, demod.full("cos", declare(fixed), "out1"))
        adc = declare_stream(adc_trace=True)
        measure("readout", "ro", adc)
        with stream_processing():
            adc.input1().save("trace")
    job = qmm.simulate(CONFIG, prog, SimulationConfig(duration=1000, simulation_interface=LoopbackInterface(
        [("con1", 7, "con1", 1), ("con1", 4, "con1", 1)], latency=24)))
    job.result_handles.wait_for_all_values()
    looped = qmm.simulate(CONFIG, prog, SimulationConfig(duration=1000, simulation_interface=LoopbackInterface(
        [("con1", 4, "con1", 1)], latency=24)))
    looped.result_handles.wait_for_all_values()
    assert np.any(looped.result_handles.get("trace").fetch_all() != 0)  # the readout itself comes back
    assert np.array_equal(job.result_handles.get("trace").fetch_all(), looped.result_handles.get("trace").fetch_all())
    for wire, problem in ((("con1", 11, "con1", 1), "loopback from ('con1', 11): an OPX+ has analog outputs 1 to 10"),
                          (("con1", 1, "con1", 3), "loopback to ('con1', 3): an OPX+ has analog inputs 1 to 2"),
                          (("con2", 1, "con1", 1), "loopback from ('con2', 1): controller con2 is not declared")):
        caplog.clear()
        with pytest.raises(FailedToExecuteJobException):
            qmm.simulate(CONFIG, prog, SimulationConfig(duration=100,
                                                         simulation_interface=LoopbackInterface([wire])))
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert any(problem in e for e in errors), errors


def test_weights_longer_or_shorter_than_the_pulse_integrate_their_own_length(qmm):
    """QM's readout-optimisation scripts integrate past the readout pulse (its ringdown) with longer weights; the
    platform accepts any weight length. The 200 ns readout plays 0.2 V, looped back into its input."""
    from qm.qua import integration

    config = copy.deepcopy(CONFIG)
    config["integration_weights"]["long_w"] = {"cosine": [(1.0, 400)], "sine": [(0.0, 400)]}
    config["integration_weights"]["short_w"] = {"cosine": [(1.0, 120)], "sine": [(0.0, 120)]}
    config["pulses"]["readout_pulse"]["integration_weights"].update(long="long_w", short="short_w")
    with program() as prog:
        full, long_, short = declare(fixed), declare(fixed), declare(fixed)
        measure("readout", "ro", None, integration.full("cos", full, "out1"),
                integration.full("long", long_, "out1"), integration.full("short", short, "out1"))
        save(full, "full")
        save(long_, "long")
        save(short, "short")
    job = qmm.simulate(config, prog, SimulationConfig(
        duration=300, simulation_interface=LoopbackInterface([("con1", 4, "con1", 1)], latency=24)))
    assert job.result_handles.wait_for_all_values(timeout=30)
    value = lambda name: job.result_handles.get(name).fetch_all()[0]  # noqa: E731
    # integration: 2^-12 * sum of the ADC volts (12-bit steps of 1/4096 V) over the weights
    assert value("full") == pytest.approx(0.2 * 200 / 4096, rel=1e-3)
    assert value("long") == value("full")  # nothing arrives after the pulse
    assert value("short") == pytest.approx(0.2 * 120 / 4096, rel=1e-3)


def test_a_two_controller_config_simulates_on_a_one_controller_server(qmm):
    config = copy.deepcopy(CONFIG)
    config["controllers"]["con2"] = {"analog_outputs": {1: {"offset": 0.0}}}
    config["elements"]["far"] = {"singleInput": {"port": ("con2", 1)}, "intermediate_frequency": 0,
                                 "operations": {"const": "const_pulse"}}
    with program() as prog:
        play("const", "a")
        play("const", "far")
    samples = qmm.simulate(config, prog, SimulationConfig(duration=100)).get_simulated_samples()
    assert np.array_equal(_on(samples.con1.analog["1"]), _on(samples.con2.analog["1"]))
    with pytest.raises(Exception):  # but opening it as a QM needs the platform to have con2
        qmm.open_qm(config, close_other_machines=False)


def test_a_simulation_that_computes_past_its_time_limit_fails_instead_of_hanging():
    import qopemu
    from qm import QuantumMachinesManager
    from qm.exceptions import QMSimulationError
    from qopemu.settings import Settings

    with program() as prog:  # 1 ms of hardware time: about 12 000 loop iterations of 200 assignments each
        x = declare(int)
        with infinite_loop_():
            for _ in range(200):
                assign(x, x * 3 + 1)
    with qopemu.Server(Settings(simulation_timeout_s=0.1)) as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        with pytest.raises(QMSimulationError, match="did not reach its end within 0.1 s"):
            qmm.simulate(CONFIG, prog, SimulationConfig(duration=250_000))
        with program() as fine:
            play("const", "a")
        assert qmm.simulate(CONFIG, fine, SimulationConfig(duration=100)).get_simulated_samples().con1.analog["1"].size


def test_an_input_stream_in_a_simulation_is_refused_at_once_naming_the_stream(qmm):
    from qm.exceptions import QMSimulationError
    from qm.qua import advance_input_stream, declare_input_stream

    with program() as prog:
        play("const", "a")
        n = declare_input_stream(int, name="n_points")
        advance_input_stream(n)  # nobody can push to a simulation
    started = time.monotonic()
    with pytest.raises(QMSimulationError, match=r"advance_input_stream\('n_points'\): a simulation has no input streams"):
        qmm.simulate(CONFIG, prog, SimulationConfig(duration=1000))
    assert time.monotonic() - started < 10  # refused when reached, not after the simulation's time limit (120 s)


def test_a_simulation_too_large_for_the_memory_cap_is_refused(qmm, caplog):
    with program() as prog:
        play("const", "a")
    with pytest.raises(FailedToExecuteJobException):
        qmm.simulate(CONFIG, prog, SimulationConfig(duration=100_000_000))
    assert any("more than the 1024 MB a job may keep" in r.getMessage() for r in caplog.records)


def test_raw_adc_trace_of_a_looped_back_readout(qmm):
    with program() as prog:
        adc = declare_stream(adc_trace=True)
        measure("readout", "ro", adc)
        with stream_processing():
            adc.input1().save("trace")
    job = qmm.simulate(CONFIG, prog, SimulationConfig(
        duration=200, simulation_interface=LoopbackInterface([("con1", 4, "con1", 1)], latency=24)))
    trace = job.result_handles.get("trace").fetch_all()
    assert trace.shape == (200,)  # one sample per ns of the readout pulse
    # 0.2 V into the 12-bit ADC of the OPX+ reads -0.2 * 4096 counts; the time of flight equals the latency,
    # so the whole window sees the pulse
    assert np.all(trace == round(-0.2 * 4096))


def test_users_simulating_at_once_each_get_their_own_samples_window_by_window(connect):
    """Four users simulate long programs at once (each stream spans several windows the worker renders while the
    server sends), and each pulls the samples twice, from two threads at once; every pull must hold exactly that
    user's pulses."""
    from concurrent.futures import ThreadPoolExecutor

    from qm.qua import infinite_loop_

    cycles = 60_000  # 240 000 rows of 4 analog ports: four windows

    def simulate_and_pull(user_index: int) -> list[np.ndarray]:
        config = copy.deepcopy(CONFIG)
        config["waveforms"]["const_wf"]["sample"] = 0.05 * (user_index + 1)
        with program() as prog:
            with infinite_loop_():
                play("const", "a")
                play("const", "osc")
        job = connect(f"user{user_index}").simulate(config, prog, SimulationConfig(duration=cycles))
        with ThreadPoolExecutor(2) as pulls:
            both = list(pulls.map(lambda _: job.get_simulated_samples(), range(2)))
        return [samples.con1.analog[port] for samples in both for port in ("1", "3")]

    with ThreadPoolExecutor(4) as users:
        results = list(users.map(simulate_and_pull, range(4)))
    for user_index, (a1, osc1, a2, osc2) in enumerate(results):
        level = 0.05 * (user_index + 1)
        lead = PROGRAM_START_NS  # the program starts after the hardware's lead-in
        assert a1.size == 4 * cycles and not a1[:lead].any()
        assert np.allclose(a1[lead:], level, atol=1e-6)  # "a" plays back to back throughout
        assert np.array_equal(a1, a2) and np.array_equal(osc1, osc2)
        assert np.isclose(np.abs(osc1).max(), level, atol=1e-6)
        t = np.arange(osc1.size - lead)
        assert np.allclose(osc1[lead:], level * np.cos(2 * np.pi * 25e6 * 1e-9 * t), atol=1e-5)


def test_a_worker_that_dies_while_rendering_fails_the_pull_instead_of_hanging():
    """The reply goes out once the program has run; if the worker then dies, the samples that were to follow never
    come, and the pull ends with the client's QMSimulationError (the results of the run stay readable)."""
    import os
    import signal

    import qopemu
    from qm import QuantumMachinesManager
    from qm.exceptions import QMSimulationError
    from qm.qua import infinite_loop_

    with program() as prog:
        x = declare(fixed, value=0.25)
        save(x, "x")
        with infinite_loop_():
            # Chirps render one by one, and a long one recomputes its phase in each window: ~1 s for these two.
            # (Few pulses: many would keep the client parsing the waveform report until the rendering is over.)
            play("const", "osc", chirp=(25, "Hz/nsec"), duration=250_000)
    with qopemu.Server() as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        job = qmm.simulate(CONFIG, prog, SimulationConfig(duration=500_000))
        for pid in _worker_pids():
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(QMSimulationError):
            job.get_simulated_samples()
        assert job.result_handles.get("x").fetch_all()[0] == 0.25


def _worker_pids() -> list[int]:
    """This process's worker children (Linux /proc)."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline, open(f"/proc/{entry}/stat") as stat:
                if b"qopemu.engine.worker" in cmdline.read() and int(stat.read().split()[3]) == os.getpid():
                    pids.append(int(entry))
        except OSError:  # the process ended meanwhile
            continue
    return pids
