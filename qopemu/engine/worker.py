"""The worker's side of the process boundary: a child process of the server (engine/pool.py starts it with
`python -m qopemu.engine.worker <socket descriptor>`) that runs one job after the other, each on engine/runtime.py,
and says what the program does over its socket (engine/messages.py). A simulation's samples go through shared
memory (engine/shared_buffer.py).

The worker imports the engine only: `qopemu` starts without grpc, and so does every worker, warm or replacing one.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import Callable

import numpy as np
from multiprocessing.connection import Connection

from qopemu.engine import runtime, shared_buffer, waveform_report, waveforms
from qopemu.engine.messages import FromWorker, JobRequest, ToWorker
from qopemu.engine.packed_samples import records_dtype
from qopemu.results.streams import KIND_DTYPES

_FLUSH_INTERVAL_S = 0.02
_FLUSH_ITEMS = 1 << 16
# A simulation's samples are handed over in windows of about this many bytes (the size of one gRPC message).
_WINDOW_BYTES = 1 << 20
_SWITCH_INTERVAL_S = 0.001


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
        self.post((FromWorker.STARTED, time.time()))

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
        self.post((FromWorker.ADC, tag, input_number, np.asarray(trace, dtype=np.int16)[None, :],
                   np.array([timestamp_ns], dtype=np.int64)))

    def runtime_error(self, code: int, message: str) -> None:
        self.post((FromWorker.RUNTIME_ERROR, code, message))

    def pause(self, timestamp_ns: int) -> None:
        self.pace(timestamp_ns)
        paused_at = time.monotonic()
        with self._control:
            self._resumed = False
        self.post((FromWorker.PAUSED,))  # the server resumes only a job it has seen paused, so no resume is lost
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
        self.post((FromWorker.IO, number, value))

    # plumbing ---------------------------------------------------------------------------------------------------
    def receive(self, message) -> None:
        """A control message from the server (called on the worker's main thread)."""
        kind = message[0]
        with self._control:
            if kind == ToWorker.RESUME:
                self._resumed = True
            elif kind == ToWorker.INPUT:
                self._inputs.setdefault(message[1], []).extend(message[2])  # "input_stream_<name>", as declared
            elif kind == ToWorker.IO:
                self._io[message[1]] = message[2]
            elif kind == ToWorker.CORRECTION:
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
            self._outbox.put(((FromWorker.VALUES, tag, kind, values, stamps), None))

    def _send_all(self) -> None:
        while (item := self._outbox.get()) is not None:
            message, then = item
            if message[0] == FromWorker.VALUES:  # lists become arrays here, off the program's thread
                _, tag, kind, values, stamps = message
                message = (FromWorker.VALUES, tag, kind, np.array(values, dtype=KIND_DTYPES[kind]),
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
    host.post((FromWorker.SIMULATED, summary.duration_ns, summary.statements, rendering.columns, rendering.rows,
               rendering.analog, report),
              then=host.blocks.send)
    if dtype.itemsize:
        records = np.frombuffer(block, dtype=dtype, count=rendering.rows)
        for start, end, samples in rendering.windows(max(1, _WINDOW_BYTES // dtype.itemsize)):
            samples.pack_into(records[start:end])
            host.post((FromWorker.SAMPLES, end * dtype.itemsize))


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
        host.finish((FromWorker.DONE, summary.duration_ns, summary.statements))
    except Exception as exc:  # the job fails, the worker lives on for the next one
        host.finish((FromWorker.ERROR, f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)))
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
        if message[0] == ToWorker.RUN:  # the server sends a job only to an idle worker
            request: JobRequest = message[1]
            host = _WorkerHost(conn, request.io_values, request.realtime, blocks)
            threading.Thread(target=_run_job, args=(request, host), name="job", daemon=True).start()
        elif host is not None:
            host.receive(message)  # late messages for a job that already ended change nothing


if __name__ == "__main__":
    _worker_main(Connection(int(sys.argv[1])))