"""Every job the platform knows, by id, behind one interface (in memory; a persistent store can replace it)."""

from __future__ import annotations

import collections
import threading

from qopemu.platform.jobs import Job

# Simulated samples are large and fetched right after the simulation; older ones are dropped beyond this many.
KEPT_SIMULATIONS = 16


class JobStore:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._simulations: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def keep_samples(self, simulation: Job) -> None:
        """Keep the output samples of the last `KEPT_SIMULATIONS` simulations; older ones are dropped."""
        with self._lock:
            self._simulations.append(simulation)
            while len(self._simulations) > KEPT_SIMULATIONS:
                _drop_samples(self._simulations.popleft())

    def clear_results(self) -> int:
        """`qmm.clear_all_job_results()`: drop the results (and simulated samples) of every finished job."""
        with self._lock:
            finished = [job for job in self._jobs.values() if job.status.is_final and job.results is not None]
            for job in finished:
                job.results = None
                _drop_samples(job)
            self._simulations.clear()
            return len(finished)


def _drop_samples(job: Job) -> None:
    """The samples and the report of a simulation go together: both grow with the program."""
    if job.outcome is not None:
        job.outcome.samples = None
        job.outcome.waveform_report = None
