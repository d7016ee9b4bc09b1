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


def power_rabi(averages: int, amplitudes: int = 100):
    """The field's most common experiment: per shot a 40 ns pi pulse scaled by amp(a), align, a 1 us readout with
    two dual demodulations, a 10 us wait and two saves; buffered and averaged. Runs on `configs.rabi_config()`."""
    from qm.qua import align, amp, dual_demod, measure, play

    with program() as prog:
        n = declare(int)
        a = declare(fixed)
        i = declare(fixed)
        q = declare(fixed)
        n_st = declare_stream()
        i_st = declare_stream()
        q_st = declare_stream()
        with for_(n, 0, n < averages, n + 1):
            with for_(a, 0.0, a < 1.0 - 0.5 / amplitudes, a + 1.0 / amplitudes):
                play("pi" * amp(a), "qubit")
                align("qubit", "resonator")
                measure("readout", "resonator", None,
                        dual_demod.full("cos", "out1", "sin", "out2", i),
                        dual_demod.full("minus_sin", "out1", "cos", "out2", q))
                wait(2500, "resonator")
                save(i, i_st)
                save(q, q_st)
            save(n, n_st)
        with stream_processing():
            i_st.buffer(amplitudes).average().save("I")
            q_st.buffer(amplitudes).average().save("Q")
            n_st.save("iteration")
    return prog
