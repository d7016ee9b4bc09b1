"""What a simulation returns besides results, as the platform returns it (issue 10): analog samples in float64 volts
(float32 by setting), the waveform report, and arbitrary waveforms at their own sampling rate."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from qm import QuantumMachinesManager, SimulationConfig
from qm.exceptions import OpenQmException
from qm.qua import frame_rotation_2pi, play, program, wait
from qualang_tools.bakery import baking

import qopemu
from qopemu.settings import Settings, SettingsError, from_dict

RAMP = [i / 200 for i in range(100)]


def _config() -> dict:
    return {
        "controllers": {"con1": {"analog_outputs": {1: {"offset": 0.0}, 2: {"offset": 0.0}}}},
        "elements": {"qe1": {"singleInput": {"port": ("con1", 1)}, "intermediate_frequency": 0, "operations": {}}},
        "pulses": {},
        "waveforms": {},
    }


def _baked_ramp_twice():
    """py-qua-tools' own bakery test (test_bake_with_macro): a baked waveform played as one pulse."""
    config = _config()
    with baking(config=config) as b:
        b.add_op("ramp", "qe1", RAMP)
        b.play("ramp", "qe1")
        b.play("ramp", "qe1")
    with program() as prog:
        b.run()
    return config, prog


def _played(qmm, config, prog) -> tuple[np.ndarray, int]:
    """As py-qua-tools' bakery test reads it: the pulse's start from the deprecated waveform list."""
    job = qmm.simulate(config, prog, SimulationConfig(duration=200, include_analog_waveforms=True))
    with pytest.warns(DeprecationWarning):
        start = int(job.simulated_analog_waveforms()["controllers"]["con1"]["ports"]["1"][0]["timestamp"])
    return job.get_simulated_samples().con1.analog["1"], start


def test_baked_waveform_samples_are_the_config_list_in_float64(qmm):
    samples, start = _played(qmm, *_baked_ramp_twice())
    assert samples.dtype == np.float64
    assert samples[start:start + 200].tolist() == RAMP + RAMP  # exact, as in py-qua-tools' test


def test_float32_samples_are_a_server_setting():
    with qopemu.Server(Settings(simulation_samples="float32")) as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        try:
            samples, start = _played(qmm, *_baked_ramp_twice())
        finally:
            qmm.close()
    assert samples.dtype == np.float32
    assert samples[start:start + 200].tolist() == np.float32(RAMP + RAMP).tolist()


def test_the_sample_format_setting_names_its_choices():
    with pytest.raises(SettingsError, match="simulation_samples must be one of 'float64', 'float32', got 'float16'"):
        from_dict({"simulation_samples": "float16"})


# ------------------------------------------------------------------------------------------- the waveform report

ARB = [round(0.01 * k, 2) for k in range(16)]
REPORT_CONFIG = {
    "controllers": {"con1": {"analog_outputs": {i: {"offset": 0.0} for i in range(1, 4)},
                             "digital_outputs": {1: {}}}},
    "elements": {
        "qubit": {"mixInputs": {"I": ("con1", 1), "Q": ("con1", 2), "lo_frequency": 5e9},
                  "intermediate_frequency": 0, "operations": {"x": "x_pulse"}},
        "flux": {"singleInput": {"port": ("con1", 3)}, "intermediate_frequency": 0, "operations": {"arb": "arb_pulse"},
                 "digitalInputs": {"m": {"port": ("con1", 1), "delay": 8, "buffer": 2}}},
    },
    "pulses": {
        "x_pulse": {"operation": "control", "length": 40, "waveforms": {"I": "x_wf", "Q": "zero_wf"}},
        "arb_pulse": {"operation": "control", "length": 16, "waveforms": {"single": "arb_wf"}, "digital_marker": "ON"},
    },
    "waveforms": {"x_wf": {"type": "constant", "sample": 0.2}, "zero_wf": {"type": "constant", "sample": 0.0},
                  "arb_wf": {"type": "arbitrary", "samples": ARB}},
    "digital_waveforms": {"ON": {"samples": [(1, 10), (0, 0)]}},
}


def _report_program():
    with program() as prog:
        play("x", "qubit")
        play("arb", "flux")
        wait(10, "qubit")
        play("x", "qubit")
    return prog


def test_a_plain_simulation_returns_the_waveform_report(qmm, tmp_path):
    """QM's example scripts end their simulate branch with the report, after a plain SimulationConfig."""
    job = qmm.simulate(REPORT_CONFIG, _report_program(), SimulationConfig(duration=100))
    report = job.get_simulated_waveform_report()
    assert report is not None and report.to_dict()
    played = [(w.element, w.pulse_name, w.get_iq_association, w.ports, w.timestamp - report.analog_waveforms[0].timestamp,
               w.length) for w in report.analog_waveforms]
    assert played == [("qubit", "x_pulse", "I", ["1"], 0, 40), ("qubit", "x_pulse", "Q", ["2"], 0, 40),
                      ("flux", "arb_pulse", "", ["3"], 0, 16), ("qubit", "x_pulse", "I", ["1"], 80, 40),
                      ("qubit", "x_pulse", "Q", ["2"], 80, 40)]
    (marker,) = report.digital_waveforms
    assert (marker.ports, marker.timestamp, marker.length) == (["1"], report.analog_waveforms[2].timestamp + 6, 20)
    report.create_plot(job.get_simulated_samples(), plot=False, save_path=str(tmp_path))  # as the examples do
    with pytest.warns(DeprecationWarning):
        assert job.simulated_analog_waveforms() is None and job.simulated_digital_waveforms() is None

    with program() as nothing:
        pass
    empty = qmm.simulate(REPORT_CONFIG, nothing, SimulationConfig(duration=10)).get_simulated_waveform_report()
    assert empty is not None and empty.analog_waveforms == [] and empty.digital_waveforms == []


def test_include_flags_add_the_deprecated_waveform_lists(qmm):
    job = qmm.simulate(REPORT_CONFIG, _report_program(),
                       SimulationConfig(duration=100, include_analog_waveforms=True, include_digital_waveforms=True))
    t0 = job.get_simulated_waveform_report().analog_waveforms[0].timestamp
    with pytest.warns(DeprecationWarning):
        analog, digital = job.simulated_analog_waveforms(), job.simulated_digital_waveforms()

    def x(at: int, name: str, value: float) -> dict:
        return {"name": name, "timestamp": float(t0 + at), "duration": 40.0, "frequency": 0.0, "phase": 0.0,
                "samples": {"type": "constant", "value": value}}

    arb = {"name": "arb_wf", "timestamp": float(t0), "duration": 16.0, "frequency": 0.0, "phase": 0.0,
           "samples": {"type": "literal", "values": ARB}}
    assert analog == {
        "controllers": {"con1": {"ports": {"1": [x(0, "x_wf", 0.2), x(80, "x_wf", 0.2)],
                                           "2": [x(0, "zero_wf", 0.0), x(80, "zero_wf", 0.0)],
                                           "3": [arb]}}},
        "elements": {"flux": [arb],
                     "qubit": [x(0, "x_wf", 0.2), x(0, "zero_wf", 0.0), x(80, "x_wf", 0.2), x(80, "zero_wf", 0.0)]},
    }
    marker = {"name": "ON", "timestamp": float(t0 + 8 - 2), "duration": 20.0,
              "samples": [{"value": True, "duration": 10.0}, {"value": False, "duration": 6.0}]}
    assert digital == {"controllers": {"con1": {"ports": {"1": [marker]}}}, "elements": {"flux": [marker]}}


# ------------------------------------------------------------------------------ arbitrary waveforms with a sampling rate

SLOW = [round(0.3 * np.sin(2 * np.pi * k / 37), 6) for k in range(100)]


def _slow_config(pulse_length: int) -> dict:
    config = _config()
    config["elements"]["qe1"]["operations"]["slow"] = "slow_pulse"
    config["pulses"]["slow_pulse"] = {"operation": "control", "length": pulse_length, "waveforms": {"single": "slow"}}
    config["waveforms"]["slow"] = {"type": "arbitrary", "samples": SLOW, "sampling_rate": 1e8}
    return config


def test_a_waveform_at_100_MSps_fills_a_1000_ns_pulse(qmm):
    """qua-libs' waveform-compression example: a pulse of N samples at rate R lasts N * 1e9 / R ns."""
    with program() as prog:
        play("slow", "qe1")
    job = qmm.simulate(_slow_config(1000), prog, SimulationConfig(duration=400))
    start = job.get_simulated_waveform_report().analog_waveforms[0].timestamp
    out = job.get_simulated_samples().con1.analog["1"][start:start + 1100]
    assert out[0:1000:10].tolist() == SLOW  # each given sample, exactly, every 10 ns
    assert not out[1000:].any()  # and the pulse is over after 1000 ns
    s0, s1, s2, s3 = SLOW[0:4]
    assert out[15] == pytest.approx((-s0 + 9 * s1 + 9 * s2 - s3) / 16, abs=1e-12)  # the cubic halfway, not the line
    assert out[15] != pytest.approx((s1 + s2) / 2, abs=1e-6)


def test_a_pulse_whose_length_is_not_the_resampled_waveform_is_refused(qmm):
    with pytest.raises(OpenQmException) as refused:
        qmm.open_qm(_slow_config(800))
    assert ("waveform 'slow' has 100 samples at 1e+08 S/s, which play for 1000 ns, but pulse 'slow_pulse' is 800 ns "
            "long") in str(refused.value)


def test_the_frame_is_the_frame_rotation_alone(qmm):
    """The report's `currentFrame` and the deprecated `phase` give the frame the program rotated, not the oscillator's
    phase at the pulse (gatelevel_qiskit's comparator of simulator output expects the accumulated frame rotations)."""
    config = copy.deepcopy(REPORT_CONFIG)
    config["elements"]["qubit"]["intermediate_frequency"] = 13e6
    with program() as prog:
        play("x", "qubit")
        frame_rotation_2pi(0.25, "qubit")
        wait(7, "qubit")
        play("x", "qubit")
    job = qmm.simulate(config, prog, SimulationConfig(duration=100, include_analog_waveforms=True))
    first, _, second, _ = job.get_simulated_waveform_report().analog_waveforms
    assert first.current_frame == [1.0, 0.0, 0.0, 1.0]
    assert second.current_frame == pytest.approx([0.0, -1.0, 1.0, 0.0], abs=1e-12)
    assert second.current_phase == pytest.approx((13e6 * 1e-9 * (second.timestamp - first.timestamp) + 0.25) % 1)
    with pytest.warns(DeprecationWarning):
        ports = job.simulated_analog_waveforms()["controllers"]["con1"]["ports"]
    assert [pulse["phase"] for pulse in ports["1"]] == pytest.approx([0.0, np.pi / 2])
