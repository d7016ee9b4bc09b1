"""Shared helpers for the engine tests: a small OPX+ config, a recording JobHost and a deterministic InputSource."""

from __future__ import annotations

import numpy as np
from qm.api.models.capabilities import QopCaps, ServerCapabilities
from qm.program import load_config

from qopemu import qmconfig
from qopemu.engine.compiler import compile_program
from qopemu.engine.timing import PROGRAM_START_NS

READOUT_LEN = 1000
IF_QUBIT = 100e6
IF_RES = 50e6


def config_dict(noise_offset: float = 0.0) -> dict:
    return {
        "version": 1,
        "controllers": {
            "con1": {
                "analog_outputs": {i: {"offset": 0.0} for i in range(1, 6)},
                "digital_outputs": {1: {}},
                "analog_inputs": {1: {"offset": noise_offset}, 2: {"offset": 0.0}},
            }
        },
        "elements": {
            "qubit": {
                "mixInputs": {"I": ("con1", 1), "Q": ("con1", 2), "lo_frequency": 5e9, "mixer": "mx"},
                "intermediate_frequency": IF_QUBIT,
                "operations": {"pi": "pi_pulse", "cw": "const_pulse", "arb": "arb_pulse"},
            },
            "resonator": {
                "mixInputs": {"I": ("con1", 3), "Q": ("con1", 4), "lo_frequency": 6e9, "mixer": "mx"},
                "intermediate_frequency": IF_RES,
                "operations": {"readout": "readout_pulse", "cw": "const_pulse"},
                "outputs": {"out1": ("con1", 1), "out2": ("con1", 2)},
                "time_of_flight": 24,
                "smearing": 0,
                "digitalInputs": {"marker": {"port": ("con1", 1), "delay": 0, "buffer": 0}},
            },
            "flux": {
                "singleInput": {"port": ("con1", 5)},
                "operations": {"const": "flux_pulse"},
                "sticky": {"analog": True, "duration": 20},
            },
            "probe": {
                "singleInput": {"port": ("con1", 5)},
                "intermediate_frequency": 10e6,
                "operations": {"readout": "probe_readout", "const": "flux_pulse"},
                "outputs": {"out1": ("con1", 1)},
                "time_of_flight": 28,
                "smearing": 0,
                "outputPulseParameters": {"signalThreshold": -100, "signalPolarity": "Below",
                                          "derivativeThreshold": -100, "derivativePolarity": "Above"},
            },
        },
        "pulses": {
            "pi_pulse": {"operation": "control", "length": 40, "waveforms": {"I": "pi_wf", "Q": "zero_wf"}},
            "const_pulse": {"operation": "control", "length": 100, "waveforms": {"I": "const_wf", "Q": "zero_wf"}},
            "arb_pulse": {"operation": "control", "length": 16, "waveforms": {"I": "arb_wf", "Q": "zero_wf"}},
            "flux_pulse": {"operation": "control", "length": 16, "waveforms": {"single": "const_wf"}},
            "readout_pulse": {
                "operation": "measurement",
                "length": READOUT_LEN,
                "waveforms": {"I": "ro_wf", "Q": "zero_wf"},
                "integration_weights": {"cos": "cos_w", "sin": "sin_w", "minus_sin": "minus_sin_w"},
                "digital_marker": "ON",
            },
            "probe_readout": {
                "operation": "measurement",
                "length": 200,
                "waveforms": {"single": "ro_wf"},
                "integration_weights": {"cos": "cos200", "sin": "sin200"},
                "digital_marker": "ON",
            },
        },
        "waveforms": {
            "pi_wf": {"type": "constant", "sample": 0.2},
            "zero_wf": {"type": "constant", "sample": 0.0},
            "const_wf": {"type": "constant", "sample": 0.1},
            "ro_wf": {"type": "constant", "sample": 0.05},
            "arb_wf": {"type": "arbitrary", "samples": list(np.linspace(0, 0.3, 16)), "is_overridable": True},
        },
        "digital_waveforms": {"ON": {"samples": [(1, 0)]}},
        "integration_weights": {
            "cos_w": {"cosine": [(1.0, READOUT_LEN)], "sine": [(0.0, READOUT_LEN)]},
            "sin_w": {"cosine": [(0.0, READOUT_LEN)], "sine": [(1.0, READOUT_LEN)]},
            "minus_sin_w": {"cosine": [(0.0, READOUT_LEN)], "sine": [(-1.0, READOUT_LEN)]},
            "cos200": {"cosine": [(1.0, 200)], "sine": [(0.0, 200)]},
            "sin200": {"cosine": [(0.0, 200)], "sine": [(1.0, 200)]},
        },
        "mixers": {"mx": [{"intermediate_frequency": IF_QUBIT, "lo_frequency": 5e9, "correction": (1, 0, 0, 1)}]},
    }


def make_config(**kw) -> qmconfig.QmConfig:
    pb = load_config(config_dict(**kw), capabilities=ServerCapabilities(QopCaps.qop2_caps()))
    return qmconfig.from_pb(pb)


def program_pb(prog):
    return prog.qua_program


def compile_qua(prog, config=None):
    return compile_program(program_pb(prog), config or make_config())


def from_program_start(events: list, host: "RecordingHost | None" = None) -> list:
    """Events (and a host's save times), shifted in place so that times count from the program's first instruction
    rather than from the start of the job (engine/timing.py PROGRAM_START_NS): the timeline rules read easier so."""
    for event in events:
        event.start -= PROGRAM_START_NS
    if host is not None:
        host.times = {tag: [t - PROGRAM_START_NS for t in times] for tag, times in host.times.items()}
    return events


class RecordingHost:
    """A JobHost that keeps everything in lists."""

    def __init__(self, inputs: dict[str, list] | None = None, io: dict[int, object] | None = None):
        self.saved: dict[str, list] = {}
        self.times: dict[str, list] = {}
        self.adc: list[tuple[str, int, np.ndarray, int]] = []
        self.pauses = 0
        self.errors: list[tuple[int, str]] = []
        self.inputs = {k: list(v) for k, v in (inputs or {}).items()}
        self.io = dict(io or {1: 0, 2: 0})

    def save(self, tag, kind, value, timestamp_ns):
        self.saved.setdefault(tag, []).append(value)
        self.times.setdefault(tag, []).append(timestamp_ns)

    def save_adc(self, tag, input_number, trace, timestamp_ns):
        self.adc.append((tag, input_number, trace, timestamp_ns))

    def pause(self, timestamp_ns):
        self.pauses += 1

    def read_input_stream(self, name, count, timestamp_ns):
        values, self.inputs[name] = self.inputs[name][:count], self.inputs[name][count:]
        return values

    def get_io(self, number):
        return self.io[number]

    def set_io(self, number, value):
        self.io[number] = value

    def runtime_error(self, code, message):
        self.errors.append((code, message))


class SilentInputs:
    """Nothing routed to any input; configurable noise."""

    def __init__(self, noise_std: float = 0.0):
        self.noise_std = noise_std
        self.needs_events = False

    def record(self, event):
        raise AssertionError("not expected")

    def samples(self, controller, port, start_ns, length_ns):
        return None
