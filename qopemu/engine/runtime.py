"""Runs a compiled QUA program: binds the generated function to a job's host, inputs and random sources.

The generated code (engine/compiler.py) does the work; this module gives it what it calls: the host (saves,
pause, input streams, IO registers), the event sink, one acquirer per measure statement (engine/acquisition.py)
and the helpers of the platform arithmetic (engine/fixed.py). Nothing here runs per statement except those helpers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from qopemu.engine import events as ev
from qopemu.engine import fixed as fx
from qopemu.engine.acquisition import Acquirer, NormalSource
from qopemu.engine.timing import CLOCK_NS
from qopemu.qmconfig import CORRECTION_LIMIT, CORRECTION_MIN, CORRECTION_STEP
from qopemu.results.streams import BOOL, INT

if TYPE_CHECKING:  # the compiler imports this module's helpers; the type is only for hints here
    from qopemu.engine.compiler import CompiledProgram

_NO_LIMIT = 1 << 62


class QuaRuntimeError(Exception):
    """An error the platform reports while the program runs (the message names the statement's `loc`)."""


class JobHost(Protocol):
    """What a running program talks to (the worker process, the simulator, tests)."""

    def save(self, tag: str, kind: str, value: int | float | bool, timestamp_ns: int) -> None: ...

    def save_adc(self, tag: str, input_number: int, trace: np.ndarray, timestamp_ns: int) -> None: ...

    def pause(self, timestamp_ns: int) -> None:
        """`pause()` at `timestamp_ns` (ns on the program's clock); returns when the job is resumed."""
        ...

    def read_input_stream(self, name: str, count: int, timestamp_ns: int) -> list:
        """`name` is the variable name the client pushes to: "input_stream_<name given to declare_input_stream>"
        (qm.utils.general_utils.create_input_stream_name). Blocks until `count` values are available. The program
        reads at `timestamp_ns` (where its time stands: a realtime job waits for it)."""
        ...

    def get_io(self, number: int) -> int | float | bool: ...

    def set_io(self, number: int, value) -> None: ...

    def runtime_error(self, code: int, message: str) -> None:
        """An error the program met and went on from; it belongs in the job's execution report."""
        ...


class InputSource(Protocol):
    noise_std: float
    needs_events: bool

    def record(self, event) -> None: ...

    def samples(self, controller: str, port: int, start_ns: int, length_ns: int) -> np.ndarray | None: ...


@dataclass
class RunSummary:
    duration_ns: int  # the latest element timeline when the program ended
    events: list = field(default_factory=list)  # engine/events.py objects, when recorded
    statements: int = 0  # QUA statements executed


ARRAY_OUT_OF_RANGE = 2001  # the execution report's code for an array access out of range


class _OutOfRange:
    """`_oob` of a running program: an array access out of range does not stop the job (the platform does not even
    check it, QM docs Guides/error.md), and the execution report names it, once per statement. The generated code
    indexes what this returns: a read there gives 0 (False for bool), a write there is dropped (docs/engine.md)."""

    def __init__(self, host: JobHost) -> None:
        self._host = host
        self._reported: set[str] = set()

    def __call__(self, index: int, size: int, name: str, loc: str, write: bool, empty: int | bool) -> dict:
        if loc not in self._reported:
            self._reported.add(loc)
            effect = "the value is not written" if write else f"the read gives {empty}"
            self._host.runtime_error(ARRAY_OUT_OF_RANGE, f"{loc}: index {index} is out of range for array "
                                                         f"'{name}' of size {size}; {effect} (reported once per "
                                                         f"statement)")
        return {index: empty}


class _Stop(Exception):
    """Raised by the generated code once the simulation horizon is passed, or where a simulated program holds."""


def _hold(timestamp_ns: int) -> None:
    """`pause()` in a simulation: nobody can resume a simulation, so the program stays where it paused until the
    simulated duration is over. The outputs do what the hardware's do while it waits: a sticky element keeps its
    level (a run that stops records no final ramp), anything else is back at its offset."""
    raise _Stop


def _no_input_streams(name: str, count: int, timestamp_ns: int) -> list:
    """`advance_input_stream` in a simulation. QM's simulator refuses input streams, which "depend on a live running
    job" (simulator guide, QM docs 1.5); nobody can push to a simulation, so waiting would only run into the
    simulation's time limit. The error names the stream (the client's name for it ends with the user's)."""
    user_name = name.removeprefix("input_stream_")
    raise QuaRuntimeError(f"advance_input_stream('{user_name}'): a simulation has no input streams (nothing can push "
                          f"to it; QM's simulator refuses them too). Run the program with qm.execute to feed it.")


# --------------------------------------------------------------------------------------------------- helpers


def _idiv_raw(a: int, b: int, loc: str) -> int:
    if b == 0:
        raise QuaRuntimeError(f"{loc}: division by zero")
    return a // b


def _fdiv(a: int, b: int, loc: str) -> int:
    if b == 0:
        raise QuaRuntimeError(f"{loc}: division by zero")
    return fx.fixed_div(a, b)


def _shl(a: int, b: int) -> int:
    return a << b if 0 <= b < 64 else 0


def _shr(a: int, b: int) -> int:
    return a >> b if b >= 0 else a


def _fmath(fn, *xs: float) -> int:
    """A Math function on real values, its result as a fixed word (domain errors give 0, poles saturate)."""
    try:
        return fx.fixed_from_float(fn(*xs))
    except (ZeroDivisionError, OverflowError):
        return fx.fixed_from_float(math.inf)
    except ValueError:
        return 0


def _from_py(value, kind: str):
    """A value pushed by the client (input stream, IO register) in the variable's representation."""
    if kind == BOOL:
        return bool(value)
    if kind == INT:
        return fx.wrap(math.floor(value)) if isinstance(value, float) else fx.wrap(int(value))
    return fx.fixed_from_float(float(value))


# qmconfig's correction rule in fixed words: the bits below CORRECTION_STEP, and the range in steps
_CORRECTION_SHIFT = fx.FRAC_BITS + math.frexp(CORRECTION_STEP)[1] - 1
_CORRECTION_STEPS = (round(CORRECTION_MIN / CORRECTION_STEP), round(CORRECTION_LIMIT / CORRECTION_STEP) - 1)


def _correction(word: int) -> float:
    """A fixed word as a mixer correction entry. The platform holds corrections in steps of CORRECTION_STEP over
    [-2, 2) (the range the config's mixer matrices are checked against); qopemu rounds to the nearest step and
    saturates."""
    step = (word + (1 << (_CORRECTION_SHIFT - 1))) >> _CORRECTION_SHIFT
    low, high = _CORRECTION_STEPS
    return min(max(step, low), high) * CORRECTION_STEP


def _argmax(values: list) -> int:
    return max(range(len(values)), key=values.__getitem__)


def _argmin(values: list) -> int:
    return min(range(len(values)), key=values.__getitem__)


_TWO_PI = 2 * math.pi
_SELU_A, _SELU_S = 1.67326324, 1.05070098  # qm.qua.lib.Math.selu docstring

_PURE = {
    "_idiv_raw": _idiv_raw,
    "_fdiv": _fdiv,
    "_shl": _shl,
    "_shr": _shr,
    "_fmath": _fmath,
    "_from_py": _from_py,
    "_msb": fx.msb,
    "_correction": _correction,
    "_argmax": _argmax,
    "_argmin": _argmin,
    "_atan2": math.atan2,
    "_pow": lambda base, x: base**x,
    "_exp": math.exp,
    "_pow2": lambda x: 2.0**x,
    "_log": math.log,
    "_log2": math.log2,
    "_log10": math.log10,
    "_sqrt": math.sqrt,
    "_inv_sqrt": lambda x: 1.0 / math.sqrt(x),
    "_inv": lambda x: 1.0 / x,
    "_elu": lambda x: max(0.0, x) + min(0.0, math.exp(x) - 1.0),
    "_selu": lambda x: _SELU_S * (max(0.0, x) + _SELU_A * min(0.0, math.exp(x) - 1.0)),
    "_relu": lambda x: max(0.0, x),
    "_plrelu": lambda x, a: max(0.0, x) + a * min(0.0, x),
    "_lrelu": lambda x: max(0.0, x) + 0.01 * min(0.0, x),
    # periodic in x: an overflowed argument (x +- 16) gives the same value (Math.sin2pi docstring)
    "_sin2pi": lambda x: math.sin(_TWO_PI * x),
    "_cos2pi": lambda x: math.cos(_TWO_PI * x),
    "_atan_2pi": lambda x: math.atan(x) / _TWO_PI,
    "_atan2_2pi": lambda y, x: math.atan2(y, x) / _TWO_PI,
    "_sin": math.sin,
    "_cos": math.cos,
    "_atan": math.atan,
}


def pure_helpers() -> dict:
    """Helpers without side effects: the generated code calls them and the compiler folds constants with them."""
    return dict(_PURE)


class _Randoms:
    """QUA `Random` generators, one per seed variable: re-seeded whenever the seed variable changes."""

    def __init__(self):
        self._by_key: dict[str, tuple[int, random.Random]] = {}

    def _generator(self, key: str, seed: int) -> random.Random:
        entry = self._by_key.get(key)
        if entry is None or entry[0] != seed:
            entry = self._by_key[key] = (seed, random.Random(seed))
        return entry[1]

    def rand_int(self, key: str, seed: int, limit: int) -> int:
        return self._generator(key, seed).randrange(limit) if limit > 0 else 0

    def rand_fixed(self, key: str, seed: int) -> int:
        return self._generator(key, seed).getrandbits(fx.FRAC_BITS)  # [0, 1) in steps of 2**-28


@dataclass
class _Context:
    """The `_rt` argument of a generated program."""

    host: object
    record: object
    max_time: int
    acquirers: list
    pause: object  # what `pause()` does: the host's pause, or holding a simulation there
    read_input_stream: object  # the host's, or refusing in a simulation
    trigger: object  # when the external trigger comes, seen from a wait that starts at a given time


# ------------------------------------------------------------------------------------------------------ run


def run(
    compiled: CompiledProgram,
    host: JobHost,
    inputs: InputSource,
    *,
    max_time_ns: int | None = None,
    record_events: bool = False,
    waveform_overrides: dict[str, np.ndarray] | None = None,
    seed: int | None = None,
    on_start: Callable[[], None] | None = None,
    trigger_period_ns: int | None = None,
) -> RunSummary:
    """Execute `compiled` to its end (or until every timeline passed `max_time_ns`, which makes the run a
    simulation: it also ends at a `pause()`).

    Events are produced when `record_events` (kept in the summary) or `inputs.needs_events` (fed to the input
    source as they happen, so a loopback sees the pulses played before a measure acquires). `waveform_overrides`
    are checked against the program's overridable waveforms here; rendering them is the waveform synthesiser's
    job. `seed` seeds the input noise; QUA `Random` generators follow their own QUA seeds. `on_start` is called
    once everything is ready, right before the program's first statement runs. `trigger_period_ns`: the external
    trigger's edges; None, no trigger comes (a simulation's waits hold past its duration).
    """
    _check_overrides(compiled, waveform_overrides or {})
    events: list = []
    with_events = record_events or inputs.needs_events
    if record_events and inputs.needs_events:
        def record(event) -> None:
            events.append(event)
            inputs.record(event)
    elif record_events:
        record = events.append
    else:
        record = inputs.record
    normals = NormalSource(np.random.default_rng(seed))
    acquirers = [Acquirer(spec, inputs, host, normals) for spec in compiled.measures]
    randoms = _Randoms()
    namespace = pure_helpers()
    namespace.update(
        _Stop=_Stop,
        _oob=_OutOfRange(host),
        _rand_int=randoms.rand_int,
        _rand_fixed=randoms.rand_fixed,
        _PlayEvent=ev.PlayEvent,
        _DcOffsetEvent=ev.DcOffsetEvent,
        _RampToZeroEvent=ev.RampToZeroEvent,
        _AcquisitionEvent=ev.AcquisitionEvent,
        _PhaseResetEvent=ev.PhaseResetEvent,
    )
    exec(compiled.code(with_events), namespace)
    simulation = max_time_ns is not None
    context = _Context(host, record, max_time_ns if simulation else _NO_LIMIT, acquirers,
                       _hold if simulation else host.pause,
                       _no_input_streams if simulation else host.read_input_stream,
                       _trigger_source(trigger_period_ns, max_time_ns))
    if on_start is not None:
        on_start()
    duration, statements = namespace["_program"](context)
    return RunSummary(duration_ns=duration, events=events, statements=statements)


def _trigger_source(period_ns: int | None, max_time_ns: int | None):
    """When a trigger edge reaches the trigger port, for a wait that starts at `t` ns (an edge at `t` counts)."""
    if period_ns is not None:
        return lambda t: -(-t // period_ns) * period_ns
    if max_time_ns is not None:  # no trigger in a simulation: the wait lasts past the simulated duration
        return lambda t: max(t, max_time_ns) + CLOCK_NS

    def never(t: int) -> int:
        raise QuaRuntimeError("wait_for_trigger: this job has no trigger source")
    return never


def _check_overrides(compiled: CompiledProgram, overrides: dict[str, np.ndarray]) -> None:
    for name, samples in overrides.items():
        expected = compiled.overridable_waveforms.get(name)
        if expected is None:
            raise ValueError(f"waveform '{name}' is not an overridable waveform played by this program")
        if len(samples) != expected:
            raise ValueError(f"waveform '{name}' needs {expected} samples, got {len(samples)}")
