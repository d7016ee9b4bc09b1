"""The process boundary: jobs run in worker processes kept warm in a small pool (DESIGN.md, "Process model").

A CPU-bound QUA program holds the GIL for as long as it runs; in its own process it cannot stall queue
operations, other QMs or `halt`. Halting kills the process, which stops any program — an infinite loop
included — at once, and a fresh worker takes its place. A worker that dies for any reason fails its job.

Simulations run the same way, so the engine that simulates is the engine that executes.

Messages, worker -> server (one socket per worker):
    ("values", tag, kind, values, timestamps)   batched saves
    ("adc", tag, input_number, traces, timestamps)
    ("started", wall time)  ("paused",)  ("io", number, value)  ("runtime_error", code, message): the job goes on
    ("simulated", duration_ns, statements, columns, rows, waveform report): a simulation's program has run; its
        packed samples will fill a shared block (engine/shared_buffer.py), whose descriptor follows
    ("samples", nbytes)  the shared block holds this many bytes of samples
    ("done", duration_ns, statements)  ("error", message)
Messages, server -> worker:
    ("run", JobRequest)  ("resume",)  ("input", name, values)  ("io", number, value)
    ("correction", element, (v00, v01, v10, v11))
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
from multiprocessing.connection import Connection

from qopemu.engine import runtime, shared_buffer, waveform_report, waveforms
from qopemu.engine.inputs import InputModel
from qopemu.engine.packed_samples import PackedSamples, records_dtype
from qopemu.results.streams import KIND_DTYPES

_FLUSH_INTERVAL_S = 0.02
_FLUSH_ITEMS = 1 << 16
# A simulation's samples are handed over in windows of about this many bytes (the size of one gRPC message).
_WINDOW_BYTES = 1 << 20
_SWITCH_INTERVAL_S = 0.001
# A job's start is announced once the server has read what the worker already said after it, or after this long.
_START_CATCH_UP_S = 0.005
# glibc malloc settings for workers. By default glibc maps each array of more than a few MB afresh and unmaps it
# when freed, so every simulation pays page faults again on its sample buffers: half the time of rendering 4 ports
# for 400 us. A worker keeps up to 64 MB of freed heap for its next job instead. Other C libraries ignore these.
_WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


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


@dataclass
class Outcome:
    status: str  # "completed", "error", "halted"
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


# ---------------------------------------------------------------------------------------------------------------
# server side


class _Worker:
    """One worker process and the connection to it. Its send lock outlives the jobs it runs, so a control message
    of a job that is ending can never interleave with the next job's messages on the same socket."""

    def __init__(self) -> None:
        # A fresh interpreter running `_worker_main`. Not multiprocessing's fork (unsafe next to grpc's threads)
        # nor its spawn (which re-imports the embedding script's __main__): a plain child process that inherits
        # one end of a socket pair, over which multiprocessing's Connection pickles messages.
        parent, child = socket.socketpair()
        self.process = subprocess.Popen([sys.executable, "-m", "qopemu.engine.worker", str(child.fileno())],
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
        self._program_started = False
        self.started_at: datetime | None = None  # when the program started, by the worker's clock
        self._finished = threading.Event()
        self._reader = threading.Thread(target=self._read, name="job-reader", daemon=True)

    def _begin(self, request: JobRequest) -> None:
        if not self._send(("run", request)):
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
                if kind == "values":
                    results.add_values(*message[1:])
                elif kind == "adc":
                    results.add_adc(*message[1:])
                elif kind == "started":
                    self._program_started = True
                    self.started_at = datetime.fromtimestamp(message[1], timezone.utc)
                    announce_by = time.monotonic() + _START_CATCH_UP_S
                elif kind == "paused":
                    self._paused = True
                elif kind == "io":
                    self._sink.on_io(message[1], message[2])
                elif kind == "runtime_error":
                    results.add_error(message[1], message[2])
                elif kind == "simulated":
                    # The program has run, so the job's outcome is known; its samples follow, window after window.
                    duration_ns, statements, columns, rows, analog, report = message[1:]
                    samples = PackedSamples(columns, rows, analog)
                    simulated = samples, memoryview(b"")  # failed below if the block never comes
                    self._deliver(Outcome("completed", duration_ns=duration_ns, statements=statements,
                                          samples=samples, waveform_report=report))  # the reply goes out now
                    simulated = samples, shared_buffer.receive_block(conn.fileno(), samples.nbytes)
                elif kind == "samples":  # the block is filled up to this byte
                    samples, block = simulated
                    samples.add(block[copied:message[1]])  # the block is the server's: kept as it is
                    copied = message[1]
                elif kind == "done":
                    outcome = Outcome("completed", duration_ns=message[1], statements=message[2])
                elif kind == "error":
                    outcome = Outcome("error", [message[1]])
                # The job is seen running once what the worker said right after the start is read too: a program
                # that pauses at once is then already paused when the client sees it running.
                if announce_by is not None and (not conn.poll() or time.monotonic() >= announce_by):
                    announce_by = None
                    self._started.set()
        except (EOFError, OSError):
            if self._halted:
                outcome = Outcome("halted")
            else:
                try:
                    code = self._worker.process.wait(1)
                except subprocess.TimeoutExpired:
                    code = None
                outcome = Outcome("error", [f"the worker process running the job died (exit code {code})"])
        except Exception as exc:  # results refused the data (memory cap) or could not process it
            self._kill()
            outcome = Outcome("error", [str(exc)])
        if simulated is not None:  # samples that will not be complete now never will be
            simulated[0].fail("; ".join(outcome.messages) or "the worker stopped before rendering every sample")
        with self._worker.send_lock, self._lock:
            # From here on nothing reaches this worker on this job's behalf, and a halt cannot kill it.
            self._released = True
            reusable = outcome.status == "completed" and not self._halted and self._worker.alive
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
        return self._program_started

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
        return self._send(("resume",))

    @property
    def is_paused(self) -> bool:
        return self._paused and not self._finished.is_set()

    def push_input_stream(self, name: str, values: list) -> bool:
        return self._send(("input", name, list(values)))

    def set_io(self, number: int, value) -> None:
        self._send(("io", number, value))

    def set_correction(self, element: str, matrix: tuple[float, float, float, float]) -> bool:
        return self._send(("correction", element, matrix))


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


# ---------------------------------------------------------------------------------------------------------------
# worker side


class _WorkerHost:
    """The engine's JobHost inside a worker: batches saves and talks to the server over the socket.

    Everything the worker says goes through one outbox, in order, and a sender thread writes it to the socket. The
    program never waits for the server to read (a server busy answering a client that fetches results live must
    not slow the job down), and values can never overtake the "paused" or "done" that follows them."""

    def __init__(self, conn, io_values: dict, realtime: bool, blocks: shared_buffer.BlockWriter):
        self._conn = conn
        self.blocks = blocks  # shared blocks for simulation samples, one prepared ahead from job to job
        # What the server says while the program runs (resume, input stream data, IO values, element corrections)
        # arrives on the worker's main thread, which hands it over here.
        self._control = threading.Condition()
        self._io = dict(io_values)
        self._inputs: dict[str, list] = {}
        self._resumed = False
        self.corrections: dict[str, tuple[float, float, float, float]] = {}  # job.set_element_correction
        self._realtime = realtime
        self._realtime_origin: float | None = None  # realtime: the monotonic time of hardware time 0
        self._values: dict[tuple[str, str], tuple[list, list]] = {}
        self._buffered = 0
        self._lock = threading.Lock()  # the save buffers, and their order in the outbox
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_all, daemon=True)
        self._sender.start()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, daemon=True)
        self._flusher.start()

    def start(self) -> None:
        """The program is about to run its first statement: its hardware time starts now."""
        if self._realtime:
            self._realtime_origin = time.monotonic()
        # The job's start time is this moment, not when the server gets round to reading it (a loaded machine can
        # take tens of ms): a realtime job's running time then matches its hardware time.
        self.post(("started", time.time()))

    def pace(self, timestamp_ns: int) -> None:
        """Realtime: wait until the hardware would reach `timestamp_ns`, so that what happens there (a save, a
        pause, an input stream read, the end of the program) is seen no earlier than on the hardware. Unpaced jobs
        never wait."""
        if self._realtime_origin is not None:
            delay = self._realtime_origin + timestamp_ns * 1e-9 - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    # JobHost ----------------------------------------------------------------------------------------------------
    def save(self, tag: str, kind: str, value, timestamp_ns: int) -> None:
        self.pace(timestamp_ns)
        with self._lock:
            entry = self._values.get((tag, kind))
            if entry is None:
                entry = self._values[(tag, kind)] = ([], [])
            entry[0].append(value)
            entry[1].append(timestamp_ns)
            self._buffered += 1
            full = self._buffered >= _FLUSH_ITEMS
        if full:
            self.flush()

    def save_adc(self, tag: str, input_number: int, trace, timestamp_ns: int) -> None:
        self.pace(timestamp_ns)
        self.post(("adc", tag, input_number, np.asarray(trace, dtype=np.int16)[None, :],
                   np.array([timestamp_ns], dtype=np.int64)))

    def runtime_error(self, code: int, message: str) -> None:
        self.post(("runtime_error", code, message))

    def pause(self, timestamp_ns: int) -> None:
        self.pace(timestamp_ns)
        paused_at = time.monotonic()
        with self._control:
            self._resumed = False
        self.post(("paused",))  # the server resumes only a job it has seen paused, so no resume is lost
        with self._control:
            self._control.wait_for(lambda: self._resumed)
        self._stood_still(paused_at)

    def read_input_stream(self, name: str, count: int, timestamp_ns: int) -> list:
        self.pace(timestamp_ns)
        self.flush()
        waiting_from = time.monotonic()
        with self._control:
            self._control.wait_for(lambda: len(self._inputs.get(name, ())) >= count)
            pending = self._inputs[name]
            taken, self._inputs[name] = pending[:count], pending[count:]
        self._stood_still(waiting_from)
        return taken

    def _stood_still(self, since: float) -> None:
        """Realtime: the program waited (paused, or for input stream data) since `since` without its time moving
        on, as the hardware's program does: what follows is paced from now on."""
        if self._realtime_origin is not None:
            self._realtime_origin += time.monotonic() - since

    def get_io(self, number: int):
        with self._control:
            return self._io.get(number, 0)

    def set_io(self, number: int, value) -> None:
        with self._control:
            self._io[number] = value
        self.post(("io", number, value))

    # plumbing ---------------------------------------------------------------------------------------------------
    def receive(self, message) -> None:
        """A control message from the server (called on the worker's main thread)."""
        kind = message[0]
        with self._control:
            if kind == "resume":
                self._resumed = True
            elif kind == "input":
                self._inputs.setdefault(message[1], []).extend(message[2])  # "input_stream_<name>", as declared
            elif kind == "io":
                self._io[message[1]] = message[2]
            elif kind == "correction":
                self.corrections[message[1]] = tuple(message[2])
            self._control.notify_all()

    def post(self, message, then: Callable[[int], None] | None = None) -> None:
        """Queue a message, after every save so far; `then(socket descriptor)`, if given, runs right after the
        message is sent (it passes a shared block's descriptor)."""
        with self._lock:
            self._move_saves_to_outbox()
            self._outbox.put((message, then))

    def flush(self) -> None:
        with self._lock:
            self._move_saves_to_outbox()

    def _move_saves_to_outbox(self) -> None:
        batches, self._values, self._buffered = self._values, {}, 0
        for (tag, kind), (values, stamps) in batches.items():
            self._outbox.put((("values", tag, kind, values, stamps), None))

    def _send_all(self) -> None:
        while (item := self._outbox.get()) is not None:
            message, then = item
            if message[0] == "values":  # lists become arrays here, off the program's thread
                _, tag, kind, values, stamps = message
                message = ("values", tag, kind, np.array(values, dtype=KIND_DTYPES[kind]),
                           np.array(stamps, dtype=np.int64))
            try:
                self._conn.send(message)
                if then is not None:
                    then(self._conn.fileno())
            except OSError:  # the server closed the connection (halt, shutdown): nobody is listening any more
                return

    def _flush_periodically(self) -> None:
        while not self._stop.wait(_FLUSH_INTERVAL_S):
            if self._buffered:
                self.flush()

    def finish(self, message) -> None:
        """The job's last word ("done" or "error"), after everything else it said; returns once it is sent."""
        self._stop.set()
        self._flusher.join()
        self.post(message)
        self._outbox.put(None)
        self._sender.join()


def _run(request: JobRequest, host: _WorkerHost):
    simulation = request.simulate_ns is not None
    # The job is announced as started only once its program is ready to run (its code loaded, its inputs built):
    # a program that pauses at once is then paused as soon as the client sees the job running, as on the hardware.
    summary = runtime.run(request.program, host, request.inputs.build(request.config),
                          max_time_ns=request.simulate_ns, record_events=simulation,
                          waveform_overrides=request.waveform_overrides, on_start=host.start,
                          trigger_period_ns=request.inputs.trigger_period_ns)
    if simulation:
        _hand_over_samples(request, host, summary)
    else:  # realtime: the job runs until the hardware would end its timeline, whether or not anything marks it
        host.pace(summary.duration_ns)
    return summary


def _hand_over_samples(request: JobRequest, host: _WorkerHost, summary: runtime.RunSummary) -> None:
    """Announce the simulation's outcome and its samples' layout, then render and pack the samples into the shared
    block window after window, saying how far the block is filled after each: the server streams a window to the
    client while the next one renders."""
    rendering = waveforms.WindowedRender(summary.events, request.config, request.simulate_ns,
                                         request.simulation_samples)
    report = waveform_report.build(summary.events, request.config, request.simulate_ns,
                                   analog_outputs=request.analog_outputs, digital_outputs=request.digital_outputs)
    dtype = records_dtype(rendering.columns, rendering.analog)
    block = host.blocks.allocate(rendering.rows * dtype.itemsize)
    host.post(("simulated", summary.duration_ns, summary.statements, rendering.columns, rendering.rows,
               rendering.analog, report),
              then=host.blocks.send)
    if dtype.itemsize:
        records = np.frombuffer(block, dtype=dtype, count=rendering.rows)
        for start, end, samples in rendering.windows(max(1, _WINDOW_BYTES // dtype.itemsize)):
            samples.pack_into(records[start:end])
            host.post(("samples", end * dtype.itemsize))


def _exit_with_parent() -> None:
    """A worker whose server is gone (killed, crashed) stops too, even in the middle of a program."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _run_job(request: JobRequest, host: _WorkerHost) -> None:
    try:
        summary = _run(request, host)
        host.finish(("done", summary.duration_ns, summary.statements))
    except Exception as exc:  # the job fails, the worker lives on for the next one
        host.finish(("error", f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)))
    # Once the job is over (the worker is already free for the next one): the next simulation's block, while the
    # client decodes this one's samples.
    host.blocks.prepare_spare()


def _worker_main(conn) -> None:
    """Run jobs sent over `conn`, one after the other, until the connection closes.

    The main thread only listens: a job runs on its own thread, so that what the server says while the program
    runs (resume, input streams, IO values, element corrections) is taken at once, whatever the program does."""
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    # The job thread computes without pause; the threads that listen and send must not wait Python's default 5 ms
    # for their turn, or a control message, or a window of samples the client waits for, sits that long.
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    host: _WorkerHost | None = None
    blocks = shared_buffer.BlockWriter()
    blocks.prepare_spare()  # the first simulation does not wait for fresh memory either
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "run":  # the server sends a job only to an idle worker
            request: JobRequest = message[1]
            host = _WorkerHost(conn, request.io_values, request.realtime, blocks)
            threading.Thread(target=_run_job, args=(request, host), name="job", daemon=True).start()
        elif host is not None:
            host.receive(message)  # late messages for a job that already ended change nothing

if __name__ == "__main__":
    _worker_main(Connection(int(sys.argv[1])))
