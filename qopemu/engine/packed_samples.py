"""A simulation's output samples as the client reads them: row-major records, one column per port, that arrive part
after part while the worker renders them.

A simulation's reply goes out as soon as its program has run; the worker then renders the outputs window after
window, and `PullSimulatorSamples` streams each part as it arrives, so rendering overlaps sending (docs/simulation.md,
"How samples travel"). A reader of a part waits for that part only; a reader of the whole block waits for all.
"""

from __future__ import annotations

import threading
from typing import Iterator, Sequence

import numpy as np

# Analog samples are float64 volts, as the platform's simulator returns them (docs/simulation.md, "Sample format").
# float32 is a server setting (`simulation_samples`) that halves the bytes to render, send and decode.
ANALOG_WIRE_DTYPES = {"float64": "<f8", "float32": "<f4"}
DIGITAL_WIRE_DTYPE = "|b1"


class SamplesFailed(Exception):
    """The samples will never be complete (rendering failed, or the worker died)."""


def records_dtype(columns: Sequence[tuple[str, str, int]], analog: str = "float64") -> np.dtype:
    """The record of one sample time: a `<controller>:<kind>:<port>` field per column, the names the client splits;
    `analog` is the analog samples' format (a key of ANALOG_WIRE_DTYPES)."""
    analog_dtype = ANALOG_WIRE_DTYPES[analog]
    return np.dtype([(f"{c}:{kind}:{port}", analog_dtype if kind == "analog" else DIGITAL_WIRE_DTYPE)
                     for c, kind, port in columns])


class PackedSamples:
    """`rows` records of `columns`, received as consecutive byte parts. Thread-safe: the worker's reader adds
    parts while any number of pulls read them."""

    def __init__(self, columns: list[tuple[str, str, int]], rows: int, analog: str = "float64"):
        self.columns = columns  # (controller, "analog" | "digital", port), in record order
        self.rows = rows
        self.dtype = records_dtype(columns, analog)
        self.nbytes = rows * self.dtype.itemsize
        self._parts: list[memoryview] = []
        self._received = 0
        self._error: str | None = None
        self._changed = threading.Condition()

    @classmethod
    def complete(cls, columns: list[tuple[str, str, int]], rows: int, data: bytes, analog: str = "float64"
                 ) -> "PackedSamples":
        samples = cls(columns, rows, analog)
        samples.add(data)
        return samples

    def add(self, part) -> None:
        """The next part: any bytes-like object that never changes afterwards (a view of the shared block the
        worker gave away, a bytes object). It is kept as it is, not copied."""
        view = memoryview(part).cast("B")
        with self._changed:
            if self._received + len(view) > self.nbytes:
                raise ValueError(f"{self._received + len(view)} bytes of samples, more than the {self.nbytes} "
                                 "announced")
            self._parts.append(view)
            self._received += len(view)
            self._changed.notify_all()

    def fail(self, message: str) -> None:
        """No more parts will come; readers get `SamplesFailed(message)` once they read what did come."""
        with self._changed:
            if self._received < self.nbytes:
                self._error = message
                self._changed.notify_all()

    def parts(self) -> Iterator[memoryview]:
        """Every part in order, each as soon as it has arrived."""
        index = 0
        while True:
            with self._changed:
                self._changed.wait_for(lambda: index < len(self._parts) or self._error is not None
                                       or self._received == self.nbytes)
                if index < len(self._parts):
                    part = self._parts[index]
                elif self._received == self.nbytes:
                    return
                else:
                    raise SamplesFailed(self._error)
            index += 1
            yield part

    def records(self) -> np.ndarray:
        """All the records (waits for the last part)."""
        return np.frombuffer(b"".join(self.parts()), dtype=self.dtype, count=self.rows)
