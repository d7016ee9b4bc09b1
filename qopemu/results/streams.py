"""Stream processing: one `Pipeline` per terminal of the program's resultAnalysis model.

The model (protocol §6) is a list of terminals, each a tree of string atoms such as
``["saveAll", "avg", ["average", ["buffer", "3", ["@re", "0", "r1"]]]]``. `Pipeline` turns one
terminal into a tree of operator nodes and checks it once by pushing an empty batch from every source
through a scratch copy of the tree, so a pipeline that can never work (``fft`` of scalars, ``tmult`` of
a non-tuple, an unknown operator) fails at construction time with `UnsupportedStreamOperation`, and the
result's dtype and item shape are known before any value arrives (the client asks for the schema first).
A pipeline over raw ADC traces whose length is not known yet is checked when the first trace arrives.

Data model. A *batch* is a numpy array whose axis 0 counts stream items; the rest of its shape is
the item shape. Items are plain numbers (``<i8`` int, ``<f8`` fixed, ``|b1`` bool, ``<i2`` raw ADC)
or records:

- ``with_timestamps()`` gives records ``(value, timestamp)``; a buffered record stream keeps the
  record as element type (``buffer(k)`` of records has item shape ``(k,)``), and an ADC trace with
  timestamps is one record whose two fields are vectors of the trace length, one timestamp per sample.
- ``a.zip(b)`` gives records ``(f0, f1)`` = (item of a, item of b), numpy's default field names.

Every operator works on whole batches with numpy, never item by item, because a job can push
10^7 values. Value-computing operators (arithmetic, ``average``, ``histogram``, most map functions)
applied to ``(value, timestamp)`` records use the ``value`` field and drop the timestamps;
``demod`` is the exception: it uses them as the sample times, as the client's docstring says.
Zip tuples feed only the tuple functions (``tmult``, ``dot``/``conv`` without a constant, ``demod``).

Timestamps are passed through as the engine gives them: nanoseconds since the job started (see
store.py for why that is the unit users see).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# The kinds of what a stream carries: the three QUA variable types, and raw ADC traces. The compiler names them, the
# worker and the result store carry them, and these are the only spellings.
INT, FIXED, BOOL, ADC = "int", "fixed", "bool", "adc"
VALUE_KINDS = (INT, FIXED, BOOL)  # what `save` can put in a stream
# Base dtypes of stream items by the kind of QUA variable saved into the stream (protocol §5.3).
KIND_DTYPES: dict[str, np.dtype] = {
    INT: np.dtype("<i8"),
    FIXED: np.dtype("<f8"),
    BOOL: np.dtype("|b1"),
    ADC: np.dtype("<i2"),
}
DEFAULT_KIND = FIXED
TIMESTAMP_DTYPE = np.dtype("<i8")
FLOAT_DTYPE = np.dtype("<f8")
ADC_SAMPLE_NS = 1  # OPX+ ADC: 1 GS/s, so sample k of a trace is k ns after its first sample

Batch = np.ndarray
Sink = Callable[[Batch], None]


class StreamModelError(ValueError):
    """The resultAnalysis model is malformed (wrong arity, bad number, ...)."""


class UnsupportedStreamOperation(StreamModelError):
    """An operator the emulator cannot evaluate, or cannot evaluate on the items it would receive."""


@dataclass(frozen=True)
class SourceHints:
    """What the engine's compiler knows about the program's streams, needed before any value arrives.

    kinds: stream tag -> "int" | "fixed" | "bool" | "adc". A tag not listed is taken as "fixed".
    adc_trace_lengths: stream tag -> samples per ADC trace (the readout window), for the schema.
        Without it a trace stream's item shape is learnt from the first trace.
    auto_reshape_dims: stream tag -> buffer dimensions implied by the QUA loops around its saves,
        which ``auto_reshape()`` needs (the compiler gives them for loops of literal bounds).
    """

    kinds: Mapping[str, str] = field(default_factory=dict)
    adc_trace_lengths: Mapping[str, int] = field(default_factory=dict)
    auto_reshape_dims: Mapping[str, Sequence[int]] = field(default_factory=dict)


# ---------------------------------------------------------------- batch helpers


def _is_timestamped(dtype: np.dtype) -> bool:
    return dtype.names == ("value", "timestamp")


def _records(names: Sequence[str], parts: Sequence[Batch]) -> Batch:
    """Pack batches of equal length into one batch of records, field i holding item i of parts."""
    n = len(parts[0])
    dtype = np.dtype([(name, p.dtype, p.shape[1:]) for name, p in zip(names, parts)])
    out = np.empty(n, dtype)
    for name, p in zip(names, parts):
        out[name] = p
    return out


def _timestamped(values: Batch, timestamps: Batch) -> Batch:
    return _records(("value", "timestamp"), (values, timestamps))


def _numbers(batch: Batch, op: str) -> Batch:
    """The numeric content of a batch: timestamped records lose their timestamps; tuples are refused."""
    if batch.dtype.names is None:
        return batch
    if _is_timestamped(batch.dtype):
        return batch["value"]
    raise UnsupportedStreamOperation(
        f"{op} needs numeric items but gets zip tuples; use a tuple_* map function on them"
    )


def _arith_ready(a: Batch) -> Batch:
    # bool + bool would be logical OR in numpy; QUA arithmetic counts booleans as 0/1.
    return a.astype(np.int64) if a.dtype == np.bool_ else a


def _pair(batch: Batch, op: str) -> tuple[Batch, Batch]:
    """The two members of tuple items (zip, or value + timestamp)."""
    names = batch.dtype.names
    if names is None or len(names) != 2:
        raise UnsupportedStreamOperation(f"{op} needs tuple items (a.zip(b)) but gets {_describe(batch)}")
    return batch[names[0]], batch[names[1]]


def _describe(batch: Batch) -> str:
    shape = batch.shape[1:]
    kind = "records" if batch.dtype.names else str(batch.dtype)
    return f"{kind} items of shape {shape}" if shape else f"scalar {kind} items"


def _align(a: Batch, b: Batch) -> tuple[Batch, Batch]:
    """Broadcast two batches item by item: item shapes align on the right, as numpy does for arrays."""
    da, db = a.ndim - 1, b.ndim - 1
    if da < db:
        a = a.reshape(a.shape[:1] + (1,) * (db - da) + a.shape[1:])
    elif db < da:
        b = b.reshape(b.shape[:1] + (1,) * (da - db) + b.shape[1:])
    return a, b


def _concat(parts: list[Batch]) -> Batch:
    full = [p for p in parts if len(p)]
    if not full:
        return parts[-1]
    return full[0] if len(full) == 1 else np.concatenate(full)


class _Queue:
    """Items waiting inside an operator (a partial buffer, one side of a pairing)."""

    def __init__(self) -> None:
        self._parts: list[Batch] = []
        self._count = 0
        self._nbytes = 0  # kept as parts come and go: the memory check asks on every push
        self.seen = False  # has any batch (even empty) arrived: then the item type is known

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def append(self, batch: Batch) -> None:
        self.seen = True
        if len(batch) or not self._parts:
            self._parts.append(batch)
            self._nbytes += batch.nbytes
        self._count += len(batch)

    def take(self, n: int) -> Batch:
        if n == 0 and self._parts:  # nothing to hand out yet (a buffer filling, a pairing waiting for its other side)
            return self._parts[-1][:0]
        data = _concat(self._parts)
        head, rest = data[:n], data[n:]
        if len(rest) * 2 < len(data):
            rest = rest.copy()  # do not keep the whole concatenation alive for a small remainder
        self._parts = [rest]
        self._count = len(rest)
        self._nbytes = rest.nbytes
        return head


# ---------------------------------------------------------------- nodes


class _Node:
    """An operator: receives batches through push(), sends its output batches downstream."""

    queues: tuple[_Queue, ...] = ()  # the items an operator holds back count against the job's memory cap

    def __init__(self, children: Sequence["_Node"] = ()) -> None:
        self.downstream: Sink = _nowhere
        self.children = list(children)

    def push(self, batch: Batch) -> None:
        raise NotImplementedError

    def emit(self, batch: Batch) -> None:
        self.downstream(batch)

    def pending_nbytes(self) -> int:
        return sum(q.nbytes for q in self.queues) + sum(c.pending_nbytes() for c in self.children)

    def only_last_needed(self) -> None:
        """The consumer keeps only the latest item (a `save` terminal); running reductions can skip
        computing every intermediate item. Item-wise operators pass the hint on."""


def _nowhere(batch: Batch) -> None:
    return None


class _Source(_Node):
    """`["@re", mode, tag]`, possibly inside the ADC macros: turns engine data into a batch."""

    def __init__(
        self,
        tag: str,
        mode: int,
        kind: str,
        adc_input: int | None,
        adc_trace: bool,
        trace_length: int | None,
    ) -> None:
        super().__init__()
        self.tag = tag
        self.mode = mode
        self.kind = kind
        self.adc_input = adc_input
        self.adc_trace = adc_trace
        self.trace_length = trace_length
        self.dtype = KIND_DTYPES[kind]

    @property
    def is_adc(self) -> bool:
        return self.kind == ADC

    def _shape(self, values: Batch, timestamps: Batch) -> Batch:
        if self.mode == 0:
            return values
        if self.mode == 1:
            return timestamps
        return _timestamped(values, timestamps)

    def feed_values(self, values: np.ndarray, timestamps: np.ndarray) -> None:
        values = np.asarray(values).reshape(-1).astype(self.dtype, copy=False)
        timestamps = np.asarray(timestamps).reshape(-1).astype(TIMESTAMP_DTYPE, copy=False)
        if len(values) != len(timestamps):
            raise ValueError(f"stream {self.tag}: {len(values)} values but {len(timestamps)} timestamps")
        self.emit(self._shape(values, timestamps))

    def feed_adc(self, input_number: int, traces: np.ndarray, timestamps: np.ndarray) -> None:
        if input_number != (self.adc_input or 1):
            return
        traces = np.asarray(traces)
        if traces.ndim != 2:
            raise ValueError(f"ADC traces of stream {self.tag} must be (n, samples), got {traces.shape}")
        traces = traces.astype(self.dtype, copy=False)
        length = traces.shape[1]
        if self.mode == 0:  # no timestamps wanted: no sample times to compute
            self.emit(traces if self.adc_trace else traces.reshape(-1))
            return
        starts = np.asarray(timestamps).reshape(-1).astype(TIMESTAMP_DTYPE, copy=False)
        sample_times = starts[:, None] + np.arange(length, dtype=TIMESTAMP_DTYPE) * ADC_SAMPLE_NS
        if not self.adc_trace:
            # A stream not marked as a trace gets each ADC sample as a separate item (client warns).
            traces, sample_times = traces.reshape(-1), sample_times.reshape(-1)
        self.emit(self._shape(traces, sample_times))

    def feed_empty(self) -> None:
        if self.is_adc:
            length = self.trace_length if self.trace_length is not None else 1
            self.feed_adc(self.adc_input or 1, np.empty((0, length), self.dtype), np.empty(0, TIMESTAMP_DTYPE))
        else:
            self.feed_values(np.empty(0, self.dtype), np.empty(0, TIMESTAMP_DTYPE))


class _ItemWise(_Node):
    """A stateless function of each item (map functions, real/image, arithmetic with constants)."""

    def __init__(self, child: _Node, fn: Callable[[Batch], Batch]) -> None:
        super().__init__([child])
        self.fn = fn

    def push(self, batch: Batch) -> None:
        with np.errstate(all="ignore"):  # 1/0 gives inf as on the server, not a warning flood
            self.emit(self.fn(batch))

    def only_last_needed(self) -> None:
        self.children[0].only_last_needed()


class _Average(_Node):
    """Running average over all items since the program started; emits one average per item."""

    def __init__(self, child: _Node) -> None:
        super().__init__([child])
        self.total: np.ndarray | None = None
        self.count = 0
        self.last_only = False

    def only_last_needed(self) -> None:
        self.last_only = True

    def push(self, batch: Batch) -> None:
        x = _numbers(batch, "average").astype(FLOAT_DTYPE, copy=False)
        n = len(x)
        total = self.total if self.total is not None else np.zeros(x.shape[1:], FLOAT_DTYPE)
        if total.shape != x.shape[1:]:
            raise ValueError(f"average: item shape changed from {total.shape} to {x.shape[1:]}")
        if n == 0:
            self.emit(np.empty((0,) + x.shape[1:], FLOAT_DTYPE))
            return
        if self.last_only:
            self.total = total + x.sum(axis=0)
            self.count += n
            self.emit((self.total / self.count)[None])
            return
        sums = np.cumsum(x, axis=0)
        sums += total
        counts = np.arange(self.count + 1, self.count + n + 1, dtype=FLOAT_DTYPE)
        self.total = sums[-1].copy()
        self.count += n
        sums /= counts.reshape((n,) + (1,) * (x.ndim - 1))
        self.emit(sums)


class _Histogram(_Node):
    """Running histogram of every number seen; bins are inclusive [low, high] pairs."""

    def __init__(self, child: _Node, bins: list[tuple[float, float]]) -> None:
        super().__init__([child])
        self.low = np.array([b[0] for b in bins], FLOAT_DTYPE)
        self.high = np.array([b[1] for b in bins], FLOAT_DTYPE)
        self.counts = np.zeros(len(bins), np.int64)
        self.last_only = False

    def only_last_needed(self) -> None:
        self.last_only = True

    def _per_item(self, x: Batch) -> np.ndarray:
        flat = x.reshape(len(x), -1)
        out = np.empty((len(x), len(self.low)), np.int64)
        for b, (lo, hi) in enumerate(zip(self.low, self.high)):
            out[:, b] = np.count_nonzero((flat >= lo) & (flat <= hi), axis=1)
        return out

    def push(self, batch: Batch) -> None:
        x = _numbers(batch, "histogram")
        if len(x) == 0:
            self.emit(np.empty((0, len(self.low)), np.int64))
            return
        per_item = self._per_item(x)
        if self.last_only:
            self.counts = self.counts + per_item.sum(axis=0)
            self.emit(self.counts[None].copy())
            return
        running = np.cumsum(per_item, axis=0)
        running += self.counts
        self.counts = running[-1].copy()
        self.emit(running)


class _Buffer(_Node):
    """`buffer(d1, ..., dk)`: groups prod(d) items into one item of shape (d1, ..., dk) + item shape;
    only full buffers are emitted."""

    def __init__(self, child: _Node, dims: Sequence[int]) -> None:
        super().__init__([child])
        self.dims = tuple(dims)
        self.size = math.prod(self.dims)
        self.queue = _Queue()
        self.queues = (self.queue,)

    def push(self, batch: Batch) -> None:
        self.queue.append(batch)
        m = len(self.queue) // self.size
        data = self.queue.take(m * self.size)
        self.emit(data.reshape((m,) + self.dims + data.shape[1:]))


class _BufferAndSkip(_Node):
    """`buffer_and_skip(length, skip)`: windows of `length` items starting every `skip` items."""

    def __init__(self, child: _Node, length: int, skip: int) -> None:
        super().__init__([child])
        self.length = length
        self.skip = skip
        self.queue = _Queue()  # items from the start of the next window on
        self.queues = (self.queue,)
        self.to_drop = 0  # items still to discard before the next window starts (skip > length)

    def push(self, batch: Batch) -> None:
        dropped = min(self.to_drop, len(batch))
        self.to_drop -= dropped
        self.queue.append(batch[dropped:])
        available = len(self.queue)
        m = (available - self.length) // self.skip + 1 if available >= self.length else 0
        data = self.queue.take(available)
        if m:
            windows = sliding_window_view(data, self.length, axis=0)[: (m - 1) * self.skip + 1 : self.skip]
            out = np.ascontiguousarray(np.moveaxis(windows, -1, 1))
        else:
            out = np.empty((0, self.length) + data.shape[1:], data.dtype)
        next_start = m * self.skip
        if next_start <= available:
            self.queue.append(data[next_start:])
        else:
            self.queue.append(data[:0])
            self.to_drop = next_start - available
        self.emit(out)


class _Skip(_Node):
    def __init__(self, child: _Node, n: int) -> None:
        super().__init__([child])
        self.remaining = n

    def push(self, batch: Batch) -> None:
        k = min(self.remaining, len(batch))
        self.remaining -= k
        self.emit(batch[k:])


class _Take(_Node):
    def __init__(self, child: _Node, n: int) -> None:
        super().__init__([child])
        self.remaining = n

    def push(self, batch: Batch) -> None:
        k = min(self.remaining, len(batch))
        self.remaining -= k
        self.emit(batch[:k])


class _SkipLast(_Node):
    """Holds back the latest n items; whatever is held when the program ends is never emitted."""

    def __init__(self, child: _Node, n: int) -> None:
        super().__init__([child])
        self.n = n
        self.queue = _Queue()
        self.queues = (self.queue,)

    def push(self, batch: Batch) -> None:
        self.queue.append(batch)
        self.emit(self.queue.take(max(0, len(self.queue) - self.n)))


class _Flatten(_Node):
    """Sends the elements of each array item one by one."""

    def __init__(self, child: _Node) -> None:
        super().__init__([child])

    def push(self, batch: Batch) -> None:
        dtype = batch.dtype
        if dtype.names is not None and batch.ndim == 1:
            shapes = {dtype.fields[name][0].shape for name in dtype.names}
            if len(shapes) == 1 and shapes.pop():
                # Records of equal-length vectors (an ADC trace with its per-sample timestamps)
                # flatten into per-element records.
                parts = [batch[name].reshape(-1) for name in dtype.names]
                self.emit(_records(dtype.names, parts))
                return
        self.emit(batch.reshape(-1))


class _PairStreams(_Node):
    """Pairs item i of the left stream with item i of the right one (arithmetic, zip); emits only
    as many items as the shorter side has produced."""

    def __init__(self, left: _Node, right: _Node, combine: Callable[[Batch, Batch], Batch]) -> None:
        super().__init__([left, right])
        self.combine = combine
        self.queues = (_Queue(), _Queue())
        left.downstream = lambda b: self._side(0, b)
        right.downstream = lambda b: self._side(1, b)

    def _side(self, side: int, batch: Batch) -> None:
        self.queues[side].append(batch)
        left, right = self.queues
        if not (left.seen and right.seen):
            return
        m = min(len(left), len(right))
        with np.errstate(all="ignore"):
            self.emit(self.combine(left.take(m), right.take(m)))


# ---------------------------------------------------------------- map functions


def _average_fn(args: list) -> Callable[[Batch], Batch]:
    if not args:
        # Without an axis the platform averages over an item's outermost axis: public scripts do
        # `.buffer(nf).buffer(n_avg).map(FUNCTIONS.average())` and plot nf values (docs/results.md).
        def outermost(b: Batch) -> Batch:
            x = _numbers(b, "map(average)")
            return _mean(x, (1,) if x.ndim > 1 else ())

        return outermost
    axes = _int_list(args[0]) if isinstance(args[0], list) else [_int(args[0])]
    # Axes count within an item; the batch adds one in front.
    batch_axes = tuple(a + 1 if a >= 0 else a for a in axes)

    def fn(b: Batch) -> Batch:
        x = _numbers(b, "map(average)")
        if max(batch_axes) >= x.ndim or min(batch_axes) < -(x.ndim - 1):
            raise UnsupportedStreamOperation(f"map(average, axis={axes}) on {_describe(b)}")
        return _mean(x, batch_axes)

    return fn


def _mean(x: Batch, axes: tuple[int, ...]) -> Batch:
    if not axes:
        return x.astype(FLOAT_DTYPE)
    n = len(x)
    if n == 0:
        shape = tuple(s for i, s in enumerate(x.shape) if i not in {a % x.ndim for a in axes})
        return np.empty(shape, FLOAT_DTYPE)
    return np.mean(x, axis=axes, dtype=FLOAT_DTYPE)


def _vector_items(x: Batch, op: str) -> Batch:
    if x.ndim < 2:
        raise UnsupportedStreamOperation(f"{op} needs vector items (e.g. after buffer(n)) but gets {_describe(x)}")
    return x


def _dot_fn(args: list) -> Callable[[Batch], Batch]:
    if not args:

        def tuple_dot(b: Batch) -> Batch:
            u, v = (_arith_ready(p) for p in _pair(b, "tuple_dot_product"))
            u, v = _align(_vector_items(u, "tuple_dot_product"), v)
            return np.sum(u * v, axis=-1)

        return tuple_dot
    vector = _const_array(args[0])

    def dot(b: Batch) -> Batch:
        x = _vector_items(_arith_ready(_numbers(b, "dot_product")), "dot_product")
        if x.shape[-1] != len(vector):
            raise UnsupportedStreamOperation(f"dot_product with a vector of {len(vector)} on {_describe(b)}")
        return x @ vector

    return dot


def _smult_fn(args: list) -> Callable[[Batch], Batch]:
    k = _number(_one(args, "smult"))
    return lambda b: _arith_ready(_numbers(b, "multiply_by")) * k


def _vmult_fn(args: list) -> Callable[[Batch], Batch]:
    vector = _const_array(_one(args, "vmult"))

    def fn(b: Batch) -> Batch:
        x, v = _align(_arith_ready(_numbers(b, "multiply_by")), vector[None])
        return x * v

    return fn


def _tmult_fn(args: list) -> Callable[[Batch], Batch]:
    def fn(b: Batch) -> Batch:
        u, v = _align(*(_arith_ready(p) for p in _pair(b, "tuple_multiply")))
        return u * v

    return fn


_CONV_MODES = {"": "full", "full": "full", "same": "same", "valid": "valid"}


def _convolve(x: Batch, kernels: Batch, mode: str) -> Batch:
    """numpy.convolve(item, kernel, mode) for every item at once; kernels is (1, M) or (n, M)."""
    n, length = x.shape
    m = kernels.shape[1]
    padded = np.zeros((n, length + 2 * (m - 1)), np.result_type(x, kernels, FLOAT_DTYPE))
    padded[:, m - 1 : m - 1 + length] = x
    windows = sliding_window_view(padded, m, axis=1)  # (n, length + m - 1, m)
    full = np.einsum("nwm,nm->nw", windows, np.broadcast_to(kernels[:, ::-1], (n, m)))
    short, long_ = min(length, m), max(length, m)
    if mode == "same":
        start, size = (short - 1) // 2, long_
    elif mode == "valid":
        start, size = short - 1, long_ - short + 1
    else:
        start, size = 0, length + m - 1
    return full[:, start : start + size]


def _conv_fn(args: list) -> Callable[[Batch], Batch]:
    if not args:
        raise StreamModelError("conv needs a mode")
    mode = _CONV_MODES.get(_atom(args[0]))
    if mode is None:
        raise UnsupportedStreamOperation(f"convolution mode {args[0]!r}")
    if len(args) == 1:

        def tuple_conv(b: Batch) -> Batch:
            u, v = _pair(b, "tuple_convolution")
            if u.ndim != 2 or v.ndim != 2:
                raise UnsupportedStreamOperation(f"tuple_convolution needs two vectors per item, gets {_describe(b)}")
            return _convolve(u, v, mode)

        return tuple_conv
    kernel = _const_array(args[1]).reshape(1, -1)

    def conv(b: Batch) -> Batch:
        x = _numbers(b, "convolution")
        if x.ndim != 2:
            raise UnsupportedStreamOperation(f"convolution needs vector items but gets {_describe(b)}")
        return _convolve(x, kernel, mode)

    return conv


def _fft_fn(args: list) -> Callable[[Batch], Batch]:
    output = _atom(args[0]) if args else "normal"
    if output not in ("normal", "abs", "angle"):
        raise UnsupportedStreamOperation(f"fft output {output!r}")

    def fn(b: Batch) -> Batch:
        x = _vector_items(_numbers(b, "fft"), "fft")
        if x.ndim == 3 and x.shape[2] == 2:  # a vector of (real, imaginary) pairs
            x = x[..., 0] + 1j * x[..., 1]
        elif x.ndim != 2:
            raise UnsupportedStreamOperation(f"fft needs a vector or a vector of pairs, gets {_describe(b)}")
        spectrum = np.fft.fft(x, axis=-1)  # numpy's convention: no normalisation
        if output == "abs":
            return np.abs(spectrum)
        if output == "angle":
            return np.angle(spectrum)
        return np.stack([spectrum.real, spectrum.imag], axis=-1)

    return fn


def _booleancast_fn(args: list) -> Callable[[Batch], Batch]:
    return lambda b: (_numbers(b, "boolean_to_int") != 0).astype(np.int64)


def _demod_fn(args: list) -> Callable[[Batch], Batch]:
    if len(args) not in (3, 4):
        raise StreamModelError(f"demod takes frequency, cos weight, sin weight [, integrate], got {args}")
    freq = float(_number(args[0]))
    weights = [_const_array(a) if isinstance(a, list) else np.float64(_number(a)) for a in args[1:3]]
    integrate = _atom(args[3]) != "0" if len(args) == 4 else True

    def fn(b: Batch) -> Batch:
        if b.dtype.names is not None:
            # (value, timestamp) records or a zip whose 2nd member is the timestamps: the real
            # sample times drive the demodulation.
            x, t = _pair(b, "demod")
            t = t.astype(FLOAT_DTYPE)
        else:
            x = b
            # One item's elements are 1 ns apart, starting at 0.
            t = np.arange(x.shape[-1], dtype=FLOAT_DTYPE) if x.ndim > 1 else np.zeros((), FLOAT_DTYPE)
            t = np.broadcast_to(t, x.shape[1:])
        x = x.astype(FLOAT_DTYPE, copy=False)
        phase = (2 * np.pi * freq * 1e-9) * t
        wc, ws = weights
        for w in (wc, ws):
            if w.ndim and x.ndim > 1 and w.shape[0] != x.shape[-1]:
                raise UnsupportedStreamOperation(f"demod weights of length {w.shape[0]} on {_describe(b)}")
        out = x * (wc * np.cos(phase) + ws * np.sin(phase))
        if integrate:
            return out.sum(axis=tuple(range(1, out.ndim)))
        return out

    return fn


_MAP_FUNCTIONS: dict[str, Callable[[list], Callable[[Batch], Batch]]] = {
    "average": _average_fn,
    "dot": _dot_fn,
    "smult": _smult_fn,
    "vmult": _vmult_fn,
    "tmult": _tmult_fn,
    "conv": _conv_fn,
    "fft": _fft_fn,
    "booleancast": _booleancast_fn,
    "demod": _demod_fn,
}


# ---------------------------------------------------------------- atoms


def _atom(x: object) -> str:
    if not isinstance(x, str):
        raise StreamModelError(f"expected a string atom, got {x!r}")
    return x


def _number(x: object) -> int | float:
    s = _atom(x)
    try:
        return int(s)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            raise StreamModelError(f"expected a number, got {s!r}") from None


def _int(x: object) -> int:
    value = _number(x)
    if value != int(value):
        raise StreamModelError(f"expected an integer, got {x!r}")
    return int(value)


def _is_array(x: object) -> bool:
    return isinstance(x, list) and bool(x) and x[0] == "@array"


def _int_list(x: object) -> list[int]:
    if not _is_array(x):
        raise StreamModelError(f"expected ['@array', ...], got {x!r}")
    return [_int(v) for v in x[1:]]  # type: ignore[index]


def _const_array(x: object) -> np.ndarray:
    if not _is_array(x):
        raise StreamModelError(f"expected ['@array', ...], got {x!r}")
    return np.array([_number(v) for v in x[1:]])  # type: ignore[index]


def _one(args: list, op: str) -> object:
    if len(args) != 1:
        raise StreamModelError(f"{op} takes one argument, got {args}")
    return args[0]


# ---------------------------------------------------------------- building


_ARITHMETIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
}


@dataclass
class _Build:
    hints: SourceHints
    sources: list[_Source] = field(default_factory=list)


def _build(expr: object, ctx: _Build) -> _Node:
    if not isinstance(expr, list) or not expr:
        raise StreamModelError(f"expected a stream expression, got {expr!r}")
    op = _atom(expr[0])
    if op in ("@re", "@macro_input", "@macro_auto_reshape", "@macro_adc_trace"):
        return _build_source(expr, ctx)
    if op in _ARITHMETIC or op == "zip":
        return _build_binary(op, expr[1:], ctx)
    builder = _UNARY.get(op)
    if builder is None:
        raise UnsupportedStreamOperation(f"stream operator {op!r}")
    *args, inner = expr[1:] or [None]
    if inner is None:
        raise StreamModelError(f"{op} has no input stream")
    child = _build(inner, ctx)
    node = builder(child, args)
    child.downstream = node.push
    return node


def _build_source(expr: list, ctx: _Build) -> _Node:
    adc_trace = auto_reshape = False
    adc_input: int | None = None
    while expr[0] != "@re":
        op = expr[0]
        if op == "@macro_adc_trace" and len(expr) == 2:
            adc_trace = True
        elif op == "@macro_auto_reshape" and len(expr) == 2:
            auto_reshape = True
        elif op == "@macro_input" and len(expr) == 3:
            adc_input = _int(expr[1])
        else:
            raise StreamModelError(f"malformed stream source {expr!r}")
        expr = expr[-1]
        if not isinstance(expr, list) or not expr:
            raise StreamModelError(f"malformed stream source {expr!r}")
    if len(expr) != 3:
        raise StreamModelError(f"malformed stream source {expr!r}")
    mode, tag = _int(expr[1]), _atom(expr[2])
    if mode not in (0, 1, 2):
        raise UnsupportedStreamOperation(f"timestamp mode {mode} of stream {tag!r}")
    kind = ctx.hints.kinds.get(tag, DEFAULT_KIND)
    if adc_trace or adc_input is not None:
        kind = ADC
    if kind not in KIND_DTYPES:
        raise StreamModelError(f"unknown kind {kind!r} for stream {tag!r}")
    source = _Source(tag, mode, kind, adc_input, adc_trace, ctx.hints.adc_trace_lengths.get(tag))
    ctx.sources.append(source)
    if not auto_reshape:
        return source
    dims = ctx.hints.auto_reshape_dims.get(tag)
    if not dims:
        raise UnsupportedStreamOperation(
            f"auto_reshape() of stream {tag!r}: the loop dimensions around its saves are not known"
        )
    node = _Buffer(source, [int(d) for d in dims])
    source.downstream = node.push
    return node


def _build_binary(op: str, operands: list, ctx: _Build) -> _Node:
    if len(operands) != 2:
        raise StreamModelError(f"{op} takes two operands, got {len(operands)}")
    if op == "zip":
        # a.zip(b) arrives as ["zip", b, a]; the tuple is (item of a, item of b).
        right, left = (_build(x, ctx) for x in operands)
        return _PairStreams(left, right, lambda a, b: _records(("f0", "f1"), (a, b)))
    fn = _ARITHMETIC[op]
    streams = [isinstance(x, list) and not _is_array(x) for x in operands]
    if not any(streams):
        raise StreamModelError(f"{op} between two constants has no stream")

    def on_items(a: Batch, b: Batch) -> Batch:
        a, b = _align(_arith_ready(_numbers(a, op)), _arith_ready(_numbers(b, op)))
        return fn(a, b)

    if all(streams):
        return _PairStreams(_build(operands[0], ctx), _build(operands[1], ctx), on_items)
    const = operands[1 - streams.index(True)]
    value = _const_array(const)[None] if _is_array(const) else np.asarray([_number(const)])
    child = _build(operands[streams.index(True)], ctx)
    if streams[0]:
        node = _ItemWise(child, lambda b: on_items(b, value))
    else:
        node = _ItemWise(child, lambda b: on_items(value, b))
    child.downstream = node.push
    return node


def _real(b: Batch) -> Batch:
    x = _numbers(b, "real")
    return x.real if np.iscomplexobj(x) else x


def _image(b: Batch) -> Batch:
    x = _numbers(b, "image")
    return x.imag if np.iscomplexobj(x) else np.zeros_like(x)


def _map_builder(child: _Node, args: list) -> _Node:
    spec = _one(args, "map")
    if not isinstance(spec, list) or not spec:
        raise StreamModelError(f"map needs a function, got {spec!r}")
    name = _atom(spec[0])
    factory = _MAP_FUNCTIONS.get(name)
    if factory is None:
        raise UnsupportedStreamOperation(f"map function {name!r}")
    return _ItemWise(child, factory(spec[1:]))


def _histogram_builder(child: _Node, args: list) -> _Node:
    spec = _one(args, "histogram")
    if not _is_array(spec):
        raise StreamModelError(f"histogram needs ['@array', [lo, hi], ...], got {spec!r}")
    bins = []
    for b in spec[1:]:  # type: ignore[index]
        edges = _const_array(b)
        if edges.shape != (2,):
            raise StreamModelError(f"histogram bin must be [low, high], got {b!r}")
        bins.append((float(edges[0]), float(edges[1])))
    return _Histogram(child, bins)


def _positive(args: list, op: str, minimum: int = 1) -> list[int]:
    values = [_int(a) for a in args]
    if not values or any(v < minimum for v in values):
        raise StreamModelError(f"{op} needs integer arguments >= {minimum}, got {args}")
    return values


def _buffer_and_skip(child: _Node, args: list) -> _Node:
    if len(args) != 2:
        raise StreamModelError(f"bufferAndSkip takes length and skip, got {args}")
    length, skip = _positive(args, "bufferAndSkip")
    return _BufferAndSkip(child, length, skip)


def _count(args: list, op: str) -> int:
    return _positive([_one(args, op)], op, minimum=0)[0]


def _no_args(op: str, node: Callable[[_Node], _Node]) -> Callable[[_Node, list], _Node]:
    def build(child: _Node, args: list) -> _Node:
        if args:
            raise StreamModelError(f"{op} takes no arguments, got {args}")
        return node(child)

    return build


_UNARY: dict[str, Callable[[_Node, list], _Node]] = {
    "average": _no_args("average", _Average),
    "real": _no_args("real", lambda c: _ItemWise(c, _real)),
    "image": _no_args("image", lambda c: _ItemWise(c, _image)),
    "flatten": _no_args("flatten", _Flatten),
    "buffer": lambda c, a: _Buffer(c, _positive(a, "buffer")),
    "bufferAndSkip": _buffer_and_skip,
    "skip": lambda c, a: _Skip(c, _count(a, "skip")),
    "skipLast": lambda c, a: _SkipLast(c, _count(a, "skipLast")),
    "take": lambda c, a: _Take(c, _count(a, "take")),
    "histogram": _histogram_builder,
    "map": _map_builder,
}


# ---------------------------------------------------------------- pipeline


@dataclass(frozen=True)
class ItemType:
    """What one result item looks like: its numpy dtype and shape (buffer dims etc.)."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @classmethod
    def of(cls, batch: Batch) -> "ItemType":
        return cls(batch.dtype, batch.shape[1:])


class Pipeline:
    """One terminal (`save` / `saveAll`) and the operator tree feeding it.

    The owner feeds engine data in with feed_values/feed_adc; each call returns the batches of
    result items it produced (possibly none), in order.
    """

    def __init__(self, entry: list, hints: SourceHints) -> None:
        self.name, self.keep_all, expr = _parse_terminal(entry)
        self.item_type = self._infer(expr, hints)
        ctx = _Build(hints)
        self._root = _build(expr, ctx)
        self._sources = ctx.sources
        self.tags = frozenset(s.tag for s in self._sources)
        self._out: list[Batch] = []
        self._root.downstream = self._out.append
        if not self.keep_all:
            self._root.only_last_needed()

    def _infer(self, expr: object, hints: SourceHints) -> ItemType | None:
        """Push one empty batch from every source through a scratch copy of the tree."""
        ctx = _Build(hints)
        root = _build(expr, ctx)
        out: list[Batch] = []
        root.downstream = out.append
        try:
            for source in ctx.sources:
                source.feed_empty()
        except UnsupportedStreamOperation as exc:
            if self._trace_length_unknown(ctx):
                return None  # may well work once the real trace length is known
            raise UnsupportedStreamOperation(f"result {self.name!r}: {exc}") from None
        except (ValueError, TypeError, IndexError) as exc:
            if self._trace_length_unknown(ctx):
                return None
            raise UnsupportedStreamOperation(f"result {self.name!r}: cannot evaluate this pipeline: {exc}") from None
        if self._trace_length_unknown(ctx) or not out:
            return None
        return ItemType.of(out[-1])

    @staticmethod
    def _trace_length_unknown(ctx: _Build) -> bool:
        return any(s.is_adc and s.adc_trace and s.trace_length is None for s in ctx.sources)

    def _drain(self) -> list[Batch]:
        out, self._out[:] = list(self._out), []
        return out

    def feed_values(self, tag: str, values: np.ndarray, timestamps: np.ndarray) -> list[Batch]:
        for source in self._sources:
            if source.tag == tag and not source.is_adc:
                source.feed_values(values, timestamps)
        return self._drain()

    def feed_adc(self, tag: str, input_number: int, traces: np.ndarray, timestamps: np.ndarray) -> list[Batch]:
        for source in self._sources:
            if source.tag == tag and source.is_adc:
                source.feed_adc(input_number, traces, timestamps)
        return self._drain()

    def pending_nbytes(self) -> int:
        return self._root.pending_nbytes()


def _parse_terminal(entry: list) -> tuple[str, bool, object]:
    if not isinstance(entry, list) or len(entry) < 3:
        raise StreamModelError(f"malformed result terminal {entry!r}")
    kind, tag = _atom(entry[0]), _atom(entry[1])
    if kind == "save" and len(entry) == 3:
        return tag, False, entry[2]
    if kind == "saveAll" and len(entry) == 3:
        return tag, True, entry[2]
    if kind == "saveAll" and len(entry) == 4 and entry[2] == "auto":
        return tag, True, entry[3]  # the client's form for legacy ADC tags
    raise UnsupportedStreamOperation(f"result terminal {entry[:2]!r} with {len(entry)} elements")


def build_pipelines(model: Sequence[list], hints: SourceHints) -> list[Pipeline]:
    pipelines = [Pipeline(entry, hints) for entry in model]
    names = [p.name for p in pipelines]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StreamModelError(f"result names must be unique, repeated: {', '.join(duplicates)}")
    return pipelines
