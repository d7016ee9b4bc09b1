"""Simulation speed end to end: 100 000 clock cycles of 4 IF-modulated elements playing continuously.

    python benchmarks/simulate_speed.py [--cycles 100000] [--runs 9] [--embedded] [--float32]

Prints on its last line the output samples generated per second (analog + digital samples of every declared port,
from `qmm.simulate` to `get_simulated_samples()` returned), the median of --runs simulations after one warm-up
simulation of the same size. The warm-up's own figure is printed too: the first big simulation in a fresh client
process is slower, as the client's decoding touches fresh memory. Analog samples are float64, as the platform sends
them (target, issue 10: >= 40 M samples/s); `--float32` starts the server with its float32 setting instead.

Every simulation also returns its waveform report (1 604 pulses here), which the client parses inside
`qmm.simulate` at about 36 protobuf values and a deepcopy per pulse: that parsing, the client's own work, is most of
the figure's time. The line before the last gives the samples' path alone (`get_simulated_samples()`: render,
stream, client decode) for comparison.

The server runs as its own process (`qopemu serve`), as the platform does for its users; `--embedded` runs it inside
the benchmark's process instead (`qopemu.Server()`, as the tests do), where client and server share one GIL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import time

os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"


def setup(cycles: int):
    from qm.qua import infinite_loop_, play, program

    elements = {
        f"el{i}": {"singleInput": {"port": ("con1", i + 1)}, "intermediate_frequency": (i + 1) * 25e6,
                   "operations": {"cw": "pulse"}}
        for i in range(4)
    }
    config = {
        "controllers": {"con1": {"analog_outputs": {i: {"offset": 0.0} for i in range(1, 5)}}},
        "elements": elements,
        "pulses": {"pulse": {"operation": "control", "length": 1000, "waveforms": {"single": "wf"}}},
        "waveforms": {"wf": {"type": "constant", "sample": 0.1}},
    }
    with program() as prog:
        with infinite_loop_():
            for name in elements:
                play("cw", name)
    return config, prog


@contextlib.contextmanager
def server_address(embedded: bool, float32: bool):
    """(host, port) of a fresh qopemu server: its own process, or one inside this process."""
    if embedded:
        import qopemu
        from qopemu.settings import Settings

        with qopemu.Server(Settings(simulation_samples="float32" if float32 else "float64")) as server:
            yield server.host, server.port
        return
    process = subprocess.Popen([sys.executable, "-m", "qopemu.cli", "serve", "--port", "0",
                                *(["--float32-samples"] if float32 else [])], stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:  # the server logs its address once it listens
            if match := re.search(r"listening on ([\d.]+):(\d+)", line):
                break
        else:
            raise RuntimeError("qopemu serve stopped before listening")
        yield match.group(1), int(match.group(2))
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--embedded", action="store_true", help="run the server inside this process")
    parser.add_argument("--float32", action="store_true", help="float32 analog samples (a server setting)")
    args = parser.parse_args()

    import logging

    from qm import QuantumMachinesManager, SimulationConfig

    logging.getLogger("qm").setLevel(logging.ERROR)
    config, prog = setup(args.cycles)
    with server_address(args.embedded, args.float32) as (host, port):
        qmm = QuantumMachinesManager(host, port)
        qmm.simulate(config, prog, SimulationConfig(duration=1000))  # start the worker, import the client's parts
        rates, pulls = [], []
        for run in range(args.runs + 1):
            start = time.perf_counter()
            job = qmm.simulate(config, prog, SimulationConfig(duration=args.cycles))
            simulated = time.perf_counter()
            samples = job.get_simulated_samples()
            wall = time.perf_counter() - start
            analog = samples.con1.analog
            total = sum(v.size for v in analog.values()) + sum(v.size for v in samples.con1.digital.values())
            assert all(v.size == 4 * args.cycles for v in analog.values())
            print(f"{'warm-up' if run == 0 else f'run {run}'}: {total:,} samples in {wall * 1e3:.1f} ms "
                  f"({total / wall / 1e6:.1f} M/s); qmm.simulate (run, reply) {(simulated - start) * 1e3:.1f} ms, "
                  f"get_simulated_samples (render, stream, client decode) {(wall - (simulated - start)) * 1e3:.1f} ms")
            if run:
                rates.append(total / wall)
                pulls.append(total / (wall - (simulated - start)))
        print(f"{args.cycles} cycles on {len(analog)} analog ports ({next(iter(analog.values())).dtype}), server "
              f"{'embedded' if args.embedded else 'in its own process'}, median of {args.runs} runs")
        print(f"get_simulated_samples alone: {statistics.median(pulls):,.0f} samples/s")
        print(f"samples/s: {statistics.median(rates):,.0f}")


if __name__ == "__main__":
    main()
