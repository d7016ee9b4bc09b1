"""What crosses the process boundary between the server (engine/pool.py) and a worker (engine/worker.py).

Each message is a tuple whose first item is its tag. One socket per worker; multiprocessing's Connection pickles them.

Worker -> server (`FromWorker`):
    (VALUES, tag, kind, values, timestamps)   batched saves
    (ADC, tag, input_number, traces, timestamps)
    (STARTED, wall time)  (PAUSED,)  (IO, number, value)  (RUNTIME_ERROR, code, message): the job goes on
    (SIMULATED, duration_ns, statements, columns, rows, analog, waveform report): a simulation's program has run; its
        packed samples will fill a shared block (engine/shared_buffer.py), whose descriptor follows
    (SAMPLES, nbytes)  the shared block holds this many bytes of samples
    (DONE, duration_ns, statements)  (ERROR, message): the job's last word
Server -> worker (`ToWorker`):
    (RUN, JobRequest)  (RESUME,)  (INPUT, name, values)  (IO, number, value)
    (CORRECTION, element, (v00, v01, v10, v11))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from qopemu.engine.inputs import InputModel


class _Tag(StrEnum):
    def __reduce_ex__(self, protocol):
        # A tag crosses the socket as its plain string, which equals the member on the other side: a member would
        # pickle as a call to its class, three times the bytes and five times the time of every small message.
        return str, (self._value_,)


class FromWorker(_Tag):
    VALUES = "values"
    ADC = "adc"
    STARTED = "started"
    PAUSED = "paused"
    IO = "io"
    RUNTIME_ERROR = "runtime_error"
    SIMULATED = "simulated"
    SAMPLES = "samples"
    DONE = "done"
    ERROR = "error"


class ToWorker(_Tag):
    RUN = "run"
    RESUME = "resume"
    INPUT = "input"
    IO = "io"
    CORRECTION = "correction"


@dataclass
class JobRequest:
    """Everything a worker needs to run one job; pickled across the process boundary."""

    job_id: str
    program: Any  # engine.compiler.CompiledProgram
    config: Any  # qmconfig.QmConfig (the loopback model and simulation render the QM's pulses)
    waveform_overrides: dict = field(default_factory=dict)
    io_values: dict = field(default_factory=dict)
    inputs: InputModel = InputModel()
    realtime: bool = False
    simulate_ns: int | None = None  # a simulation: run this long and send back the output samples
    simulation_samples: str = "float64"  # their analog format (settings.simulation_samples)
    # Simulations describe each pulse played (the waveform report); these ask for the deprecated per-port lists too.
    analog_outputs: bool = False
    digital_outputs: bool = False
