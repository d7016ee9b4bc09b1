"""What a `measure` acquires: the ADC model, demodulation, integration and raw ADC traces.

Input model (DESIGN.md "Inputs"): an analog input sees the volts `InputSource.samples(...)` returns (outputs routed
back by a loopback; None when nothing is routed) + Gaussian noise (`InputSource.noise_std` V per sample) + the
analog input's config offset, digitised by the OPX+ 12-bit ADC (±0.5 V full scale, so 4096 counts per volt;
QM docs Hardware/port_connectivity: 12-bit ADC, ±0.5 V).

Demodulation (QM docs, Guides/demod.md, "Mathematical Definition"):
    d = 2**-12 * sum_n a[n] * (w_c[n // 4] * cos(w_IF * n + phi) + w_s[n // 4] * sin(w_IF * n + phi))
with a[n] the digitised sample scaled to [-0.5, 0.5) (the guide's overflow rules are stated for the "raw ADC data,
scaled to between -0.5 and 0.5") and the weights held per 4 ns. So a constant-envelope loopback of amplitude A
gives d = A * N * cos(dphi) / 2 * 2**-12 for one demod and twice that for a dual demod, which is what the QM unit
helpers invert (demod2volts: 4096 * d / N). phi is the element's oscillator phase at the first demodulated sample
(frame rotations and phase resets included). The window starts `time_of_flight` ns after the readout pulse and is
as long as the integration weights (Guides/demod.md, "Timing of the measurement operation"); the raw ADC window
also spans `smearing` ns either side. Dual demod adds the demodulation of out1 with the first weights and of out2
with the second (Guides/demod.md, "Dual Demodulation"). `integration.*` is the same sum without the oscillator,
using the cosine weights. Sliced / accumulated / moving-window results split the window into chunks of
`samplesPerChunk` clock cycles (Guides/features.md, "Demodulation"). Raw ADC traces are int16 counts, inverted on
the OPX+ (counts = -V * 4096).

Digital inputs (the OPD, Hardware/dib.md: 10 inputs "sampled at 1 ns resolution", each with a polarity, a deadtime and
a voltage threshold). `counting.digital` and `time_tagging.digital` read the element's `digitalOutputs` over `max_time`
ns from the same window start as the analog processes (time of flight after the readout starts). A wired digital
output drives 3.3 V when high and 0 V when low (LVTTL, Hardware/OPX_hardware.md port specifications); the input is
high where that voltage is above its threshold. A pulse is an edge of the configured polarity (RISING: low to high,
FALLING: high to low) inside the window; an edge less than `deadtime` ns after the last detected one is not detected
("only the 1st pulse out of two pulses 10 ns apart will be detected" with 16 ns), and the first edge of a window is
always detected. Time tags are ns from the window start (qm.qua `time_tagging.digital` docstring: "times of the
detected pulses ... (in ns)"); counting sums the pulses of every output it names.

The closed form. When nothing is routed to any input a measure reads, every sample is offset + noise, and each
result is a linear function of Gaussian samples: its mean is offset * sum(coefficients) and the results of one
measure are jointly Gaussian with covariance sigma**2 * 2**-24 * sum(coef_k * coef_l). Both are precomputed per
(measure, frequency) as functions of phi (cos**2, sin**2 and cos*sin terms) and drawn with a few normal numbers
instead of N samples. ADC rounding enters as its uniform-noise variance (1/4096)**2 / 12 when there is noise, and
as a rounded offset when there is none; ADC clipping is not modelled in the closed form (noise of a few mV is far
from ±0.5 V).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from qopemu.engine.fixed import ONE as _ONE
from qopemu.engine.fixed import fixed_from_float

ADC_COUNTS_PER_VOLT = 4096
DEMOD_SCALE = 2.0**-12
_TWO_PI = 2.0 * math.pi
_NORMAL_BLOCK = 8192
_HALF_RANGE = 1 << 31
DIGITAL_HIGH_VOLTS = 3.3


@dataclass(frozen=True)
class Term:
    """One input of a process: the analog input port and its weights per ns (cosine, sine)."""

    controller: str
    port: int
    cosine: np.ndarray
    sine: np.ndarray


@dataclass(frozen=True)
class ProcessSpec:
    """One measure process. `division` is () for a scalar result, else ("sliced"|"accumulated", cycles) or
    ("moving_window", cycles, chunks_per_window)."""

    demodulated: bool  # False: integration (no oscillator)
    terms: tuple[Term, ...]
    division: tuple = ()
    tagging: tuple = ()  # time tagging: (threshold in raw ADC units, descending?, window ns, time unit per ns)

    @property
    def length(self) -> int:
        if self.tagging:
            return self.tagging[2]
        return max(max(len(t.cosine), len(t.sine)) for t in self.terms)

    def result_count(self) -> int:
        if not self.division:
            return 1
        chunks = self.length // (4 * self.division[1])
        if self.division[0] == "moving_window":
            return max(chunks - self.division[2] + 1, 0)
        return chunks


@dataclass(frozen=True)
class DigitalInput:
    """A controller digital input as its config sets the detector (threshold in V, deadtime in ns)."""

    controller: str
    port: int
    threshold: float
    falling: bool
    deadtime: int


@dataclass(frozen=True)
class DigitalProcess:
    """`counting.digital` (the number of pulses on all `inputs`) or `time_tagging.digital` (the times of the pulses on
    its one input), over `window` ns."""

    inputs: tuple[DigitalInput, ...]
    window: int
    counting: bool


@dataclass(frozen=True)
class MeasureSpec:
    """Everything a measure needs at run time, fixed by the config at compile time (plain, picklable data)."""

    element: str
    time_of_flight: int
    smearing: int
    pulse_length: int
    processes: tuple[ProcessSpec, ...]
    adc_tag: str | None  # raw ADC stream, or None
    adc_ports: tuple[tuple[str, int], ...]  # the element's analog inputs, in output order
    offsets: dict = field(default_factory=dict)  # (controller, port) -> input offset (V)
    digital: tuple[DigitalProcess, ...] = ()  # their results follow the analog processes' results

    @property
    def trace_length(self) -> int:
        """Samples in each raw ADC trace of this measure: the readout window, smearing on both sides."""
        return self.pulse_length + 2 * self.smearing

    def ports(self) -> list[tuple[str, int]]:
        seen = {(t.controller, t.port) for p in self.processes for t in p.terms}
        if self.adc_tag is not None:
            seen.update(self.adc_ports)
        return sorted(seen)


class NormalSource:
    """Standard normal numbers drawn from numpy in blocks and handed out one by one as Python floats."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._block: list[float] = []
        self._next = 0

    def take(self, n: int) -> list[float]:
        start = self._next
        end = start + n
        if end > len(self._block):
            self._block = self._rng.standard_normal(max(_NORMAL_BLOCK, n)).tolist()
            start, end = 0, n
        self._next = end
        return self._block[start:end]

    def array(self, n: int) -> np.ndarray:
        return self._rng.standard_normal(n)


class _ClosedForm:
    """Mean and covariance of a measure's scalar results as functions of the demodulation phase, at one IF."""

    def __init__(self, spec: MeasureSpec, frequency: float, sigma: float):
        k = len(spec.processes)
        quantum = 1.0 / ADC_COUNTS_PER_VOLT
        variance = sigma * sigma + quantum * quantum / 12 if sigma > 0 else 0.0
        uu = np.zeros((k, k))
        vv = np.zeros((k, k))
        uv = np.zeros((k, k))
        self.mean_u = [0.0] * k
        self.mean_v = [0.0] * k
        basis: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        per_port: dict[tuple[str, int], list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for i, process in enumerate(spec.processes):
            for term in process.terms:
                u, v = _uv(term, frequency if process.demodulated else 0.0, process.demodulated, basis)
                offset = spec.offsets.get((term.controller, term.port), 0.0)
                if sigma == 0:
                    offset = round(offset * ADC_COUNTS_PER_VOLT) / ADC_COUNTS_PER_VOLT
                self.mean_u[i] += DEMOD_SCALE * offset * float(u.sum())
                self.mean_v[i] += DEMOD_SCALE * offset * float(v.sum())
                per_port.setdefault((term.controller, term.port), []).append((i, u, v))
        for entries in per_port.values():
            for i, ui, vi in entries:
                for j, uj, vj in entries:
                    n = min(len(ui), len(uj))
                    uu[i, j] += float(ui[:n] @ uj[:n])
                    vv[i, j] += float(vi[:n] @ vj[:n])
                    uv[i, j] += float(ui[:n] @ vj[:n])
        scale = variance * DEMOD_SCALE * DEMOD_SCALE
        self.uu, self.vv, self.uv = uu * scale, vv * scale, uv * scale
        self.has_mean = any(self.mean_u) or any(self.mean_v)
        self.zero_means = [0.0] * k
        # integration has no oscillator: its coefficients are U whatever the phase
        self.demodulated = [p.demodulated for p in spec.processes]
        size = float(np.abs(self.uu).max()) if k else 0.0
        # The phase only matters when cos^2 and sin^2 weigh differently: otherwise the covariance is constant.
        balanced = size == 0 or (float(np.abs(self.uu - self.vv).max()) <= 1e-9 * size
                                 and float(np.abs(self.uv + self.uv.T).max()) <= 1e-9 * size)
        self.phase_free = not any(self.demodulated) or (all(self.demodulated) and balanced)
        # rows truncated at the diagonal, so a result is sum(row * draws) over the row's own length
        self.fixed_factor = _rows(_cholesky(self.uu.tolist())) if self.phase_free else None

    def factor(self, c: float, s: float) -> list[list[float]]:
        if self.fixed_factor is not None:
            return self.fixed_factor
        a, b = self.phase_weights(c, s)
        a, b = np.array(a), np.array(b)
        cov = (np.outer(a, a) * self.uu + np.outer(b, b) * self.vv + np.outer(a, b) * self.uv
               + np.outer(b, a) * self.uv.T)
        return _rows(_cholesky(cov.tolist()))

    def phase_weights(self, c: float, s: float) -> tuple[list[float], list[float]]:
        """Each result is a * (its U part) + b * (its V part): (cos, sin) of the phase, or (1, 0) for integration."""
        return ([c if d else 1.0 for d in self.demodulated], [s if d else 0.0 for d in self.demodulated])


def _rows(low: list[list[float]]) -> list[tuple[float, ...]]:
    return [tuple(row[: i + 1]) for i, row in enumerate(low)]


def _uv(term: Term, frequency: float, demodulated: bool, basis: dict) -> tuple[np.ndarray, np.ndarray]:
    """U, V with w_c cos(wn+phi) + w_s sin(wn+phi) = cos(phi) U[n] + sin(phi) V[n]."""
    n = max(len(term.cosine), len(term.sine))
    wc = np.zeros(n)
    wc[: len(term.cosine)] = term.cosine
    if not demodulated:
        return wc, np.zeros(n)
    ws = np.zeros(n)
    ws[: len(term.sine)] = term.sine
    key = (n, frequency)
    if key not in basis:
        theta = _TWO_PI * frequency * 1e-9 * np.arange(n)
        basis[key] = (np.cos(theta), np.sin(theta))
    cos_n, sin_n = basis[key]
    return wc * cos_n + ws * sin_n, ws * cos_n - wc * sin_n


def _cholesky(a: list[list[float]]) -> list[list[float]]:
    """Lower factor of a small covariance matrix; tolerant of singular (e.g. identical) rows."""
    k = len(a)
    low = [[0.0] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            acc = a[i][j] - sum(low[i][m] * low[j][m] for m in range(j))
            if i == j:
                low[i][j] = math.sqrt(acc) if acc > 0 else 0.0
            else:
                low[i][j] = acc / low[j][j] if low[j][j] > 0 else 0.0
    return low


class Acquirer:
    """Runs one compiled `measure` statement: called with the readout start, the demodulation phase (cycles) and
    the element's IF, returns one value per process (a raw fixed word, or a list of them for vector processes)."""

    def __init__(self, spec: MeasureSpec, inputs, host, normals: NormalSource):
        self.spec = spec
        self._inputs = inputs
        self._host = host
        self._normals = normals
        self._sigma = float(inputs.noise_std)
        self._ports = spec.ports()
        self._digital_processes = spec.digital
        self._closed_ok = spec.adc_tag is None and all(not p.division and not p.tagging for p in spec.processes)
        # the window every input is read over: raw ADC recording (smearing either side) and the longest process
        self._raw_offset = spec.time_of_flight - spec.smearing
        demod_end = spec.smearing + max((p.length for p in spec.processes), default=0)
        self._window = max(demod_end, spec.trace_length)
        self._closed: dict[float, _ClosedForm] = {}
        self._basis: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._uv_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, t0: int, phase: float, frequency: float) -> list:
        raw_start = t0 + self._raw_offset
        routed = None
        samples = self._inputs.samples
        for controller, port in self._ports:
            signal = samples(controller, port, raw_start, self._window)
            if signal is not None:
                routed = routed or {}
                routed[(controller, port)] = signal
        if routed is None and self._closed_ok:
            results = self._closed_form(phase, frequency)
        else:
            results = self._sampled(t0, phase, frequency, routed or {}, raw_start, self._window)
        if self._digital_processes:
            start = t0 + self.spec.time_of_flight
            results += [self._digital(start, process) for process in self._digital_processes]
        return results

    def _digital(self, start: int, process: DigitalProcess) -> int | list[int]:
        if process.counting:
            return sum(len(self._pulses(start, put, process.window)) for put in process.inputs)
        return self._pulses(start, process.inputs[0], process.window)

    def _pulses(self, start: int, put: DigitalInput, window: int) -> list[int]:
        """Detected pulses (ns from `start`) on one digital input over `window` ns."""
        # one sample before the window, so an edge on its first ns shows
        level = self._inputs.levels(put.controller, put.port, start - 1, window + 1)
        if level is None:
            return []
        high = level * DIGITAL_HIGH_VOLTS > put.threshold
        before, after = high[:-1], high[1:]
        edges = np.flatnonzero(before & ~after if put.falling else after & ~before).tolist()
        pulses: list[int] = []
        for t in edges:
            if not pulses or t - pulses[-1] >= put.deadtime:
                pulses.append(t)
        return pulses

    def _closed_form(self, phase: float, frequency: float) -> list:
        form = self._closed.get(frequency)
        if form is None:
            form = self._closed[frequency] = _ClosedForm(self.spec, frequency, self._sigma)
        if form.has_mean or not form.phase_free:
            angle = _TWO_PI * phase
            c, s = math.cos(angle), math.sin(angle)
            a, b = form.phase_weights(c, s)
            means = [x * u + y * v for x, y, u, v in zip(a, b, form.mean_u, form.mean_v)]
        else:
            c = s = 0.0
            means = form.zero_means
        low = form.factor(c, s)
        draws = self._normals.take(len(low)) if self._sigma > 0 else form.zero_means
        results = []
        for mean, row in zip(means, low):
            value = mean
            for weight, draw in zip(row, draws):
                value += weight * draw
            raw = round(value * _ONE)
            results.append(raw if -_HALF_RANGE <= raw < _HALF_RANGE else fixed_from_float(value))
        return results

    def _sampled(self, t0: int, phase: float, frequency: float, routed: dict, raw_start: int, length: int) -> list:
        spec = self.spec
        volts = {}
        for key in self._ports:
            signal = routed.get(key)
            v = np.zeros(length) if signal is None else np.asarray(signal, dtype=float)[:length]
            if len(v) < length:
                v = np.pad(v, (0, length - len(v)))
            v = v + spec.offsets.get(key, 0.0)
            if self._sigma > 0:
                v = v + self._sigma * self._normals.array(length)
            volts[key] = np.clip(np.round(v * ADC_COUNTS_PER_VOLT), -2048, 2047)
        if spec.adc_tag is not None:
            for key in spec.adc_ports:
                trace = (-volts[key][: spec.trace_length]).astype(np.int16)
                self._host.save_adc(spec.adc_tag, key[1], trace, t0)
        angle = _TWO_PI * phase
        c, s = math.cos(angle), math.sin(angle)
        offset = spec.smearing  # the demodulation window starts `smearing` ns into the recorded samples
        results = []
        for process in spec.processes:
            if process.tagging:
                term = process.terms[0]
                results.append(_tags(-volts[(term.controller, term.port)][offset: offset + process.length],
                                     process.tagging))
                continue
            per_sample = np.zeros(process.length)
            for term in process.terms:
                u, v = self._term_uv(term, frequency if process.demodulated else 0.0, process.demodulated)
                a = volts[(term.controller, term.port)][offset: offset + len(u)] / ADC_COUNTS_PER_VOLT
                pc, ps = (c, s) if process.demodulated else (1.0, 0.0)
                per_sample[: len(a)] += a * (pc * u[: len(a)] + ps * v[: len(a)])
            results.append(_divide(per_sample * DEMOD_SCALE, process.division))
        return results

    def _term_uv(self, term: Term, frequency: float, demodulated: bool) -> tuple[np.ndarray, np.ndarray]:
        key = (id(term), frequency)
        if key not in self._uv_cache:
            self._uv_cache[key] = _uv(term, frequency, demodulated, self._basis)
        return self._uv_cache[key]


def _tags(raw: np.ndarray, tagging: tuple) -> list[int]:
    """Time tags: where the raw ADC signal crosses the element's `signalThreshold` in the configured direction
    (outputPulseParameters, Guides/features.md "Time Tagging"); times from the window start."""
    threshold, descending, _, unit = tagging
    before, after = raw[:-1], raw[1:]
    if descending:
        hits = np.nonzero((before >= threshold) & (after < threshold))[0] + 1
    else:
        hits = np.nonzero((before <= threshold) & (after > threshold))[0] + 1
    return [int(t) * unit for t in hits]


def _divide(contributions: np.ndarray, division: tuple):
    """Sum per-sample contributions into the process's result(s) as raw fixed words."""
    if not division:
        return fixed_from_float(float(contributions.sum()))
    chunk = 4 * division[1]
    count = len(contributions) // chunk
    chunks = contributions[: count * chunk].reshape(count, chunk).sum(axis=1)
    if division[0] == "accumulated":
        chunks = np.cumsum(chunks)
    elif division[0] == "moving_window":
        window = division[2]
        sums = np.cumsum(np.concatenate(([0.0], chunks)))
        chunks = sums[window:] - sums[:-window] if count >= window else np.zeros(0)
    return [fixed_from_float(float(x)) for x in chunks]
