"""What the analog and digital inputs see (DESIGN.md, "Inputs").

An analog source answers "which volts reach input (controller, port) over this window", before the input's offset and
noise, which the acquisition adds (it owns the ADC model). Three sources exist, one per simulation interface of
`SimulationConfig` (qm-qua `qm/simulate/`): nothing connected, a loopback of output ports into input ports, and raw
samples given by the user. A physical device model can plug in later through the same small interface.

A digital input (the OPD's, Hardware/dib.md) sees the digital outputs a `digital_loopback` wires into it, or nothing
at all, as a real one with no cable. `SimulationConfig` has no digital interface, so only the settings wire digital
inputs; the acquisition applies the port's threshold, polarity and deadtime (it owns the detector model).

Noise: `LoopbackInterface`/`RawInterface` take `noisePower`, the variance of the Gaussian noise in V^2 (SimulationConfig
API reference), so the standard deviation here is its square root.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

import numpy as np

from qopemu.engine.event_index import EventIndex
from qopemu.engine.events import DcOffsetEvent, PlayEvent, RampToZeroEvent
from qopemu.engine.waveforms import Synthesizer, reach_ns
from qopemu.qmconfig import ANALOG_OUTPUTS, DIGITAL_OUTPUTS, PortRef, QmConfig
from qopemu.settings import LOOPBACK_LATENCY_NS, OPX_PLUS_ANALOG_INPUTS, OPX_PLUS_ANALOG_OUTPUTS

# (from_controller, from_output_port, to_controller, to_input_port)
Connection = tuple[str, int, str, int]

# Loopback windows kept per source; a measure with dual demodulation asks for the same window once per input.
_CACHE_SIZE = 64


class InputSource(Protocol):
    noise_std: float
    needs_events: bool  # True when the source must see the run's events (loopback)

    def record(self, event: object) -> None: ...

    def samples(self, controller: str, port: int, start_ns: int, length_ns: int) -> np.ndarray | None:
        """Volts at the input over [start_ns, start_ns + length_ns), without noise or input offset; None when
        nothing is routed there."""
        ...

    def levels(self, controller: str, port: int, start_ns: int, length_ns: int) -> np.ndarray | None:
        """Whether the digital outputs wired to digital input (controller, port) are high over the window; None when
        nothing is wired there."""
        ...


def noise_std_from_power(noise_power: float) -> float:
    """`noisePower` is a variance in V^2; a negative value from a client is treated as no noise."""
    return math.sqrt(noise_power) if noise_power > 0 else 0.0


class _AnalogOnly:
    """An analog source alone: no digital output is wired to any digital input, so each sees 0 V and no pulse, as
    a real OPD input with no cable."""

    def levels(self, controller: str, port: int, start_ns: int, length_ns: int) -> np.ndarray | None:
        return None


class NoInputs(_AnalogOnly):
    """No simulation interface: every input reads zero volts (plus noise, if any)."""

    needs_events = False

    def __init__(self, noise_std: float = 0.0):
        self.noise_std = noise_std

    def record(self, event: object) -> None:
        pass

    def samples(self, controller: str, port: int, start_ns: int, length_ns: int) -> np.ndarray | None:
        return None


class RawInputs(_AnalogOnly):
    """`RawInterface`: the user's samples (1 ns each, from the start of the job) fed into input ports; after the
    last sample the input reads 0 V. Several sample lists into one port add up."""

    needs_events = False

    def __init__(self, samples: Mapping[tuple[str, int], np.ndarray], noise_std: float = 0.0):
        self.noise_std = noise_std
        self._samples = {key: np.asarray(values, dtype=float) for key, values in samples.items()}

    def record(self, event: object) -> None:
        pass

    def samples(self, controller: str, port: int, start_ns: int, length_ns: int) -> np.ndarray | None:
        source = self._samples.get((controller, port))
        if source is None:
            return None
        out = np.zeros(length_ns)
        lo, hi = max(start_ns, 0), min(start_ns + length_ns, source.size)
        if hi > lo:
            out[lo - start_ns : hi - start_ns] = source[lo:hi]
        return out


class Loopback(_AnalogOnly):
    """`LoopbackInterface`: output ports wired to input ports; an input sees the wired outputs `latency_ns` later.

    The output is rendered by the same synthesis as the simulated samples (port offsets, delays and crosstalk
    included), only over the window asked for and only from the elements that drive the wired outputs.

    The runtime records events as it executes the program, in program order; an input sees the pulses recorded when
    it is sampled. A measure samples as late as the program allows (engine/compiler.py `_st_measure`), so the pulses
    of elements that run in parallel with it, later in the program, are recorded by then.
    """

    needs_events = True

    def __init__(
        self,
        config: QmConfig,
        connections: Sequence[Connection],
        latency_ns: int = LOOPBACK_LATENCY_NS,
        noise_std: float = 0.0,
    ):
        self.noise_std = noise_std
        self.latency_ns = latency_ns
        self._synth = Synthesizer(config)
        self._routes: dict[tuple[str, int], list[PortRef]] = {}
        declared = config.used_ports()
        for from_controller, from_port, to_controller, to_port in connections:
            source = PortRef(from_controller, ANALOG_OUTPUTS, from_port)
            if source in declared:  # a server-wide wire from an output this QM does not declare carries 0 V
                self._routes.setdefault((to_controller, to_port), []).append(source)
        # Every output a wired (declared) port plays, crosstalk included, comes from these ports' elements.
        crosstalk = self._synth.crosstalk
        feeding = {q for sources in self._routes.values() for source in sources if source in crosstalk
                   for q, _ in crosstalk[source]}
        elements = {name for name, element in config.elements.items() if feeding.intersection(element.analog_ports)}
        # An IIR filter on a wired port remembers everything, so then every recorded pulse counts.
        if any(config.port(p).filter_feedback for p in feeding):
            whole = elements
        else:
            whole = {name for name in elements if (s := config.elements[name].sticky) is not None and s.analog}
        analog = [p for p in config.declared_ports() if p.ref.kind == ANALOG_OUTPUTS]
        self._history = EventIndex(elements, whole, *reach_ns(config, analog, ()))
        self._offsets: list[DcOffsetEvent] = []
        self._recorded = 0
        self._cache: dict[tuple, np.ndarray] = {}

    def record(self, event: object) -> None:
        if isinstance(event, DcOffsetEvent):
            if event.element in self._history.elements:
                self._offsets.append(event)
                self._recorded += 1
            return
        if not isinstance(event, (PlayEvent, RampToZeroEvent)) or event.element not in self._history.elements:
            return
        self._history.record(event)
        self._recorded += 1

    def samples(self, controller: str, port: int, start_ns: int, length_ns: int) -> np.ndarray | None:
        sources = self._routes.get((controller, port))
        if sources is None:
            return None
        key = (controller, port, start_ns, length_ns, self._recorded)
        cached = self._cache.get(key)
        if cached is not None:
            return cached.copy()
        window_start = start_ns - self.latency_ns
        plays, ramps = self._history.near(window_start, length_ns)
        rendered = self._synth.render_grouped(plays, ramps, self._offsets, window_start, length_ns,
                                              analog_ports=sources, digital_ports=())
        out = np.zeros(length_ns)
        for source in sources:
            out += rendered.analog[(source.controller, source.number)]
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = out
        return out.copy()


class DigitalLoopback:
    """The settings' `digital_loopback`: digital output ports wired to digital input ports (the OPD's). An input sees
    the digital markers the program plays on the wired outputs (delay, buffer and `inverted` included, as rendered
    for simulated samples) `latency_ns` later, the same latency as the analog wiring. Several outputs into one input
    are high when any is. Sampled as late as `Loopback` is."""

    def __init__(self, config: QmConfig, connections: Sequence[Connection],
                 latency_ns: int = LOOPBACK_LATENCY_NS):
        self.latency_ns = latency_ns
        self._synth = Synthesizer(config)
        declared = config.used_ports()
        self._routes: dict[tuple[str, int], list[PortRef]] = {}
        for from_controller, from_port, to_controller, to_port in connections:
            source = PortRef(from_controller, DIGITAL_OUTPUTS, from_port)
            if source in declared:  # an output this QM does not declare stays low
                self._routes.setdefault((to_controller, to_port), []).append(source)
        feeding = {source for sources in self._routes.values() for source in sources}
        elements = {name for name, element in config.elements.items()
                    if any(d.port in feeding for d in element.digital_inputs.values())}
        markers = [d for name in elements for d in config.elements[name].digital_inputs.values()]
        # a digitally sticky marker holds until the element's next pulse, however long ago it started
        whole = {name for name in elements if (s := config.elements[name].sticky) is not None and s.digital}
        self._history = EventIndex(elements, whole, *reach_ns(config, (), markers))

    def record(self, event: object) -> None:
        if isinstance(event, (PlayEvent, RampToZeroEvent)) and event.element in self._history.elements:
            self._history.record(event)

    def levels(self, controller: str, port: int, start_ns: int, length_ns: int) -> np.ndarray | None:
        """Whether the wired outputs are high at the input over [start_ns, start_ns + length_ns); None when nothing
        is wired to it."""
        sources = self._routes.get((controller, port))
        if sources is None:
            return None
        window_start = start_ns - self.latency_ns
        plays, ramps = self._history.near(window_start, length_ns)
        rendered = self._synth.render_grouped(plays, ramps, [], window_start, length_ns, analog_ports=(),
                                              digital_ports=sources)
        out = np.zeros(length_ns, dtype=bool)
        for source in sources:
            out |= rendered.digital[(source.controller, source.number)]
        return out


class WithDigitalLoopback:
    """An analog source plus the settings' digital loopback. The analog source's `samples` is bound directly, so an
    analog measure pays nothing for the digital wiring."""

    needs_events = True

    def __init__(self, analog: InputSource, digital: DigitalLoopback):
        self.noise_std = analog.noise_std
        self.samples = analog.samples
        self.levels = digital.levels
        self._analog = analog
        self._digital = digital

    def record(self, event: object) -> None:
        self._analog.record(event)
        self._digital.record(event)


def resolve_wire(config: QmConfig, wire: tuple[str, int, int, str, int, int]) -> tuple[str, int, str, int]:
    """A loopback wire as (from controller, output port, to controller, input port).

    The element form wires an element's output into another element's `out<input>`: input 1 of the receiving element
    takes the sender's single input (or its I port), input 2 its Q port, when it has one. Raises ValueError naming
    what does not resolve."""
    from_controller, _, from_port, to_controller, _, to_port = wire
    if from_port != -1:
        # The wire's source is an output the program plays: one the config does not declare has nothing on it.
        if from_controller not in config.controllers:
            raise ValueError(f"loopback from ({from_controller!r}, {from_port}): controller {from_controller} is "
                             f"not declared in the config")
        # An output the config leaves undeclared still exists on the OPX+ and plays nothing: QM's ESR examples
        # (qua-libs, Electron Spin Resonance 00-08) loop back such an output in their simulate branch. A port
        # number the OPX+ does not have is a mistake worth naming.
        if not 1 <= from_port <= OPX_PLUS_ANALOG_OUTPUTS:
            raise ValueError(f"loopback from ({from_controller!r}, {from_port}): an OPX+ has analog outputs 1 to "
                             f"{OPX_PLUS_ANALOG_OUTPUTS}, not {from_port}")
        if not 1 <= to_port <= OPX_PLUS_ANALOG_INPUTS:
            raise ValueError(f"loopback to ({to_controller!r}, {to_port}): an OPX+ has analog inputs 1 to "
                             f"{OPX_PLUS_ANALOG_INPUTS}, not {to_port}")
        return from_controller, from_port, to_controller, to_port
    sender = config.elements.get(from_controller)
    receiver = config.elements.get(to_controller)
    for name, element in ((from_controller, sender), (to_controller, receiver)):
        if element is None:
            raise ValueError(f"LoopbackInterface ({from_controller!r}, {to_controller!r}, {to_port}): element "
                             f"{name!r} is not in the config")
    outputs = sender.analog_ports
    if not outputs:
        raise ValueError(f"LoopbackInterface: element {from_controller!r} has no analog inputs to loop back")
    source = outputs[min(max(to_port, 1), len(outputs)) - 1]
    target = receiver.outputs.get(f"out{to_port}")
    if target is None:
        known = ", ".join(sorted(receiver.outputs)) or "none"
        raise ValueError(f"LoopbackInterface: element {to_controller!r} has no output 'out{to_port}' "
                         f"(its outputs: {known})")
    return source.controller, source.number, target.controller, target.number


@dataclass(frozen=True)
class InputModel:
    """What the analog and digital inputs see, as plain data; the worker builds the engine's input source from it."""

    noise_std: float = 0.0
    loopback: tuple[tuple[str, int, str, int], ...] = ()  # (from controller, output, to controller, input)
    latency_ns: int = LOOPBACK_LATENCY_NS
    raw: tuple[tuple[str, int, tuple[float, ...]], ...] = ()  # (controller, input, samples at 1 ns)
    digital_loopback: tuple[tuple[str, int, str, int], ...] = ()  # (from controller, digital output, to, input)
    # the external trigger port's periodic edges (ns); None: no trigger ever comes, as in a simulation, whose
    # `SimulationConfig` has no trigger input
    trigger_period_ns: int | None = None

    def build(self, config: QmConfig) -> InputSource:
        if self.raw:
            analog: InputSource = RawInputs({(c, p): np.asarray(s, dtype=float) for c, p, s in self.raw},
                                            self.noise_std)
        elif self.loopback:
            analog = Loopback(config, list(self.loopback), self.latency_ns, self.noise_std)
        else:
            analog = NoInputs(self.noise_std)
        if not self.digital_loopback:
            return analog
        return WithDigitalLoopback(analog, DigitalLoopback(config, self.digital_loopback, self.latency_ns))
