"""Power Rabi end to end through the client: how fast the engine runs a typical averaging experiment.

1000 averages x 100 amplitudes; per shot: play 40 ns with amp(a), align, measure a 1 us readout with two
dual_demod.full, wait 10 us, two saves; streams buffered and averaged.

    python benchmarks/engine_speed.py [--averages 1000]

Prints the statements executed per second, then on its last line the real-time factor: the hardware time the
program represents divided by the wall time from `queue.add` to all results fetched. Target: >= 1.0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

AMPLITUDES = 100


def power_rabi(averages: int):
    from qm.qua import (align, amp, declare, declare_stream, dual_demod, fixed, for_, measure, play, program, save,
                        stream_processing, wait)

    with program() as prog:
        n = declare(int)
        a = declare(fixed)
        i = declare(fixed)
        q = declare(fixed)
        i_st = declare_stream()
        q_st = declare_stream()
        with for_(n, 0, n < averages, n + 1):
            with for_(a, 0.0, a < 1.0 - 0.005, a + 1.0 / AMPLITUDES):
                play("pi" * amp(a), "qubit")
                align("qubit", "resonator")
                measure("readout", "resonator", None,
                        dual_demod.full("cos", "out1", "sin", "out2", i),
                        dual_demod.full("minus_sin", "out1", "cos", "out2", q))
                wait(2500, "resonator")
                save(i, i_st)
                save(q, q_st)
        with stream_processing():
            i_st.buffer(AMPLITUDES).average().save("I")
            q_st.buffer(AMPLITUDES).average().save("Q")
    return prog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--averages", type=int, default=1000)
    args = parser.parse_args()

    import logging

    from qm import QuantumMachinesManager

    import qopemu
    from configs import config

    logging.getLogger("qm").setLevel(logging.ERROR)
    rabi = config()
    rabi["elements"]["resonator"]["outputs"] = {"out1": ("con1", 1), "out2": ("con1", 2)}
    with qopemu.Server() as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        qm = qmm.open_qm(rabi, close_other_machines=False)
        prog = power_rabi(args.averages)
        start = time.perf_counter()
        job = qm.queue.add(prog).wait_for_execution()
        job.result_handles.wait_for_all_values()
        i_values = job.result_handles.get("I").fetch_all()
        wall = time.perf_counter() - start
        assert job.status == "completed" and i_values.shape == (AMPLITUDES,)
        summary = server.qop.jobs.get(job.id).outcome  # the engine's own count of hardware time and statements
        print(f"{args.averages} x {AMPLITUDES} shots in {wall:.2f} s wall, {summary.duration_ns / 1e9:.3f} s of "
              f"hardware time")
        print(f"statements/s: {summary.statements / wall:,.0f}")
        print(f"real-time factor: {summary.duration_ns * 1e-9 / wall:.2f}")


if __name__ == "__main__":
    main()
