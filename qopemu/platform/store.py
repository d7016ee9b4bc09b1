"""Every job the platform knows, by id, behind one interface (in memory; a persistent store can replace it)."""

from __future__ import annotations

import threading

from qopemu.platform.jobs import Job


class JobStore:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def clear_results(self) -> int:
        """`qmm.clear_all_job_results()`: drop the results of every finished job; returns how many."""
        with self._lock:
            finished = [job for job in self._jobs.values() if job.status.is_final and job.results is not None]
            for job in finished:
                job.results = None
            return len(finished)
