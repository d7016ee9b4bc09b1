"""Unit tests of config validation (qmconfig.py): every problem, with its key path."""

from __future__ import annotations

from qm.api.models.capabilities import QopCaps, ServerCapabilities
from qm.program import load_config

import pytest
from configs import config
from qopemu import qmconfig
from qopemu.platform.hardware import Hardware
from qopemu.settings import ControllerSpec

CAPS = ServerCapabilities(QopCaps.qop2_caps())
PORTS = Hardware((ControllerSpec(),)).port_counts()


def problems_of(config_dict: dict) -> dict[str, str]:
    with pytest.raises(qmconfig.ConfigError) as refused:
        qmconfig.from_pb(load_config(config_dict, capabilities=CAPS), PORTS)
    return {p.path: p.message for p in refused.value.problems}


def test_valid_config_model():
    model = qmconfig.from_pb(load_config(config(), capabilities=CAPS), PORTS)
    qubit = model.elements["qubit"]
    assert qubit.intermediate_frequency == 50e6 and qubit.lo_frequency == 5e9
    assert [str(p) for p in qubit.analog_ports] == ["con1.analog_outputs.1", "con1.analog_outputs.2"]
    assert model.pulses["readout_pulse"].is_measurement
    assert model.waveforms["gauss_wf"].is_overridable
    assert model.cores_needed() == 3  # IQ qubit (2) + resonator (1)
    cos, sin = model.integration_weights["cosine_weights"].as_arrays()
    assert cos.size == 1000 and cos.sum() == 1000 and sin.sum() == 0


def test_negative_if_is_signed():
    c = config()
    c["elements"]["qubit"]["intermediate_frequency"] = -75e6
    model = qmconfig.from_pb(load_config(c, capabilities=CAPS), PORTS)
    assert model.elements["qubit"].intermediate_frequency == -75e6


def test_all_problems_reported_at_once():
    c = config()
    c["elements"]["resonator"]["singleInput"]["port"] = ("con1", 11)  # not on an OPX+ (10 analog outputs)
    c["elements"]["qubit"]["operations"]["x"] = "missing"
    c["pulses"]["const_pulse"]["waveforms"]["I"] = "missing_wf"
    c["pulses"]["const_pulse"]["length"] = 102
    c["pulses"]["readout_pulse"]["digital_marker"] = "missing_marker"
    c["mixers"]["mixer_qubit"][0]["correction"] = (3, 0, 0, 1)
    problems = problems_of(c)
    assert "port ('con1', 11) does not exist" in problems["elements.resonator.inputs"]
    assert "pulse 'missing'" in problems["elements.qubit.operations.x"]
    assert "waveform 'missing_wf'" in problems["pulses.const_pulse.waveforms.I"]
    assert "multiple of 4" in problems["pulses.const_pulse.length"]
    assert "missing_marker" in problems["pulses.readout_pulse.digital_marker"]
    assert "outside the range" in problems["mixers.mixer_qubit[0].correction"]


def test_wrong_waveform_keys_for_element_type():
    c = config()
    c["elements"]["resonator"]["operations"]["iq"] = "const_pulse"  # I/Q pulse on a single-input element
    assert "needs ['single']" in problems_of(c)["elements.resonator.operations.iq"]


def test_ports_elements_use_undeclared_are_held_with_the_defaults():
    c = config()
    c["elements"]["resonator"]["singleInput"]["port"] = ("con1", 7)
    c["elements"]["resonator"]["digitalInputs"] = {"m": {"port": ("con1", 2), "delay": 0, "buffer": 0}}
    del c["controllers"]["con1"]["analog_inputs"][1]
    model = qmconfig.from_pb(load_config(c, capabilities=CAPS), PORTS)
    held = model.used_ports()
    for kind, number in ((qmconfig.ANALOG_OUTPUTS, 7), (qmconfig.DIGITAL_OUTPUTS, 2), (qmconfig.ANALOG_INPUTS, 1)):
        ref = qmconfig.PortRef("con1", kind, number)
        assert held[ref] == qmconfig.Port(ref, implied=True)
    assert 7 in model.pb.v1beta.controlDevices["con1"].fems[1].opx.analogOutputs  # as get_config() returns it
    assert not held[qmconfig.PortRef("con1", qmconfig.ANALOG_OUTPUTS, 1)].implied


def test_a_digital_input_must_be_declared():
    c = config()
    c["elements"]["resonator"]["digitalOutputs"] = {"out1": ("con1", 1)}
    assert "a digital input has no defaults" in problems_of(c)["elements.resonator.digitalOutputs.out1"]


def test_port_beyond_the_platform():
    c = config()
    c["controllers"]["con1"]["analog_inputs"][3] = {"offset": 0.0}
    assert "analog_inputs 1..2" in problems_of(c)["controllers.con1.analog_inputs.3"]
