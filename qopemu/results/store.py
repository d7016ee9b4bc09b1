"""`JobResults`: everything one job has produced for its client, and the answers to its result RPCs.

One producer thread (the job's owner, relaying the engine) feeds values in; any number of gRPC
threads read concurrently. Evaluating stream processing happens outside the readers' lock; only
publishing finished items takes it, and readers snapshot what exists and encode outside it. Stored
items are never rewritten (`save_all` appends to chunks, `save` swaps in a new array), so a reader's
snapshot stays valid while the producer goes on.

Choices the client leaves to the server:

- Timestamps (``with_timestamps()``, ``timestamps()``) are in nanoseconds since the job started,
  as the engine reports them. Public user code treats them that way: an NV-centre counter divides
  them by ``u.s`` (1e9 in qualang_tools' ns-based units) to plot seconds, and an ADC calibration
  multiplies the per-sample timestamps of a trace by 1e-9 in ``cos(2 pi f t)``, which only works
  for ns at 1 GS/s. (The ``timestamp_stream=`` of play/measure saves plain int values; their unit
  is the engine's business.)
- The dtype of every stream is fixed at construction, before any value arrives, from the model and
  ``stream_kinds`` (tag -> "int" | "fixed" | "bool" | "adc", known to the compiler). A tag missing
  from ``stream_kinds`` is taken as "fixed" (``<f8``), and values fed for it are converted to that.
- A raw-ADC trace result whose trace length is not given in ``adc_trace_lengths`` reports ``<f8``
  scalars in the schema until its first trace arrives; headers always describe the stored items.
  The compiler gives the length of every raw ADC stream whose measures share one readout window.
- ``expected_count`` is 0 ("not known in advance") for every result.
- Nothing is ever dropped silently, so ``has_dataloss`` stays False: when a job's results outgrow
  ``memory_cap_bytes`` the add_* call raises `ResultsMemoryError` for the owner to fail the job,
  and what was stored stays readable.
- A stream-processing failure at run time (items of changing shape, ...) stops that one result and
  is reported as an execution error (code `STREAM_PROCESSING_ERROR`); the other results go on.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np

from qopemu.results import encoding
from qopemu.results.streams import FLOAT_DTYPE, VALUE_KINDS, ItemType, Pipeline, SourceHints, build_pipelines

STREAM_PROCESSING_ERROR = 3001
_FIRST_CHUNK_BYTES = 64 << 10
_MAX_CHUNK_BYTES = 4 << 20  # also the largest `data` of one GetJobNamedResult message
_UNKNOWN_ITEM = ItemType(FLOAT_DTYPE, ())


class ResultsMemoryError(Exception):
    """The job's results need more memory than the server allows one job."""


class UnknownResultError(KeyError):
    """No result of that name in this job."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class SchemaItem:
    name: str
    simple_dtype: str
    is_single: bool
    expected_count: int
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Header:
    count_so_far: int
    simple_dtype: str
    shape: tuple[int, ...]
    has_dataloss: bool
    has_execution_errors: bool
    is_single: bool
    done: bool
    closed: bool


@dataclass(frozen=True)
class ExecutionError:
    code: int
    message: str
    severity: str  # "error" | "warning"


class _ItemTypeChanged(ValueError):
    pass


class _Output:
    """The stored items of one terminal. Mutated only under JobResults' lock."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.name = pipeline.name
        self.is_single = not pipeline.keep_all
        self.failed = False
        self.stored_type: ItemType | None = None  # set by the first stored item

    @property
    def item_type(self) -> ItemType:
        return self.stored_type or self.pipeline.item_type or _UNKNOWN_ITEM

    def _check_type(self, batch: np.ndarray) -> None:
        found = ItemType.of(batch)
        if self.stored_type is None:
            self.stored_type = found
        elif found != self.stored_type:
            raise _ItemTypeChanged(
                f"items of result {self.name!r} changed from {self.stored_type.dtype} {self.stored_type.shape} "
                f"to {found.dtype} {found.shape}"
            )

    count: int
    nbytes: int

    def add(self, batch: np.ndarray) -> None:
        raise NotImplementedError

    def pieces(self, start: int, stop: int) -> list[np.ndarray]:
        raise NotImplementedError


class _LatestItem(_Output):
    """`save`: only the latest item is kept."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        self._item: np.ndarray | None = None

    @property
    def count(self) -> int:
        return 0 if self._item is None else 1

    @property
    def nbytes(self) -> int:
        return 0 if self._item is None else self._item.nbytes

    def add(self, batch: np.ndarray) -> None:
        if len(batch):
            self._check_type(batch)
            self._item = batch[-1:].copy()

    def pieces(self, start: int, stop: int) -> list[np.ndarray]:
        return [] if self._item is None or start >= stop else [self._item]


class _AllItems(_Output):
    """`save_all`: every item, in contiguous chunks of at most 4 MB that are never moved."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        self._chunks: list[np.ndarray] = []
        self._starts: list[int] = []  # index of each chunk's first item
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._count * self._item_nbytes() if self._chunks else 0  # no item type before the first value

    def _item_nbytes(self) -> int:
        t = self.item_type
        return t.dtype.itemsize * math.prod(t.shape)

    def _new_chunk(self) -> np.ndarray:
        previous = self._chunks[-1].nbytes if self._chunks else _FIRST_CHUNK_BYTES // 2
        capacity = max(1, min(2 * previous, _MAX_CHUNK_BYTES) // max(1, self._item_nbytes()))
        t = self.item_type
        chunk = np.empty((capacity,) + t.shape, t.dtype)
        self._chunks.append(chunk)
        self._starts.append(self._count)
        return chunk

    def add(self, batch: np.ndarray) -> None:
        n = len(batch)
        if not n:
            return
        self._check_type(batch)
        done = 0
        while done < n:
            chunk = self._chunks[-1] if self._chunks else self._new_chunk()
            fill = self._count - self._starts[-1]
            if fill == len(chunk):
                chunk, fill = self._new_chunk(), 0
            k = min(n - done, len(chunk) - fill)
            chunk[fill : fill + k] = batch[done : done + k]
            done += k
            self._count += k

    def pieces(self, start: int, stop: int) -> list[np.ndarray]:
        out = []
        for chunk, first in zip(self._chunks, self._starts):
            lo, hi = max(start, first), min(stop, first + len(chunk))
            if lo < hi:
                out.append(chunk[lo - first : hi - first])
        return out


class JobResults:
    """The results record of one job (see the module docstring for the choices it makes)."""

    def __init__(
        self,
        model: list,
        memory_cap_bytes: int = 1 << 30,
        stream_kinds: Mapping[str, str] | None = None,
        adc_trace_lengths: Mapping[str, int] | None = None,
        auto_reshape_dims: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        hints = SourceHints(dict(stream_kinds or {}), dict(adc_trace_lengths or {}), dict(auto_reshape_dims or {}))
        self._outputs: dict[str, _Output] = {}
        for pipeline in build_pipelines(model, hints):
            output = _AllItems(pipeline) if pipeline.keep_all else _LatestItem(pipeline)
            self._outputs[pipeline.name] = output
        self._by_tag: dict[str, list[_Output]] = {}
        for output in self._outputs.values():
            for tag in output.pipeline.tags:
                self._by_tag.setdefault(tag, []).append(output)
        self._cap = memory_cap_bytes
        self._feed_lock = threading.Lock()  # one producer at a time through the pipelines
        self._state_lock = threading.Lock()  # guards everything readers see
        self._done = False
        self._closed = False
        self._errors: list[ExecutionError] = []

    # ------------------------------------------------------------ producer side

    def add_values(self, tag: str, kind: str, values: np.ndarray, timestamps: np.ndarray) -> None:
        """Values saved to stream `tag`, one timestamp (ns since job start) per value."""
        if kind not in VALUE_KINDS:
            raise ValueError(f"kind must be one of {VALUE_KINDS}, got {kind!r}")
        with self._feed_lock:
            for output in self._live_outputs(tag):
                self._feed(output, lambda p: p.feed_values(tag, values, timestamps))
            self._check_memory()

    def add_adc(self, tag: str, input_number: int, traces: np.ndarray, timestamps: np.ndarray) -> None:
        """Raw ADC traces (n, samples) of one analog input; timestamps (n,) of each first sample, ns."""
        with self._feed_lock:
            for output in self._live_outputs(tag):
                self._feed(output, lambda p: p.feed_adc(tag, input_number, traces, timestamps))
            self._check_memory()

    def add_error(self, code: int, message: str, severity: str = "error") -> None:
        if severity not in ("error", "warning"):
            raise ValueError(f"severity must be 'error' or 'warning', got {severity!r}")
        with self._state_lock:
            self._errors.append(ExecutionError(code, message, severity))

    def finish(self) -> None:
        """The program ended normally: every result is final."""
        with self._feed_lock, self._state_lock:
            if not self._closed:
                self._done = True

    def close(self) -> None:
        """The job was halted, canceled or failed: no more data will come."""
        with self._feed_lock, self._state_lock:
            if not self._done:
                self._closed = True

    def _live_outputs(self, tag: str) -> list[_Output]:
        if self._done or self._closed:
            return []
        return [o for o in self._by_tag.get(tag, ()) if not o.failed]

    def _feed(self, output: _Output, run) -> None:
        try:
            batches = run(output.pipeline)
            with self._state_lock:
                for batch in batches:
                    output.add(batch)
        except Exception as exc:  # one broken pipeline must not take the job's other results down
            self._fail(output, exc)

    def _fail(self, output: _Output, exc: Exception) -> None:
        with self._state_lock:
            output.failed = True
            self._errors.append(
                ExecutionError(
                    STREAM_PROCESSING_ERROR, f"stream processing of result {output.name!r} stopped: {exc}", "error"
                )
            )

    def _check_memory(self) -> None:
        used = sum(o.nbytes + o.pipeline.pending_nbytes() for o in self._outputs.values())
        if used > self._cap:
            raise ResultsMemoryError(
                f"the job's results take {used} bytes, more than the {self._cap} bytes a job may keep"
            )

    # ------------------------------------------------------------ reader side

    def _output(self, name: str) -> _Output:
        output = self._outputs.get(name)
        if output is None:
            raise UnknownResultError(f"no result named {name!r} in this job")
        return output

    def schema(self) -> list[SchemaItem]:
        with self._state_lock:
            return [
                SchemaItem(
                    name=o.name,
                    simple_dtype=encoding.simple_dtype(o.item_type.dtype, o.item_type.shape, flat=False),
                    is_single=o.is_single,
                    expected_count=0,
                    shape=tuple(encoding.wire_shape(o.item_type.shape, flat=False)),
                )
                for o in self._outputs.values()
            ]

    def state(self) -> tuple[bool, bool, bool]:
        """(done, closed, has_dataloss)."""
        with self._state_lock:
            return self._done, self._closed, False

    def _has_errors(self) -> bool:
        return any(e.severity == "error" for e in self._errors)

    def header(self, name: str, flat: bool) -> Header:
        with self._state_lock:
            output = self._output(name)
            item = output.item_type
            return Header(
                count_so_far=output.count,
                simple_dtype=encoding.simple_dtype(item.dtype, item.shape, flat),
                shape=tuple(encoding.wire_shape(item.shape, flat)),
                has_dataloss=False,
                has_execution_errors=self._has_errors(),
                is_single=output.is_single,
                done=self._done,
                closed=self._closed,
            )

    def read(self, name: str, offset: int, limit: int) -> Iterator[tuple[int, bytes]]:
        """Items [offset, offset + limit) as (count, bytes) chunks of at most 4 MB.

        A negative offset counts from the end, as in Python; the range is clipped to what exists.
        The bytes are the same for flat and non-flat reads (only the header differs), so one read serves both.
        """
        with self._state_lock:
            output = self._output(name)
            count = output.count
            start = offset + count if offset < 0 else offset
            start = min(max(start, 0), count)
            stop = min(count, start + max(limit, 0))
            pieces = output.pieces(start, stop)
        for piece in pieces:
            yield len(piece), encoding.to_bytes(piece)

    def errors(self) -> list[ExecutionError]:
        with self._state_lock:
            return list(self._errors)
