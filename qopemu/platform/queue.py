"""A QM's queue of pending jobs, shared by every user of that QM.

Positions are 1-based, 1 being the next job to run (the seed document: "The queue is 1-based"). One lock guards
the list and every operation on it, so each add, removal and pop is atomic against any number of concurrent
clients: a job leaves the queue exactly once, either popped to run or removed (and then canceled) — never both.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from qopemu.platform.jobs import Job


@dataclass(frozen=True)
class JobFilter:
    """What `GetPendingJobs` / `RemovePendingJobs` match; every field unset matches all pending jobs."""

    job_id: str | None = None
    user: str | None = None
    position: int | None = None

    def matches(self, position: int, job: Job) -> bool:
        return (
            (self.job_id is None or job.id == self.job_id)
            and (self.user is None or job.added_by == self.user)
            and (self.position is None or position == self.position)
        )


class QueueClosed(Exception):
    pass


class JobQueue:
    def __init__(self) -> None:
        self._jobs: list[Job] = []
        self._changed = threading.Condition()
        self._closed = False

    def add(self, make_job: Callable[[], Job], at_start: bool = False) -> Job:
        """Queue the job `make_job` makes. It is made under the queue's lock, so that the ids it takes sort in the
        order the jobs enter the queue, whatever other clients add at the same time."""
        with self._changed:
            if self._closed:
                raise QueueClosed("the quantum machine is closed")
            job = make_job()
            if at_start:
                self._jobs.insert(0, job)
            else:
                self._jobs.append(job)
            self._changed.notify_all()
            return job

    def find(self, query: JobFilter) -> list[tuple[int, Job]]:
        with self._changed:
            return [(i, job) for i, job in enumerate(self._jobs, start=1) if query.matches(i, job)]

    def position_of(self, job: Job) -> int | None:
        with self._changed:
            try:
                return self._jobs.index(job) + 1
            except ValueError:
                return None

    def __len__(self) -> int:
        with self._changed:
            return len(self._jobs)

    def remove(self, query: JobFilter) -> list[Job]:
        """Take every matching job out of the queue and cancel it, atomically."""
        with self._changed:
            removed = [job for i, job in enumerate(self._jobs, start=1) if query.matches(i, job)]
            if removed:
                gone = set(map(id, removed))
                self._jobs = [job for job in self._jobs if id(job) not in gone]
                for job in removed:
                    job.cancel()
            return removed

    def pop_next(self) -> Job:
        """The job at position 1, marked loading, once there is one. Raises QueueClosed."""
        with self._changed:
            self._changed.wait_for(lambda: self._jobs or self._closed)
            if self._closed:
                raise QueueClosed("the quantum machine is closed")
            job = self._jobs.pop(0)
            job.load()
            return job

    def close(self) -> list[Job]:
        """Refuse new jobs, cancel and return every pending one, and wake the QM's runner."""
        with self._changed:
            self._closed = True
            removed, self._jobs = self._jobs, []
            for job in removed:
                job.cancel()
            self._changed.notify_all()
            return removed
