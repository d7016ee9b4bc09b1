"""Engine: measure — demodulation of a known loopback signal, closed form vs sampled noise, raw ADC, vectors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from qm.qua import (
    declare, declare_stream, demod, dual_demod, fixed, for_, integration, measure, program, save, time_tagging,
)

from qopemu.engine.compiler import CompileError
from qopemu.engine.events import PlayEvent
from qopemu.engine.runtime import run
from qopemu.engine.timing import PROGRAM_START_NS
from engine_support import RecordingHost, SilentInputs, compile_qua, make_config

warnings.filterwarnings("ignore", category=DeprecationWarning)

PROBE_IF, PROBE_TOF, PROBE_AMP = 10e6, 28, 0.05


class Loopback:
    """Output of the single-input `probe` element routed to analog input 1 with a latency of its time of flight."""

    noise_std = 0.0
    needs_events = True

    def __init__(self):
        self.plays: list[PlayEvent] = []

    def record(self, event):
        if isinstance(event, PlayEvent) and event.element == "probe":
            self.plays.append(event)

    def samples(self, controller, port, start_ns, length_ns):
        if port != 1:
            return None
        t = np.arange(start_ns, start_ns + length_ns) - PROBE_TOF
        out = np.zeros(length_ns)
        for e in self.plays:
            inside = (t >= e.start) & (t < e.start + e.length)
            out[inside] += PROBE_AMP * np.cos(2 * np.pi * (e.phase + e.frequency * 1e-9 * (t[inside] - e.start)))
        return out


class Silent:
    """Routed but silent inputs: forces the sampled path (per-sample noise) for comparison with the closed form."""

    needs_events = False

    def __init__(self, noise_std):
        self.noise_std = noise_std

    def record(self, event):
        pass

    def samples(self, controller, port, start_ns, length_ns):
        return np.zeros(length_ns)


def test_demod_of_loopback_signal_matches_the_docs_formula():
    with program() as prog:
        I = declare(fixed)
        Q = declare(fixed)
        n = declare(int)
        with for_(n, 0, n < 3, n + 1):
            measure("readout", "probe", demod.full("cos", I), demod.full("sin", Q))
            save(I, "I")
            save(Q, "Q")
    host = RecordingHost()
    run(compile_qua(prog), host, Loopback())
    # d = 2^-12 * A * N / 2 * cos(phase lag); the demod oscillator runs 28 ns ahead of the returning pulse
    lag = 2 * np.pi * PROBE_IF * 1e-9 * PROBE_TOF
    expected_i = 2**-12 * PROBE_AMP * 200 / 2 * np.cos(lag)
    expected_q = 2**-12 * PROBE_AMP * 200 / 2 * np.sin(lag)
    np.testing.assert_allclose(host.saved["r1"], expected_i, rtol=0.01)
    np.testing.assert_allclose(host.saved["r2"], expected_q, rtol=0.01)


@pytest.mark.parametrize("offset", [0.0, 0.01])
def test_closed_form_and_sampled_form_agree(offset):
    with program() as prog:
        I = declare(fixed)
        Q = declare(fixed)
        n = declare(int)
        with for_(n, 0, n < 1500, n + 1):
            measure("readout", "resonator", dual_demod.full("cos", "sin", I), demod.full("cos", Q, "out1"))
            save(I, "I")
            save(Q, "Q")
    compiled = compile_qua(prog, make_config(noise_offset=offset))
    closed, sampled = RecordingHost(), RecordingHost()
    run(compiled, closed, SilentInputs(0.01), seed=1)
    run(compiled, sampled, Silent(0.01), seed=2)
    n = 1000
    sigma_i = 2**-12 * math.sqrt(0.01**2 + 2**-24 / 12) * math.sqrt(n)
    for tag in ("r1", "r2"):
        a, b = np.array(closed.saved[tag]), np.array(sampled.saved[tag])
        assert abs(a.std() / b.std() - 1) < 0.1
        assert abs(a.mean() - b.mean()) < 5 * a.std() / math.sqrt(len(a)) + 1e-9
    assert abs(np.array(closed.saved["r1"]).std() / sigma_i - 1) < 0.1
    # I and Q share out1's noise: their correlation survives the closed form
    corr_closed = np.corrcoef(closed.saved["r1"], closed.saved["r2"])[0, 1]
    corr_sampled = np.corrcoef(sampled.saved["r1"], sampled.saved["r2"])[0, 1]
    assert abs(corr_closed - corr_sampled) < 0.1 and corr_closed > 0.5


def test_raw_adc_trace_and_offset():
    with program() as prog:
        adc = declare_stream(adc_trace=True)
        measure("readout", "resonator", adc)
    host = RecordingHost()
    compiled = compile_qua(prog, make_config(noise_offset=0.1))
    run(compiled, host, SilentInputs())
    assert compiled.stream_kinds == {"atr_r1": "adc"}
    (tag1, in1, trace1, t1), (tag2, in2, trace2, _) = host.adc
    assert (tag1, in1, tag2, in2, t1) == ("atr_r1", 1, "atr_r1", 2, PROGRAM_START_NS)
    assert trace1.dtype == np.int16 and len(trace1) == 1000
    assert set(trace1.tolist()) == {-410} and set(trace2.tolist()) == {0}  # -round(0.1 V * 4096)


def test_sliced_accumulated_and_integration():
    with program() as prog:
        sliced = declare(fixed, size=10)
        acc = declare(fixed, size=10)
        window = declare(fixed, size=9)
        x = declare(fixed)
        measure("readout", "probe", demod.sliced("cos", sliced, 5), demod.accumulated("cos", acc, 5),
                demod.moving_window("cos", window, 5, 2), integration.full("cos", x))
        for i in range(10):
            save(sliced[i], "s")
            save(acc[i], "a")
        for i in range(9):
            save(window[i], "w")
        save(x, "x")
    host = RecordingHost()
    run(compile_qua(prog, make_config(noise_offset=0.05)), host, SilentInputs())
    s, a, w = (np.array(host.saved[t]) for t in ("r1", "r2", "r3"))
    np.testing.assert_allclose(np.cumsum(s), a, atol=1e-8)
    np.testing.assert_allclose(s[:-1] + s[1:], w, atol=1e-8)
    # integration: no oscillator, 200 samples at the 0.05 V offset
    assert host.saved["r4"][0] == pytest.approx(2**-12 * round(0.05 * 4096) / 4096 * 200, rel=1e-6)


def test_measure_validation():
    with program() as prog:
        I = declare(fixed)
        k = declare(int)
        measure("readout", "resonator", dual_demod.full("cos", "nope", I))
        measure("cw", "resonator", demod.full("cos", I))
        measure("readout", "resonator", demod.full("cos", k, "out1"))
        measure("readout", "resonator", demod.full("cos", I, "out7"))
    with pytest.raises(CompileError) as info:
        compile_qua(prog)
    text = "\n".join(info.value.messages)
    assert len(info.value.messages) == 4
    assert "'nope'" in text and "control pulse" in text and "must be a fixed" in text and "'out7'" in text


def test_time_tagging_of_loopback_pulses():
    with program() as prog:
        times = declare(int, size=10)
        count = declare(int)
        measure("readout", "probe", time_tagging.analog(times, 300, count))
        save(count, "n")
        for i in range(3):
            save(times[i], "t")
    host = RecordingHost()
    run(compile_qua(prog), host, Loopback())
    # the 10 MHz, 0.05 V (205 counts, inverted) readout comes back for 200 ns: one downward crossing of -100 per period
    assert host.saved["r1"] == [2]
    first, second, _ = host.saved["r2"]
    assert second - first == 100 and 0 < first < 100
