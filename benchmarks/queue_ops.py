"""Queue operations under load: 8 client processes add / get / remove jobs on one QM while another QM runs a
CPU-heavy program. Prints operations per second and the p99 latency on its last line.

    python benchmarks/queue_ops.py [--clients 8] [--seconds 10]

Target (issue "Job queue"): >= 300 ops/s and p99 <= 50 ms on a 2-core machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def _client(host: str, port: int, qm_id: str, seconds: float, index: int, out) -> None:
    import logging

    from qm import QuantumMachinesManager

    from programs import tagged

    logging.getLogger("qm").setLevel(logging.ERROR)
    qmm = QuantumMachinesManager(host, port, connection_headers={"x-qop-user": f"client{index}"})
    qm = qmm.get_qm(qm_id)
    prog = tagged(index)
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        job = qm.queue.add(prog)
        t1 = time.perf_counter()
        qm.queue.get(job.id)
        t2 = time.perf_counter()
        qm.queue.remove_by_id(job.id)
        t3 = time.perf_counter()
        latencies += [t1 - t0, t2 - t1, t3 - t2]
    out.put(latencies)


def _cpu_heavy():
    from qm.qua import assign, declare, fixed, infinite_loop_, program

    with program() as prog:
        x = declare(fixed, value=0.1)
        n = declare(int)
        with infinite_loop_():
            assign(n, n + 1)
            assign(x, x * 0.5 + 0.25)
    return prog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    import logging

    import numpy as np
    from qm import QuantumMachinesManager

    import qopemu
    from configs import config, single_element_config
    from programs import held

    logging.getLogger("qm").setLevel(logging.ERROR)
    with qopemu.Server() as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        qm = qmm.open_qm(config(), close_other_machines=False)
        holder = qm.queue.add(held()).wait_for_execution()  # keeps the queue's jobs pending
        busy = qmm.open_qm(single_element_config({5: {}}), close_other_machines=False)
        heavy = busy.queue.add(_cpu_heavy()).wait_for_execution()

        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        clients = [ctx.Process(target=_client, args=(server.host, server.port, qm.id, args.seconds, i, out))
                   for i in range(args.clients)]
        for p in clients:
            p.start()
        latencies = np.concatenate([np.array(out.get(timeout=args.seconds + 120)) for _ in clients])
        for p in clients:
            p.join()
        assert heavy.status == "running", "the CPU-heavy job should still be running"
        heavy.halt()
        holder.halt()
        ops = latencies.size / args.seconds
        p50, p99 = np.percentile(latencies, [50, 99]) * 1e3
        print(f"{args.clients} clients, {latencies.size} operations in {args.seconds:.0f} s, p50 {p50:.1f} ms")
        print(f"queue ops: {ops:.0f} ops/s, p99 latency {p99:.1f} ms")


if __name__ == "__main__":
    main()
