"""Sample-level facts of pulse synthesis and of the analog input sources, from hand-made event lists."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from qopemu import qmconfig
from qopemu.engine.events import DcOffsetEvent, PlayEvent, RampToZeroEvent
from qopemu.engine.inputs import DigitalLoopback, Loopback, NoInputs, RawInputs, noise_std_from_power
from qopemu.engine.packed_samples import records_dtype
from qopemu.engine.waveforms import (CROSSTALK_DELAY_NS, FIR_DELAY_NS, IIR_DELAY_NS, Synthesizer, WindowedRender,
                                     render)

GAUSS = (0.3 * np.exp(-0.5 * ((np.arange(40) - 20) / 6.0) ** 2)).tolist()


def make_config(overrides: dict | None = None, ports: dict | None = None) -> qmconfig.QmConfig:
    """A config dict (as a user writes it) through the client's own converter, then the typed model."""
    from qm.api.models.capabilities import QopCaps, ServerCapabilities
    from qm.program import load_config

    cfg = {
        "controllers": {
            "con1": {
                "analog_outputs": {p: {"offset": 0.0} for p in range(1, 11)},
                "digital_outputs": {p: {} for p in range(1, 11)},
                "analog_inputs": {1: {"offset": 0.0}, 2: {"offset": 0.0}},
            }
        },
        "elements": {
            "flux": {"singleInput": {"port": ("con1", 5)}, "operations": {"const": "const", "gauss": "gauss_single"}},
            "drive": {
                "singleInput": {"port": ("con1", 6)},
                "intermediate_frequency": 25e6,
                "operations": {"const": "const"},
            },
            "qubit": {
                "mixInputs": {"I": ("con1", 1), "Q": ("con1", 2), "lo_frequency": 5e9, "mixer": "mx"},
                "intermediate_frequency": 50e6,
                "digitalInputs": {"sw": {"port": ("con1", 1), "delay": 12, "buffer": 4}},
                "operations": {"x": "iq_const", "marked": "iq_marked"},
            },
            "negative": {
                "mixInputs": {"I": ("con1", 3), "Q": ("con1", 4), "lo_frequency": 5e9},
                "intermediate_frequency": -30e6,
                "operations": {"x": "iq_const"},
            },
            "hold": {
                "singleInput": {"port": ("con1", 7)},
                "sticky": {"analog": True, "digital": True, "duration": 40},
                "digitalInputs": {"sw": {"port": ("con1", 3), "delay": 0, "buffer": 0}},
                "operations": {"const": "const_marked"},
            },
            "shared": {"singleInput": {"port": ("con1", 5)}, "operations": {"const": "const"}},
        },
        "pulses": {
            "const": {"operation": "control", "length": 40, "waveforms": {"single": "c03"}},
            "const_marked": {"operation": "control", "length": 40, "waveforms": {"single": "c03"},
                             "digital_marker": "ON"},
            "gauss_single": {"operation": "control", "length": 40, "waveforms": {"single": "gauss"}},
            "iq_const": {"operation": "control", "length": 40, "waveforms": {"I": "c03", "Q": "zero"}},
            "iq_marked": {"operation": "control", "length": 40, "waveforms": {"I": "c03", "Q": "c01"},
                          "digital_marker": "GAP"},
        },
        "waveforms": {
            "c03": {"type": "constant", "sample": 0.3},
            "c01": {"type": "constant", "sample": 0.1},
            "zero": {"type": "constant", "sample": 0.0},
            "gauss": {"type": "arbitrary", "samples": GAUSS},
        },
        "digital_waveforms": {"ON": {"samples": [(1, 0)]}, "GAP": {"samples": [(1, 10), (0, 10), (1, 0)]}},
        "mixers": {"mx": [{"intermediate_frequency": 50e6, "lo_frequency": 5e9, "correction": [1.0, 0.1, 0.2, 0.9]}]},
    }
    if ports:
        cfg["controllers"]["con1"]["analog_outputs"].update(ports)
    for key, value in (overrides or {}).items():
        cfg[key].update(value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pb = load_config(cfg, capabilities=ServerCapabilities(QopCaps.qop2_caps()))
    return qmconfig.from_pb(pb)


def play(element: str, pulse: str, start: int, length: int = 40, *, frequency: float = 0.0, phase: float = 0.0,
         amp=None, **extra) -> PlayEvent:
    return PlayEvent(element, "op", pulse, start, length, amp, frequency, phase, **extra)


@pytest.fixture(scope="module")
def config() -> qmconfig.QmConfig:
    return make_config()


def test_every_declared_port_has_exactly_duration_samples(config):
    out = render([], config, 1000)
    assert sorted(out.analog) == [("con1", p) for p in range(1, 11)]
    assert sorted(out.digital) == [("con1", p) for p in range(1, 11)]
    assert all(a.shape == (1000,) and a.dtype == np.float64 for a in out.analog.values())
    assert all(d.shape == (1000,) and d.dtype == bool for d in out.digital.values())
    assert not render([], config, 10, include_analog=False).analog
    assert not render([], config, 10, include_digital=False).digital


def test_pulse_start_length_and_amplitude(config):
    out = render([play("flux", "const", 100)], config, 300).analog[("con1", 5)]
    assert np.flatnonzero(out).tolist() == list(range(100, 140))
    assert np.allclose(out[100:140], 0.3)


def test_scalar_amp_and_arbitrary_waveform(config):
    out = render([play("flux", "gauss_single", 8, amp=(0.5, 0, 0, 0.5))], config, 100).analog[("con1", 5)]
    assert np.allclose(out[8:48], 0.5 * np.array(GAUSS))


def test_truncated_arbitrary_waveform_plays_its_beginning(config):
    out = render([play("flux", "gauss_single", 0, length=16)], config, 40).analog[("con1", 5)]
    assert np.allclose(out[:16], GAUSS[:16]) and not out[16:].any()


def test_two_elements_start_together(config):
    out = render([play("flux", "const", 64), play("drive", "const", 64, frequency=25e6)], config, 200).analog
    assert np.flatnonzero(out[("con1", 5)])[0] == 64
    assert np.flatnonzero(out[("con1", 6)])[0] == 64


def test_contributions_on_one_port_add_up(config):
    out = render([play("flux", "const", 0), play("shared", "const", 20)], config, 100).analog[("con1", 5)]
    assert np.allclose(out[:20], 0.3) and np.allclose(out[20:40], 0.6) and np.allclose(out[40:60], 0.3)


def test_intermediate_frequency_and_phase(config):
    length = 2000
    out = render([play("drive", "const", 0, length=length, frequency=25e6, phase=0.1)], config, length)
    samples = out.analog[("con1", 6)]
    k = np.arange(length)
    assert np.allclose(samples, 0.3 * np.cos(2 * np.pi * (25e6 * k * 1e-9 + 0.1)))
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(length, 1e-9)[spectrum.argmax()] == pytest.approx(25e6)


def test_phase_of_each_event_is_its_own(config):
    """The runtime reports the oscillator phase at each start (after a reset or a frame rotation): half a cycle
    apart gives opposite samples."""
    events = [play("drive", "const", 0, frequency=25e6, phase=0.0), play("drive", "const", 40, frequency=25e6,
                                                                          phase=0.5)]
    out = render(events, config, 80).analog[("con1", 6)]
    assert np.allclose(out[40:80], -out[0:40])


def test_iq_modulation_and_mixer_correction(config):
    """(I~, Q~) = C R(wt + phi) A (I, Q), QUA overview "Mixed Inputs Element"."""
    amp = (0.5, -0.2, 0.3, 0.8)
    out = render([play("qubit", "iq_marked", 0, frequency=50e6, phase=0.2, amp=amp)], config, 40).analog
    theta = 2 * np.pi * (50e6 * np.arange(40) * 1e-9 + 0.2)
    i0, q0 = amp[0] * 0.3 + amp[1] * 0.1, amp[2] * 0.3 + amp[3] * 0.1
    i1, q1 = np.cos(theta) * i0 - np.sin(theta) * q0, np.sin(theta) * i0 + np.cos(theta) * q0
    assert np.allclose(out[("con1", 1)], 1.0 * i1 + 0.1 * q1)
    assert np.allclose(out[("con1", 2)], 0.2 * i1 + 0.9 * q1)


def test_amp_matrix_acts_on_baseband_before_modulation(config):
    swap = (0.0, 1.0, 1.0, 0.0)
    out = render([play("negative", "iq_const", 0, amp=swap)], config, 40).analog
    assert np.allclose(out[("con1", 3)], 0.0) and np.allclose(out[("con1", 4)], 0.3)


def test_negative_if_is_the_lower_sideband(config):
    out = render([play("negative", "iq_const", 0, frequency=-30e6)], config, 40).analog
    theta = 2 * np.pi * 30e6 * np.arange(40) * 1e-9
    assert np.allclose(out[("con1", 3)], 0.3 * np.cos(theta))
    assert np.allclose(out[("con1", 4)], -0.3 * np.sin(theta))


def test_chirp_frequency_grows_linearly(config):
    rate = 2e5  # Hz/ns
    n = 400
    chirped = render([play("drive", "const", 0, length=n, frequency=25e6, chirp_rates=(rate,))], config, n)
    k = np.arange(n)
    cycles = 25e6 * k * 1e-9 + rate * 1e-9 * k * (k - 1) / 2
    assert np.allclose(chirped.analog[("con1", 6)], 0.3 * np.cos(2 * np.pi * cycles))
    still = render([play("drive", "const", 0, length=n, frequency=25e6, chirp_rates=(0.0,))], config, n)
    plain = render([play("drive", "const", 0, length=n, frequency=25e6)], config, n)
    assert np.allclose(still.analog[("con1", 6)], plain.analog[("con1", 6)])


def test_piecewise_chirp_segments(config):
    event = play("drive", "const", 0, length=200, frequency=0.0, chirp_rates=(1e5, -1e5), chirp_times=(100,))
    out = render([event], config, 200).analog[("con1", 6)]
    per_ns = np.where(np.arange(200) < 100, 1e5, -1e5)
    frequency = np.concatenate(([0.0], np.cumsum(per_ns[:-1])))
    cycles = 1e-9 * np.concatenate(([0.0], np.cumsum(frequency[:-1])))
    assert np.allclose(out, 0.3 * np.cos(2 * np.pi * cycles))
    # QUA's own form gives a start time to every rate, the first one 0
    with_first = play("drive", "const", 0, length=200, frequency=0.0, chirp_rates=(1e5, -1e5), chirp_times=(0, 100))
    assert np.allclose(render([with_first], config, 200).analog[("con1", 6)], out)


def test_ramp_pulse(config):
    out = render([PlayEvent("flux", "", "", 10, 100, None, 0.0, 0.0, ramp_slope=0.001)], config, 200)
    samples = out.analog[("con1", 5)]
    assert np.allclose(samples[10:110], 0.001 * np.arange(1, 101)) and not samples[110:].any()


def test_sticky_element_holds_adds_and_ramps_to_zero(config):
    events = [play("hold", "const_marked", 0), play("hold", "const_marked", 100), RampToZeroEvent("hold", 200, 40)]
    out = render(events, config, 300)
    samples = out.analog[("con1", 7)]
    assert np.allclose(samples[0:100], 0.3)  # pulse, then held
    assert np.allclose(samples[100:200], 0.6)  # the next pulse adds to the held value
    assert np.allclose(samples[200:240], 0.6 * (1 - np.arange(1, 41) / 40))
    assert not samples[240:].any()
    # a digitally sticky marker stays high until the ramp starts
    assert np.flatnonzero(out.digital[("con1", 3)]).tolist() == list(range(0, 200))


def test_sticky_element_with_if_keeps_oscillating():
    cfg = make_config({"elements": {"hold": {"singleInput": {"port": ("con1", 7)}, "intermediate_frequency": 10e6,
                                             "sticky": {"analog": True, "duration": 40},
                                             "operations": {"const": "const"}}}})
    events = [play("hold", "const", 0, frequency=10e6), play("hold", "const", 200, frequency=10e6)]
    out = render(events, cfg, 240).analog[("con1", 7)]
    assert np.allclose(out[:200], 0.3 * np.cos(2 * np.pi * 10e6 * np.arange(200) * 1e-9))
    assert np.allclose(out[200:240], 0.6 * np.cos(2 * np.pi * 10e6 * np.arange(200, 240) * 1e-9))


def test_sticky_element_holds_until_a_ramp_is_recorded(config):
    """The ramp that ends a sticky element comes from the runtime (at the end of its last instruction); without one
    the program has not ended within the window, and the level and the marker hold."""
    out = render([play("hold", "const_marked", 0)], config, 200)
    assert np.allclose(out.analog[("con1", 7)], 0.3) and out.digital[("con1", 3)].all()


def test_each_pulse_goes_through_its_own_mixer_correction(config):
    """Same-shaped pulses batch together only with the same correction; None is the config's mixer entry."""
    corrected = (0.5, 0.0, 0.0, 2.0)
    events = [play("qubit", "iq_const", 0, frequency=50e6), play("qubit", "iq_const", 40, frequency=50e6),
              play("qubit", "iq_const", 80, frequency=50e6, correction=corrected)]
    out = render(events, config, 120).analog
    t = np.arange(120)
    i, q = 0.3 * np.cos(2 * np.pi * 50e6 * 1e-9 * t), 0.3 * np.sin(2 * np.pi * 50e6 * 1e-9 * t)
    assert np.allclose(out[("con1", 1)][:80], (1.0 * i + 0.1 * q)[:80])  # config: [1.0, 0.1, 0.2, 0.9]
    assert np.allclose(out[("con1", 2)][:80], (0.2 * i + 0.9 * q)[:80])
    assert np.allclose(out[("con1", 1)][80:], 0.5 * i[80:]) and np.allclose(out[("con1", 2)][80:], 2.0 * q[80:])


def test_digital_marker_delay_and_buffer(config):
    """Delayed by `delay`, widened by `buffer` each side; a low gap shrinks by 2 * buffer."""
    out = render([play("qubit", "iq_marked", 100, frequency=50e6)], config, 300).digital[("con1", 1)]
    high = np.flatnonzero(out)
    start = 100 + 12 - 4
    assert high[0] == start and high[-1] == 100 + 40 + 12 + 4 - 1
    gap = np.flatnonzero(~out[start : high[-1] + 1])
    # the marker is low over [10, 20) of the pulse; widened highs leave [10 + 4, 20 - 4), seen from start = -4
    assert gap.tolist() == list(range(4 + 10 + 4, 4 + 20 - 4))


def test_inverted_digital_output():
    cfg = make_config({"controllers": {"con1": {
        "analog_outputs": {p: {"offset": 0.0} for p in range(1, 11)},
        "digital_outputs": {1: {"inverted": True}, **{p: {} for p in range(2, 11)}},
        "analog_inputs": {1: {"offset": 0.0}, 2: {"offset": 0.0}}}}})
    out = render([play("qubit", "iq_marked", 100)], cfg, 300).digital[("con1", 1)]
    assert out[0] and not out[110]


def test_port_delay_and_offsets():
    cfg = make_config(ports={5: {"offset": 0.05, "delay": 20}})
    events = [play("flux", "const", 100), DcOffsetEvent("flux", "single", 200, -0.1)]
    out = render(events, cfg, 400).analog[("con1", 5)]
    assert np.allclose(out[:120], 0.05)
    assert np.allclose(out[120:160], 0.35)
    assert np.allclose(out[160:220], 0.05) and np.allclose(out[220:], -0.1)


def test_crosstalk_copies_a_port_into_another_and_delays_all_pulses():
    cfg = make_config(ports={6: {"offset": 0.0, "crosstalk": {5: 0.5}}})
    out = render([play("flux", "const", 0)], cfg, 200).analog
    d = CROSSTALK_DELAY_NS
    assert np.flatnonzero(out[("con1", 5)]).tolist() == list(range(d, d + 40))
    assert np.allclose(out[("con1", 6)][d : d + 40], 0.15)


def test_fir_filter_and_its_latency_on_every_port_and_marker():
    cfg = make_config(ports={5: {"offset": 0.0, "filter": {"feedforward": [0.5, 0.5], "feedback": []}}})
    out = render([play("flux", "const", 0), play("qubit", "iq_marked", 0)], cfg, 200)
    d = FIR_DELAY_NS
    flux = out.analog[("con1", 5)]
    assert np.allclose(flux[d], 0.15) and np.allclose(flux[d + 1 : d + 40], 0.3) and np.allclose(flux[d + 40], 0.15)
    assert not flux[: d].any() and not flux[d + 41 :].any()
    assert np.flatnonzero(out.analog[("con1", 1)])[0] == d  # an unfiltered port is delayed as well
    assert np.flatnonzero(out.digital[("con1", 1)])[0] == d + 12 - 4  # and so are digital markers


def test_iir_filter_sections():
    cfg = make_config(ports={5: {"offset": 0.0, "filter": {"feedforward": [], "feedback": [0.5, -0.25]}}})
    out = render([play("flux", "gauss_single", 0)], cfg, 300).analog[("con1", 5)]
    expected = np.array(GAUSS + [0.0] * 100)
    for a in (0.5, -0.25):  # reference: the recursion, sample by sample
        y, state = np.zeros_like(expected), 0.0
        for n, x in enumerate(expected):
            state = x + a * state
            y[n] = state
        expected = y
    d = IIR_DELAY_NS[2]
    assert np.allclose(out[d : d + 140], expected) and not out[:d].any()


@pytest.mark.parametrize("filters", [{}, {"filter": {"feedforward": [0.3, 0.4, 0.3], "feedback": [0.9]}}])
def test_a_window_is_a_slice_of_the_whole(filters):
    cfg = make_config(ports={1: {"offset": 0.01, "delay": 13, **filters}})
    events = [play("qubit", "iq_marked", t, frequency=50e6, phase=(50e6 * t * 1e-9) % 1) for t in range(0, 800, 40)]
    whole = render(events, cfg, 1000)
    part = Synthesizer(cfg).render(events, 333, 222)
    for key, samples in part.analog.items():
        assert np.allclose(samples, whole.analog[key][333:555])
    for key, samples in part.digital.items():
        assert np.array_equal(samples, whole.digital[key][333:555])


@pytest.mark.parametrize("ports", [{},
                                   {1: {"offset": 0.01, "delay": 13, "filter": {"feedforward": [0.3, 0.4, 0.3]}},
                                    6: {"offset": 0.0, "crosstalk": {5: 0.5}}},
                                   {5: {"offset": 0.0, "filter": {"feedforward": [], "feedback": [0.9]}}}])
def test_windows_rendered_one_after_the_other_join_into_the_whole(ports):
    """What a worker hands over window after window is what one render of the whole run gives: pulses across the
    windows' edges, FIR history, crosstalk, marker delays and buffers, sticky levels and DC offsets included."""
    early = {"singleInput": {"port": ("con1", 8)}, "operations": {"const": "const_marked"},
             "digitalInputs": {"sw": {"port": ("con1", 4), "delay": 0, "buffer": 6}}}  # marker opens before the pulse
    cfg = make_config(ports=ports, overrides={"elements": {"early": early}})
    events = [play("qubit", "iq_marked", t, frequency=50e6, phase=(50e6 * t * 1e-9) % 1) for t in range(0, 800, 40)]
    events += [play("flux", "gauss_single", t) for t in range(7, 900, 61)]
    events += [play("early", "const_marked", t) for t in range(3, 900, 97)]
    events += [play("drive", "const", t, frequency=25e6, phase=0.1, chirp_rates=(2e4,)) for t in (100, 500)]
    events += [play("hold", "const_marked", 230), RampToZeroEvent("hold", 600, 40),
               DcOffsetEvent("drive", "single", 321, 0.05)]
    rendering = WindowedRender(events, cfg, 1000)
    whole = render(events, cfg, 1000)
    records = np.zeros(rendering.rows, dtype=records_dtype(rendering.columns))
    starts = []
    for start, end, samples in rendering.windows(37):
        samples.pack_into(records[start:end])
        starts.append(start)
    one_window = "feedback" in str(ports)  # an IIR filter remembers everything: one window
    assert starts == ([0] if one_window else list(range(0, 1000, 37)))
    assert rendering.columns == whole.packed().columns
    for (controller, port), samples in whole.analog.items():
        assert np.allclose(records[f"{controller}:analog:{port}"], samples, atol=1e-6)
    for (controller, port), samples in whole.digital.items():
        assert np.array_equal(records[f"{controller}:digital:{port}"], samples)


def test_a_digital_loopback_sees_a_marker_that_opens_before_its_pulse_and_before_the_window_ends():
    """A marker's buffer opens it `buffer` ns before its pulse, so a pulse just after the window still shows in it."""
    early = {"singleInput": {"port": ("con1", 8)}, "operations": {"const": "const_marked"},
             "digitalInputs": {"sw": {"port": ("con1", 4), "delay": 0, "buffer": 6}}}
    cfg = make_config(overrides={"elements": {"early": early}})
    wire = DigitalLoopback(cfg, [("con1", 4, "con1", 1)], latency_ns=0)
    pulse = play("early", "const_marked", 102)
    wire.record(pulse)
    expected = render([pulse], cfg, 100).digital[("con1", 4)]
    assert expected.any() and np.array_equal(wire.levels("con1", 1, 0, 100), expected)


def test_loopback_input_sees_the_output_after_the_latency(config):
    source = Loopback(config, [("con1", 5, "con1", 1)], latency_ns=24, noise_std=0.1)
    events = [play("flux", "gauss_single", 100), play("drive", "const", 100, frequency=25e6)]
    for event in events:
        source.record(event)
    seen = source.samples("con1", 1, 100, 100)
    assert np.flatnonzero(seen)[0] == 24
    assert np.allclose(seen[24:64], GAUSS)
    assert source.samples("con1", 2, 0, 10) is None
    assert source.needs_events and source.noise_std == 0.1


def test_raw_and_no_inputs():
    raw = RawInputs({("con1", 1): np.arange(5.0)})
    assert raw.samples("con1", 1, 3, 4).tolist() == [3.0, 4.0, 0.0, 0.0]
    assert raw.samples("con1", 2, 0, 4) is None
    assert NoInputs().samples("con1", 1, 0, 4) is None
    assert noise_std_from_power(0.04) == pytest.approx(0.2)


def test_loopback_through_a_filtered_port_matches_the_simulated_output():
    cfg = make_config(ports={5: {"offset": 0.02, "delay": 8, "filter": {"feedforward": [0.7, 0.3], "feedback": [0.95]}}})
    events = [play("flux", "gauss_single", t) for t in range(0, 2000, 200)]
    source = Loopback(cfg, [("con1", 5, "con1", 1)], latency_ns=24)
    for event in events:
        source.record(event)
    whole = render(events, cfg, 3000).analog[("con1", 5)]
    assert np.allclose(source.samples("con1", 1, 1500, 300), whole[1500 - 24 : 1800 - 24])
