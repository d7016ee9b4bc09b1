"""What a simulation returns besides results, as the platform returns it (issue 10): analog samples in float64 volts
(float32 by setting), the waveform report, and arbitrary waveforms at their own sampling rate."""

from __future__ import annotations

import numpy as np
import pytest
from qm import QuantumMachinesManager, SimulationConfig
from qm.qua import play, program
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
    job = qmm.simulate(config, prog, SimulationConfig(duration=200, include_analog_waveforms=True))
    start = job.get_simulated_waveform_report().analog_waveforms[0].timestamp
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
