"""Results layer throughput: 10^7 int values fed through `save_all` (plus a running average and the
legacy timestamped tag form) in engine-sized batches, then read back as the wire bytes the client
receives. Prints values/s for feed + read of the plain `save_all` result on the last line.

    python benchmarks/results_encode.py [--values N] [--batch B]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qopemu.results.store import JobResults


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    args = parser.parse_args()
    n, batch = args.values, args.batch

    values = np.arange(n, dtype=np.int64)
    stamps = values * 4

    def run(model: list, name: str) -> float:
        results = JobResults(model, memory_cap_bytes=8 << 30, stream_kinds={"r1": "int"})
        start = time.perf_counter()
        for i in range(0, n, batch):
            results.add_values("r1", "int", values[i : i + batch], stamps[i : i + batch])
        results.finish()
        fed = time.perf_counter()
        count = nbytes = 0
        for c, data in results.read(name, 0, n, flat=False):
            count += c
            nbytes += len(data)
        done = time.perf_counter()
        assert count == results.header(name, False).count_so_far
        print(f"{name:>10}: feed {n / (fed - start) / 1e6:7.1f} M values/s, "
              f"read {nbytes / (done - fed) / 1e9:5.2f} GB/s ({count} items, {nbytes / 1e6:.0f} MB)")
        return n / (done - start)

    run([["saveAll", "avg", ["average", ["@re", "0", "r1"]]]], "avg")
    run([["saveAll", "tag", ["@re", "2", "r1"]]], "tag")
    rate = run([["saveAll", "all", ["@re", "0", "r1"]]], "all")
    print(f"save_all feed+read: {rate / 1e6:.1f} M values/s")


if __name__ == "__main__":
    main()
