"""One running job per QM, QMs in parallel.

Each open QM has a runner thread that takes the job at position 1 as soon as the previous one has ended and
hands it to the engine's worker pool. Different QMs' runners are independent, and the jobs themselves run in
worker processes, so one QM's program never slows another QM's queue.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from qopemu.engine.inputs import InputModel
from qopemu.engine.messages import JobRequest
from qopemu.engine.pool import JobSink, Outcome, Status, WorkerPool
from qopemu.platform.jobs import Job
from qopemu.platform.machines import QuantumMachine
from qopemu.platform.queue import QueueClosed
from qopemu.results.store import JobResults
from qopemu.settings import Settings

log = logging.getLogger(__name__)


class QmRunner:
    def __init__(self, qm: QuantumMachine, pool: WorkerPool, settings: Settings):
        self._qm = qm
        self._pool = pool
        self._settings = settings
        self._running: Job | None = None
        self._stopped = False
        self._lock = threading.Lock()  # _running and _stopped: a job popped while the QM closes is never missed
        self._thread = threading.Thread(target=self._loop, name=f"runner-{qm.id}", daemon=True)
        self._thread.start()

    @property
    def running_job(self) -> Job | None:
        with self._lock:
            return self._running

    def _loop(self) -> None:
        while True:
            try:
                job = self._qm.queue.pop_next()
            except QueueClosed:
                return
            with self._lock:
                stopped = self._stopped
                if not stopped:
                    self._running = job
            if stopped:  # the QM closed between the pop and here: its queue no longer held the job
                job.cancel()
                return
            try:
                execute_on_qm(job, self._qm, self._pool, self._settings)
            finally:
                with self._lock:
                    self._running = None

    def stop(self) -> None:
        """The QM is closing (its queue is already closed): cancel the running job, then halt its program.
        Cancel first: a job that is still starting then sees the cancel and halts itself (`run_job`)."""
        with self._lock:
            self._stopped = True
            job = self._running
        if job is not None:
            job.cancel()
            execution = job.execution
            if execution is not None:
                execution.halt()


def executed_inputs(settings: Settings) -> InputModel:
    """Executed jobs see the server-wide wiring of the settings' [inputs] table, analog and digital, and its trigger."""
    wiring = settings.inputs
    return InputModel(wiring.noise_std, wiring.loopback, wiring.latency_ns,
                      digital_loopback=wiring.digital_loopback, trigger_period_ns=wiring.trigger_period_ns)


def execute_on_qm(job: Job, qm: QuantumMachine, pool: WorkerPool, settings: Settings) -> None:
    with qm.lock:
        io_values = dict(qm.io_values)
    request = JobRequest(
        job_id=job.id, program=job.program, config=job.config, waveform_overrides=job.waveform_overrides,
        io_values=io_values, inputs=executed_inputs(settings), realtime=settings.realtime,
    )
    run_job(job, request, pool, settings, _io_setter(qm))


def run_job(job: Job, request: JobRequest, pool: WorkerPool, settings: Settings,
            on_io: Callable[[int, object], None], timeout_s: float | None = None) -> None:
    """Run a loaded job to its end on a worker, and record how it ended in the job and its results.

    Whatever happens, the job ends in a final state and its results are closed, so no client waits forever."""
    program = job.program
    job.results = JobResults(program.result_model, memory_cap_bytes=settings.results_memory_cap_mb << 20,
                             stream_kinds=program.stream_kinds, adc_trace_lengths=program.adc_trace_lengths,
                             auto_reshape_dims=program.auto_reshape_dims)
    try:
        execution = job.execution = pool.start(request, JobSink(job.results, on_io))
        if execution.wait_started() and not job.start(execution.started_at):  # canceled while starting (QM closed)
            execution.halt()
        outcome = execution.wait(timeout_s)
        if outcome is None:
            execution.halt()
            outcome = Outcome(Status.ERROR, [f"the program did not reach its end within {timeout_s:g} s of "
                                             "computing (the server's simulation_timeout_s)"])
    except Exception as exc:  # the worker could not take the job: fail it, never leave it hanging
        log.exception("job %s could not run", job.id)
        outcome = Outcome(Status.ERROR, [f"qopemu could not run the job: {exc}"])
    job.outcome = outcome
    # The record outlives the job (status, results); what only running needed goes, so that a long-lived server
    # keeps small records of many jobs.
    job.execution = job.program = job.config = None
    if outcome.status is Status.COMPLETED:
        job.results.finish()
        job.complete()
    elif outcome.status is Status.ERROR:
        for message in outcome.messages:
            job.results.add_error(1, message)
        job.results.close()
        job.fail(outcome.messages)
    else:
        job.results.close()
        job.cancel()


def _io_setter(qm: QuantumMachine) -> Callable:
    def set_io(number: int, value) -> None:
        with qm.lock:
            qm.io_values[number] = value
    return set_io
