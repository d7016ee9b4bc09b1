"""The waveform report of a simulation: what was played, when, on which port, with which parameters.

The client parses it with `qm.waveform_report.WaveformReport.from_dict` (QOP2: inline in the simulation response;
protocol notes §7). Keys follow that parser: every analog entry needs `waveformName, pulseName, timestamp, length,
iqInfo, quantumElements, outputPorts, pulser{controllerName}, chirpInfo{units, rate}, currentGMatrixElements,
currentDCOffsetByPort, currentIntermediateFrequency, currentFrame, currentCorrectionElements`; a missing one makes
the client raise while building the job. Digital entries carry the common keys; ADC acquisitions and phase-reset
events are optional lists. The documented meaning of the fields is the one of `to_dict()` in the simulator guide
("Waveform report", QOP 2.2).

Everything here is plain JSON-able Python (floats, ints, strings, lists, dicts); edge/ turns it into a Struct.
Times are on the element timeline (the pulse's start), as the real report gives them; ports are 1-based.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from qopemu.engine.events import AcquisitionEvent, DcOffsetEvent, PhaseResetEvent, PlayEvent
from qopemu.engine.waveforms import chirp_bounds, correction_matrix, input_port
from qopemu.qmconfig import Element, PortRef, QmConfig

_IDENTITY = [1.0, 0.0, 0.0, 1.0]


def build_waveform_report(events: Iterable[object], config: QmConfig, duration_ns: int | None = None) -> dict:
    """The report of a run's events; events starting at or after `duration_ns` (when given) are left out."""
    timeline = sorted(
        (e for e in events if duration_ns is None or e.start < duration_ns),
        key=lambda e: e.start,
    )
    offsets = {p.ref: p.offset for p in config.declared_ports()}
    analog: list[dict] = []
    digital: list[dict] = []
    acquisitions: list[dict] = []
    phase_resets: list[dict] = []
    for event in timeline:
        if isinstance(event, DcOffsetEvent):
            port = input_port(config.elements[event.element], event.port_key)
            if port is not None:
                offsets[port] = event.value
        elif isinstance(event, PlayEvent):
            element = config.elements[event.element]
            analog += _analog_entries(config, element, event, offsets)
            digital += _digital_entries(config, element, event)
        elif isinstance(event, AcquisitionEvent):
            acquisitions += _acquisition_entry(config.elements[event.element], event)
        elif isinstance(event, PhaseResetEvent):
            phase_resets += _phase_reset_entries(config.elements[event.element], event)
    return {
        "analogWaveforms": analog,
        "digitalWaveforms": digital,
        "adcAcquisitions": acquisitions,
        "events": phase_resets,
    }


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
    radians = 2 * math.pi * event.phase
    frame = [math.cos(radians), -math.sin(radians), math.sin(radians), math.cos(radians)]
    ports = element.analog_ports
    keys = ("I", "Q") if is_iq else ("single",) * len(ports)
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


def _digital_entries(config: QmConfig, element: Element, event: PlayEvent) -> list[dict]:
    """One entry per digital input of the element, as played: shifted by `delay`, widened by `buffer`."""
    pulse = config.pulses.get(event.pulse)
    if pulse is None or pulse.digital_marker is None:
        return []
    entries = []
    for digital in element.digital_inputs.values():
        entry = _common(element, event, digital.port, pulse.digital_marker, False, False, False)
        entry.update(timestamp=event.start + digital.delay - digital.buffer, length=event.length + 2 * digital.buffer)
        entries.append(entry)
    return entries


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
