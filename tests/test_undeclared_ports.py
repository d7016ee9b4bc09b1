"""Element ports the `controllers` section does not declare, through the real client (issue #10 item 9).

QM's own example qua-libs Superconducting/Two-Fixed-Coupled-Transmons/configuration.py drives a coupler on analog
outputs 7 and 8 that its controller declares nowhere, and QM publishes it as runnable on an OPX+: the platform opens
such a QM, holding those ports with their defaults (docs/platform.md)."""

from __future__ import annotations

import numpy as np
import pytest
from qm import SimulationConfig
from qm.exceptions import OpenQmException
from qm.qua import play, program

from configs import config


def coupled_config(i_port: int = 7, q_port: int = 8) -> dict:
    """BASE plus, as in the qua-libs example, an IQ element on analog outputs 7 and 8 that the controller does not
    declare (it declares 1..4); its marker goes to undeclared digital output 3 and it reads analog input 2, which
    this config leaves undeclared too."""
    result = config()
    del result["controllers"]["con1"]["analog_inputs"][2]
    result["pulses"]["marked_pulse"] = dict(result["pulses"]["const_pulse"], digital_marker="ON")
    result["elements"]["coupler"] = {
        "mixInputs": {"I": ("con1", i_port), "Q": ("con1", q_port), "lo_frequency": 5e9, "mixer": "mixer_qubit"},
        "intermediate_frequency": 50e6,
        "digitalInputs": {"switch": {"port": ("con1", 3), "delay": 0, "buffer": 0}},
        "outputs": {"out1": ("con1", 2)},
        "time_of_flight": 24,
        "smearing": 0,
        "operations": {"cw": "marked_pulse"},
    }
    return result


def test_an_element_on_undeclared_ports_opens_plays_there_and_reads_back_the_defaults(qmm):
    qm = qmm.open_qm(coupled_config(), close_other_machines=False)
    controller = qm.get_config()["controllers"]["con1"]
    for number in (7, 8):
        port = controller["analog_outputs"][number]
        assert (port["offset"], port["delay"], port["shareable"]) == (0.0, 0, False)
        assert not port.get("filter", {}).get("feedforward") and not port.get("crosstalk")
    assert (controller["digital_outputs"][3]["shareable"], controller["digital_outputs"][3]["inverted"]) == (False, False)
    assert (controller["analog_inputs"][2]["offset"], controller["analog_inputs"][2]["gain_db"],
            controller["analog_inputs"][2]["shareable"]) == (0.0, 0, False)
    assert sorted(controller["analog_outputs"]) == [1, 2, 3, 4, 7, 8]

    with program() as prog:
        play("cw", "coupler")
    job = qmm.simulate(coupled_config(), prog, SimulationConfig(duration=100))
    samples = job.get_simulated_samples().con1
    i, q = np.asarray(samples.analog["7"]), np.asarray(samples.analog["8"])
    on = np.flatnonzero(np.abs(i) + np.abs(q) > 1e-9)
    assert on.size == 100  # the 100 ns const_pulse (0.2 V on I, 0 on Q, at 50 MHz) plays on ports 7 and 8
    assert np.max(np.hypot(i, q)) == pytest.approx(0.2, abs=1e-6)
    assert np.count_nonzero(np.asarray(samples.digital["3"])) == 100  # its marker, high for the whole pulse
    report = job.get_simulated_waveform_report().to_dict()
    played = [w for w in report["analog_waveforms"] if w["element"] == "coupler"]
    assert {port for w in played for port in w["output_ports"]} == {7, 8}  # I on 7, Q on 8


def test_an_undeclared_port_is_held_by_its_qm_and_not_shareable(connect):
    qmm = connect("alice")
    holder = qmm.open_qm(coupled_config(), close_other_machines=False)
    for family, number in (("analog_outputs", 7), ("digital_outputs", 3), ("analog_inputs", 2)):
        other = config(elements={})  # declares nothing but the contested port, marked shareable
        other["controllers"]["con1"] = {family: {number: {"shareable": True}}}
        with pytest.raises(OpenQmException) as refused:
            qmm.open_qm(other, close_other_machines=False)
        text = str(refused.value)
        assert "cannot be used because it isn't shareable in other QM." in text
        assert family in text and str(number) in text and holder.id in text
    assert qmm.list_open_qms() == [holder.id]


def test_a_port_the_opx_plus_lacks_is_refused_naming_element_and_port(qmm):
    with pytest.raises(OpenQmException) as refused:
        qmm.open_qm(coupled_config(7, 11), close_other_machines=False)
    text = str(refused.value)
    assert "elements.coupler.inputs" in text
    assert "port ('con1', 11) does not exist: con1 has analog_outputs 1..10" in text
    assert qmm.list_open_qms() == []
