"""The server side of the process boundary: jobs run in worker processes kept warm in a small pool (DESIGN.md,
"Process model").

A CPU-bound QUA program holds the GIL for as long as it runs; in its own process it cannot stall queue
operations, other QMs or `halt`. Halting kills the process, which stops any program — an infinite loop
included — at once, and a fresh worker takes its place. A worker that dies for any reason fails its job.

Simulations run the same way, so the engine that simulates is the engine that executes. The worker's own loop is
engine/worker.py; what the two say to each other, engine/messages.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Callable

from multiprocessing.connection import Connection

from qopemu.engine import shared_buffer, waveform_report
from qopemu.engine.messages import FromWorker, JobRequest, ToWorker
from qopemu.engine.packed_samples import PackedSamples

# A job's start is announced once the server has read what the worker already said after it, or after this long.
_START_CATCH_UP_S = 0.005
# glibc malloc settings for workers. By default glibc maps each array of more than a few MB afresh and unmaps it
# when freed, so every simulation pays page faults again on its sample buffers: half the time of rendering 4 ports
# for 400 us. A worker keeps up to 64 MB of freed heap for its next job instead. Other C libraries ignore these.
_WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
# The worker's entry point, run as `python -m`; named, not imported, since the server never runs the worker's loop.
_WORKER_MODULE = "qopemu.engine.worker"


class Status(StrEnum):
    """How a job's execution ended."""

    COMPLETED = "completed"
    ERROR = "error"
    HALTED = "halted"


@dataclass
class Outcome:
    status: Status
    messages: list[str] = field(default_factory=list)
    duration_ns: int = 0
    statements: int = 0
    samples: PackedSamples | None = None  # simulations: the output samples
    waveform_report: waveform_report.SimulationReport | None = None


class JobSink:
    """Where a running job's output goes in the server process (results store and QM state)."""

    def __init__(self, results, on_io: Callable[[int, Any], None]):
        self.results = results
        self.on_io = on_io


class _Worker:
    """One worker process and the connection to it. Its send lock outlives the jobs it runs, so a control message
    of a job that is ending can never interleave with the next job's messages on the same socket."""

    def __init__(self) -> None:
        # A fresh interpreter running engine/worker.py. Not multiprocessing's fork (unsafe next to grpc's threads)
        # nor its spawn (which re-imports the embedding script's __main__): a plain child process that inherits
        # one end of a socket pair, over which multiprocessing's Connection pickles messages.
        parent, child = socket.socketpair()
        self.process = subprocess.Popen([sys.executable, "-m", _WORKER_MODULE, str(child.fileno())],
                                        pass_fds=(child.fileno(),), env={**os.environ, **_WORKER_MALLOC})
        child.close()
        self.conn = Connection(parent.detach())
        self.send_lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def retire(self) -> None:
        """Kill the process, reap it and close the connection, so that neither a process nor a descriptor leaks."""
        self.process.kill()
        self.process.wait()
        self.conn.close()


class Execution:
    """The server's handle on one job running in a worker: control it, and wait for its outcome."""

    def __init__(self, worker: _Worker, sink: JobSink, on_exit: Callable[[_Worker, bool], None]):
        self._worker = worker
        self._sink = sink
        self._on_exit = on_exit
        self._lock = threading.Lock()  # halted / released: a late halt must never kill the next job's worker
        self._paused = False
        self._halted = False
        self._released = False
        self._outcome: Outcome | None = None
        self._started = threading.Event()  # set once the program runs, or the execution ended without it
        self.started_at: datetime | None = None  # when the program started, by the worker's clock
        self._finished = threading.Event()
        self._reader = threading.Thread(target=self._read, name="job-reader", daemon=True)

    def _begin(self, request: JobRequest) -> None:
        if not self._send((ToWorker.RUN, request)):
            raise OSError("the worker process did not take the job")
        self._reader.start()

    def _send(self, message) -> bool:
        with self._worker.send_lock:
            if self._released:  # the worker may already run another job
                return False
            try:
                self._worker.conn.send(message)
                return True
            except (OSError, EOFError, BrokenPipeError):
                return False

    def _read(self) -> None:
        results = self._sink.results
        conn = self._worker.conn
        outcome = None  # the worker's last word on the job
        simulated: tuple[PackedSamples, memoryview] | None = None  # a simulation's samples and the block they fill
        copied = 0
        announce_by = None  # the program started: when its start is announced at the latest
        try:
            while outcome is None:
                message = conn.recv()
                kind = message[0]
                if kind == FromWorker.VALUES:
                    results.add_values(*message[1:])
                elif kind == FromWorker.ADC:
                    results.add_adc(*message[1:])
                elif kind == FromWorker.STARTED:
                    self.started_at = datetime.fromtimestamp(message[1], timezone.utc)
                    announce_by = time.monotonic() + _START_CATCH_UP_S
                elif kind == FromWorker.PAUSED:
                    self._paused = True
                elif kind == FromWorker.IO:
                    self._sink.on_io(message[1], message[2])
                elif kind == FromWorker.RUNTIME_ERROR:
                    results.add_error(message[1], message[2])
                elif kind == FromWorker.SIMULATED:
                    # The program has run, so the job's outcome is known; its samples follow, window after window.
                    duration_ns, statements, columns, rows, analog, report = message[1:]
                    samples = PackedSamples(columns, rows, analog)
                    simulated = samples, memoryview(b"")  # failed below if the block never comes
                    self._deliver(Outcome(Status.COMPLETED, duration_ns=duration_ns, statements=statements,
                                          samples=samples, waveform_report=report))  # the reply goes out now
                    simulated = samples, shared_buffer.receive_block(conn.fileno(), samples.nbytes)
                elif kind == FromWorker.SAMPLES:  # the block is filled up to this byte
                    samples, block = simulated
                    samples.add(block[copied:message[1]])  # the block is the server's: kept as it is
                    copied = message[1]
                elif kind == FromWorker.DONE:
                    outcome = Outcome(Status.COMPLETED, duration_ns=message[1], statements=message[2])
                elif kind == FromWorker.ERROR:
                    outcome = Outcome(Status.ERROR, [message[1]])
                # The job is seen running once what the worker said right after the start is read too: a program
                # that pauses at once is then already paused when the client sees it running.
                if announce_by is not None and (not conn.poll() or time.monotonic() >= announce_by):
                    announce_by = None
                    self._started.set()
        except (EOFError, OSError):
            if self._halted:
                outcome = Outcome(Status.HALTED)
            else:
                try:
                    code = self._worker.process.wait(1)
                except subprocess.TimeoutExpired:
                    code = None
                outcome = Outcome(Status.ERROR, [f"the worker process running the job died (exit code {code})"])
        except Exception as exc:  # results refused the data (memory cap) or could not process it
            self._kill()
            outcome = Outcome(Status.ERROR, [str(exc)])
        if simulated is not None:  # samples that will not be complete now never will be
            simulated[0].fail("; ".join(outcome.messages) or "the worker stopped before rendering every sample")
        with self._worker.send_lock, self._lock:
            # From here on nothing reaches this worker on this job's behalf, and a halt cannot kill it.
            self._released = True
            reusable = outcome.status is Status.COMPLETED and not self._halted and self._worker.alive
        self._deliver(outcome)
        self._started.set()
        self._on_exit(self._worker, reusable)

    def _deliver(self, outcome: Outcome) -> None:
        """The job's outcome, once: a simulation's comes when its program has run, before its samples."""
        if self._outcome is None:
            self._outcome = outcome
            self._finished.set()

    def _kill(self) -> bool:
        with self._lock:
            if self._released:
                return False
            self._halted = True
            self._worker.process.kill()
            return True

    def wait_started(self) -> bool:
        """Block until the program really runs in the worker; False if the execution ended without it starting
        (a program may also start and end before this returns)."""
        self._started.wait()
        return self.started_at is not None

    def wait(self, timeout: float | None = None) -> Outcome | None:
        self._finished.wait(timeout)
        return self._outcome

    def halt(self) -> bool:
        if not self._kill():
            return False
        self._finished.wait(5)
        return True

    def resume(self) -> bool:
        with self._lock:  # two resumes at once must send one message: a second could skip the next pause
            if not self._paused:
                return False
            self._paused = False
        return self._send((ToWorker.RESUME,))

    @property
    def is_paused(self) -> bool:
        return self._paused and not self._finished.is_set()

    def push_input_stream(self, name: str, values: list) -> bool:
        return self._send((ToWorker.INPUT, name, list(values)))

    def set_io(self, number: int, value) -> None:
        self._send((ToWorker.IO, number, value))

    def set_correction(self, element: str, matrix: tuple[float, float, float, float]) -> bool:
        return self._send((ToWorker.CORRECTION, element, matrix))


class WorkerPool:
    """Warm worker processes; one job per worker at a time."""

    def __init__(self, size: int):
        self._size = max(1, size)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(self._size):
            self._idle.append(_Worker())

    def start(self, request: JobRequest, sink: JobSink) -> Execution:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    break
                worker.retire()
            else:
                worker = None
        worker = worker or _Worker()
        execution = Execution(worker, sink, self._release)
        try:
            execution._begin(request)
        except Exception:  # the request did not reach the worker (it died, or the request does not pickle)
            worker.retire()
            raise
        return execution

    def _release(self, worker: _Worker, reusable: bool) -> None:
        with self._lock:
            if reusable and not self._closed and len(self._idle) < self._size:
                self._idle.append(worker)
                return
        worker.retire()
        if not self._closed:
            # Replace the worker off the job's thread: spawning takes a few hundred ms.
            threading.Thread(target=self._refill, daemon=True).start()

    def _refill(self) -> None:
        worker = _Worker()
        with self._lock:
            if not self._closed and len(self._idle) < self._size:
                self._idle.append(worker)
                return
        worker.retire()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.retire()
