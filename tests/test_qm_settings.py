"""QM-level runtime settings through the client: they change the QM's stored config, which getters read back."""

from __future__ import annotations

import pytest
from qm.exceptions import QMRequestError

from configs import config


@pytest.fixture
def qm(connect):
    cfg = config()
    cfg["controllers"]["con1"]["digital_inputs"] = {1: {"threshold": 1.0, "deadtime": 4, "polarity": "RISING"}}
    cfg["elements"]["qubit"]["digitalInputs"] = {"switch": {"port": ("con1", 1), "delay": 0, "buffer": 0}}
    return connect("alice").open_qm(cfg, close_other_machines=False)


def test_output_and_input_dc_offsets_are_read_back_by_another_user(qm, connect):
    qm.set_output_dc_offset_by_element("qubit", ("I", "Q"), (0.1, -0.2))
    qm.set_input_dc_offset_by_element("resonator", "out1", 0.05)
    other = connect("bob").get_qm(qm.id)
    assert other.get_output_dc_offset_by_element("qubit", "I") == pytest.approx(0.1)
    assert other.get_output_dc_offset_by_element("qubit", "Q") == pytest.approx(-0.2)
    assert other.get_input_dc_offset_by_element("resonator", "out1") == pytest.approx(0.05)


def test_frequency_mixer_and_digital_settings(qm, connect):
    qm.set_intermediate_frequency("qubit", -70e6)
    qm.set_mixer_correction("mixer_qubit", -70e6, 5e9, (1.0, 0.05, 0.05, 0.95))
    qm.set_digital_delay("qubit", "switch", 12)
    qm.set_digital_buffer("qubit", "switch", 8)
    qm.set_digital_input_threshold(("con1", 1), 0.7)
    config_now = connect("bob").get_qm(qm.id).get_config()
    qubit = config_now["elements"]["qubit"]
    assert qubit["intermediate_frequency"] == pytest.approx(-70e6)
    assert qubit["digitalInputs"]["switch"]["delay"] == 12 and qubit["digitalInputs"]["switch"]["buffer"] == 8
    corrections = config_now["mixers"]["mixer_qubit"]
    assert any(tuple(c["correction"]) == pytest.approx((1.0, 0.05, 0.05, 0.95)) for c in corrections)
    assert qm.get_digital_input_threshold(("con1", 1)) == pytest.approx(0.7)


def test_bad_settings_name_what_is_wrong(qm):
    with pytest.raises(QMRequestError, match="outside"):
        qm.set_output_dc_offset_by_element("resonator", "single", 0.7)
