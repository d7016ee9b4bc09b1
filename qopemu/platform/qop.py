"""The QOP itself: the one object the gRPC edge talks to.

It ties the platform's nouns together — machines (ports, cores), each QM's queue and runner, the job store and
the engine's worker pool — and offers the operations of the seed document in domain terms. Messages pass through
unread: a config message goes straight to `qmconfig`, a program message straight to the engine's compiler.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from qopemu import qmconfig
from qopemu.engine import compiler
from qopemu.engine.inputs import InputModel
from qopemu.engine.messages import JobRequest
from qopemu.engine.packed_samples import records_dtype
from qopemu.engine.pool import WorkerPool
from qopemu.engine.waveforms import record_columns
from qopemu.platform.errors import BadElementCorrection, JobNotFound, NotRunning, Refused, UnknownInputStream
from qopemu.platform.hardware import Hardware
from qopemu.platform.jobs import Job, JobIds, JobStatus
from qopemu.platform.machines import Machines, QuantumMachine
from qopemu.platform.queue import JobFilter, QueueClosed
from qopemu.platform.scheduler import QmRunner, run_job
from qopemu.platform.store import JobStore
from qopemu.settings import ControllerSpec, Settings

log = logging.getLogger(__name__)

_COMPILE_CACHE_SIZE = 64  # programs per QM


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
        self._program_ids = itertools.count(1)
        self._program_ids_lock = threading.Lock()
        self._pool = WorkerPool(settings.workers)
        self.machines = Machines(self.hardware, on_open=self._start_runner, on_close=self._stop_machine)

    def shutdown(self) -> None:
        self.machines.close_all()
        self._pool.close()

    # -- what the edge reads and asks of the platform's parts, through the Qop alone -------------------------------

    def describe(self) -> str:
        return self.hardware.describe()

    def controller_names(self) -> list[str]:
        return self.hardware.names()

    def clear_results(self) -> int:
        return self.jobs.clear_results()

    def qm_ids(self) -> list[str]:
        return self.machines.list()

    def get_qm(self, qm_id: str) -> QuantumMachine:
        return self.machines.get(qm_id)

    def close_qm(self, qm_id: str) -> None:
        self.machines.close(qm_id)

    def close_all_qms(self) -> list[str]:
        return self.machines.close_all()

    def find_job(self, job_id: str) -> Job | None:
        """The job, or None for an id the platform never gave or has forgotten (`job` refuses those instead)."""
        return self.jobs.get(job_id)

    def is_running(self, job_id: str) -> bool:
        job = self.find_job(job_id)
        return job is not None and job.status is JobStatus.RUNNING

    def results_of(self, job_id: str):
        """The job's `results.store.JobResults`, or None for an unknown job or one not loaded yet."""
        job = self.find_job(job_id)
        return job.results if job is not None else None

    # -- machines -----------------------------------------------------------------------------------------------

    def open_qm(self, config_pb, close_others: bool) -> tuple[QuantumMachine, list[str]]:
        """Validate the config against itself and the platform, then open a QM on it. Raises `ConfigError` (the
        config is wrong) or `PhysicalRefused` (its ports or cores are taken)."""
        return self.machines.open(qmconfig.from_pb(config_pb, self.hardware.port_counts()), close_others)

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
        compiled, config = self._compile(qm, program_pb)
        with self._program_ids_lock:
            program_id = f"program-{next(self._program_ids)}"
        with qm.lock:
            qm.compiled_programs[program_id] = (compiled, config)
        return program_id

    def _compile(self, qm: QuantumMachine, program_pb) -> tuple[Any, qmconfig.QmConfig]:
        """Compile against the QM's config as it is now, and say which config that was. A program sent again
        (same bytes) reuses its compiled form while the config stays the same: users resubmit the same program
        many times, and compiling costs more than queueing."""
        digest = compiler.program_digest(program_pb)
        with qm.lock:
            config = qm.config
            cached = qm.compile_cache.get(digest)
            if cached is not None and cached[0] is config:
                qm.compile_cache.move_to_end(digest)
                return cached[1], config
        try:
            compiled = compiler.compile_program(program_pb, config)
        except compiler.CompileError as exc:
            raise Refused(exc.messages) from None
        with qm.lock:
            if qm.config is config:  # a runtime setting may have changed the config meanwhile
                qm.compile_cache[digest] = (config, compiled)
                if len(qm.compile_cache) > _COMPILE_CACHE_SIZE:
                    qm.compile_cache.popitem(last=False)
        return compiled, config

    def add(self, qm_id: str, program_pb, user: str, at_start: bool = False) -> Job:
        """`queue.add` / `queue.add_to_start`: a program that does not compile is refused here, at add time."""
        qm = self.machines.get(qm_id)
        compiled, config = self._compile(qm, program_pb)
        return self._enqueue(qm, compiled, config, user, at_start, {})

    def add_compiled(self, qm_id: str, program_id: str, user: str, overrides: dict[str, list[float]],
                     at_start: bool = False) -> Job:
        qm = self.machines.get(qm_id)
        with qm.lock:
            entry = qm.compiled_programs.get(program_id)
        if entry is None:
            raise Refused(f"program '{program_id}' was not compiled on quantum machine '{qm_id}'")
        compiled, config = entry
        return self._enqueue(qm, compiled, config, user, at_start, _checked_overrides(config, overrides))

    def _enqueue(self, qm: QuantumMachine, compiled, config: qmconfig.QmConfig, user: str, at_start: bool,
                 overrides: dict) -> Job:
        def make_job() -> Job:  # called under the queue's lock, so ids sort in queue order
            return Job(self._ids.next(at_start), qm.id, user, compiled, config, overrides)
        try:
            job = qm.queue.add(make_job, at_start)
        except QueueClosed:
            raise Refused(f"quantum machine '{qm.id}' was closed") from None
        self.jobs.add(job)
        return job

    def pending(self, qm_id: str, query: JobFilter) -> list[PendingJobView]:
        qm = self.machines.get(qm_id)
        return [PendingJobView(job, position) for position, job in qm.queue.find(query)]

    def remove(self, qm_id: str, query: JobFilter) -> int:
        return len(self.machines.get(qm_id).queue.remove(query))

    def position(self, job: Job) -> int | None:
        try:
            qm = self.machines.get(job.qm_id)
        except Refused:
            return None
        return qm.queue.position_of(job)

    def running_job(self, qm_id: str) -> Job | None:
        return self.machines.get(qm_id).runner.running_job

    # -- jobs ---------------------------------------------------------------------------------------------------

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def halt(self, job_id: str) -> bool:
        job = self.job(job_id)
        execution = job.execution
        if job.status is not JobStatus.RUNNING or execution is None:
            return False
        halted = execution.halt()
        job.wait_final(5)
        return halted

    def resume(self, job_id: str) -> bool:
        execution = self.job(job_id).execution
        return execution is not None and execution.resume()

    def is_paused(self, job_id: str) -> bool:
        job = self.job(job_id)
        execution = job.execution
        return job.status is JobStatus.RUNNING and execution is not None and execution.is_paused

    def push_input_stream(self, job_id: str, name: str, values: list) -> None:
        job = self.job(job_id)
        execution, program = job.execution, job.program
        if job.status is not JobStatus.RUNNING or execution is None or program is None:
            raise Refused(f"job '{job_id}' is {job.status.value}, not running: it cannot take input stream data")
        if name not in program.input_streams:
            declared = ", ".join(n.removeprefix("input_stream_") for n in program.input_streams) or "none"
            raise UnknownInputStream(f"job '{job_id}' has no input stream '{name.removeprefix('input_stream_')}' "
                                     f"(it declares: {declared})")
        execution.push_input_stream(name, values)

    def set_element_correction(self, job_id: str, element: str,
                               matrix: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """`job.set_element_correction`: the mixer correction of an IQ element for the rest of this job, in the
        platform's resolution (2^-16, range [-2, 2)); returns the matrix as applied."""
        job = self.job(job_id)
        _, execution = self._iq_element_of_running(job, element)
        if not all(qmconfig.correction_in_range(v) for v in matrix):
            raise BadElementCorrection(f"correction {tuple(matrix)} is outside the range {qmconfig.CORRECTION_RANGE}")
        applied = tuple(round(v / qmconfig.CORRECTION_STEP) * qmconfig.CORRECTION_STEP for v in matrix)
        job.element_corrections[element] = applied
        execution.set_correction(element, applied)
        return applied

    def get_element_correction(self, job_id: str, element: str) -> tuple[float, float, float, float]:
        """The element's correction in this job: the one set on the job, else its mixer's for its IF and LO."""
        job = self.job(job_id)
        config = job.config
        target, _ = self._iq_element_of_running(job, element)
        if element in job.element_corrections:
            return job.element_corrections[element]
        mixer = config.mixers.get(target.mixer) if target.mixer else None
        return mixer.matrix_for(target.intermediate_frequency, target.lo_frequency) if mixer else (1.0, 0.0, 0.0, 1.0)

    @staticmethod
    def _iq_element_of_running(job: Job, element: str) -> tuple[qmconfig.Element, Any]:
        """The IQ element `element` of a running job, and the job's execution: what a job-level correction needs.
        Both are read once, since the job may end meanwhile."""
        if job.is_simulation:
            raise NotRunning(f"job '{job.id}' is a simulation: it has no running program to change")
        config, execution = job.config, job.execution
        if job.status is not JobStatus.RUNNING or execution is None or config is None:
            raise NotRunning(f"job '{job.id}' is {job.status.value}, not running")
        target = config.elements.get(element)
        if target is None:
            raise BadElementCorrection(f"element '{element}' is not in the job's config")
        if target.mixed_inputs is None:
            raise BadElementCorrection(f"element '{element}' has no mixInputs: only an IQ element has a mixer "
                                       "correction", single_input=True)
        return target, execution

    def set_io(self, qm_id: str, values: dict[int, Any]) -> None:
        qm = self.machines.get(qm_id)
        with qm.lock:
            qm.io_values.update(values)
        job = qm.runner.running_job
        execution = job.execution if job is not None else None
        if execution is not None:
            for number, value in values.items():
                execution.set_io(number, value)

    def get_io(self, qm_id: str) -> dict[int, Any]:
        qm = self.machines.get(qm_id)
        with qm.lock:
            return dict(qm.io_values)

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

    # -- simulation ---------------------------------------------------------------------------------------------

    def simulate(self, config_pb, program_pb, user: str, *, duration_ns: int,
                 inputs: Callable[[qmconfig.QmConfig], InputModel], analog_outputs: bool = False,
                 digital_outputs: bool = False) -> Job:
        """Run `program_pb` against `config_pb` for `duration_ns` in a worker, outside any queue, and keep the
        output samples on the returned job, whose results are readable like any other job's. `inputs` gives what
        the analog inputs see, once the config is known (loopback wires may name elements). The job's outcome
        carries the waveform report, with the deprecated per-port lists of the kinds `analog_outputs` /
        `digital_outputs` ask for.

        Raises `ConfigError` for a wrong config and `Refused` for a program that does not compile, inputs that do
        not resolve, or a duration whose samples would not fit the memory cap."""
        # The simulator simulates the hardware the config describes: a controller the platform lacks is an OPX+.
        described = Hardware(tuple(ControllerSpec(name) for name in sorted(qmconfig.controller_names(config_pb))))
        config = qmconfig.from_pb(config_pb, {**described.port_counts(), **self.hardware.port_counts()})
        ports = config.declared_ports()
        outputs = {kind: [(p.ref.controller, p.ref.number) for p in ports if p.ref.kind == kind]
                   for kind in (qmconfig.ANALOG_OUTPUTS, qmconfig.DIGITAL_OUTPUTS)}
        row_bytes = records_dtype(record_columns(outputs[qmconfig.ANALOG_OUTPUTS], outputs[qmconfig.DIGITAL_OUTPUTS]),
                                  self.settings.simulation_samples).itemsize
        cap = self.settings.results_memory_cap_mb << 20
        if duration_ns * row_bytes > cap:
            raise Refused(f"a simulation of {duration_ns // 4} clock cycles on {len(ports)} ports takes "
                          f"{duration_ns * row_bytes >> 20} MB of samples, more than the "
                          f"{self.settings.results_memory_cap_mb} MB a job may keep (settings: results_memory_cap_mb)")
        try:
            compiled = compiler.compile_program(program_pb, config)
        except compiler.CompileError as exc:
            raise Refused(exc.messages) from None
        try:
            wiring = inputs(config)
        except ValueError as exc:  # a wire naming what the config does not have
            raise Refused(str(exc)) from None
        job = Job(self._ids.next(), "", user, compiled, config, is_simulation=True)
        self.jobs.add(job)
        job.load()
        request = JobRequest(job_id=job.id, program=compiled, config=config, inputs=wiring, simulate_ns=duration_ns,
                             simulation_samples=self.settings.simulation_samples, analog_outputs=analog_outputs,
                             digital_outputs=digital_outputs)
        run_job(job, request, self._pool, self.settings, on_io=lambda number, value: None,
                timeout_s=self.settings.simulation_timeout_s)
        self.jobs.keep_samples(job)
        return job


def _checked_overrides(config: qmconfig.QmConfig, overrides: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """Waveform overrides of `add_compiled`: only arbitrary waveforms marked `is_overridable`, same length."""
    problems, checked = [], {}
    for name, samples in overrides.items():
        waveform = config.waveforms.get(name)
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
