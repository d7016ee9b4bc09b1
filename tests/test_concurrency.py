"""Many users opening, feeding, halting, clearing and closing QMs at once: nothing hangs, every job ends."""

from __future__ import annotations

import random
import threading
import time

from qm.qua import assign, declare, infinite_loop_, program

from configs import single_element_config
from programs import held, tagged


def _spin():
    with program() as prog:
        n = declare(int)
        with infinite_loop_():
            assign(n, n + 1)
    return prog


def test_users_racing_on_open_add_halt_clear_execute_and_close(server, connect):
    failures: list[str] = []
    deadline = time.time() + 8

    def user(k: int) -> None:
        qmm = connect(f"user{k}")
        rnd = random.Random(k)
        while time.time() < deadline:
            try:
                qm = qmm.open_qm(single_element_config({k + 1: {}}), close_other_machines=False)
                jobs = [(qm.queue.add_to_start if rnd.random() < 0.3 else qm.queue.add)(
                    rnd.choice([tagged(i), _spin(), held(i)])) for i in range(rnd.randint(1, 4))]
                time.sleep(rnd.random() * 0.1)
                action = rnd.random()
                if action < 0.3:
                    running = qm.get_running_job()
                    if running is not None:
                        running.halt()
                elif action < 0.5:
                    qm.queue.clear()
                elif action < 0.7:
                    assert qm.execute(tagged(99)).result_handles.wait_for_all_values(timeout=10)
                qm.close()
                for job in jobs:
                    assert job.status in ("completed", "canceled", "error"), (job.id, job.status)
            except Exception as exc:  # collected with the thread's context, asserted below
                failures.append(f"user{k}: {exc!r}")

    threads = [threading.Thread(target=user, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a user hung"
    assert not failures, failures
    unfinished = [job.id for job in server.qop.jobs._jobs.values() if not job.status.is_final]
    assert not unfinished
    assert server.qop.machines.list() == []
