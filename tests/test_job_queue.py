"""Unit tests of a QM's queue of pending jobs (platform/queue.py), without a server or a client.

tests/test_queue.py drives the same rules end to end through qm-qua; here each rule of `JobQueue` is checked on its
own: 1-based positions (the seed document: "The queue is 1-based"), queries and removals by id, position and user,
what the runner pops and when, closing, and the promise that a job leaves the queue exactly once under any number of
concurrent clients.
"""

from __future__ import annotations

import random
import sys
import threading
import time

import pytest

from qopemu.platform.jobs import Job, JobIds, JobStatus
from qopemu.platform.queue import JobFilter, JobQueue, QueueClosed

ALL = JobFilter()


def maker(name: str, user: str = "alice"):
    return lambda: Job(name, "qm-1", user, program=None)


def ids(pairs) -> list[tuple[int, str]]:
    return [(position, job.id) for position, job in pairs]


@pytest.fixture
def queue() -> JobQueue:
    """a, b at the end, c at the start, d at the end, e at the start: e c a b d; bob added b and e."""
    q = JobQueue()
    for name, user, at_start in [("a", "alice", False), ("b", "bob", False), ("c", "alice", True),
                                 ("d", "alice", False), ("e", "bob", True)]:
        q.add(maker(name, user), at_start)
    return q


@pytest.fixture
def interleaved():
    """Threads switch every microsecond instead of every 5 ms, so that an unguarded step would be interrupted."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_add_returns_the_job_it_made_and_positions_follow_add_and_add_to_start(queue):
    job = queue.add(maker("f", "carol"))
    assert (job.id, job.added_by, job.status) == ("f", "carol", JobStatus.PENDING)
    assert ids(queue.find(ALL)) == [(1, "e"), (2, "c"), (3, "a"), (4, "b"), (5, "d"), (6, "f")]
    assert len(queue) == 6
    assert [queue.position_of(job) for _, job in queue.find(ALL)] == [1, 2, 3, 4, 5, 6]
    assert queue.position_of(Job("e", "qm-1", "bob", program=None)) is None  # a job is itself, not its id


def test_get_by_position_is_1_based_and_outside_the_queue_is_empty(queue):
    assert ids(queue.find(JobFilter(position=1))) == [(1, "e")]
    assert ids(queue.find(JobFilter(position=5))) == [(5, "d")]
    for outside in (0, 6, -1):
        assert queue.find(JobFilter(position=outside)) == []


def test_find_by_id_and_user_and_every_field_together(queue):
    assert ids(queue.find(JobFilter(job_id="a"))) == [(3, "a")]
    assert queue.find(JobFilter(job_id="nope")) == []
    assert ids(queue.find(JobFilter(user="bob"))) == [(1, "e"), (4, "b")]
    assert queue.find(JobFilter(user="nobody")) == []
    assert ids(queue.find(JobFilter(job_id="b", user="bob", position=4))) == [(4, "b")]
    assert queue.find(JobFilter(job_id="b", user="alice")) == []
    assert queue.find(JobFilter(job_id="b", position=3)) == []


def test_removal_by_id_position_and_user_cancels_exactly_the_matches(queue):
    jobs = {job.id: job for _, job in queue.find(ALL)}
    assert [job.id for job in queue.remove(JobFilter(job_id="a"))] == ["a"]
    assert queue.remove(JobFilter(job_id="a")) == []
    assert ids(queue.find(ALL)) == [(1, "e"), (2, "c"), (3, "b"), (4, "d")]
    assert queue.remove(JobFilter(position=0)) == [] and queue.remove(JobFilter(position=5)) == []
    assert [job.id for job in queue.remove(JobFilter(position=2))] == ["c"]
    assert ids(queue.find(ALL)) == [(1, "e"), (2, "b"), (3, "d")]
    assert [job.id for job in queue.remove(JobFilter(user="bob"))] == ["e", "b"]  # in queue order
    assert ids(queue.find(ALL)) == [(1, "d")]
    assert len(queue) == 1
    assert {name: job.status for name, job in jobs.items()} == {
        "a": JobStatus.CANCELED, "b": JobStatus.CANCELED, "c": JobStatus.CANCELED, "d": JobStatus.PENDING,
        "e": JobStatus.CANCELED}
    assert all(jobs[name].time_ended is not None for name in "abce") and jobs["d"].time_ended is None
    assert queue.position_of(jobs["a"]) is None


def test_an_empty_filter_removes_every_pending_job(queue):
    """`queue.clear()` sends a query with no field set."""
    assert [job.id for job in queue.remove(ALL)] == ["e", "c", "a", "b", "d"]
    assert len(queue) == 0 and queue.find(ALL) == [] and queue.remove(ALL) == []


def test_the_runner_pops_position_1_first_and_marks_it_loading(queue):
    popped = [queue.pop_next() for _ in range(2)]
    assert [(job.id, job.status) for job in popped] == [("e", JobStatus.LOADING), ("c", JobStatus.LOADING)]
    assert [queue.position_of(job) for job in popped] == [None, None]
    queue.add(maker("g"), at_start=True)
    assert ids(queue.find(ALL)) == [(1, "g"), (2, "a"), (3, "b"), (4, "d")]
    assert [queue.pop_next().id for _ in range(4)] == ["g", "a", "b", "d"]
    assert len(queue) == 0


def pop_in_thread(queue: JobQueue):
    """pop_next() in a thread; returns the thread and a list that gets what it returned or raised."""
    got: list = []

    def pop():
        try:
            got.append(queue.pop_next())
        except QueueClosed as exc:
            got.append(exc)

    thread = threading.Thread(target=pop, daemon=True)
    thread.start()
    return thread, got


def test_pop_next_waits_for_a_job_and_an_add_wakes_it():
    queue = JobQueue()
    thread, got = pop_in_thread(queue)
    thread.join(0.1)
    assert thread.is_alive() and got == []
    job = queue.add(maker("a"))
    thread.join(2)
    assert got == [job] and job.status is JobStatus.LOADING and len(queue) == 0


def test_each_job_added_goes_to_exactly_one_of_several_waiting_runners(interleaved):
    """An add wakes every waiting `pop_next`; the job goes to one of them and the others wait on."""
    queue = JobQueue()
    runners = [pop_in_thread(queue) for _ in range(4)]

    def taken() -> list:
        return [item for _, items in runners for item in items]

    jobs = []
    for name in "abc":
        jobs.append(queue.add(maker(name)))
        deadline = time.monotonic() + 2
        while len(taken()) < len(jobs) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert sorted(map(id, taken())) == sorted(map(id, jobs)), name  # each job taken once, nothing raised
    assert sum(thread.is_alive() for thread, _ in runners) == 1
    assert queue.close() == []
    for thread, _ in runners:
        thread.join(2)
    outcomes = [items for _, items in runners]
    assert sorted(len(items) for items in outcomes) == [1, 1, 1, 1]
    assert sum(isinstance(items[0], QueueClosed) for items in outcomes) == 1


def test_close_cancels_pending_jobs_wakes_the_runner_and_refuses_new_jobs(queue):
    pending = [job for _, job in queue.find(ALL)]
    assert queue.close() == pending
    assert all(job.status is JobStatus.CANCELED for job in pending)
    assert len(queue) == 0 and queue.remove(ALL) == []
    made = []
    with pytest.raises(QueueClosed, match="the quantum machine is closed"):
        queue.add(lambda: made.append(1))  # refused before a job (and its id) is made
    assert made == []
    with pytest.raises(QueueClosed):
        queue.pop_next()

    empty = JobQueue()
    thread, got = pop_in_thread(empty)
    thread.join(0.1)
    assert thread.is_alive()
    assert empty.close() == []
    thread.join(2)
    assert len(got) == 1 and isinstance(got[0], QueueClosed)


def run_clients(queue: JobQueue) -> tuple[list[Job], list[Job]]:
    """8 clients x 500 operations at once: adds at either end (ids from `JobIds`, as the platform makes them), and
    removals by id, by position and by user. Returns the jobs added and the jobs removals returned."""
    job_ids = JobIds()
    made: list[Job] = []
    removed: list[Job] = []
    start = threading.Barrier(8)

    def client(seed: int):
        rng = random.Random(seed)
        user = f"user-{seed}"
        mine: list[Job] = []
        start.wait()
        for _ in range(500):
            roll = rng.random()
            if roll < 0.6:
                at_start = rng.random() < 0.3
                job = queue.add(lambda: Job(job_ids.next(at_start), "qm-1", user, program=None), at_start)
                made.append(job)
                mine.append(job)
            elif roll < 0.8 and mine:
                removed.extend(queue.remove(JobFilter(job_id=mine.pop(rng.randrange(len(mine))).id)))
            elif roll < 0.95:
                removed.extend(queue.remove(JobFilter(position=rng.randint(0, 20))))
            else:
                removed.extend(queue.remove(JobFilter(user=user)))

    threads = [threading.Thread(target=client, args=(seed,), daemon=True) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return made, removed


def test_under_concurrent_adds_and_removals_no_job_is_lost_and_ids_sort_in_queue_order(interleaved):
    """`add` makes the job under the queue's lock, so sorting ids gives queue order (the client sorts
    `pending_jobs` by id); every removal is atomic, so each job is either still queued or removed once."""
    queue = JobQueue()
    made, removed = run_clients(queue)
    left = [job for _, job in queue.find(ALL)]
    assert len({id(job) for job in made}) == len(made) > 2000
    assert len(removed) + len(left) == len(made)  # none lost, none removed twice
    assert {id(job) for job in removed + left} == {id(job) for job in made}
    assert [queue.position_of(job) for job in left] == list(range(1, len(left) + 1))
    assert [job.id for job in left] == sorted(job.id for job in left)
    assert all(job.status is JobStatus.CANCELED for job in removed)
    assert all(job.status is JobStatus.PENDING for job in left)


def test_under_concurrent_clients_and_pops_each_job_leaves_the_queue_once(interleaved):
    """The same clients while two runners pop (a QM has one; two also check that pops are atomic against each
    other): every job is popped (loading), removed or canceled at close (canceled), exactly once."""
    queue = JobQueue()
    popped: list[Job] = []
    runner_ended: list[Exception] = []

    def runner():
        while True:
            try:
                popped.append(queue.pop_next())
            except Exception as exc:  # QueueClosed once closed; anything else is a race inside the queue
                runner_ended.append(exc)
                return

    runners = [threading.Thread(target=runner, daemon=True) for _ in range(2)]
    for thread in runners:
        thread.start()
    made, removed = run_clients(queue)
    left = queue.close()
    for thread in runners:
        thread.join(2)
    assert [type(exc) for exc in runner_ended] == [QueueClosed, QueueClosed]
    assert len({id(job) for job in made}) == len(made) > 2000
    assert len(removed) + len(popped) + len(left) == len(made)  # none lost, none counted twice
    assert {id(job) for job in removed + popped + left} == {id(job) for job in made}
    assert all(job.status is JobStatus.LOADING for job in popped)
    assert all(job.status is JobStatus.CANCELED for job in removed + left)
    assert removed and popped  # both ways out were taken
