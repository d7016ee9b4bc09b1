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
