"""QUA programs for tests, written as users write them."""

from __future__ import annotations

from qm.qua import declare, declare_stream, fixed, for_, pause, play, program, save, stream_processing, wait


def held(tag: int = 0):
    """Pauses at once (so it keeps its QM busy until resumed), then saves `tag`."""
    with program() as prog:
        n = declare(int, value=tag)
        st = declare_stream()
        pause()
        save(n, st)
        with stream_processing():
            st.save_all("tag")
    return prog


def tagged(tag: int, loops: int = 1):
    """Saves `tag` once after `loops` short iterations."""
    with program() as prog:
        n = declare(int)
        t = declare(int, value=tag)
        st = declare_stream()
        with for_(n, 0, n < loops, n + 1):
            wait(25)
        save(t, st)
        with stream_processing():
            st.save_all("tag")
    return prog


def plays(element: str = "qubit", operation: str = "pi", shots: int = 1):
    with program() as prog:
        n = declare(int)
        a = declare(fixed, value=0.5)
        with for_(n, 0, n < shots, n + 1):
            play(operation, element)
        save(a, "last_amp")
    return prog


def paused(pending_job, timeout: float = 30):
    """The running job of `pending_job` once its program sits in pause(), as users wait for it (py-qua-tools'
    `wait_until_job_is_paused` polls `is_paused()` the same way)."""
    import time

    job = pending_job.wait_for_execution(timeout=timeout)
    deadline = time.time() + timeout
    while not job.is_paused():
        if time.time() > deadline:
            raise TimeoutError(f"{job.id} did not pause")
        time.sleep(0.01)
    return job
