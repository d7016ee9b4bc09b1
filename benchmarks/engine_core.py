"""Engine core speed: the power-Rabi program compiled and run in-process (no server, no client round trips).

1000 averages x 100 amplitudes; per shot a 40 ns qubit pulse scaled by amp(a), align, a 1 us readout with two
dual demodulations, a 10 us wait and two saves. The host buffers saves in lists, as the worker does.
Prints statements/s, then on the last line the real-time factor: hardware ns the program represents / wall ns.

    python benchmarks/engine_core.py [--profile]
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time
import warnings

import numpy as np
from qm.api.models.capabilities import QopCaps, ServerCapabilities
from qm.program import load_config

from qopemu import qmconfig
from qopemu.engine.compiler import compile_program
from qopemu.engine.runtime import run

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from configs import rabi_config  # noqa: E402
from programs import power_rabi  # noqa: E402

N_AVG, N_AMP = 1000, 100


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

    def runtime_error(self, code, message):
        raise RuntimeError(message)


class NoiseOnly:
    noise_std = 0.002
    needs_events = False

    def record(self, event):
        pass

    def samples(self, controller, port, start_ns, length_ns):
        return None


def main() -> None:
    warnings.filterwarnings("ignore")
    cfg = qmconfig.from_pb(load_config(rabi_config(), capabilities=ServerCapabilities(QopCaps.qop2_caps())))
    t0 = time.perf_counter()
    compiled = compile_program(power_rabi(N_AVG, N_AMP).qua_program, cfg)
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
    i_tag = "r2"  # the program declares the iteration, I and Q streams in that order
    shots = len(host.values[i_tag])
    assert shots == N_AVG * N_AMP, shots
    i_values = np.array(host.values[i_tag])
    print(f"compile: {compile_s * 1e3:.1f} ms; shots: {shots}; wall: {wall_ns / 1e9:.3f} s; "
          f"hardware time: {summary.duration_ns / 1e9:.3f} s; I mean {i_values.mean():.2e} std {i_values.std():.2e}")
    print(f"statements/s: {summary.statements / (wall_ns / 1e9):,.0f}")
    print(f"real-time factor: {summary.duration_ns / wall_ns:.3f}")


if __name__ == "__main__":
    main()
