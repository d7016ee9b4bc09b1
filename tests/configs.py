"""Config dicts for tests, in the form users write them."""

from __future__ import annotations

import copy

READOUT_LEN = 1000

BASE = {
    "controllers": {
        "con1": {
            "analog_outputs": {i: {"offset": 0.0} for i in range(1, 5)},
            "digital_outputs": {1: {}},
            "analog_inputs": {1: {"offset": 0.0}, 2: {"offset": 0.0}},
        }
    },
    "elements": {
        "qubit": {
            "mixInputs": {"I": ("con1", 1), "Q": ("con1", 2), "lo_frequency": 5e9, "mixer": "mixer_qubit"},
            "intermediate_frequency": 50e6,
            "operations": {"cw": "const_pulse", "pi": "pi_pulse"},
        },
        "resonator": {
            "singleInput": {"port": ("con1", 3)},
            "intermediate_frequency": 100e6,
            "operations": {"cw": "const_single", "readout": "readout_pulse"},
            "outputs": {"out1": ("con1", 1)},
            "time_of_flight": 24,
            "smearing": 0,
        },
    },
    "pulses": {
        "const_pulse": {"operation": "control", "length": 100, "waveforms": {"I": "const_wf", "Q": "zero_wf"}},
        "pi_pulse": {"operation": "control", "length": 40, "waveforms": {"I": "gauss_wf", "Q": "zero_wf"}},
        "const_single": {"operation": "control", "length": 100, "waveforms": {"single": "const_wf"}},
        "readout_pulse": {
            "operation": "measurement",
            "length": READOUT_LEN,
            "waveforms": {"single": "const_wf"},
            "integration_weights": {"cos": "cosine_weights", "sin": "sine_weights", "minus_sin": "minus_sine_weights"},
            "digital_marker": "ON",
        },
    },
    "waveforms": {
        "const_wf": {"type": "constant", "sample": 0.2},
        "zero_wf": {"type": "constant", "sample": 0.0},
        "gauss_wf": {"type": "arbitrary", "samples": [0.1] * 40, "is_overridable": True},
    },
    "digital_waveforms": {"ON": {"samples": [(1, 0)]}},
    "integration_weights": {
        "cosine_weights": {"cosine": [(1.0, READOUT_LEN)], "sine": [(0.0, READOUT_LEN)]},
        "sine_weights": {"cosine": [(0.0, READOUT_LEN)], "sine": [(1.0, READOUT_LEN)]},
        "minus_sine_weights": {"cosine": [(0.0, READOUT_LEN)], "sine": [(-1.0, READOUT_LEN)]},
    },
    "mixers": {"mixer_qubit": [{"intermediate_frequency": 50e6, "lo_frequency": 5e9, "correction": (1, 0, 0, 1)}]},
}


def config(**changes) -> dict:
    """A deep copy of BASE; `changes` replace top-level sections."""
    result = copy.deepcopy(BASE)
    result.update(copy.deepcopy(changes))
    return result


def single_element_config(analog_outputs: dict, analog_inputs: dict | None = None, element_port: int | None = None,
                          core: str | None = None, n_elements: int = 1, iq: bool = False) -> dict:
    """A small config on chosen ports: `n_elements` elements on the first declared analog output(s)."""
    ports = sorted(analog_outputs)
    element_port = element_port or ports[0]
    elements = {}
    for i in range(n_elements):
        if iq:
            element = {"mixInputs": {"I": ("con1", ports[0]), "Q": ("con1", ports[1]), "lo_frequency": 5e9,
                                     "mixer": "mixer_qubit"},
                       "intermediate_frequency": 50e6, "operations": {"cw": "const_pulse"}}
        else:
            element = {"singleInput": {"port": ("con1", element_port)}, "intermediate_frequency": 10e6,
                       "operations": {"cw": "const_single"}}
        if core:
            element["core"] = core
        elements[f"el{i}"] = element
    controller = {"analog_outputs": analog_outputs}
    if analog_inputs:
        controller["analog_inputs"] = analog_inputs
    return {
        "controllers": {"con1": controller},
        "elements": elements,
        "pulses": copy.deepcopy({k: BASE["pulses"][k] for k in ("const_single", "const_pulse")}),
        "waveforms": copy.deepcopy({k: BASE["waveforms"][k] for k in ("const_wf", "zero_wf")}),
        "mixers": copy.deepcopy(BASE["mixers"]),
    }


def rabi_config() -> dict:
    """BASE with the resonator reading both analog inputs, as dual demodulation needs."""
    result = config()
    result["elements"]["resonator"]["outputs"] = {"out1": ("con1", 1), "out2": ("con1", 2)}
    return result


def opx1000_config() -> dict:
    """An OPX1000 config as QM's OPX1000 examples write it: an LF-FEM (flux line, readout trigger) in slot 1 and a
    MW-FEM (qubit drive, resonator in and out) in slot 2, ports addressed (controller, FEM, port)."""
    lf, mw = 1, 2
    return {
        "controllers": {
            "con1": {
                "type": "opx1000",
                "fems": {
                    lf: {
                        "type": "LF",
                        "analog_outputs": {1: {"offset": 0.0, "delay": 0, "sampling_rate": 1e9,
                                               "upsampling_mode": "pulse", "output_mode": "direct"}},
                        "digital_outputs": {1: {}},
                    },
                    mw: {
                        "type": "MW",
                        "analog_outputs": {
                            1: {"band": 2, "full_scale_power_dbm": -11, "upconverters": {1: {"frequency": 5.0e9}}},
                            2: {"band": 1, "full_scale_power_dbm": -11, "upconverters": {1: {"frequency": 4.0e9}}},
                        },
                        "digital_outputs": {},
                        "analog_inputs": {1: {"band": 1, "downconverter_frequency": 4.0e9}},
                    },
                },
            }
        },
        "elements": {
            "flux": {"singleInput": {"port": ("con1", lf, 1)}, "operations": {"const": "flux_pulse"}},
            "qubit": {"MWInput": {"port": ("con1", mw, 1), "upconverter": 1}, "intermediate_frequency": 100e6,
                      "operations": {"x180": "x180_pulse"}},
            "resonator": {
                "MWInput": {"port": ("con1", mw, 2), "upconverter": 1},
                "MWOutput": {"port": ("con1", mw, 1)},
                "intermediate_frequency": 50e6,
                "time_of_flight": 28,
                "smearing": 0,
                "digitalInputs": {"switch": {"port": ("con1", lf, 1), "delay": 57, "buffer": 18}},
                "operations": {"readout": "readout_pulse"},
            },
        },
        "pulses": {
            "flux_pulse": {"operation": "control", "length": 100, "waveforms": {"single": "const_wf"}},
            "x180_pulse": {"operation": "control", "length": 40, "waveforms": {"I": "const_wf", "Q": "zero_wf"}},
            "readout_pulse": {
                "operation": "measurement",
                "length": READOUT_LEN,
                "waveforms": {"I": "const_wf", "Q": "zero_wf"},
                "integration_weights": {"cos": "cosine_weights", "sin": "sine_weights"},
                "digital_marker": "ON",
            },
        },
        "waveforms": copy.deepcopy({k: BASE["waveforms"][k] for k in ("const_wf", "zero_wf")}),
        "digital_waveforms": copy.deepcopy(BASE["digital_waveforms"]),
        "integration_weights": copy.deepcopy({k: BASE["integration_weights"][k]
                                              for k in ("cosine_weights", "sine_weights")}),
    }
