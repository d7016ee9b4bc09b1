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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--averages", type=int, default=1000)
    args = parser.parse_args()

    import logging

    from qm import QuantumMachinesManager

    import qopemu
    from configs import rabi_config
    from programs import power_rabi

    logging.getLogger("qm").setLevel(logging.ERROR)
    with qopemu.Server() as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        qm = qmm.open_qm(rabi_config(), close_other_machines=False)
        prog = power_rabi(args.averages, AMPLITUDES)
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
