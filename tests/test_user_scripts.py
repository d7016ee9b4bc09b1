"""Scripts as users write them, with the tools the field uses on top of the client (py-qua-tools, plotting)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from qm import SimulationConfig
from qualang_tools.results import fetching_tool, progress_counter

from configs import rabi_config
from programs import power_rabi

matplotlib.use("Agg")

N_AVG = 200
AMPLITUDES = 10


def test_live_fetching_tool_and_progress_counter(qmm, capsys):
    cfg, prog = rabi_config(), power_rabi(N_AVG, AMPLITUDES)
    qm = qmm.open_qm(cfg)
    job = qm.execute(prog)
    results = fetching_tool(job, data_list=["I", "Q", "iteration"], mode="live")
    rounds = 0
    while results.is_processing():
        i_values, q_values, iteration = results.fetch_all()
        progress_counter(iteration, N_AVG, start_time=results.get_start_time())
        rounds += 1
    assert rounds >= 1
    assert iteration == N_AVG - 1
    assert i_values.shape == q_values.shape == (AMPLITUDES,)
    done = fetching_tool(job, data_list=["I", "iteration"], mode="wait_for_all")
    final_i, final_iteration = done.fetch_all()
    assert final_iteration == N_AVG - 1 and np.all(np.isfinite(final_i))


def test_simulated_samples_plot_and_waveform_report(qmm, tmp_path):
    cfg, prog = rabi_config(), power_rabi(N_AVG, AMPLITUDES)
    job = qmm.simulate(cfg, prog, SimulationConfig(duration=2000, include_analog_waveforms=True,
                                                    include_digital_waveforms=True))
    samples = job.get_simulated_samples()
    samples.con1.plot()
    matplotlib.pyplot.close("all")
    report = job.get_simulated_waveform_report()
    elements = {entry.element for entry in report.analog_waveforms}
    assert elements == {"qubit", "resonator"}
    report.create_plot(samples, plot=False, save_path=str(tmp_path / "report"))  # the client keeps the folder
    assert list(tmp_path.iterdir())


@pytest.mark.parametrize("close_other_machines", [True, False])
def test_interrupt_on_close_style_halt(qmm, close_other_machines):
    cfg, prog = rabi_config(), power_rabi(N_AVG, AMPLITUDES)
    qm = qmm.open_qm(cfg, close_other_machines=close_other_machines)
    job = qm.execute(prog)
    job.halt()
    assert job.status in ("canceled", "completed")


def test_voltage_gate_sequence_compensation_pulse(qmm):
    """py-qua-tools' VoltageGateSequence with a QUA duration derives its compensation pulse in real time: its length
    is `1 << (29 + Math.msb(n))`, the power of two above the int n, which needs the platform's msb of an int
    (floor(log2 n) - 28). The pulse must then cancel the sequence's area (py-qua-tools' own simulation tests accept
    1 %)."""
    from qm.qua import declare, program
    from qualang_tools.voltage_gates import VoltageGateSequence

    cfg = {
        "controllers": {"con1": {"analog_outputs": {1: {"offset": 0.0}}}},
        "elements": {"P1": {"singleInput": {"port": ("con1", 1)}, "sticky": {"analog": True, "duration": 4},
                            "operations": {}}},
        "pulses": {},
        "waveforms": {},
    }
    seq = VoltageGateSequence(cfg, ["P1"])
    with program() as prog:
        duration = declare(int, value=1000)
        seq.add_step(level=[0.2], duration=duration)
        seq.add_compensation_pulse(max_amplitude=0.1)
        seq.ramp_to_zero()
    job = qmm.simulate(cfg, prog, SimulationConfig(duration=1500))
    samples = np.asarray(job.get_simulated_samples().con1.analog["1"], np.float64)
    # The area in units of 1/1024 V.ns: 1000 ns at 0.2 V (204799 in 4.28 arithmetic) plus the 16 ns ramp to 0 V
    # (1638); the exact compensation length at 0.1 V is 2015 ns, played for the power of 2 above it, 2048 ns,
    # at 0.1 V * 2015 / 2048.
    amplitude = -0.1 * 2015 / 2048
    plateau = np.isclose(samples, amplitude, atol=1e-5)
    first = int(np.argmax(plateau))
    assert 2032 <= plateau.sum() <= 2048 and plateau[first:first + 2032].all()
    assert (samples < -1e-3).sum() < 2048 + 32  # the ramps into and out of it are 16 ns each
    positive = samples[samples > 0].sum()
    assert positive == pytest.approx(200, rel=0.01)
    assert abs(samples.sum()) < 0.01 * positive
