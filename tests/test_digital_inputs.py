"""Digital inputs (the OPD): counting.digital and time_tagging.digital over the settings' digital loopback.

The `laser` element plays a marker on digital output 1 with high runs [0, 4), [10, 14), [60, 65) ns. The wiring
takes that output into digital inputs 1 (RISING, deadtime 4) and 2 (FALLING, deadtime 16), 24 ns later (the default
latency), and `spcm` reads them as out1 and out2 from its time of flight, 24 ns. So its window starts with the first
rising edge: out1 sees rising edges at 0, 10 and 60 ns; out2 sees falling edges at 4, 14 and 65 ns, and its deadtime
hides the one at 14 ns.
"""

from __future__ import annotations

import copy
import warnings

import pytest
from qm import QuantumMachinesManager
from qm.api.models.capabilities import QopCaps, ServerCapabilities
from qm.exceptions import FailedToAddJobToQueueException
from qm.program import load_config
from qm.qua import (
    counting, declare, declare_stream, demod, fixed, measure, play, program, save, stream_processing, time_tagging,
)

import qopemu
from qopemu import qmconfig, settings
from qopemu.engine.compiler import CompileError, compile_program
from qopemu.engine.inputs import InputModel
from qopemu.engine.runtime import run
from engine_support import RecordingHost

warnings.filterwarnings("ignore", category=DeprecationWarning)

WIRING = (("con1", 1, "con1", 1), ("con1", 1, "con1", 2))

CONFIG = {
    "controllers": {
        "con1": {
            "analog_outputs": {1: {"offset": 0.0}, 2: {"offset": 0.0}},
            "digital_outputs": {1: {}, 2: {}},
            "digital_inputs": {
                1: {"polarity": "RISING", "deadtime": 4, "threshold": 1.0},
                2: {"polarity": "FALLING", "deadtime": 16, "threshold": 1.0},
                3: {"polarity": "RISING", "deadtime": 4, "threshold": 1.0},
            },
        }
    },
    "elements": {
        "laser": {
            "singleInput": {"port": ("con1", 1)},
            "digitalInputs": {"marker": {"port": ("con1", 1), "delay": 0, "buffer": 0}},
            "operations": {"train": "train_pulse"},
        },
        "spcm": {
            "singleInput": {"port": ("con1", 2)},
            "digitalOutputs": {"out1": ("con1", 1), "out2": ("con1", 2), "out3": ("con1", 3)},
            "time_of_flight": 24,
            "smearing": 0,
            "operations": {"readout": "readout_pulse"},
        },
    },
    "pulses": {
        "train_pulse": {"operation": "control", "length": 200, "waveforms": {"single": "zero_wf"},
                        "digital_marker": "train"},
        "readout_pulse": {"operation": "measurement", "length": 400, "waveforms": {"single": "zero_wf"}},
    },
    "waveforms": {"zero_wf": {"type": "constant", "sample": 0.0}},
    "digital_waveforms": {"train": {"samples": [(1, 4), (0, 6), (1, 4), (0, 46), (1, 5), (0, 135)]}},
}


def make_config(config: dict = CONFIG) -> qmconfig.QmConfig:
    return qmconfig.from_pb(load_config(config, capabilities=ServerCapabilities(QopCaps.qop2_caps())))


def execute(prog, config: dict = CONFIG, wiring=WIRING) -> dict[str, list]:
    """What the program saved, by tag (r1, r2, ... in the order the program first saves to them)."""
    host = RecordingHost()
    model = make_config(config)
    run(compile_program(prog.qua_program, model), host, InputModel(digital_loopback=wiring).build(model))
    return host.saved


def tagging_program(max_time: int = 400):
    with program() as prog:
        times = declare(int, size=5)
        falling = declare(int, size=5)
        n = declare(int)
        m = declare(int)
        total = declare(int)
        play("train", "laser")
        measure("readout", "spcm", time_tagging.digital(times, max_time, n, "out1"),
                time_tagging.digital(falling, max_time, m, "out2"), counting.digital(total, max_time, ["out1", "out2"]))
        save(n, "n")
        save(m, "m")
        save(total, "total")
        for i in range(3):
            save(times[i], "t")
            save(falling[i], "f")
    return prog


def test_edges_of_the_configured_polarity_after_the_deadtime_in_ns_from_the_window_start():
    n, m, total, rising, falling = execute(tagging_program()).values()
    assert n == [3] and rising == [0, 10, 60]
    assert m == [2] and falling[:2] == [4, 65]
    assert total == [5] and all(type(v) is int for v in total + rising)


def test_max_time_closes_the_window():
    n, m, total, rising, _ = execute(tagging_program(max_time=50)).values()
    assert n == [2] and rising[:2] == [0, 10]
    assert m == [1] and total == [3]


def count_program(output: str = "out1"):
    with program() as prog:
        n = declare(int)
        play("train", "laser")
        measure("readout", "spcm", counting.digital(n, 400, output))
        save(n, "n")
    return prog


def test_nothing_wired_sees_no_pulses():
    assert execute(count_program(), wiring=()) == {"r1": [0]}
    assert execute(count_program("out3")) == {"r1": [0]}  # input 3 has no cable


@pytest.mark.parametrize("threshold, count", [(3.2, 3), (3.3, 0), (-0.1, 0)])
def test_the_threshold_compares_against_3v3_lvttl_levels(threshold, count):
    config = copy.deepcopy(CONFIG)
    config["controllers"]["con1"]["digital_inputs"][1]["threshold"] = threshold
    assert execute(count_program(), config) == {"r1": [count]}


def test_marker_delay_and_buffer_move_the_edges():
    config = copy.deepcopy(CONFIG)
    config["elements"]["laser"]["digitalInputs"]["marker"].update(delay=8, buffer=1)
    with program() as prog:
        times = declare(int, size=5)
        n = declare(int)
        play("train", "laser")
        measure("readout", "spcm", time_tagging.digital(times, 400, n, "out1"))
        save(n, "n")
        for i in range(3):
            save(times[i], "t")
    # buffer 1 widens each run by 1 ns either side, so [0, 4) [10, 14) become [-1, 5) [9, 15) before the delay
    assert execute(prog, config) == {"r1": [3], "r2": [7, 17, 67]}


def test_mistakes_are_named():
    with program() as prog:
        f = declare(int)
        x = declare(fixed, size=3)
        measure("readout", "spcm", counting.digital(f, 400))
        measure("readout", "spcm", counting.digital(f, 400, "out9"))
        measure("readout", "spcm", time_tagging.digital(x, 400, None, "out1"))
        measure("readout", "spcm", demod.full("cos", x[0]))
    with pytest.raises(CompileError) as info:
        compile_program(prog.qua_program, make_config())
    text = "\n".join(info.value.messages)
    assert "element 'spcm' has 3 digitalOutputs (out1, out2, out3): name the one to read" in text
    assert "element 'spcm' has no digital output 'out9' (its digitalOutputs: out1, out2, out3)" in text
    assert "time tagging writes ints" in text
    assert "analog measure process on element 'spcm', which has no analog 'outputs' (only digitalOutputs)" in text


def test_digital_outputs_must_name_declared_digital_inputs():
    config = copy.deepcopy(CONFIG)
    config["elements"]["spcm"]["digitalOutputs"]["out4"] = ("con1", 7)
    with pytest.raises(qmconfig.ConfigError) as info:
        make_config(config)
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("elements.spcm.digitalOutputs.out4", "port ('con1', 7) is not declared in controllers.con1.digital_inputs "
                                              "(a digital input has no defaults: declare its threshold, polarity and "
                                              "deadtime)")]


def test_settings_validate_the_digital_loopback():
    wired = settings.from_dict({"inputs": {"digital_loopback": [["con1", 1, "con1", 2]]}})
    assert wired.inputs.digital_loopback == (("con1", 1, "con1", 2),)
    with pytest.raises(settings.SettingsError, match="inputs.digital_loopback entries are \\[from controller, "
                                                      "digital output, to controller, digital input\\]"):
        settings.from_dict({"inputs": {"digital_loopback": [["con1", 0, "con1", 1]]}})


def client_program():
    with program() as prog:
        times = declare(int, size=5)
        n = declare(int)
        total = declare(int)
        n_st, t_st, total_st = declare_stream(), declare_stream(), declare_stream()
        play("train", "laser")
        measure("readout", "spcm", None, time_tagging.digital(times, 400, n, "out1"),
                counting.digital(total, 400, ["out1", "out2"]))
        save(n, n_st)
        save(total, total_st)
        for i in range(3):
            save(times[i], t_st)
        with stream_processing():
            n_st.save("n")
            total_st.save("total")
            t_st.buffer(3).save("times")
    return prog


def fetch(qm, name_values=("n", "total", "times")):
    job = qm.queue.add(client_program()).wait_for_execution()
    assert job.result_handles.wait_for_all_values(timeout=30)
    return {name: job.result_handles.get(name).fetch_all() for name in name_values}


def test_executed_jobs_see_the_server_wide_digital_loopback_and_the_qm_level_detector_settings():
    with qopemu.Server(settings.Settings(inputs=settings.InputSettings(digital_loopback=WIRING))) as server:
        qmm = QuantumMachinesManager(server.host, server.port)
        qm = qmm.open_qm(CONFIG, close_other_machines=False)
        values = fetch(qm)
        assert int(values["n"]) == 3 and int(values["total"]) == 5
        assert values["times"].tolist() == [0, 10, 60]
        # programs added afterwards detect with the new settings: out1 now misses the edge 10 ns after the first
        qm.set_digital_input_deadtime(("con1", 1), 16)
        qm.set_digital_input_polarity(("con1", 2), "RISING")
        values = fetch(qm)
        assert int(values["n"]) == 2 and int(values["total"]) == 4
        qm.set_digital_input_threshold(("con1", 1), 3.5)
        assert int(fetch(qm)["n"]) == 0
        qmm.close_all_qms()


def test_executed_jobs_without_wiring_count_nothing(server):
    qmm = QuantumMachinesManager(server.host, server.port)
    values = fetch(qmm.open_qm(CONFIG, close_other_machines=False), ("n", "total"))
    qmm.close_all_qms()
    assert int(values["n"]) == 0 and int(values["total"]) == 0


def test_a_bad_digital_process_is_refused_when_added(server):
    qmm = QuantumMachinesManager(server.host, server.port)
    qm = qmm.open_qm(CONFIG, close_other_machines=False)
    with pytest.raises(FailedToAddJobToQueueException):
        qm.queue.add(count_program(""))
    qmm.close_all_qms()
