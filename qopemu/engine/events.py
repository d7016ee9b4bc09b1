"""What a running program does to the outputs, as a timeline of events.

The program's generated code (written by engine/compiler.py, run by engine/runtime.py) keeps the per-element
timelines and oscillator state as locals and records these events through the runtime, only in the variant compiled
with events (a simulation, or inputs that read the outputs back); pulse synthesis (engine/waveforms.py) turns them into samples per port, and the input model (engine/inputs.py)
routes those samples back to the analog inputs. Keeping this boundary explicit means simulation and loopback
acquisition read one description of "what was played when", produced by the one engine that runs programs.

Times are in ns since the start of the job, on the element's timeline (before the output port's delay).
Phases are in cycles (units of 2π).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class PlayEvent:
    """One pulse played on one element (also the readout pulse of a `measure`)."""

    element: str
    operation: str  # "" for play(ramp(...))
    pulse: str  # pulse name in the config, "" for a ramp
    start: int
    length: int  # ns, after `duration` / `truncate`
    amp: tuple[float, float, float, float] | None  # amp(...) as a matrix (v00, v01, v10, v11); scalar a -> (a,0,0,a)
    frequency: float  # Hz, the element's intermediate frequency at `start`
    phase: float  # oscillator phase at `start`, frame rotations and phase resets included
    chirp_rates: tuple[float, ...] = ()  # Hz/ns per chirp segment; () when not chirped
    chirp_times: tuple[int, ...] = ()  # ns from `start` at which each chirp segment after the first begins
    ramp_slope: float | None = None  # V/ns, for play(ramp(slope))
    is_measure: bool = False
    # The mixer correction (c00, c01, c10, c11) of an IQ element set by `update_correction`; None: the config's.
    correction: tuple[float, float, float, float] | None = None
    frame: float = 0.0  # the frame rotation alone (cycles), part of `phase`: what the waveform report calls the frame


@dataclass(slots=True)
class DcOffsetEvent:
    """set_dc_offset: from `start` on, the element's analog input `port_key` ("single", "I", "Q") sits at `value`."""

    element: str
    port_key: str
    start: int
    value: float


@dataclass(slots=True)
class RampToZeroEvent:
    """ramp_to_zero on a sticky element: its held level goes linearly to 0 over `duration` ns. The runtime also
    records one when a sticky element reaches the end of its last instruction (engine/compiler.py)."""

    element: str
    start: int
    duration: int


@dataclass(slots=True)
class AcquisitionEvent:
    """An ADC acquisition window of a `measure` (already shifted by the element's time of flight)."""

    element: str
    start: int
    length: int
    process: str  # e.g. "DemodIntegration", "Integration", "RawAdc", "TimeTagging"


@dataclass(slots=True)
class PhaseResetEvent:
    element: str
    start: int


