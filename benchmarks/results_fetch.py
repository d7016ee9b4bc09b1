"""Result delivery: a job saves 10^7 values with save_all; the client fetches them with fetch_all.

    python benchmarks/results_fetch.py [--values 10000000]

Prints, on its last line, the values per second that `fetch_all` delivers to the client (the fetch of all values,
timed from the call to the returned numpy array). It also checks that the job does not slow down while results are
fetched: it times the same job once with a client fetching live and once without.
Target (issue "Results"): >= 10 M values/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def saver(count: int):
    from qm.qua import declare, declare_stream, for_, program, save, stream_processing

    with program() as prog:
        n = declare(int)
        st = declare_stream()
        with for_(n, 0, n < count, n + 1):
            save(n, st)
        with stream_processing():
            st.save_all("n")
    return prog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=10_000_000)
    args = parser.parse_args()

    import logging

    from qm import QuantumMachinesManager

    import qopemu
    from configs import config

    logging.getLogger("qm").setLevel(logging.ERROR)
    with qopemu.Server() as server:
        qmm = QuantumMachinesManager(server.host, server.port, timeout=600)
        qm = qmm.open_qm(config(), close_other_machines=False)
        prog = saver(args.values)

        def run(live_fetch: bool) -> float:
            job = qm.queue.add(prog).wait_for_execution()
            stop = threading.Event()

            def fetch_live():
                handle = job.result_handles.get("n")
                while not stop.is_set():  # a live plot refreshing 5 times a second
                    handle.fetch_all()
                    time.sleep(0.2)

            fetcher = threading.Thread(target=fetch_live) if live_fetch else None
            if fetcher:
                fetcher.start()
            server.qop.jobs.get(job.id).wait_final()
            stop.set()
            if fetcher:
                fetcher.join()
            job.result_handles.wait_for_all_values()
            outcome = server.qop.jobs.get(job.id)
            return (outcome.time_ended - outcome.time_started).total_seconds(), job

        quiet, job = run(live_fetch=False)
        busy, _ = run(live_fetch=True)
        handle = job.result_handles.get("n")
        start = time.perf_counter()
        flat = handle.fetch_all(flat_struct=True)
        flat_time = time.perf_counter() - start
        start = time.perf_counter()
        records = handle.fetch_all()
        fetch = time.perf_counter() - start
        assert flat.shape == (args.values,) and flat[-1] == args.values - 1
        assert records["value"][-1] == args.values - 1
        print(f"job run time: {quiet:.2f} s alone, {busy:.2f} s while a client fetches live")
        print(f"fetch_all(flat_struct=True): {args.values / flat_time:,.0f} values/s")
        print(f"values/s delivered by fetch_all: {args.values / fetch:,.0f}")


if __name__ == "__main__":
    main()
