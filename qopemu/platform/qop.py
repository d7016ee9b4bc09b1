"""The QOP itself: the one object the gRPC edge talks to.

It ties the platform's nouns together — machines (ports, cores), each QM's queue and runner, the job store and
the engine's worker pool — and offers the operations of the seed document in domain terms: no protobuf
crosses this line except the program message, which goes straight to the engine's compiler.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from qopemu import qmconfig
from qopemu.engine import compiler
from qopemu.engine.worker import InputModel, JobRequest, WorkerPool
from qopemu.platform.hardware import Hardware
from qopemu.platform.jobs import Job, JobIds, JobStatus
from qopemu.platform.machines import Machines, QuantumMachine
from qopemu.platform.queue import JobFilter, QueueClosed
from qopemu.platform.scheduler import QmRunner, run_job
from qopemu.platform.store import JobStore
from qopemu.settings import ControllerSpec, Settings

log = logging.getLogger(__name__)

_COMPILE_CACHE_SIZE = 64  # programs per QM


class Refused(Exception):
    """A request the platform turns down; the message says what to fix and names the offending thing."""

    def __init__(self, messages: list[str] | str):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("; ".join(self.messages))


class JobNotFound(Refused):
    pass


class ConfigRefused(Refused):
    """A simulation's config is invalid; carries the config problems with their key paths."""

    def __init__(self, problems: list[qmconfig.ConfigProblem]):
        self.problems = problems
        super().__init__([f"{p.path}: {p.message}" for p in problems])


@dataclass(frozen=True)
class PendingJobView:
    job: Job
    position: int


class Qop:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.hardware = Hardware(settings.controllers)
        self.jobs = JobStore()
        self._ids = JobIds()
        self._program_ids = iter(range(1, 1 << 62))
        self._program_ids_lock = threading.Lock()
        self._pool = WorkerPool(settings.workers)
        self.machines = Machines(self.hardware, on_open=self._start_runner, on_close=self._stop_machine)

    def shutdown(self) -> None:
        self.machines.close_all()
        self._pool.close()

    # -- machines -----------------------------------------------------------------------------------------------

    def _start_runner(self, qm: QuantumMachine) -> None:
        qm.runner = QmRunner(qm, self._pool, self.settings)
        log.info("opened %s (%d elements, %d cores)", qm.id, len(qm.config.elements), qm.config.cores_needed())

    def _stop_machine(self, qm: QuantumMachine) -> None:
        """Closing a QM cancels its pending jobs and halts its running one; its ports and cores are free again."""
        removed = qm.queue.close()
        qm.runner.stop()
        log.info("closed %s (canceled %d pending jobs)", qm.id, len(removed))

    # -- queue --------------------------------------------------------------------------------------------------

    def compile(self, qm_id: str, program_pb) -> str:
        """`qm.compile`: validate and compile once against the QM's config; returns the program id."""
        qm = self.machines.get(qm_id)
        compiled = self._compile(qm, program_pb)
        with self._program_ids_lock:
            program_id = f"program-{next(self._program_ids)}"
        with qm.lock:
            qm.compiled_programs[program_id] = compiled
        return program_id

    def _compile(self, qm: QuantumMachine, program_pb):
        """Compile against the QM's config; a program sent again (same bytes) reuses its compiled form, since
        users resubmit the same program many times and compiling costs more than queueing."""
        digest = hashlib.blake2b(program_pb.SerializeToString(deterministic=True), digest_size=16).digest()
        with qm.lock:
            compiled = qm.compile_cache.get(digest)
            if compiled is not None:
                qm.compile_cache.move_to_end(digest)
                return compiled
        try:
            compiled = compiler.compile_program(program_pb, qm.config)
        except compiler.CompileError as exc:
            raise Refused(exc.messages) from None
        with qm.lock:
            qm.compile_cache[digest] = compiled
            if len(qm.compile_cache) > _COMPILE_CACHE_SIZE:
                qm.compile_cache.popitem(last=False)
        return compiled

    def add(self, qm_id: str, program_pb, user: str, at_start: bool = False) -> Job:
        """`queue.add` / `queue.add_to_start`: a program that does not compile is refused here, at add time."""
        qm = self.machines.get(qm_id)
        return self._enqueue(qm, self._compile(qm, program_pb), user, at_start, {})

    def add_compiled(self, qm_id: str, program_id: str, user: str, overrides: dict[str, list[float]],
                     at_start: bool = False) -> Job:
        qm = self.machines.get(qm_id)
        with qm.lock:
            compiled = qm.compiled_programs.get(program_id)
        if compiled is None:
            raise Refused(f"program '{program_id}' was not compiled on quantum machine '{qm_id}'")
        return self._enqueue(qm, compiled, user, at_start, self._check_overrides(qm, overrides))

    @staticmethod
    def _check_overrides(qm: QuantumMachine, overrides: dict[str, list[float]]) -> dict[str, np.ndarray]:
        problems, checked = [], {}
        for name, samples in overrides.items():
            waveform = qm.config.waveforms.get(name)
            if waveform is None:
                problems.append(f"waveform '{name}' in overrides is not defined in the config")
            elif waveform.is_constant or not waveform.is_overridable:
                problems.append(f"waveform '{name}' cannot be overridden: only arbitrary waveforms with "
                                f"'is_overridable': True can")
            elif len(samples) != waveform.samples.size:
                problems.append(f"waveform '{name}' override has {len(samples)} samples; it must have "
                                f"{waveform.samples.size}, as in the config")
            else:
                checked[name] = np.asarray(samples, dtype=float)
        if problems:
            raise Refused(problems)
        return checked

    def _enqueue(self, qm: QuantumMachine, compiled, user: str, at_start: bool, overrides: dict) -> Job:
        job = Job(self._ids.next(at_start), qm.id, user, compiled, overrides)
        self.jobs.add(job)
        try:
            qm.queue.add(job, at_start)
        except QueueClosed:
            job.cancel()
            raise Refused(f"quantum machine '{qm.id}' was closed") from None
        return job

    def pending(self, qm_id: str, query: JobFilter) -> list[PendingJobView]:
        qm = self.machines.get(qm_id)
        return [PendingJobView(job, position) for position, job in qm.queue.find(query)]

    def remove(self, qm_id: str, query: JobFilter) -> int:
        return len(self.machines.get(qm_id).queue.remove(query))

    def position(self, job: Job) -> int | None:
        try:
            qm = self.machines.get(job.qm_id)
        except KeyError:
            return None
        return qm.queue.position_of(job)

    def running_job(self, qm_id: str) -> Job | None:
        return self.machines.get(qm_id).runner.running_job

    # -- jobs ---------------------------------------------------------------------------------------------------

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"job '{job_id}' does not exist")
        return job

    def halt(self, job_id: str) -> bool:
        job = self.job(job_id)
        if job.status is not JobStatus.RUNNING or job.execution is None:
            return False
        halted = job.execution.halt()
        job.wait_final(5)
        return halted

    def resume(self, job_id: str) -> bool:
        job = self.job(job_id)
        return job.execution is not None and job.execution.resume()

    def is_paused(self, job_id: str) -> bool:
        job = self.job(job_id)
        return job.status is JobStatus.RUNNING and job.execution is not None and job.execution.is_paused

    def push_input_stream(self, job_id: str, name: str, values: list) -> None:
        job = self.job(job_id)
        if job.status is not JobStatus.RUNNING or job.execution is None:
            raise Refused(f"job '{job_id}' is {job.status.value}, not running: it cannot take input stream data")
        job.execution.push_input_stream(name, values)

    def set_io(self, qm_id: str, values: dict[int, Any]) -> None:
        qm = self.machines.get(qm_id)
        with qm.lock:
            qm.io_values.update(values)
        job = qm.runner.running_job
        if job is not None and job.execution is not None:
            for number, value in values.items():
                job.execution.set_io(number, value)

    def change_config(self, qm_id: str, change: Callable[[qmconfig.QmConfig], qmconfig.QmConfig]) -> None:
        """A QM-level runtime setting: the QM's stored config changes, so the client's getters read it back and
        programs added afterwards run with it (jobs already queued keep the config they were compiled with)."""
        qm = self.machines.get(qm_id)
        with qm.lock:
            try:
                qm.config = change(qm.config)
            except qmconfig.SettingError as exc:
                raise Refused(str(exc)) from None
            qm.compile_cache.clear()

    def get_io(self, qm_id: str) -> dict[int, Any]:
        qm = self.machines.get(qm_id)
        with qm.lock:
            return dict(qm.io_values)

    # -- simulation ---------------------------------------------------------------------------------------------

    def simulate(self, config_pb, program_pb, user: str, *, duration_ns: int,
                 inputs: Callable[[qmconfig.QmConfig], InputModel], waveform_report: bool = False) -> Job:
        """Run `program_pb` against `config_pb` for `duration_ns` in a worker, outside any queue, and keep the
        output samples on the returned job, whose results are readable like any other job's. `inputs` gives what
        the analog inputs see, once the config is known (loopback wires may name elements)."""
        # The simulator simulates the hardware the config describes: a controller the platform lacks is an OPX+.
        hardware = Hardware(tuple(ControllerSpec(name) for name in sorted(qmconfig.controller_names(config_pb))))
        try:
            config = qmconfig.from_pb(config_pb, {**hardware.port_counts(), **self.hardware.port_counts()})
        except qmconfig.ConfigError as exc:
            raise ConfigRefused(exc.problems) from None
        try:
            compiled = compiler.compile_program(program_pb, config)
        except compiler.CompileError as exc:
            raise Refused(exc.messages) from None
        try:
            wiring = inputs(config)
        except ValueError as exc:  # a wire naming what the config does not have
            raise Refused(str(exc)) from None
        job = Job(self._ids.next(), "", user, compiled, is_simulation=True)
        self.jobs.add(job)
        job.load()
        request = JobRequest(job_id=job.id, program=compiled, config=config, inputs=wiring, simulate_ns=duration_ns,
                             waveform_report=waveform_report)
        run_job(job, request, self._pool, self.settings, on_io=lambda number, value: None)
        return job
