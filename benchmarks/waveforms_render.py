"""Pulse synthesis speed: render a hand-made event list of 4 IF-modulated IQ elements playing back to back for
100 000 clock cycles (400 us), as `qmm.simulate` would, and print output samples per second on the last line.

    /work/venv/bin/python benchmarks/waveforms_render.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from qopemu import qmconfig
from qopemu.engine.events import PlayEvent
from qopemu.engine.waveforms import render

CYCLES = 100_000
PULSE_NS = 100
ELEMENTS = 4


def config() -> qmconfig.QmConfig:
    from qm.api.models.capabilities import QopCaps, ServerCapabilities
    from qm.program import load_config

    gauss = (0.2 * np.exp(-0.5 * ((np.arange(PULSE_NS) - PULSE_NS / 2) / 15) ** 2)).tolist()
    elements = {
        f"q{i}": {
            "mixInputs": {"I": ("con1", 2 * i + 1), "Q": ("con1", 2 * i + 2), "lo_frequency": 6e9, "mixer": "mx"},
            "intermediate_frequency": 50e6 + 10e6 * i,
            "digitalInputs": {"sw": {"port": ("con1", i + 1), "delay": 0, "buffer": 4}},
            "operations": {"x": "gauss"},
        }
        for i in range(ELEMENTS)
    }
    cfg = {
        "controllers": {
            "con1": {
                "analog_outputs": {p: {"offset": 0.0} for p in range(1, 11)},
                "digital_outputs": {p: {} for p in range(1, 11)},
                "analog_inputs": {1: {"offset": 0.0}, 2: {"offset": 0.0}},
            }
        },
        "elements": elements,
        "pulses": {
            "gauss": {"operation": "control", "length": PULSE_NS, "waveforms": {"I": "g", "Q": "zero"},
                      "digital_marker": "ON"}
        },
        "waveforms": {"g": {"type": "arbitrary", "samples": gauss}, "zero": {"type": "constant", "sample": 0.0}},
        "digital_waveforms": {"ON": {"samples": [(1, 0)]}},
        "mixers": {"mx": [{"intermediate_frequency": 50e6 + 10e6 * i, "lo_frequency": 6e9,
                           "correction": [1.0, 0.05, 0.02, 0.98]} for i in range(ELEMENTS)]},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return qmconfig.from_pb(load_config(cfg, capabilities=ServerCapabilities(QopCaps.qop2_caps())))


def events(cfg: qmconfig.QmConfig, duration: int) -> list[PlayEvent]:
    out = []
    for name, element in cfg.elements.items():
        f = element.intermediate_frequency
        for start in range(0, duration, PULSE_NS):
            out.append(PlayEvent(name, "x", "gauss", start, PULSE_NS, None, f, (f * start * 1e-9) % 1.0))
    return out


def main() -> None:
    cfg = config()
    duration = 4 * CYCLES
    timeline = events(cfg, duration)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        samples = render(timeline, cfg, duration)
        best = min(best, time.perf_counter() - t0)
    total = duration * (len(samples.analog) + len(samples.digital))
    print(f"{len(timeline)} events, {len(samples.analog)} analog + {len(samples.digital)} digital ports, "
          f"{duration} ns: {best * 1e3:.1f} ms")
    print(f"render: {total / best / 1e6:.1f} M samples/s")


if __name__ == "__main__":
    main()
