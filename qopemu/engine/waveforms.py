"""Pulse synthesis: the event timeline of a run turned into the samples every output port plays, at 1 GS/s.

The output chain follows Quantum Machines' QUA overview (docs.quantum-machines.co, "Overview of QUA", sections
"Single Input Element", "Mixed Inputs Element", "Amplitude transformations", "Digital Waveform Manipulations"):

- single input:   s~(t) = A s(t) cos(w_IF t + phi)
- mixed inputs:   (I~, Q~) = C . R(w_IF t + phi) . A . (I, Q),  R(x) = [[cos x, -sin x], [sin x, cos x]]
  so `amp()` (A, scalar or matrix) acts on the baseband pair before modulation, the mixer correction C (looked up for
  the element's configured IF and LO, or the one `update_correction` set, carried by the event) after it. A negative IF needs no special case: R turns the other way, which is
  the lower sideband.

The phase is "cycles at the event start" as the runtime reports it (it already holds frame rotations, IF phase
resets and `update_frequency` rules, see "Phase and Frame in QUA"); within a pulse it advances by f * 1 ns a sample.

Other rules, each cited where it is implemented:
- chirp: the piecewise linear discrete chirp of "Frequency Chirp" (features guide);
- sticky elements, `ramp_to_zero`, ramp pulses: "Sticky Element", "Voltage Easing", "Ramp Pulse" (features guide);
- crosstalk (applied before DC offsets, adds 8 cycles to every analog pulse on OPX+) and analog port `delay`:
  "Crosstalk Correction Matrix", "Analog Delay" (features guide);
- output filters (FIR, then single-tap IIR sections, after crosstalk, before DC offsets; their latency delays every
  port and every digital marker): "Output Filter" guide, OPX+ tab;
- digital markers: delayed by the digital input's `delay`, widened by `buffer` on each side ("the digital waveform is
  convolved with a pattern that is high for 1 + 2b"). The simulator shows digital outputs 136 ns later than the real
  OPX does (`SimulatedJob.get_simulated_samples` docstring), which cancels the analog path's intrinsic 136 ns: in
  simulated samples a marker with `delay` 0 starts with its analog pulse.

Speed: events that differ only in start time and start phase share one precomputed pair of arrays per port
(out = cos(phi) * Pc + sin(phi) * Ps), so a batch of them is rendered with two outer products and one scatter.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from qopemu.engine.event_index import EventIndex
from qopemu.engine.events import DcOffsetEvent, PlayEvent, RampToZeroEvent
from qopemu.engine.packed_samples import PackedSamples, records_dtype
from qopemu.qmconfig import ANALOG_OUTPUTS, DIGITAL_OUTPUTS, Element, PortRef, QmConfig

TWO_PI = 2.0 * np.pi
NS = 1e-9

# "Using the crosstalk matrix adds a delay of 8 cycles (32 ns)" on OPX+, to every analog pulse of every port.
CROSSTALK_DELAY_NS = 32
# OPX+ output filter latency ("Output Filter", Delay Consequences): 11 cycles with FIR taps only, 12 / 15 / 18 cycles
# with 1 / 2 / 3 IIR (feedback) taps; it too delays all analog pulses of all ports.
FIR_DELAY_NS = 44
IIR_DELAY_NS = {1: 48, 2: 60, 3: 72}
# The filter output range is the DAC's [-0.5, 0.5); beyond it the filter output is clipped.
FILTER_RANGE = (-0.5, 0.5 - 2.0**-16)

# A batch of same-shaped events is rendered this many samples at a time, to bound the temporary arrays.
_BATCH_SAMPLES = 1 << 16
# Pulses whose phase rotations (cos, sin) agree this closely start at the same phase: 1e-9 is far below the DAC's
# resolution (2^-16 V), and covers the rounding of phases accumulated over a long program.
_SAME_PHASE = 1e-9

# Analog samples are rendered in the format they are sent in (engine/packed_samples.py ANALOG_WIRE_DTYPES): float64
# volts by default, float32 when the server's `simulation_samples` setting asks for it.
SAMPLE_DTYPES = {"float64": np.float64, "float32": np.float32}

PortKey = tuple[str, int]
Column = tuple[str, str, int]  # (controller, "analog" | "digital", port)


def record_columns(analog: Iterable[PortKey], digital: Iterable[PortKey]) -> list[Column]:
    """The columns of the packed records, in the order the client's plot lists them: per controller, its analog
    ports, then its digital ones."""
    analog, digital = set(analog), set(digital)
    return [(controller, kind, port)
            for controller in sorted({c for c, _ in analog} | {c for c, _ in digital})
            for kind, keys in (("analog", analog), ("digital", digital))
            for port in sorted(p for c, p in keys if c == controller)]


@dataclass
class OutputSamples:
    """What the output ports play over a window, one sample per ns. Keys are (controller, port number)."""

    analog: dict[PortKey, np.ndarray]  # volts, in the synthesiser's sample format
    digital: dict[PortKey, np.ndarray]  # bool

    def pack_into(self, records: np.ndarray) -> None:
        """Write the samples into `records` (a structured array of `records_dtype(columns)`), a column at a time: a
        strided copy per column costs what stacking the columns would, without a temporary block."""
        for name in records.dtype.names:
            controller, kind, port = name.split(":")
            records[name] = (self.analog if kind == "analog" else self.digital)[(controller, int(port))]

    def packed(self, analog: str = "float64") -> PackedSamples:
        """All ports as one complete block of records, analog samples in the `analog` format."""
        columns = record_columns(self.analog, self.digital)
        rows = len(next(iter(self.analog.values()), next(iter(self.digital.values()), ())))
        records = np.zeros(rows, dtype=records_dtype(columns, analog))
        self.pack_into(records)
        return PackedSamples.complete(columns, rows, records.tobytes(), analog)


def render(
    events: Iterable[object],
    config: QmConfig,
    duration_ns: int,
    *,
    include_analog: bool = True,
    include_digital: bool = True,
) -> OutputSamples:
    """Samples of every declared output port over [0, duration_ns) for a run's events."""
    return Synthesizer(config).render(events, 0, duration_ns, analog_ports=None if include_analog else (),
                                      digital_ports=None if include_digital else ())


class WindowedRender:
    """A run's outputs over [0, duration_ns), rendered window after window, each from only the events that can reach
    it, so that a worker hands a window over while it renders the next. The windows join exactly: the synthesiser
    renders a window as it renders the whole (pulses across the edges, FIR history, sticky levels, DC offsets).
    A port with an IIR filter remembers all it ever played, so then one window covers the whole run."""

    def __init__(self, events: Iterable[object], config: QmConfig, duration_ns: int, analog: str = "float64"):
        self.duration_ns = max(0, int(duration_ns))
        self.analog = analog  # the analog samples' format, a key of SAMPLE_DTYPES
        self._synth = Synthesizer(config, SAMPLE_DTYPES[analog])
        self.columns = record_columns(((p.controller, p.number) for p in self._synth.analog_ports),
                                      ((p.controller, p.number) for p in self._synth.digital_ports))
        analog = [p for p in config.declared_ports() if p.ref.kind == ANALOG_OUTPUTS]
        self._one_window = any(p.filter_feedback for p in analog)
        markers = [d for element in config.elements.values() for d in element.digital_inputs.values()]
        sticky = {name for name, element in config.elements.items()
                  if element.sticky is not None and (element.sticky.analog or element.sticky.digital)}
        self._index = EventIndex(set(config.elements), sticky, *reach_ns(config, analog, markers))
        # The events are indexed when the first window renders, so that the layout (columns, rows) is known at once.
        self._events: list[object] | None = list(events)
        self._offsets: list[DcOffsetEvent] = []

    @property
    def rows(self) -> int:
        return self.duration_ns

    def windows(self, samples_per_window: int) -> Iterator[tuple[int, int, OutputSamples]]:
        """(start, end, samples) of consecutive windows of at most `samples_per_window` ns that cover the run."""
        if self._events is not None:
            self._offsets = [event for event in self._events if isinstance(event, DcOffsetEvent)]
            self._index.extend([e for e in self._events if isinstance(e, (PlayEvent, RampToZeroEvent))])
            self._events = None
        step = self.duration_ns if self._one_window else max(1, samples_per_window)
        for start in range(0, self.duration_ns, step):
            length = min(step, self.duration_ns - start)
            plays, ramps = self._index.near(start, length)
            yield start, start + length, self._synth.render_grouped(plays, ramps, self._offsets, start, length)


@dataclass(frozen=True)
class _Modulated:
    """One pulse shape at one frequency, per analog port: out[k] = cos(phi) * parts[0, k] + sin(phi) * parts[1, k]."""

    ports: tuple[PortRef, ...]
    parts: tuple[np.ndarray, ...]  # per port, a (2, length) array of samples: the cos part, then the sin part


class Synthesizer:
    """Renders event lists against one config; keeps pulse shapes cached across calls (loopback renders many windows)."""

    def __init__(self, config: QmConfig, dtype: type = np.float64):
        self.config = config
        self.dtype = dtype  # of the analog samples
        self._modulated: dict[tuple, _Modulated] = {}
        self._markers: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, bool]] = {}
        self._resampled: dict[str, np.ndarray] = {}  # arbitrary waveforms with a sampling_rate, at 1 GS/s
        analog = [p for p in config.declared_ports() if p.ref.kind == ANALOG_OUTPUTS]
        self.analog_ports = sorted((p.ref for p in analog), key=_port_order)
        self.digital_ports = sorted(
            (p.ref for p in config.declared_ports() if p.ref.kind == DIGITAL_OUTPUTS), key=_port_order
        )
        # crosstalk[p] = [(q, factor)]: port p also plays factor * (what is played to q); p's own factor defaults to 1.
        self.crosstalk: dict[PortRef, list[tuple[PortRef, float]]] = {}
        for port in analog:
            terms = {PortRef(port.ref.controller, ANALOG_OUTPUTS, q): f for q, f in port.crosstalk}
            terms.setdefault(port.ref, 1.0)
            self.crosstalk[port.ref] = list(terms.items())
        self._alignment = alignment_delay_ns(config)
        self._filters = {
            p.ref: (np.asarray(p.filter_feedforward or (1.0,), dtype=float), tuple(p.filter_feedback))
            for p in analog
            if p.filter_feedforward or p.filter_feedback
        }

    # ---------------------------------------------------------------------------------------------------------
    # public

    def render(
        self,
        events: Iterable[object],
        start_ns: int,
        length_ns: int,
        *,
        analog_ports: Sequence[PortRef] | None = None,
        digital_ports: Sequence[PortRef] | None = None,
    ) -> OutputSamples:
        """Samples over [start_ns, start_ns + length_ns) of the output timeline (after port delays).

        `analog_ports` / `digital_ports` limit the ports rendered (default: every declared output of the kind; `()`
        for none)."""
        plays: dict[str, list[PlayEvent]] = {}
        ramps: dict[str, list[RampToZeroEvent]] = {}
        offsets: list[DcOffsetEvent] = []
        for event in events:
            if isinstance(event, PlayEvent):
                plays.setdefault(event.element, []).append(event)
            elif isinstance(event, RampToZeroEvent):
                ramps.setdefault(event.element, []).append(event)
            elif isinstance(event, DcOffsetEvent):
                offsets.append(event)
        for group in (plays, ramps):
            for timeline in group.values():
                timeline.sort(key=lambda e: e.start)
        return self.render_grouped(plays, ramps, offsets, start_ns, length_ns, analog_ports=analog_ports,
                                   digital_ports=digital_ports)

    def render_grouped(
        self,
        plays: dict[str, list[PlayEvent]],
        ramps: dict[str, list[RampToZeroEvent]],
        offsets: list[DcOffsetEvent],
        start_ns: int,
        length_ns: int,
        *,
        analog_ports: Sequence[PortRef] | None = None,
        digital_ports: Sequence[PortRef] | None = None,
    ) -> OutputSamples:
        """`render` of events already grouped per element, each group in start order."""
        length_ns = max(0, int(length_ns))
        analog_ports = self.analog_ports if analog_ports is None else list(analog_ports)
        digital_ports = self.digital_ports if digital_ports is None else list(digital_ports)
        analog = self._render_analog(plays, ramps, offsets, start_ns, length_ns, analog_ports) if analog_ports else {}
        digital = self._render_digital(plays, ramps, start_ns, length_ns, digital_ports) if digital_ports else {}
        return OutputSamples(analog, digital)

    # ---------------------------------------------------------------------------------------------------------
    # analog

    def _render_analog(
        self,
        plays: dict[str, list[PlayEvent]],
        ramps: dict[str, list[RampToZeroEvent]],
        offsets: list[DcOffsetEvent],
        start: int,
        length: int,
        ports: Sequence[PortRef],
    ) -> dict[PortKey, np.ndarray]:
        delays = {p: self.config.port(p).delay for p in ports}
        max_delay = max(delays.values(), default=0)
        # Pulse buffers live on the element timeline: output time t shows what was played at t - delay - alignment.
        window_start = start - max_delay - self._alignment
        window_length = length + max_delay
        filtered = [self._filters[p] for p in ports if p in self._filters]
        # A filter needs the samples before the window too: the FIR's length, or all of them for an IIR.
        if any(feedback for _, feedback in filtered):
            history = max(0, window_start)
        else:
            history = max((feedforward.size - 1 for feedforward, _ in filtered), default=0)
        window_start -= history
        window_length += history
        sources = {q for p in ports for q, _ in self.crosstalk[p]}
        buffers = {q: np.zeros(window_length, dtype=self.dtype) for q in sources}
        elements = self.config.elements
        for name in set(plays) | set(ramps):
            element = elements[name]
            if not sources.intersection(element.analog_ports):
                continue
            timeline = plays.get(name, [])
            if element.sticky is not None and element.sticky.analog:
                self._render_sticky(element, timeline, ramps.get(name, []), buffers, window_start, window_length)
            else:
                self._render_element(element, timeline, buffers, window_start, window_length)
        out: dict[PortKey, np.ndarray] = {}
        for port in ports:
            terms = self.crosstalk[port]
            if len(terms) == 1 and terms[0][1] == 1.0:
                mixed = buffers[terms[0][0]]  # no crosstalk: the port plays its own buffer
            else:
                mixed = buffers[terms[0][0]] * terms[0][1]
                for source, factor in terms[1:]:
                    mixed += buffers[source] * factor
            if port in self._filters:
                mixed = _filter(mixed, *self._filters[port])
            shift = history + max_delay - delays[port]
            samples = mixed[shift : shift + length]
            offset = self._offsets(port, offsets, start - delays[port], length)
            if offset is not None:
                samples = samples + offset  # not in place: another port's crosstalk may read this buffer
            out[(port.controller, port.number)] = samples.astype(self.dtype, copy=False)
        return out

    def _offsets(
        self, port: PortRef, events: list[DcOffsetEvent], start: int, length: int
    ) -> np.ndarray | float | None:
        """The port's DC offset over [start, start + length): the config offset, then each set_dc_offset from its
        start on (the last one in program order wins at equal times). None when it is 0 throughout."""
        base = self.config.port(port).offset
        elements = self.config.elements
        changes = [e for e in events if input_port(elements[e.element], e.port_key) == port]
        if not changes:
            return base or None
        changes.sort(key=lambda e: e.start)
        times = np.array([e.start for e in changes])
        values = np.array([e.value for e in changes])
        index = np.searchsorted(times, np.arange(start, start + length), side="right") - 1
        return np.where(index >= 0, values[np.maximum(index, 0)], base)

    def _render_element(
        self,
        element: Element,
        timeline: list[PlayEvent],
        buffers: dict[PortRef, np.ndarray],
        window_start: int,
        window_length: int,
    ) -> None:
        """A non-sticky element: same-shaped pulses inside the window in batches; chirps, ramps and pulses cut by the
        window's edges one by one."""
        window_end = window_start + window_length
        batches: dict[tuple, list[PlayEvent]] = {}
        for event in timeline:  # the hot loop of rendering: one pass, no allocation for most events
            start = event.start
            end = start + event.length
            if start >= window_end or end <= window_start or end <= start:
                continue
            if event.chirp_rates or event.ramp_slope is not None:
                self._render_single_event(element, event, buffers, window_start, window_length)
            elif start < window_start or end > window_end:
                self._render_cut(element, event, buffers, window_start, window_end)
            else:
                key = (event.pulse, event.length, event.amp, event.frequency, event.correction)
                batch = batches.get(key)
                if batch is None:
                    batches[key] = [event]
                else:
                    batch.append(event)
        for batch in batches.values():
            self._render_batch(element, batch, buffers, window_start)

    def _render_batch(
        self, element: Element, batch: list[PlayEvent], buffers: dict[PortRef, np.ndarray], window_start: int
    ) -> None:
        """Same-shaped pulses that lie inside the window."""
        first = batch[0]
        shape = self._modulated_shape(element, first)
        n = first.length
        per_batch = max(1, _BATCH_SAMPLES // n)
        offsets = np.arange(n)
        for i in range(0, len(batch), per_batch):
            part = batch[i : i + per_batch]
            starts = np.array([e.start for e in part], dtype=np.int64) - window_start
            phases = TWO_PI * (np.array([e.phase for e in part]) % 1.0)
            cos, sin = np.cos(phases), np.sin(phases)
            # Back-to-back pulses (an element playing continuously) fill one slice: add to it without an index.
            gaps = np.diff(starts)  # the batch is in start order
            tiled = bool(np.all(gaps == n))
            tile_start = int(starts[0])
            index = None if tiled else (starts[:, None] + offsets[None, :]).ravel()
            # A fancy-index += drops repeated indices; an element's own pulses never overlap, but be exact if they do.
            overlapping = not tiled and bool(np.any(gaps < n))
            # Pulses back to back that all start at the same phase (a frequency commensurate with the pulse length,
            # as in continuous playing) repeat one row of samples: add it to every pulse's slice at once.
            same_phase = tiled and np.ptp(cos) < _SAME_PHASE and np.ptp(sin) < _SAME_PHASE
            rotations = np.stack([cos, sin], axis=1).astype(self.dtype)
            values_2d = np.empty((1 if same_phase else len(part), n), dtype=self.dtype)
            for port, parts in zip(shape.ports, shape.parts):
                if port not in buffers:
                    continue
                # Every pulse of the batch at once: its phase rotation times the cos/sin parts of the shape, as one
                # (pulses x 2) @ (2 x samples) product that writes each sample once.
                np.matmul(rotations[:1] if same_phase else rotations, parts, out=values_2d)
                if same_phase:
                    tile = buffers[port][tile_start:tile_start + len(part) * n].reshape(len(part), n)
                    tile += values_2d
                    continue
                values = values_2d.ravel()
                if overlapping:
                    np.add.at(buffers[port], index, values)
                elif tiled:
                    buffers[port][tile_start:tile_start + values.size] += values
                else:
                    buffers[port][index] += values

    def _render_cut(
        self, element: Element, event: PlayEvent, buffers: dict[PortRef, np.ndarray], window_start: int,
        window_end: int,
    ) -> None:
        """The part inside the window of a pulse that a window edge cuts, from the slice of its shape."""
        shape = self._modulated_shape(element, event)
        k0, k1 = max(0, window_start - event.start), min(event.length, window_end - event.start)
        phase = TWO_PI * (event.phase % 1.0)
        rotation = np.array([np.cos(phase), np.sin(phase)], dtype=self.dtype)
        at = event.start + k0 - window_start
        for port, parts in zip(shape.ports, shape.parts):
            if port in buffers:
                buffers[port][at : at + k1 - k0] += rotation @ parts[:, k0:k1]

    def _modulated_shape(self, element: Element, event: PlayEvent) -> _Modulated:
        key = (element.name, event.pulse, event.length, event.amp, event.frequency, event.correction)
        shape = self._modulated.get(key)
        if shape is None:
            baseband = self._baseband(element, event, 0, event.length)
            theta = TWO_PI * event.frequency * NS * np.arange(event.length)
            carrier = baseband * np.exp(1j * theta)
            ports, outputs = self._to_ports(element, carrier, event.correction)
            # cos(phi) and sin(phi) parts of Re/Im(carrier * e^{i phi}), pushed through the port mapping.
            _, rotated = self._to_ports(element, carrier * 1j, event.correction)
            shape = _Modulated(ports, tuple(np.stack(pair).astype(self.dtype) for pair in zip(outputs, rotated)))
            self._modulated[key] = shape
        return shape

    def _render_single_event(
        self,
        element: Element,
        event: PlayEvent,
        buffers: dict[PortRef, np.ndarray],
        window_start: int,
        window_length: int,
    ) -> None:
        k0 = max(0, window_start - event.start)  # the caller renders only events that reach into the window
        k1 = min(event.length, window_start + window_length - event.start)
        baseband = self._baseband(element, event, k0, k1)
        carrier = baseband * np.exp(1j * TWO_PI * _phase_cycles(event, k0, k1))
        self._add(element, carrier, buffers, event.start + k0 - window_start, event.correction)

    def _render_sticky(
        self,
        element: Element,
        timeline: list[PlayEvent],
        ramps: list[RampToZeroEvent],
        buffers: dict[PortRef, np.ndarray],
        window_start: int,
        window_length: int,
    ) -> None:
        """A sticky element holds its last baseband sample between pulses, still modulated by its oscillator ("In
        case of an element with an intermediate frequency, the output will be a sine wave with the last amplitude");
        a new pulse is added to the held value; `ramp_to_zero` eases the held value linearly to 0 over its duration.
        The runtime emits the ramp that ends a sticky element at its last instruction ("A sticky element always ramps
        back ... when the element has reached its final instruction"). The held level goes through the mixer
        correction of the pulse that set it."""
        window_end = window_start + window_length
        steps: list[PlayEvent | RampToZeroEvent] = sorted([*timeline, *ramps], key=lambda e: e.start)
        held = 0j
        hold_from = None  # time from which `held` is being played
        frequency, phase_time, phase = 0.0, 0, 0.0  # oscillator: `phase` cycles at `phase_time`
        correction = None

        def hold_until(end: int) -> None:
            if hold_from is None or held == 0:
                return
            a, b = max(hold_from, window_start), min(end, window_end)
            if b <= a:
                return
            cycles = phase + frequency * NS * (np.arange(a, b) - phase_time)
            self._add(element, held * np.exp(1j * TWO_PI * cycles), buffers, a - window_start, correction)

        for step in steps:
            hold_until(step.start)
            if isinstance(step, PlayEvent):
                if step.length <= 0:
                    continue
                frequency, phase_time, phase, correction = step.frequency, step.start, step.phase, step.correction
                k0 = max(0, window_start - step.start)
                k1 = min(step.length, window_end - step.start)
                if k1 > k0:
                    baseband = held + self._baseband(element, step, k0, k1)
                    carrier = baseband * np.exp(1j * TWO_PI * _phase_cycles(step, k0, k1))
                    self._add(element, carrier, buffers, step.start + k0 - window_start, correction)
                held = held + complex(self._baseband(element, step, step.length - 1, step.length)[0])
                hold_from = step.start + step.length
            else:
                duration = max(1, step.duration)
                a, b = max(step.start, window_start), min(step.start + duration, window_end)
                if b > a and held != 0:
                    k = np.arange(a, b) - step.start
                    level = held * (1.0 - (k + 1) / duration)
                    cycles = phase + frequency * NS * (np.arange(a, b) - phase_time)
                    self._add(element, level * np.exp(1j * TWO_PI * cycles), buffers, a - window_start, correction)
                held = 0j
                hold_from = step.start + duration
        hold_until(window_end)

    def _baseband(self, element: Element, event: PlayEvent, k0: int, k1: int) -> np.ndarray:
        """Samples k0..k1-1 of the event's baseband, I + iQ (real for single-input elements), amp() applied."""
        if event.ramp_slope is not None:
            # play(ramp(slope)): the level grows by `slope` V every ns, reaching slope * length at the last sample,
            # so that ramp(a) then ramp(-a) on a sticky element comes back exactly to where it started.
            ramp = event.ramp_slope * (np.arange(k0, k1) + 1.0)
            return ramp * _amp_scalar(event.amp) + 0j
        pulse = self.config.pulses[event.pulse]
        if element.mixed_inputs is not None:
            i = self._waveform(pulse.waveforms["I"], event.length, k0, k1)
            q = self._waveform(pulse.waveforms["Q"], event.length, k0, k1)
            if event.amp is not None:
                a00, a01, a10, a11 = event.amp
                i, q = a00 * i + a01 * q, a10 * i + a11 * q
            return i + 1j * q
        single = self._waveform(pulse.waveforms["single"], event.length, k0, k1)
        return single * _amp_scalar(event.amp) + 0j

    def _waveform(self, name: str, length: int, k0: int, k1: int) -> np.ndarray:
        """Samples k0..k1-1 of a waveform played for `length` ns: constants fill it; arbitrary waveforms are cut
        (`truncate`) or stretched (`duration`; linear interpolation here, the OPX uses a 3rd-order Lagrange one)."""
        waveform = self.config.waveforms[name]
        samples = waveform.samples
        if waveform.is_constant:
            return np.full(k1 - k0, samples[0])
        if waveform.sampling_rate != 1e9:
            samples = self._resampled.get(name)
            if samples is None:
                samples = self._resampled[name] = resample(waveform.samples, waveform.sampling_rate,
                                                           waveform.played_length)
        if length <= samples.size:
            return samples[k0:k1].astype(float)
        positions = np.arange(k0, k1) * ((samples.size - 1) / (length - 1))
        return np.interp(positions, np.arange(samples.size), samples)

    def _to_ports(
        self, element: Element, carrier: np.ndarray, correction: tuple[float, float, float, float] | None
    ) -> tuple[tuple[PortRef, ...], list[np.ndarray]]:
        """The modulated complex signal as played by each analog port of the element (`correction`: the event's
        mixer correction, None for the config's)."""
        if element.mixed_inputs is not None:
            c00, c01, c10, c11 = correction if correction is not None else correction_matrix(self.config, element)
            i, q = carrier.real, carrier.imag
            return element.mixed_inputs, [c00 * i + c01 * q, c10 * i + c11 * q]
        ports = element.analog_ports
        return ports, [carrier.real] * len(ports)

    def _add(
        self, element: Element, carrier: np.ndarray, buffers: dict[PortRef, np.ndarray], at: int,
        correction: tuple[float, float, float, float] | None,
    ) -> None:
        ports, outputs = self._to_ports(element, carrier, correction)
        for port, values in zip(ports, outputs):
            if port in buffers:
                buffers[port][at : at + values.size] += values

    # ---------------------------------------------------------------------------------------------------------
    # digital

    def _render_digital(
        self,
        plays: dict[str, list[PlayEvent]],
        ramps: dict[str, list[RampToZeroEvent]],
        start: int,
        length: int,
        ports: Sequence[PortRef],
    ) -> dict[PortKey, np.ndarray]:
        intervals: dict[PortRef, tuple[list[np.ndarray], list[np.ndarray]]] = {p: ([], []) for p in ports}
        for name, timeline in plays.items():
            element = self.config.elements[name]
            if not element.digital_inputs:
                continue
            if element.sticky is not None and element.sticky.digital:
                highs_all, lows_all = self._sticky_marker_runs(timeline, ramps.get(name, []), start + length)
            else:
                highs_all, lows_all = self._marker_runs(timeline)
            if highs_all.size == 0:
                continue
            for digital in element.digital_inputs.values():
                if digital.port not in intervals:
                    continue
                # The marker is convolved with a window high for 1 + 2 * buffer: each high run widens by buffer.
                shift = digital.delay + self._alignment - start
                intervals[digital.port][0].append(highs_all + shift - digital.buffer)
                intervals[digital.port][1].append(lows_all + shift + digital.buffer)
        out: dict[PortKey, np.ndarray] = {}
        for port, (highs, lows) in intervals.items():
            level = _paint(highs, lows, length)
            if self.config.port(port).inverted:
                level = ~level
            out[(port.controller, port.number)] = level
        return out

    def _marker_runs(self, timeline: list[PlayEvent]) -> tuple[np.ndarray, np.ndarray]:
        """High runs [start, end) on the element timeline of every marker its pulses play, batched by shape."""
        by_shape: dict[tuple[str, int], list[int]] = {}
        for event in timeline:
            marker = self.config.pulses[event.pulse].digital_marker if event.pulse else None
            if marker is not None and event.length > 0:
                by_shape.setdefault((marker, event.length), []).append(event.start)
        highs, lows = [], []
        for (marker, length), starts in by_shape.items():
            rel_highs, rel_lows, _ = self._marker(marker, length)
            at = np.array(starts, dtype=np.int64)[:, None]
            highs.append((at + rel_highs[None, :]).ravel())
            lows.append((at + rel_lows[None, :]).ravel())
        if not highs:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(highs), np.concatenate(lows)

    def _sticky_marker_runs(
        self, timeline: list[PlayEvent], ramps: list[RampToZeroEvent], end: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Markers of a digitally sticky element: a marker that ends high stays high until the element's next pulse,
        or until a ramp to zero starts ("the digital marker will stop at the beginning of the ramp")."""
        stops = sorted([e.start for e in timeline] + [r.start for r in ramps])
        highs, lows = [], []
        for event in timeline:
            marker = self.config.pulses[event.pulse].digital_marker if event.pulse else None
            if marker is None or event.length <= 0:
                continue
            rel_highs, rel_lows, last_high = self._marker(marker, event.length)
            if last_high:
                following = bisect.bisect_right(stops, event.start)
                rel_lows = rel_lows.copy()
                rel_lows[-1] = (stops[following] if following < len(stops) else end) - event.start
            highs.append(event.start + rel_highs)
            lows.append(event.start + rel_lows)
        if not highs:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(highs), np.concatenate(lows)

    def _marker(self, name: str, length: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """High runs [start, end) of a digital waveform played for `length` ns, and whether its last sample is high.

        Segments are (value, ns); a length of 0 lasts to the end of the pulse; a waveform longer than the pulse is
        truncated (QUA overview, "Defining digital pulses")."""
        key = (name, length)
        cached = self._markers.get(key)
        if cached is None:
            highs, lows, t = [], [], 0
            last_high = False
            for value, duration in self.config.digital_waveforms[name].segments:
                end = length if duration == 0 else min(length, t + duration)
                if end > t and value:
                    highs.append(t)
                    lows.append(end)
                if end > t:
                    last_high = bool(value) and end == length
                t = end
                if t >= length:
                    break
            cached = (np.array(highs, dtype=np.int64), np.array(lows, dtype=np.int64), last_high)
            self._markers[key] = cached
        return cached


def resample(samples: np.ndarray, rate: float, length: int) -> np.ndarray:
    """`length` samples at 1 GS/s of a waveform sampled at `rate` S/s: sample t (ns) sits at position
    p = t * rate / 1e9 of the given samples, interpolated by the 3rd-order (4-point) Lagrange polynomial through the
    samples around it (docs/simulation.md, "Arbitrary waveforms with a sampling rate"). At whole positions it is the
    given sample exactly; past either end, the end sample stands in for the missing neighbours."""
    position = np.arange(length) * (rate / 1e9)
    i = np.floor(position).astype(np.int64)
    x = position - i
    last = samples.size - 1
    at = [samples[np.clip(i + d, 0, last)] for d in (-1, 0, 1, 2)]
    weights = (-x * (x - 1) * (x - 2) / 6, (x + 1) * (x - 1) * (x - 2) / 2, -(x + 1) * x * (x - 2) / 2,
               (x + 1) * x * (x - 1) / 6)
    out = sum(w * a for w, a in zip(weights, at))
    whole = x == 0
    out[whole] = at[1][whole]  # exactly the given sample, without the rounding of the weighted sum
    return out


def reach_ns(config: QmConfig, analog_ports: Sequence[object], digital_inputs: Sequence[object]) -> tuple[int, int]:
    """How far before an output window an event can start and still show in it (the alignment delay, port delays
    and FIR taps of `analog_ports`, marker delays and buffers of `digital_inputs`), and how far after it (a marker's
    buffer opens it before its pulse)."""
    behind = alignment_delay_ns(config) + max(
        max((p.delay for p in analog_ports), default=0)
        + max((len(p.filter_feedforward) for p in analog_ports), default=0),
        max((d.delay + d.buffer for d in digital_inputs), default=0))
    return behind, max((d.buffer for d in digital_inputs), default=0)


def alignment_delay_ns(config: QmConfig) -> int:
    """How much later than scheduled every analog pulse leaves, because some port uses crosstalk or a filter.

    The QOP keeps ports aligned by delaying all of them; it also adds this delay to digital markers and to the time
    of flight ("the digital delay parameter is automatically updated accordingly", "The delay will be automatically
    and implicitly added to the time of flight"), so acquisitions should shift by it too."""
    ports = [p for p in config.declared_ports() if p.ref.kind == ANALOG_OUTPUTS]
    delay = CROSSTALK_DELAY_NS if any(p.crosstalk for p in ports) else 0
    feedback = max((len(p.filter_feedback) for p in ports), default=0)
    if feedback:
        delay += IIR_DELAY_NS[min(feedback, 3)]
    elif any(p.filter_feedforward for p in ports):
        delay += FIR_DELAY_NS
    return delay


def _filter(x: np.ndarray, feedforward: np.ndarray, feedback: tuple[float, ...]) -> np.ndarray:
    """The OPX+ output filter: an FIR with the feedforward taps, then one single-tap IIR section per feedback tap
    (y[n] = x[n] + a y[n-1], cascaded), output clipped to the DAC range ("Output Filter", OPX+)."""
    y = np.convolve(x, feedforward)[: x.size]
    for a in feedback:
        y = _one_pole(y, a)
    return np.clip(y, *FILTER_RANGE)


def _one_pole(x: np.ndarray, a: float) -> np.ndarray:
    """y[n] = x[n] + a y[n-1] without a per-sample loop: inside a block, y[j] = a^j (c a + cumsum(x[i] a^-i)[j]),
    with the block length chosen so that a^-length stays far from overflow."""
    if a == 0:
        return x
    magnitude = abs(a)
    block = 4096 if magnitude >= 1 else max(1, min(4096, int(250 / -np.log10(magnitude))))
    powers = a ** np.arange(block, dtype=float)
    y = np.empty_like(x)
    carry = 0.0
    for s in range(0, x.size, block):
        chunk = x[s : s + block]
        p = powers[: chunk.size]
        y[s : s + chunk.size] = p * (carry * a + np.cumsum(chunk / p))
        carry = y[s + chunk.size - 1]
    return y


def input_port(element: Element, key: str) -> PortRef | None:
    """The analog output behind an element input key: "single", "I"/"Q", or a multiple-inputs name."""
    if element.single_input is not None:
        return element.single_input
    if element.mixed_inputs is not None:
        return {"I": element.mixed_inputs[0], "Q": element.mixed_inputs[1]}.get(key)
    return element.multiple_inputs.get(key)


def correction_matrix(config: QmConfig, element: Element) -> tuple[float, float, float, float]:
    """The mixer correction (v00, v01, v10, v11) the element's pulses go through: its mixer's entry for the
    element's configured IF and LO; identity without a mixer or a matching entry."""
    if element.mixer is None or element.mixer not in config.mixers:
        return (1.0, 0.0, 0.0, 1.0)
    return config.mixers[element.mixer].matrix_for(element.intermediate_frequency, element.lo_frequency)


def _paint(highs: list[np.ndarray], lows: list[np.ndarray], length: int) -> np.ndarray:
    """True wherever at least one [high, low) interval covers the sample (overlapping markers OR together)."""
    if not highs:
        return np.zeros(length, dtype=bool)
    a = np.clip(np.concatenate(highs), 0, length)
    b = np.clip(np.concatenate(lows), 0, length)
    keep = b > a
    edges = np.bincount(a[keep], minlength=length + 1) - np.bincount(b[keep], minlength=length + 1)
    return np.cumsum(edges[:length]) > 0


def _phase_cycles(event: PlayEvent, k0: int, k1: int) -> np.ndarray:
    """Oscillator phase in cycles at samples k0..k1-1 of the event.

    With a chirp, the frequency grows by `rate` Hz every ns (f(t) = f0 + alpha t, piecewise linear over the chirp
    segments) and the phase is the running sum of the frequency, as in "Mathematical Formulation of the Chirp"
    (features guide); the sum runs over the samples before k so that a zero rate gives the unchirped phase."""
    if not event.chirp_rates:
        return event.phase + event.frequency * NS * np.arange(k0, k1)
    n = event.length
    rates = np.asarray(event.chirp_rates, dtype=float)
    widths = np.diff(np.clip(chirp_bounds(event), 0, n))
    per_ns = np.repeat(rates, np.maximum(widths, 0))
    per_ns = np.pad(per_ns, (0, max(0, n - per_ns.size)), mode="edge") if per_ns.size else np.zeros(n)
    frequency = event.frequency + np.concatenate(([0.0], np.cumsum(per_ns[: n - 1])))
    cycles = event.phase + NS * np.concatenate(([0.0], np.cumsum(frequency[: n - 1])))
    return cycles[k0:k1]


def chirp_bounds(event: PlayEvent) -> list[int]:
    """Where each chirp segment starts, in ns from the pulse start, then the pulse end. Segment starts come with
    every rate (QUA's `chirp=(rates, times, units)`, first time 0) or for the rates after the first; without times
    "each chirp section will have the same duration, equal to the total pulse duration divided by the number of
    sections" (features guide, "Frequency Chirp")."""
    n, count, times = event.length, len(event.chirp_rates), list(event.chirp_times)
    if len(times) == count:
        return [*times, n]
    if len(times) == count - 1:
        return [0, *times, n]
    return [round(i * n / count) for i in range(count + 1)]


def _amp_scalar(amp: tuple[float, float, float, float] | None) -> float:
    return 1.0 if amp is None else amp[0]


def _port_order(ref: PortRef) -> tuple[str, int]:
    return ref.controller, ref.number
