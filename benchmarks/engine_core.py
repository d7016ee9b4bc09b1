"""Engine core speed: the power-Rabi program compiled and run in-process (no server, no client round trips).

1000 averages x 100 amplitudes; per shot a 40 ns qubit pulse scaled by amp(a), align, a 1 us readout with two
dual demodulations, a 10 us wait and two saves. The host buffers saves in lists, as the worker does.
Prints statements/s, then on the last line the real-time factor: hardware ns the program represents / wall ns.

    PYTHONPATH=. /work/venv/bin/python benchmarks/engine_core.py [--profile]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
import warnings

import numpy as np
from qm.api.models.capabilities import QopCaps, ServerCapabilities
from qm.program import load_config
from qm.qua import align, amp, declare, declare_stream, dual_demod, fixed, for_, measure, play, program, save
from qm.qua import stream_processing, wait

from qopemu import qmconfig
from qopemu.engine.compiler import compile_program
from qopemu.engine.runtime import run

N_AVG, N_AMP, READOUT = 1000, 100, 1000


def config() -> qmconfig.QmConfig:
    weights = lambda c, s: {"cosine": [(c, READOUT)], "sine": [(s, READOUT)]}  # noqa: E731
    cfg = {
        "controllers": {"con1": {"analog_outputs": {i: {"offset": 0.0} for i in range(1, 5)},
                                 "analog_inputs": {1: {"offset": 0.0}, 2: {"offset": 0.0}}}},
        "elements": {
            "qubit": {"mixInputs": {"I": ("con1", 1), "Q": ("con1", 2), "lo_frequency": 5e9},
                      "intermediate_frequency": 100e6, "operations": {"pi": "pi_pulse"}},
            "resonator": {"mixInputs": {"I": ("con1", 3), "Q": ("con1", 4), "lo_frequency": 6e9},
                          "intermediate_frequency": 50e6, "operations": {"readout": "ro_pulse"},
                          "outputs": {"out1": ("con1", 1), "out2": ("con1", 2)}, "time_of_flight": 24},
        },
        "pulses": {
            "pi_pulse": {"operation": "control", "length": 40, "waveforms": {"I": "pi_wf", "Q": "zero_wf"}},
            "ro_pulse": {"operation": "measurement", "length": READOUT, "waveforms": {"I": "ro_wf", "Q": "zero_wf"},
                         "integration_weights": {"cos": "cos_w", "sin": "sin_w", "minus_sin": "msin_w"}},
        },
        "waveforms": {"pi_wf": {"type": "constant", "sample": 0.2}, "zero_wf": {"type": "constant", "sample": 0.0},
                      "ro_wf": {"type": "constant", "sample": 0.05}},
        "integration_weights": {"cos_w": weights(1.0, 0.0), "sin_w": weights(0.0, 1.0),
                                "msin_w": weights(0.0, -1.0)},
    }
    return qmconfig.from_pb(load_config(cfg, capabilities=ServerCapabilities(QopCaps.qop2_caps())))


def power_rabi():
    with program() as prog:
        n = declare(int)
        a = declare(fixed)
        I = declare(fixed)
        Q = declare(fixed)
        I_st = declare_stream()
        Q_st = declare_stream()
        with for_(n, 0, n < N_AVG, n + 1):
            with for_(a, 0.0, a < 1.99, a + 0.02):
                play("pi" * amp(a), "qubit")
                align()
                measure("readout", "resonator", None, dual_demod.full("cos", "sin", I),
                        dual_demod.full("minus_sin", "cos", Q))
                wait(2500, "resonator")
                save(I, I_st)
                save(Q, Q_st)
        with stream_processing():
            I_st.buffer(N_AMP).average().save("I")
            Q_st.buffer(N_AMP).average().save("Q")
    return prog


class ListHost:
    def __init__(self):
        self.values: dict[str, list] = {}
        self.timestamps: dict[str, list] = {}

    def save(self, tag, kind, value, timestamp_ns):
        values = self.values.get(tag)
        if values is None:
            values = self.values[tag] = []
            self.timestamps[tag] = []
        values.append(value)
        self.timestamps[tag].append(timestamp_ns)

    def save_adc(self, tag, input_number, trace, timestamp_ns):
        pass

    def pause(self):
        pass

    def read_input_stream(self, name, count):
        raise RuntimeError("no input streams in this benchmark")

    def get_io(self, number):
        return 0

    def set_io(self, number, value):
        pass


class NoiseOnly:
    noise_std = 0.002
    needs_events = False

    def record(self, event):
        pass

    def samples(self, controller, port, start_ns, length_ns):
        return None


def main() -> None:
    warnings.filterwarnings("ignore")
    cfg = config()
    t0 = time.perf_counter()
    compiled = compile_program(power_rabi().qua_program, cfg)
    compile_s = time.perf_counter() - t0
    host = ListHost()
    profile = "--profile" in sys.argv
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter_ns()
    if profiler:
        profiler.enable()
    summary = run(compiled, host, NoiseOnly(), seed=1)
    if profiler:
        profiler.disable()
    wall_ns = time.perf_counter_ns() - t0
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    shots = len(host.values["r1"])
    assert shots == N_AVG * N_AMP, shots
    i_values = np.array(host.values["r1"])
    print(f"compile: {compile_s * 1e3:.1f} ms; shots: {shots}; wall: {wall_ns / 1e9:.3f} s; "
          f"hardware time: {summary.duration_ns / 1e9:.3f} s; I mean {i_values.mean():.2e} std {i_values.std():.2e}")
    print(f"statements/s: {summary.statements / (wall_ns / 1e9):,.0f}")
    print(f"real-time factor: {summary.duration_ns / wall_ns:.3f}")


if __name__ == "__main__":
    main()
