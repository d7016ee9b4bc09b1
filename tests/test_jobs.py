"""Unit tests of the job record and its state machine (platform/jobs.py)."""

from __future__ import annotations

import threading

from qopemu.edge.frontend import job_status
from qopemu.platform.jobs import Job, JobIds, JobStatus


def test_states_move_only_forward_once():
    job = Job("job-1", "qm-1", "alice", program=None)
    assert job.load() and job.start()
    assert not job.load()
    assert job.complete()
    assert not job.cancel() and not job.fail(["late"])
    state = job.snapshot()
    assert state.status is JobStatus.COMPLETED and state.error_messages == ()
    assert state.time_started <= state.time_ended


def test_status_replies_never_see_a_state_without_its_time():
    jobs = [Job(f"job-{i}", "qm", "u", program=None) for i in range(3000)]
    failures = []
    done = threading.Event()

    def read():
        while not done.is_set():
            for job in jobs[::50]:
                try:
                    job_status(job, 1)
                except Exception as exc:  # a torn read would show here
                    failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for i, job in enumerate(jobs):
        job.load()
        job.start()
        (job.complete if i % 3 else job.cancel)()
    done.set()
    reader.join()
    assert not failures


def test_a_failed_job_keeps_its_messages_and_a_cancel_keeps_none():
    failed = Job("job-1", "qm", "u", program=None)
    assert failed.fail(["boom"]) and failed.snapshot().error_messages == ("boom",)
    canceled = Job("job-2", "qm", "u", program=None)
    assert canceled.cancel() and not canceled.fail(["late"])
    assert canceled.snapshot().error_messages == ()


def test_ids_are_fixed_width_and_sort_in_queue_order():
    ids = JobIds()
    end = [ids.next() for _ in range(3)]
    start = [ids.next(at_start=True) for _ in range(3)]
    queue = list(reversed(start)) + end
    assert sorted(queue) == queue
    assert len({len(i) for i in queue}) == 1
