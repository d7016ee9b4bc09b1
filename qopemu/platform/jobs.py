"""A job: one program submitted to a QM, its record and its state machine.

    pending ──▶ loading ──▶ running ──▶ completed
       │           │           ├──────▶ error      (runtime error, worker died)
       └───────────┴───────────┴──────▶ canceled   (removed from the queue, halted, QM closed)

Every transition happens under the job's own condition variable, so a client waiting on a job (the status
poll of `wait_for_execution`, `wait_for_all_values`) sees each state exactly once and in order. The record is
plain data (ids, user, times, messages) so that a persistent store can serialise it later.
"""

from __future__ import annotations

import enum
import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


class JobStatus(enum.Enum):
    PENDING = "pending"
    LOADING = "loading"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELED = "canceled"
    ERROR = "error"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.CANCELED, JobStatus.ERROR)


class JobIds:
    """Job ids whose string order is queue order (DESIGN.md, "Job ids").

    The client sorts `queue.pending_jobs` by id as a string, so ids are fixed width and count up from a midpoint
    for jobs added at the end and down from it for jobs added at the start. No later operation reorders the
    jobs already queued, so sorting by id always gives queue order; ids never repeat across QMs.
    """

    _MIDPOINT = 500_000_000_000

    def __init__(self) -> None:
        self._up = itertools.count(self._MIDPOINT)
        self._down = itertools.count(self._MIDPOINT - 1, -1)
        self._lock = threading.Lock()

    def next(self, at_start: bool = False) -> str:
        with self._lock:
            number = next(self._down) if at_start else next(self._up)
        return f"job-{number:012d}"


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class JobState:
    status: JobStatus
    time_added: datetime
    time_started: datetime | None
    time_ended: datetime | None
    error_messages: tuple[str, ...]


@dataclass(eq=False)
class Job:
    id: str
    qm_id: str
    added_by: str
    program: Any  # engine.compiler.CompiledProgram
    config: Any = None  # qmconfig.QmConfig the program was compiled against
    waveform_overrides: dict = field(default_factory=dict)
    is_simulation: bool = False
    time_added: datetime = field(default_factory=now)
    status: JobStatus = JobStatus.PENDING
    time_started: datetime | None = None
    time_ended: datetime | None = None
    error_messages: list[str] = field(default_factory=list)
    results: Any = None  # results.store.JobResults, created when the job is loaded
    execution: Any = None  # the engine's handle on the running program (halt, resume, input streams)
    outcome: Any = None  # the engine's Outcome: hardware time, statements; for simulations the output samples
    element_corrections: dict = field(default_factory=dict)  # element -> matrix set by job.set_element_correction
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def _move(self, allowed: tuple[JobStatus, ...], to: JobStatus, messages: list[str] | None = None,
              at: datetime | None = None) -> bool:
        with self._changed:
            if self.status not in allowed:
                return False
            # Times and messages first: readers take a snapshot under this lock, but never see a state whose
            # timestamp is not set yet.
            if to is JobStatus.RUNNING:
                self.time_started = at or now()
            elif to.is_final:
                self.time_ended = now()
            if messages is not None:
                self.error_messages = list(messages)
            self.status = to
            self._changed.notify_all()
            return True

    def snapshot(self) -> "JobState":
        """The job's state, times and messages, read together."""
        with self._changed:
            return JobState(self.status, self.time_added, self.time_started, self.time_ended,
                            tuple(self.error_messages))

    def load(self) -> bool:
        return self._move((JobStatus.PENDING,), JobStatus.LOADING)

    def start(self, at: datetime | None = None) -> bool:
        """The program started running, `at` that time (when the engine knows it better than now)."""
        return self._move((JobStatus.LOADING,), JobStatus.RUNNING, at=at)

    def complete(self) -> bool:
        return self._move((JobStatus.RUNNING,), JobStatus.COMPLETED)

    def cancel(self) -> bool:
        """Removed from the queue, halted, or its QM closed."""
        return self._move((JobStatus.PENDING, JobStatus.LOADING, JobStatus.RUNNING), JobStatus.CANCELED)

    def fail(self, messages: list[str]) -> bool:
        return self._move((JobStatus.PENDING, JobStatus.LOADING, JobStatus.RUNNING), JobStatus.ERROR, messages)

    def wait_final(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.status.is_final, timeout)
