"""When things happen on the hardware, through the real client: the program's lead-in, a paused simulation, the
time statements take, and loopback in time order (issue 10, items 4, 5, 10 and 12)."""

from __future__ import annotations

import numpy as np
from qm import SimulationConfig
from qm.qua import assign, declare, declare_stream, pause, play, program, save, stream_processing

CONFIG = {
    "controllers": {"con1": {"analog_outputs": {i: {"offset": 0.0} for i in range(1, 4)},
                             "analog_inputs": {1: {"offset": 0.0}}}},
    "elements": {
        "a": {"singleInput": {"port": ("con1", 1)}, "intermediate_frequency": 0,
              "operations": {"const": "const_pulse"}},
        "b": {"singleInput": {"port": ("con1", 2)}, "intermediate_frequency": 0,
              "operations": {"const": "const_pulse"}},
        "dc": {"singleInput": {"port": ("con1", 3)}, "intermediate_frequency": 0, "sticky": {"analog": True},
               "operations": {"const": "const_pulse"}},
    },
    "pulses": {"const_pulse": {"operation": "control", "length": 100, "waveforms": {"single": "const_wf"}}},
    "waveforms": {"const_wf": {"type": "constant", "sample": 0.25}},
}


def _on(trace: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.abs(trace) > 1e-9)


def test_a_simulation_holds_at_pause_for_its_duration_with_the_results_saved_so_far(qmm):
    with program() as prog:
        n = declare(int)
        st = declare_stream()
        assign(n, 7)
        save(n, st)
        play("const", "a")
        play("const", "dc")
        pause()
        play("const", "b")
        assign(n, 8)
        save(n, st)
        with stream_processing():
            st.save_all("n")
    job = qmm.simulate(CONFIG, prog, SimulationConfig(duration=500))
    samples = job.get_simulated_samples().con1.analog
    a, b, dc = samples["1"], samples["2"], samples["3"]
    assert a.size == b.size == dc.size == 2000  # the whole duration
    assert _on(a).size == 100 and _on(b).size == 0  # nothing after the pause plays
    start = _on(a)[0]
    assert np.array_equal(_on(dc), np.arange(start, 2000))  # the sticky level holds to the end
    assert np.all(dc[start:] == np.float32(0.25))
    job.result_handles.wait_for_all_values()
    assert job.result_handles.get("n").fetch_all()["value"].tolist() == [7]
