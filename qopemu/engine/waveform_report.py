"""What a simulation says about each pulse it played: the waveform report, and on request the deprecated per-port
lists of `simulated_analog_waveforms()` / `simulated_digital_waveforms()`.

The report is parsed by the client's `qm.waveform_report.WaveformReport.from_dict` (QOP2: inline in the simulation
response; protocol notes §7). Keys follow that parser: every analog entry needs `waveformName, pulseName, timestamp,
length, iqInfo, quantumElements, outputPorts, pulser{controllerName}, chirpInfo{units, rate}, currentGMatrixElements,
currentDCOffsetByPort, currentIntermediateFrequency, currentFrame, currentCorrectionElements`; a missing one makes the
client raise while building the job. Digital entries carry the common keys; ADC acquisitions and phase-reset events
are optional lists. The documented meaning of the fields is the one of `to_dict()` in the simulator guide ("Waveform
report", QOP 2.2). The deprecated lists follow docs/simulation.md ("Waveform report").

A long program plays many pulses that differ only in their start and phase, so a list of entries is kept as a few
`Rows`: one entry of each shape, and the numbers that change from one entry to the next as a numpy array. That is
cheap to build, to send from the worker, and to encode (edge/report_struct.py stamps the numbers into one encoded
entry per shape). Everything else here is plain JSON-able Python. Times are on the element timeline (the pulse's
start), as the real report gives them; ports are 1-based.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from qopemu.engine.events import AcquisitionEvent, DcOffsetEvent, PhaseResetEvent, PlayEvent
from qopemu.engine.waveforms import chirp_bounds, correction_matrix, input_port
from qopemu.qmconfig import DigitalInput, Element, PortRef, QmConfig

_IDENTITY = [1.0, 0.0, 0.0, 1.0]

Path = tuple  # keys and list indices that lead to a number inside an entry


@dataclass
class Rows:
    """Entries that share every field but the numbers at `varying`: `entry` is the first of them, `values[i]` holds the
    numbers of entry i in the order of `varying`. The first varying number is the time the list is sorted by."""

    entry: dict[str, Any]
    varying: tuple[Path, ...]
    values: np.ndarray  # float64, (entries, len(varying))


@dataclass
class EntryList:
    """A list of entries as `Rows`, in time order once merged (stable: at equal times, `groups` order)."""

    groups: list[Rows] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(g.values) for g in self.groups)


@dataclass
class SimulationReport:
    """`report` is the waveform report; `analog_outputs` / `digital_outputs` the deprecated per-port lists, built
    only when the request's include flags ask for them."""

    report: dict[str, EntryList]
    analog_outputs: dict | None = None
    digital_outputs: dict | None = None


class _Collector:
    """Groups entries by shape while the timeline is walked: `add(key, make, numbers)` appends `numbers` to the group
    `key`, creating its entries with `make()` the first time."""

    def __init__(self, varying: tuple[Path, ...]):
        self.varying = varying
        self._groups: dict[Any, tuple[list[dict], list[tuple]]] = {}

    def add(self, key: Any, make: Callable[[], list[dict]], numbers: tuple) -> None:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = (make(), [])
        group[1].append(numbers)

    def entry_lists(self, finish: Callable[[np.ndarray], np.ndarray] = lambda values: values) -> EntryList:
        """Every group's entries, one `Rows` per entry of its shape; `finish` turns the collected numbers into the
        varying values."""
        rows = EntryList()
        for entries, numbers in self._groups.values():
            values = finish(np.array(numbers, dtype=float).reshape(len(numbers), -1))
            rows.groups += [Rows(entry, self.varying, values) for entry in entries]
        return rows


_FRAME = (("timestamp",), ("currentFrame", 0), ("currentFrame", 1), ("currentFrame", 2), ("currentFrame", 3),
          ("currentPhase",))


def _frame_values(numbers: np.ndarray) -> np.ndarray:
    """(start, oscillator phase, frame rotation; both in cycles) -> timestamp, the frame's rotation matrix
    [cos, -sin, sin, cos] and the oscillator phase in [0, 1)."""
    start, phase, frame = numbers[:, 0], numbers[:, 1], numbers[:, 2]
    radians = 2 * np.pi * frame
    cos, sin = np.cos(radians), np.sin(radians)
    return np.stack([start, cos, -sin, sin, cos, phase % 1.0], axis=1)


def _deprecated_values(numbers: np.ndarray) -> np.ndarray:
    """(start, frame rotation in cycles) -> timestamp and the frame in radians, in (-pi, pi]."""
    radians = -np.remainder(-2 * np.pi * numbers[:, 1] + np.pi, 2 * np.pi) + np.pi
    return np.stack([numbers[:, 0], radians], axis=1)


def build(events: Iterable[object], config: QmConfig, duration_ns: int | None = None, *,
          analog_outputs: bool = False, digital_outputs: bool = False) -> SimulationReport:
    """The report of a run's events (those starting at or after `duration_ns`, when given, are left out), with the
    deprecated per-port lists of each kind when asked for."""
    timeline = sorted(
        (e for e in events if duration_ns is None or e.start < duration_ns),
        key=lambda e: e.start,
    )
    offsets = {p.ref: p.offset for p in config.declared_ports()}
    offsets_version = 0  # entries of one shape share their DC offsets: a set_dc_offset starts new shapes
    analog = _Collector(_FRAME)
    digital = _Collector((("timestamp",),))
    acquisitions = _Collector((("startTime",), ("endTime",)))
    phase_resets = _Collector((("timestamp",),))
    old_analog = _Deprecated(config, "analog") if analog_outputs else None
    old_digital = _Deprecated(config, "digital") if digital_outputs else None
    for event in timeline:
        if isinstance(event, PlayEvent):
            element = config.elements[event.element]
            start = event.start
            key = (event.element, event.pulse, event.length, event.amp, event.frequency, event.correction,
                   event.chirp_rates, event.chirp_times, event.ramp_slope, offsets_version)
            analog.add(key, lambda: _analog_entries(config, element, event, offsets),
                       (start, event.phase, event.frame))
            pulse = config.pulses.get(event.pulse)
            if pulse is not None and pulse.digital_marker is not None:
                for index, marker in enumerate(element.digital_inputs.values()):
                    digital.add((key, index), lambda: [_digital_entry(element, event, marker, pulse.digital_marker)],
                                (start + marker.delay - marker.buffer,))
            if old_analog is not None:
                old_analog.add(element, event)
            if old_digital is not None:
                old_digital.add(element, event)
        elif isinstance(event, DcOffsetEvent):
            port = input_port(config.elements[event.element], event.port_key)
            if port is not None:
                offsets[port] = event.value
                offsets_version += 1
        elif isinstance(event, AcquisitionEvent):
            element = config.elements[event.element]
            acquisitions.add((event.element, event.process, event.length),
                             lambda: _acquisition_entry(element, event), (event.start, event.start + event.length))
        elif isinstance(event, PhaseResetEvent):
            element = config.elements[event.element]
            phase_resets.add(event.element, lambda: _phase_reset_entries(element, event), (event.start,))
    report = {
        "analogWaveforms": analog.entry_lists(_frame_values),
        "digitalWaveforms": digital.entry_lists(),
        "adcAcquisitions": acquisitions.entry_lists(),
        "events": phase_resets.entry_lists(),
    }
    return SimulationReport(report, old_analog and old_analog.outputs(), old_digital and old_digital.outputs())


class _Deprecated:
    """The lists of `simulated_analog_waveforms()` / `simulated_digital_waveforms()`: per controller and port, and
    per element, one entry per pulse with `name` (the waveform), `timestamp`, `duration`, and for analog ports
    `frequency` (Hz), `phase` (the frame rotation, radians) and the waveform's `samples`; for digital ports `samples` lists the marker's
    (value, duration) segments as played."""

    def __init__(self, config: QmConfig, kind: str):
        self.config = config
        self.kind = kind
        self._ports: dict[tuple[str, str], _Collector] = {}
        self._elements: dict[str, _Collector] = {}
        self._varying = (("timestamp",), ("phase",)) if kind == "analog" else (("timestamp",),)

    def _collector(self, table: dict, key) -> _Collector:
        collector = table.get(key)
        if collector is None:
            collector = table[key] = _Collector(self._varying)
        return collector

    def add(self, element: Element, event: PlayEvent) -> None:
        """The entries of a pulse: (port, entry maker, varying numbers) for each port it plays on."""
        if self.kind == "analog":
            shape = (event.pulse, event.length, event.frequency, event.ramp_slope)
            played = [(port, self._analog_entry(element, event, key), (event.start, event.frame))
                      for port, key in zip(element.analog_ports, _input_keys(element))]
        else:
            pulse = self.config.pulses.get(event.pulse)
            if pulse is None or pulse.digital_marker is None:
                return
            shape = (event.pulse, event.length)
            played = [(d.port, self._digital_entry(pulse.digital_marker, event, d.delay, d.buffer),
                       (event.start + d.delay - d.buffer,)) for d in element.digital_inputs.values()]
        for index, (port, make, numbers) in enumerate(played):
            make = functools.cache(make)  # a new key is new to both collectors: build its entry once, share it
            key = (element.name, index, *shape)
            self._collector(self._ports, (port.controller, str(port.number))).add(key, lambda: [make()], numbers)
            self._collector(self._elements, element.name).add(key, lambda: [make()], numbers)

    def _analog_entry(self, element: Element, event: PlayEvent, key: str) -> Callable[[], dict]:
        def make() -> dict:
            if event.ramp_slope is not None:
                name = f"ramp({event.ramp_slope})"
                samples = {"type": "literal", "values": [event.ramp_slope * (k + 1) for k in range(event.length)]}
            else:
                name = self.config.pulses[event.pulse].waveforms.get(key, "")
                waveform = self.config.waveforms[name]
                samples = ({"type": "constant", "value": float(waveform.samples[0])} if waveform.is_constant
                           else {"type": "literal", "values": waveform.samples.tolist()})
            return {"name": name, "timestamp": event.start, "duration": event.length,
                    "frequency": float(event.frequency), "phase": 0.0, "samples": samples}
        return make

    def _digital_entry(self, marker: str, event: PlayEvent, delay: int, buffer: int) -> Callable[[], dict]:
        """The marker as it leaves the port: shifted by the digital input's delay and widened by its buffer; its
        `samples` are the marker's segments over the pulse (a length of 0 lasts to the pulse's end)."""
        def make() -> dict:
            segments, t = [], 0
            for value, length in self.config.digital_waveforms[marker].segments:
                end = event.length if length == 0 else min(event.length, t + length)
                if end > t:
                    segments.append({"value": bool(value), "duration": end - t})
                t = end
            return {"name": marker, "timestamp": event.start + delay - buffer, "duration": event.length + 2 * buffer,
                    "samples": segments}
        return make

    def outputs(self) -> dict:
        finish = _deprecated_values if self.kind == "analog" else (lambda values: values)
        controllers: dict[str, dict] = {}
        for (controller, port), collector in sorted(self._ports.items()):
            controllers.setdefault(controller, {"ports": {}})["ports"][port] = collector.entry_lists(finish)
        elements = {name: collector.entry_lists(finish) for name, collector in sorted(self._elements.items())}
        return {"waveforms": {"controllers": controllers, "elements": elements}}


def _input_keys(element: Element) -> tuple[str, ...]:
    """The pulse's waveform key for each analog port of the element, in `analog_ports` order."""
    return ("I", "Q") if element.mixed_inputs is not None else ("single",) * len(element.analog_ports)

def _analog_entries(config: QmConfig, element: Element, event: PlayEvent, offsets: dict[PortRef, float]) -> list[dict]:
    """One entry per analog port the pulse plays on (an IQ pulse gives an I entry and a Q entry)."""
    pulse = config.pulses.get(event.pulse)
    is_iq = element.mixed_inputs is not None
    if is_iq:
        amp = list(event.amp) if event.amp is not None else list(_IDENTITY)
        matrix = event.correction if event.correction is not None else correction_matrix(config, element)
        correction = [float(v) for v in matrix]
    else:
        amp = [event.amp[0] if event.amp is not None else 1.0]
        correction = list(_IDENTITY)
    radians = 2 * math.pi * event.frame
    frame = [math.cos(radians), -math.sin(radians), math.sin(radians), math.cos(radians)]
    ports = element.analog_ports
    keys = _input_keys(element)
    chirp = _chirp_info(event)
    dc_offsets = {str(p.number): float(offsets.get(p, 0.0)) for p in ports}
    entries = []
    for index, (port, key) in enumerate(zip(ports, keys)):
        if event.ramp_slope is not None:
            waveform_name = f"ramp({event.ramp_slope})"
        elif pulse is not None:
            waveform_name = pulse.waveforms.get(key, "")
        else:
            waveform_name = ""
        entry = _common(element, event, port, waveform_name, is_iq, is_iq and index == 0, is_iq and index == 1)
        entry.update(
            chirpInfo=chirp,
            currentGMatrixElements=amp,
            currentDCOffsetByPort=dc_offsets,
            currentIntermediateFrequency=float(event.frequency),
            currentFrame=frame,
            currentCorrectionElements=correction,
            currentPhase=float(event.phase % 1.0),
        )
        entries.append(entry)
    return entries


def _digital_entry(element: Element, event: PlayEvent, digital: DigitalInput, marker: str) -> dict:
    """The entry of a digital input of the element, as played: shifted by `delay`, widened by `buffer`."""
    entry = _common(element, event, digital.port, marker, False, False, False)
    entry.update(timestamp=event.start + digital.delay - digital.buffer, length=event.length + 2 * digital.buffer)
    return entry


def _common(
    element: Element, event: PlayEvent, port: PortRef, waveform: str, is_iq: bool, is_i: bool, is_q: bool
) -> dict[str, Any]:
    return {
        "waveformName": waveform,
        "pulseName": event.pulse or "ramp",
        "timestamp": int(event.start),
        "length": int(event.length),
        "iqInfo": {"isPartOfIq": is_iq, "isI": is_i, "isQ": is_q},
        "quantumElements": element.name,
        "outputPorts": [port.number],
        "pulser": {"controllerName": port.controller},
    }


def _chirp_info(event: PlayEvent) -> dict[str, Any]:
    """Empty units and rates mean "not chirped" to the client."""
    if not event.chirp_rates:
        return {"units": "", "rate": [], "times": [], "startFrequency": float(event.frequency),
                "endFrequency": float(event.frequency)}
    bounds = chirp_bounds(event)
    end = event.frequency + sum(r * (b - a) for r, a, b in zip(event.chirp_rates, bounds, bounds[1:]))
    return {
        "units": "Hz/nsec",
        "rate": [float(r) for r in event.chirp_rates],
        "times": [int(t) for t in bounds[:-1]],
        "startFrequency": float(event.frequency),
        "endFrequency": float(end),
    }


def _acquisition_entry(element: Element, event: AcquisitionEvent) -> list[dict]:
    if not element.outputs:
        return []
    controller = next(iter(element.outputs.values())).controller
    return [{
        "startTime": int(event.start),
        "endTime": int(event.start + event.length),
        "process": event.process,
        "pulser": {"controllerName": controller},
        "quantumElement": element.name,
        "adc": sorted({port.number - 1 for port in element.outputs.values()}),  # 0-based inputs
    }]


def _phase_reset_entries(element: Element, event: PhaseResetEvent) -> list[dict]:
    ports = element.analog_ports
    is_iq = element.mixed_inputs is not None
    return [
        {
            "eventMessage": "phase_reset",
            "timestamp": int(event.start),
            "sourcePulser": {"controllerName": port.controller},
            "sourcePulserIqInfo": {"isI": is_iq and index == 0, "isQ": is_iq and index == 1},
            "quantumElement": element.name,
        }
        for index, port in enumerate(ports)
    ]
