"""The job queue of the seed document, through the real client, by several users (issue: job queue)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from qm.exceptions import FailedToAddJobToQueueException, JobCancelledError
from qm.jobs.job_queue_base import JobNotFoundError
from qm.qua import play, program

from configs import config
from programs import held, paused, plays, tagged


@pytest.fixture
def busy_qm(connect):
    """alice's QM with a paused job running, so that whatever is queued next stays pending."""
    qmm = connect("alice")
    qm = qmm.open_qm(config(), close_other_machines=False)
    holder = paused(qm.queue.add(held()))
    yield qm, holder
    holder.halt()


def test_add_inspect_positions_users_and_times(connect, busy_qm):
    qm, _ = busy_qm
    bob = connect("bob")
    qm_bob = bob.get_qm(bob.list_open_qms()[0])
    before = datetime.now(timezone.utc)
    first = qm.queue.add(tagged(1))
    second = qm_bob.queue.add(tagged(2))
    urgent = qm_bob.queue.add_to_start(tagged(3))
    assert qm.queue.count == len(qm.queue) == 3
    pending = qm.queue.pending_jobs
    assert [job.id for job in pending] == [urgent.id, first.id, second.id]
    assert [job.position_in_queue() for job in pending] == [1, 2, 3]
    assert [job.user_added for job in pending] == ["bob", "alice", "bob"]
    for job in pending:
        assert before - timedelta(seconds=1) <= job.time_added <= datetime.now(timezone.utc)
    assert qm.queue.get_at(2).id == first.id
    assert qm.queue[3].id == second.id
    assert qm.queue.get(second.id).position_in_queue() == 3
    assert sorted(j.id for j in qm.queue.get_by_user_id("bob")) == sorted([urgent.id, second.id])
    assert qm.queue.get_by_user_id("nobody") == ()
    with pytest.raises(JobNotFoundError):
        qm.queue.get_at(4)
    with pytest.raises(JobNotFoundError):
        qm.queue.get("job-000000000000")


def test_removal_by_id_position_user_clear_and_cancel(connect, busy_qm):
    qm, _ = busy_qm
    bob = connect("bob").get_qm(qm.id)
    jobs = [qm.queue.add(tagged(i)) for i in range(3)] + [bob.queue.add(tagged(10 + i)) for i in range(3)]
    assert qm.queue.remove_by_id(jobs[0].id) == 1
    assert qm.queue.remove_by_id(jobs[0].id) == 0
    assert qm.queue.remove_by_position(1) == 1  # jobs[1]
    assert [j.id for j in qm.queue.pending_jobs] == [jobs[2].id] + [j.id for j in jobs[3:]]
    assert qm.queue.remove_by_user_id("bob") == 3
    assert qm.queue.get(jobs[2].id).cancel() is True
    assert qm.queue.count == 0
    more = [qm.queue.add(tagged(i)) for i in range(4)]
    assert qm.queue.clear() == 4
    with pytest.raises(JobCancelledError):
        more[0].wait_for_execution()
    assert more[0].status == "canceled"
    assert more[0].position_in_queue() == -1


def test_jobs_run_in_turn_and_wait_for_execution_returns_the_running_job(busy_qm):
    qm, holder = busy_qm
    queued = [qm.queue.add(tagged(i)) for i in range(3)]
    assert all(job.status == "pending" for job in queued)
    holder.resume()
    for i, pending in enumerate(queued):
        job = pending.wait_for_execution(timeout=30)
        job.result_handles.wait_for_all_values(timeout=30)
        assert job.result_handles.get("tag").fetch_all()["value"].tolist() == [i]
        assert job.status == "completed"
    assert holder.status == "completed"


def test_one_job_at_a_time_per_qm(connect):
    qm = connect("alice").open_qm(config(), close_other_machines=False)
    first = paused(qm.queue.add(held(1)))
    second = qm.queue.add(held(2))
    time.sleep(0.3)
    assert second.status == "pending" and qm.get_running_job().id == first.id
    first.resume()
    running = paused(second)
    assert qm.get_running_job().id == running.id
    running.resume()
    running.result_handles.wait_for_all_values(timeout=30)


def test_execute_clears_the_queue_and_halts_the_running_job(busy_qm):
    qm, holder = busy_qm
    stale = qm.queue.add(tagged(5))
    job = qm.execute(tagged(7))
    job.result_handles.wait_for_all_values(timeout=30)
    assert job.result_handles.get("tag").fetch_all()["value"].tolist() == [7]
    assert holder.status == "canceled"
    assert stale.status == "canceled"


def test_a_program_that_does_not_compile_is_refused_at_add(busy_qm, caplog):
    qm, _ = busy_qm
    with program() as bad:
        play("pi", "no_such_element")
    with pytest.raises(FailedToAddJobToQueueException):
        qm.queue.add(bad)
    assert any("no_such_element" in record.getMessage() for record in caplog.records)
    assert qm.queue.count == 0


def test_compiled_program_with_waveform_overrides(busy_qm, caplog):
    qm, holder = busy_qm
    program_id = qm.compile(plays("qubit", "pi"))
    ok = qm.queue.add_compiled(program_id, overrides={"waveforms": {"gauss_wf": [0.2] * 40}})
    plain = qm.queue.add_compiled(program_id)
    assert qm.queue.count == 2
    refusals = {
        "gauss_wf": {"gauss_wf": [0.2] * 41},  # wrong length
        "const_wf": {"const_wf": 0.3},  # constant: not overridable
        "nope_wf": {"nope_wf": [0.1] * 40},  # unknown
    }
    for name, overrides in refusals.items():
        with pytest.raises(FailedToAddJobToQueueException):
            qm.queue.add_compiled(program_id, overrides={"waveforms": overrides})
        assert any(name in record.getMessage() for record in caplog.records)
    holder.resume()
    for pending in (ok, plain):
        job = pending.wait_for_execution(timeout=30)
        job.result_handles.wait_for_all_values(timeout=30)
        assert job.status == "completed"


def test_different_qms_run_in_parallel(connect):
    qmm = connect("alice")
    qm1 = qmm.open_qm(config(), close_other_machines=False)
    other = config()
    other["controllers"]["con1"]["analog_outputs"] = {i: {"offset": 0.0} for i in range(5, 9)}
    other["controllers"]["con1"]["analog_inputs"] = {}
    other["controllers"]["con1"]["digital_outputs"] = {2: {}}
    del other["elements"]["resonator"]
    other["elements"]["qubit"]["mixInputs"].update(I=("con1", 5), Q=("con1", 6))
    qm2 = qmm.open_qm(other, close_other_machines=False)
    job1 = paused(qm1.queue.add(held(1)))
    job2 = paused(qm2.queue.add(held(2)))  # qm1's paused job does not block qm2
    assert job1.status == job2.status == "running"
    job1.resume()
    job2.resume()
    for job in (job1, job2):
        assert job.result_handles.wait_for_all_values(timeout=30)


def test_closing_a_qm_cancels_its_jobs_and_wakes_waiters(connect):
    qmm = connect("alice")
    qm = qmm.open_qm(config(), close_other_machines=False)
    running = paused(qm.queue.add(held()))
    pending = qm.queue.add(tagged(1))
    errors = []

    def waiter():
        try:
            pending.wait_for_execution(timeout=30)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.2)
    qm.close()
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], JobCancelledError)
    assert running.status == "canceled"
    assert running.result_handles.wait_for_all_values(timeout=10) is False


def test_ids_sort_in_queue_order(busy_qm):
    qm, _ = busy_qm
    for i in range(5):
        (qm.queue.add_to_start if i % 2 else qm.queue.add)(tagged(i))
    pending = qm.queue.pending_jobs
    assert [job.position_in_queue() for job in pending] == [1, 2, 3, 4, 5]


def test_many_clients_at_once_lose_and_duplicate_nothing(server, connect):
    """8 threads and 2 processes add, add to start, remove and read one queue at the same time."""
    qm = connect("alice").open_qm(config(), close_other_machines=False)
    holder = paused(qm.queue.add(held()))
    added, removed, lock = [], [], threading.Lock()
    failures = []

    def client(worker: int):
        try:
            mine = connect(f"user{worker}").get_qm(qm.id)
            for i in range(6):
                job = (mine.queue.add_to_start if i % 3 == 0 else mine.queue.add)(tagged(worker * 100 + i))
                with lock:
                    added.append(job.id)
                ids = [j.id for j in mine.queue.pending_jobs]
                assert len(ids) == len(set(ids))
                if i % 2:
                    if mine.queue.remove_by_id(job.id):
                        with lock:
                            removed.append(job.id)
        except Exception as exc:  # reported below, with the thread's context
            failures.append(exc)

    script = textwrap.dedent(f"""
        from qm import QuantumMachinesManager
        import sys
        sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
        from programs import tagged
        qmm = QuantumMachinesManager("{server.host}", {server.port}, connection_headers={{"x-qop-user": "proc"}})
        qm = qmm.get_qm("{qm.id}")
        for i in range(5):
            print(qm.queue.add(tagged(9000 + i)).id)
    """)
    processes = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
                 for _ in range(2)]
    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for p in processes:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        added.extend(word for word in out.split() if word.startswith("job-"))  # the client logs to stdout too
    assert not failures, failures
    assert len(added) == len(set(added)) == 8 * 6 + 2 * 5
    pending = qm.queue.pending_jobs
    assert [job.position_in_queue() for job in pending] == list(range(1, len(pending) + 1))
    assert len(pending) + len(removed) == len(added)
    assert {j.id for j in pending} == set(added) - set(removed)
    holder.resume()
    last = pending[-1].wait_for_execution(timeout=60)
    last.result_handles.wait_for_all_values(timeout=60)
    qmm = connect("checker")
    for job_id in added:
        job = qm.get_job(job_id) if job_id not in removed else None
        if job is None:
            continue
        job.result_handles.wait_for_all_values(timeout=60)
        assert len(job.result_handles.get("tag").fetch_all()) == 1, f"{job_id} did not run exactly once"
    assert qmm.list_open_qms() == [qm.id]
